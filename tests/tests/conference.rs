//! Conference calls end to end (issue 15): a real relay, four real daemons on private
//! buses with the `file` audio backend, each playing a tone of its own frequency and
//! recording what it hears; `phonectl conference` drives them.
//!
//! What is judged is which tones each recording holds (Goertzel power per frequency over
//! a stretch recorded while the room is in a known shape), never how fast anything went.

mod common;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use phoned::audio::analysis::goertzel_power;
use phoned_tests::process::{PhonedProcess, Watch};
use phoned_tests::{wait_for, wav};

const RATE: u32 = 48_000;
/// Long enough for every stage of a test (a capture restarts the file at each call).
const TONE_SECONDS: u32 = 120;
/// How long each stage listens.
const LISTEN: Duration = Duration::from_secs(4);
/// Generous: a loaded machine runs four daemons and a relay here.
const SETTLE: Duration = Duration::from_secs(30);

/// The tests here each run five processes that code audio in real time: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Party {
    name: &'static str,
    freq: f32,
    phone: PhonedProcess,
    number: String,
}

impl Party {
    fn start(w: &common::World, name: &'static str, freq: f32) -> Party {
        let dir = w.dir.path().join(format!("{name}-audio"));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("in.wav");
        // A frequency of 0 is a party that says nothing.
        let tone = (0..RATE * TONE_SECONDS)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * freq * (i as f32 / RATE as f32)).sin());
        wav::write(&input, RATE, 1, tone);
        let phone = w.phone_with(
            name,
            &format!(
                "relay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
                w.relay.fingerprint,
                input.display(),
                dir.join("out.wav").display()
            ),
        );
        Party {
            name,
            freq,
            phone,
            number: String::new(),
        }
    }

    fn online(&mut self) {
        self.number = self.phone.wait_online(common::ONLINE)["number"]
            .as_str()
            .expect("a number")
            .to_owned();
    }

    fn recording(&self) -> PathBuf {
        self.phone
            .dir
            .parent()
            .unwrap()
            .join(format!("{}-audio/out.wav", self.name))
    }

    /// How many samples the recording holds so far (the file backend rewrites the WAV
    /// header about once a second, so a running call's recording can be read).
    fn mark(&self) -> usize {
        let path = self.recording();
        if path.exists() {
            wav::read(&path).0.len()
        } else {
            0
        }
    }

    /// The samples recorded since `mark`.
    fn since(&self, mark: usize) -> Vec<f32> {
        let (samples, _) = wav::read(&self.recording());
        samples[mark.min(samples.len())..].to_vec()
    }

    fn ctl(&self, args: &[&str]) -> phoned_tests::process::CtlOutput {
        self.phone.ctl(args)
    }

    /// `conference --json`, or `None` when not in one.
    fn conference(&self) -> Option<serde_json::Value> {
        let out = self.ctl(&["--json", "conference"]);
        (out.code == 0).then(|| out.json())
    }

    /// Answers the invitation (or call) ringing here; returns once this party's call is
    /// active.
    fn answer(&self) {
        let active = wait_for(SETTLE, || {
            let calls = self.ctl(&["--json", "calls"]).json();
            let calls = calls.as_array()?;
            if calls.iter().any(|c| c["state"] == "active") {
                return Some(());
            }
            if calls.iter().any(|c| c["state"] == "incoming") {
                self.ctl(&["answer"]);
            }
            None
        });
        assert!(
            active.is_some(),
            "{} never got into the call: {:?}\n{}",
            self.name,
            self.ctl(&["--json", "calls"]),
            self.phone.log()
        );
    }

    fn no_calls(&self) -> bool {
        wait_for(SETTLE, || {
            let calls = self.ctl(&["--json", "calls"]).json();
            calls.as_array()?.is_empty().then_some(())
        })
        .is_some()
    }
}

fn state_of<'a>(conference: &'a serde_json::Value, number: &str) -> Option<&'a str> {
    conference["parties"]
        .as_array()?
        .iter()
        .find(|p| p["number"] == number)?["state"]
        .as_str()
}

/// Waits until `viewer`'s conference passes `check`; returns it.
fn until(
    viewer: &Party,
    what: &str,
    mut check: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(SETTLE, || viewer.conference().filter(|c| check(c))).unwrap_or_else(|| {
        panic!(
            "{}'s conference never showed {what}: {:?}\n{}",
            viewer.name,
            viewer.ctl(&["--json", "conference"]),
            viewer.phone.log()
        )
    })
}

/// Every party of `talking` records the tones of the others of `talking` and not its
/// own; none records the tone of a party in `silent` (gone from the room).
fn each_hears_the_others(talking: &[&Party], silent: &[&Party]) {
    // What was on its way when the room changed (jitter buffers, the mixer) plays out
    // first; the recording is judged from after that.
    std::thread::sleep(Duration::from_secs(2));
    let marks: Vec<usize> = talking.iter().map(|p| p.mark()).collect();
    std::thread::sleep(LISTEN);
    // Let the header catch up with what was played meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    for (listener, mark) in talking.iter().zip(marks) {
        let heard = listener.since(mark);
        assert!(
            heard.len() > RATE as usize,
            "{} recorded only {} samples",
            listener.name,
            heard.len()
        );
        let power = |p: &Party| goertzel_power(&heard, RATE as f32, p.freq);
        let own = power(listener);
        let others: Vec<(&str, f64)> = talking
            .iter()
            .filter(|p| p.name != listener.name)
            .map(|p| (p.name, power(p)))
            .collect();
        let gone: Vec<(&str, f64)> = silent.iter().map(|p| (p.name, power(p))).collect();
        eprintln!(
            "{} hears: own {own:.2e}, others {others:?}, gone {gone:?}",
            listener.name
        );
        for (name, p) in &others {
            assert!(
                *p > 50.0 * own,
                "{} should hear {name} ({p:e}) far above its own tone ({own:e})",
                listener.name
            );
            for (g, q) in &gone {
                assert!(
                    *p > 20.0 * q,
                    "{} should hear {name} ({p:e}) far above {g}, who is gone ({q:e})",
                    listener.name
                );
            }
        }
    }
}

fn parties(w: &common::World, which: &[(&'static str, f32)]) -> Vec<Party> {
    let mut all: Vec<Party> = which
        .iter()
        .map(|(name, freq)| Party::start(w, name, *freq))
        .collect();
    for p in &mut all {
        p.online();
    }
    all
}

#[test]
fn four_parties_hear_each_other_and_the_room_outlives_its_host() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let all = parties(
        &w,
        &[("A", 500.0), ("B", 800.0), ("C", 1100.0), ("D", 1400.0)],
    );
    let [a, b, c, d] = &all[..] else {
        unreachable!()
    };
    let watch = Watch::start(&b.phone.bus.address);

    let out = a.ctl(&[
        "--json",
        "conference",
        "create",
        &b.number,
        &c.number,
        &d.number,
    ]);
    assert_eq!(out.code, 0, "{out:?}\n{}", a.phone.log());
    let created = out.json();
    assert_eq!(created["host"], a.number.as_str(), "{created}");
    assert!(
        created["path"]
            .as_str()
            .is_some_and(|p| p.contains("/Conference/"))
    );

    // They answer one after the other, so who has been present longest is known.
    for p in [b, c, d] {
        p.answer();
        until(a, &format!("{} joined", p.name), |conf| {
            state_of(conf, &p.number) == Some("joined")
        });
    }
    let shown = until(a, "four parties joined", |c| {
        c["parties"]
            .as_array()
            .is_some_and(|ps| ps.len() == 4 && ps.iter().all(|p| p["state"] == "joined"))
    });
    assert_eq!(shown["host"], a.number.as_str());
    for p in shown["parties"].as_array().unwrap() {
        assert!(p["name"].is_string() && p["speaking"].is_boolean(), "{p}");
    }
    until(d, "four parties joined", |conf| {
        conf["host"] == a.number.as_str()
            && [a, b, c, d]
                .iter()
                .all(|p| state_of(conf, &p.number) == Some("joined"))
    });
    // Each of the others is heard speaking (their tones are loud); A does not hear itself.
    until(a, "B, C and D speaking", |conf| {
        conf["parties"].as_array().is_some_and(|ps| {
            ps.iter()
                .all(|p| p["speaking"] == (p["number"] != a.number.as_str()))
        })
    });
    // `watch` shows the room's changes.
    let changed = watch.wait(SETTLE, |e| {
        e["event"] == "conference_changed" && e["changed"]["Parties"].is_array()
    });
    assert!(changed.is_some(), "no conference_changed on B's watch");

    each_hears_the_others(&[a, b, c, d], &[]);

    // The host hangs up: that leaves, the role passes to B (present longest), the rest
    // go on.
    let out = a.ctl(&["hangup"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(a.no_calls(), "A still has a call after hanging up");
    for p in [b, c, d] {
        until(p, "B as host and A gone", |conf| {
            conf["host"] == b.number.as_str() && state_of(conf, &a.number) == Some("left")
        });
    }
    each_hears_the_others(&[b, c, d], &[a]);

    // Only the host removes; the removed party's call ends, the two others go on.
    let out = c.ctl(&["conference", "remove", &d.number]);
    assert_ne!(out.code, 0, "C is not the host: {out:?}");
    let out = b.ctl(&["--json", "conference", "remove", &d.number]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(d.no_calls(), "D still has a call after its removal");
    until(c, "D gone", |conf| {
        state_of(conf, &d.number) == Some("left")
    });
    each_hears_the_others(&[b, c], &[a, d]);

    // Leaving the last two ends the room.
    let out = c.ctl(&["conference", "leave"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(b.no_calls() && c.no_calls());
    assert_ne!(b.ctl(&["conference"]).code, 0, "B is in no conference now");
}

#[test]
fn merging_the_active_and_the_held_call_makes_a_three_way_call() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let all = parties(&w, &[("A", 500.0), ("B", 800.0), ("C", 1100.0)]);
    let [a, b, c] = &all[..] else { unreachable!() };
    for p in [b, c] {
        assert_eq!(p.ctl(&["autoanswer", "all"]).code, 0);
    }
    let out = a.ctl(&["--json", "dial", &b.number, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    assert_eq!(a.ctl(&["hold"]).code, 0);
    let out = a.ctl(&["--json", "dial", &c.number, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    // Not a conference yet.
    assert_ne!(a.ctl(&["conference"]).code, 0);

    let out = a.ctl(&["--json", "conference", "merge"]);
    assert_eq!(out.code, 0, "{out:?}\n{}", a.phone.log());
    for viewer in [a, b, c] {
        until(viewer, "three parties joined, A hosting", |conf| {
            conf["host"] == a.number.as_str()
                && [a, b, c]
                    .iter()
                    .all(|p| state_of(conf, &p.number) == Some("joined"))
        });
    }
    // A's held call went into the conference: one call is left on A.
    let calls = a.ctl(&["--json", "calls"]).json();
    assert!(
        wait_for(SETTLE, || {
            let calls = a.ctl(&["--json", "calls"]).json();
            (calls.as_array()?.len() == 1).then_some(())
        })
        .is_some(),
        "A has {calls}"
    );
    each_hears_the_others(&[a, b, c], &[]);
}

#[test]
fn adding_a_third_party_turns_a_plain_call_into_a_conference() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let all = parties(&w, &[("A", 500.0), ("B", 800.0), ("C", 1100.0)]);
    let [a, b, c] = &all[..] else { unreachable!() };
    assert_eq!(b.ctl(&["autoanswer", "all"]).code, 0);
    let out = a.ctl(&["--json", "dial", &b.number, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    assert_ne!(a.ctl(&["conference"]).code, 0, "not a conference yet");

    // `Call.AddParty` underneath: it returns once the `Conference` object is there.
    let out = a.ctl(&["--json", "conference", "add", &c.number]);
    assert_eq!(out.code, 0, "{out:?}\n{}", a.phone.log());
    assert_eq!(out.json()["number"], c.number.as_str(), "{out:?}");
    let shown = a.conference().expect("the conference right after the add");
    assert_eq!(shown["path"], out.json()["path"], "{shown}");
    c.answer();
    for viewer in [a, b, c] {
        until(viewer, "three parties joined, A hosting", |conf| {
            conf["host"] == a.number.as_str()
                && [a, b, c]
                    .iter()
                    .all(|p| state_of(conf, &p.number) == Some("joined"))
        });
    }
    // A's call is the conference's: still one call.
    let calls = a.ctl(&["--json", "calls"]).json();
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "{calls}");
    each_hears_the_others(&[a, b, c], &[]);

    // Adding to nothing says so.
    let out = b.ctl(&["conference", "leave"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(b.no_calls());
    let out = b.ctl(&["conference", "add", &c.number]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("not in a conference"), "{out:?}");
}

/// The parties `viewer`'s conference marks as speaking (heard within the last second).
fn speaking(viewer: &Party) -> Vec<String> {
    viewer
        .conference()
        .and_then(|c| {
            c["parties"].as_array().map(|ps| {
                ps.iter()
                    .filter(|p| p["speaking"] == true)
                    .filter_map(|p| p["number"].as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// With four talking in the room, every listener receives at most three of them (the
/// relay forwards the three loudest others): a talker hears the three other talkers, a
/// silent party three of the four, and none is ever shown more than three speaking.
fn at_most_three_heard(talkers: &[&Party], silent: &[&Party]) {
    each_hears_the_others(talkers, silent);
    for listener in talkers.iter().chain(silent) {
        let three = wait_for(SETTLE, || (speaking(listener).len() == 3).then_some(()));
        assert!(
            three.is_some(),
            "{} never showed three speaking: {:?}",
            listener.name,
            listener.conference()
        );
    }
    for _ in 0..3 {
        for listener in talkers.iter().chain(silent) {
            let shown = speaking(listener);
            assert!(shown.len() <= 3, "{} shows {shown:?}", listener.name);
        }
    }
    // What a silent party hears: three tones, the fourth (not forwarded) far below.
    for listener in silent {
        let mark = listener.mark();
        std::thread::sleep(LISTEN);
        std::thread::sleep(Duration::from_millis(1500));
        let heard = listener.since(mark);
        let mut power: Vec<f64> = talkers
            .iter()
            .map(|p| goertzel_power(&heard, RATE as f32, p.freq))
            .collect();
        power.sort_by(|x, y| y.total_cmp(x));
        eprintln!("{} hears {power:?}", listener.name);
        assert!(
            power[2] > 20.0 * power[3],
            "{} should hear three talkers, not the fourth: {power:?}",
            listener.name
        );
    }
}

#[test]
fn six_parties_four_talking_each_receives_three_and_refused_invites_disturb_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let all = parties(
        &w,
        &[
            ("A", 500.0),
            ("B", 800.0),
            ("C", 1100.0),
            ("D", 1400.0),
            ("E", 0.0),
            ("F", 0.0),
        ],
    );
    let [a, b, c, d, e, f] = &all[..] else {
        unreachable!()
    };
    assert_eq!(f.ctl(&["dnd", "on"]).code, 0);

    // F does not disturb: its invitation ends as refused, the others join.
    let out = a.ctl(&[
        "--json",
        "conference",
        "create",
        &b.number,
        &c.number,
        &d.number,
        &e.number,
        &f.number,
    ]);
    assert_eq!(out.code, 0, "{out:?}\n{}", a.phone.log());
    for p in [b, c, d, e] {
        p.answer();
    }
    until(a, "B to E joined, F refused", |conf| {
        [a, b, c, d, e]
            .iter()
            .all(|p| state_of(conf, &p.number) == Some("joined"))
            && state_of(conf, &f.number) == Some("left")
    });
    assert!(f.no_calls(), "F rang or took the call in do-not-disturb");
    // A number nobody has: refused, the room goes on.
    let unknown = "7999999";
    let out = a.ctl(&["conference", "add", unknown]);
    assert_eq!(out.code, 0, "{out:?}");
    until(a, "the unknown number refused", |conf| {
        state_of(conf, unknown) == Some("left")
    });
    at_most_three_heard(&[a, b, c, d], &[e]);

    // F is reachable again and added: six in the room, four talking.
    assert_eq!(f.ctl(&["dnd", "off"]).code, 0);
    let out = a.ctl(&["conference", "add", &f.number]);
    assert_eq!(out.code, 0, "{out:?}");
    f.answer();
    for viewer in [a, f] {
        until(viewer, "six parties joined", |conf| {
            all.iter()
                .all(|p| state_of(conf, &p.number) == Some("joined"))
        });
    }
    at_most_three_heard(&[a, b, c, d], &[e, f]);
}
