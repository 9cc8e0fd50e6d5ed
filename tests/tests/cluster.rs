//! Three relays on one PostgreSQL database, with real daemons (issue 18): devices on
//! different relays see each other online and exchange messages; a relay killed with
//! SIGKILL loses its devices to another relay of their list, and every message its
//! sender saw stored (by the killed relay too) arrives exactly once and comes back
//! delivered. Calls between devices on different relays go over relay links: both tones
//! cross, every end reason reaches the caller, and killing the callee's relay ends the
//! call on the caller's side without touching calls the other relays carry.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use phoned::audio::analysis::goertzel_power;
use phoned_tests::process::{PhonedProcess, RelayProcess, bin};
use phoned_tests::wait_for;

/// Messages sent across the kill.
const MESSAGES: usize = 20;
/// The relays' ring timeout.
const RING_MS: u64 = 5_000;

struct Cluster {
    dir: tempfile::TempDir,
    relays: Vec<RelayProcess>,
    db: String,
}

/// Three relays on one fresh database, sharing one certificate and one login-token key
/// (what docs/operations.md asks of a cluster); `None` without PostgreSQL here.
fn cluster() -> Option<Cluster> {
    let pg = phoned_tests::postgres::shared()?;
    let db = pg.database();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |id: &str| {
        format!(
            "store = \"{db}\"\nrelay_id = \"{id}\"\nidle_timeout_ms = 2000\nkeep_alive_ms = 500\n\
             ring_timeout_ms = {RING_MS}"
        )
    };
    let first = RelayProcess::start(
        &bin("phone-relay"),
        &dir.path().join("r1"),
        "127.0.0.1:0",
        &config("r1"),
    );
    let mut relays = vec![first];
    for id in ["r2", "r3"] {
        let state = dir.path().join(id);
        std::fs::create_dir_all(&state).expect("state dir");
        for f in ["relay-cert.der", "relay-key.der", "login-token.key"] {
            std::fs::copy(relays[0].state_dir.join(f), state.join(f)).expect("copy secrets");
        }
        relays.push(RelayProcess::start(
            &bin("phone-relay"),
            &state,
            "127.0.0.1:0",
            &config(id),
        ));
    }
    assert!(
        relays
            .iter()
            .all(|r| r.fingerprint == relays[0].fingerprint)
    );
    Some(Cluster { dir, relays, db })
}

impl Cluster {
    /// A daemon whose relay list is `relays` (indices, in order), pinned to the cluster.
    fn phone(&self, name: &str, relays: &[usize]) -> PhonedProcess {
        let addrs: Vec<SocketAddr> = relays.iter().map(|&i| self.relays[i].addr).collect();
        PhonedProcess::start_with_relays(
            &self.dir.path().join(name),
            &addrs,
            &format!(
                "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"",
                self.relays[0].fingerprint
            ),
        )
    }

    /// [`Cluster::phone`] whose microphone plays a `freq` Hz tone and whose speaker
    /// records to `<name>-audio/out.wav`.
    fn tone_phone(&self, name: &str, relays: &[usize], freq: f32) -> PhonedProcess {
        let dir = self.dir.path().join(format!("{name}-audio"));
        std::fs::create_dir_all(&dir).expect("audio dir");
        common::write_tone(&dir.join("in.wav"), freq, 30);
        let addrs: Vec<SocketAddr> = relays.iter().map(|&i| self.relays[i].addr).collect();
        PhonedProcess::start_with_relays(
            &self.dir.path().join(name),
            &addrs,
            &format!(
                "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\n\
                 input_wav = \"{}\"\noutput_wav = \"{}\"",
                self.relays[0].fingerprint,
                dir.join("in.wav").display(),
                dir.join("out.wav").display()
            ),
        )
    }

    /// (440 Hz, 1000 Hz) power of what `name` heard, from half a second on.
    fn heard(&self, name: &str) -> (f64, f64) {
        let (samples, rate) =
            phoned_tests::wav::read(&self.dir.path().join(format!("{name}-audio/out.wav")));
        let s = &samples[(rate as usize / 2).min(samples.len())..];
        (
            goertzel_power(s, rate as f32, 440.0),
            goertzel_power(s, rate as f32, 1000.0),
        )
    }

    /// The relay ids holding a valid lease for `number`.
    fn leases_of(&self, number: &str) -> String {
        let pg = phoned_tests::postgres::shared().expect("postgres");
        let db = self.db.rsplit('/').next().expect("db name");
        pg.psql(
            db,
            &format!(
                "SELECT string_agg(DISTINCT l.relay, ',') FROM leases l JOIN accounts a \
                 ON a.id = l.account WHERE a.number = '{number}' AND l.expires_at > now()"
            ),
        )
    }

    fn inbox_rows(&self) -> String {
        let pg = phoned_tests::postgres::shared().expect("postgres");
        let db = self.db.rsplit('/').next().expect("db name");
        pg.psql(db, "SELECT count(*) FROM inbox")
    }
}

fn number(p: &PhonedProcess) -> String {
    p.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("number")
        .to_owned()
}

fn who(p: &PhonedProcess) -> Vec<String> {
    p.ctl(&["--json", "who"])
        .json()
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|u| u["number"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn history(p: &PhonedProcess) -> Vec<serde_json::Value> {
    p.ctl(&["--json", "msg", "history"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn send(p: &PhonedProcess, to: &str, text: &str) -> String {
    let out = p.ctl(&["--json", "msg", "send", to, text]);
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["id"].as_str().expect("id").to_owned()
}

/// The incoming messages in `p`'s history whose text starts with `prefix`, by text.
fn received(p: &PhonedProcess, prefix: &str) -> Vec<String> {
    let mut texts: Vec<String> = history(p)
        .into_iter()
        .filter(|m| m["direction"] == "in")
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .filter(|t| t.starts_with(prefix))
        .collect();
    texts.sort();
    texts
}

fn wait_status(p: &PhonedProcess, ids: &[String], status: &[&str]) -> bool {
    wait_for(Duration::from_secs(20), || {
        let h = history(p);
        ids.iter()
            .all(|id| {
                h.iter().any(|m| {
                    m["id"] == id.as_str() && status.contains(&m["status"].as_str().unwrap_or(""))
                })
            })
            .then_some(())
    })
    .is_some()
}

#[test]
fn three_relays_one_database_presence_messages_and_a_killed_relay() {
    let Some(mut c) = cluster() else {
        return;
    };
    // A tries r1 first, then r2, r3; B is on r2 only, C on r3 only.
    let a = c.phone("Alice", &[0, 1, 2]);
    let b = c.phone("Bob", &[1]);
    let cc = c.phone("Carol", &[2]);
    let (na, nb, nc) = (number(&a), number(&b), number(&cc));
    assert_eq!(c.leases_of(&na), "r1");
    assert_eq!(c.leases_of(&nb), "r2");

    // Everyone sees everyone, across relays.
    for (p, others) in [(&a, [&nb, &nc]), (&b, [&na, &nc]), (&cc, [&na, &nb])] {
        wait_for(Duration::from_secs(10), || {
            let list = who(p);
            others.iter().all(|n| list.contains(n)).then_some(())
        })
        .unwrap_or_else(|| panic!("who: {:?}", who(p)));
    }

    // A message from A (relay r1) to B (relay r2) arrives and comes back delivered.
    let id = send(&a, &nb, "hello across relays");
    assert!(wait_status(&a, std::slice::from_ref(&id), &["delivered"]));
    assert_eq!(received(&b, "hello across"), ["hello across relays"]);

    // Messages from A that r1 answered Stored before it dies: they are in the database,
    // and reach C (on r3) once each.
    let from_a: Vec<String> = (0..5).map(|i| send(&a, &nc, &format!("k{i}"))).collect();
    assert!(wait_status(&a, &from_a, &["stored", "delivered"]));
    // B sends A a stream of messages; r1, A's relay, is killed in the middle of it.
    let sender = std::thread::scope(|s| {
        let sending = s.spawn(|| {
            (0..MESSAGES)
                .map(|i| send(&b, &na, &format!("n{i:02}")))
                .collect::<Vec<String>>()
        });
        wait_for(Duration::from_secs(20), || {
            (received(&a, "n").len() >= MESSAGES / 4).then_some(())
        })
        .expect("the first messages reached A on r1");
        let killed = Instant::now();
        c.relays[0].kill();
        // A notices and moves to the next relay of its list.
        wait_for(common::ONLINE, || {
            let online = a
                .status()
                .is_some_and(|v| v["connection_state"] == "online");
            let moved = c.leases_of(&na);
            (online && (moved.contains("r2") || moved.contains("r3"))).then_some(())
        })
        .unwrap_or_else(|| panic!("A never moved to another relay; log:\n{}", a.log()));
        let took = killed.elapsed();
        eprintln!(
            "A online on another relay {:.1} s after r1 was killed (leases: {})",
            took.as_secs_f64(),
            c.leases_of(&na)
        );
        sending.join().expect("sender")
    });
    assert_eq!(sender.len(), MESSAGES);
    // Every message B saw stored reaches A exactly once, and B hears it was delivered.
    assert!(
        wait_status(&b, &sender, &["delivered"]),
        "not all delivered: {:?}",
        history(&b)
    );
    let got = received(&a, "n");
    let expect: Vec<String> = (0..MESSAGES).map(|i| format!("n{i:02}")).collect();
    assert_eq!(got, expect, "each message once");
    assert_eq!(received(&cc, "k"), ["k0", "k1", "k2", "k3", "k4"]);
    // Their receipts reach A on its new relay.
    assert!(
        wait_status(&a, &from_a, &["delivered"]),
        "receipts after the failover: {:?}",
        history(&a)
    );
    assert_eq!(c.inbox_rows(), "0", "nothing left waiting on the relays");

    // B and C still see A (now on another relay), and A sees them.
    wait_for(Duration::from_secs(10), || {
        (who(&b).contains(&na) && who(&cc).contains(&na) && who(&a).contains(&nb)).then_some(())
    })
    .expect("presence after the failover");
}

/// Waits until `p` sees every number of `numbers` online (their relays' leases read).
fn sees(p: &PhonedProcess, numbers: &[&String]) {
    wait_for(Duration::from_secs(15), || {
        let list = who(p);
        numbers.iter().all(|n| list.contains(n)).then_some(())
    })
    .unwrap_or_else(|| panic!("who: {:?}", who(p)));
}

/// `callee` answers the call ringing there (retrying until it rings).
fn answer(callee: &PhonedProcess) {
    let answered = wait_for(Duration::from_secs(10), || {
        let calls = callee.ctl(&["--json", "calls"]).json();
        let ringing = calls.as_array()?.iter().any(|c| c["state"] == "incoming");
        (ringing && callee.ctl(&["answer"]).code == 0).then_some(())
    });
    assert!(answered.is_some(), "never rang; log:\n{}", callee.log());
}

fn dial_reason(p: &PhonedProcess, number: &str) -> String {
    let out = p.ctl(&["--json", "dial", number, "--wait"]);
    out.json()["reason"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_call_between_relays_carries_both_tones_and_every_end_reason() {
    let Some(c) = cluster() else {
        return;
    };
    // A only on r1, B only on r2.
    let a = c.tone_phone("A", &[0], 440.0);
    let b = c.tone_phone("B", &[1], 1000.0);
    let (na, nb) = (number(&a), number(&b));
    assert_eq!(
        (c.leases_of(&na), c.leases_of(&nb)),
        ("r1".into(), "r2".into())
    );
    sees(&a, &[&nb]);
    sees(&b, &[&na]);

    // It rings on B, B answers, they talk; B hangs up and the call ends on both sides.
    let dialing = common::dial_bg(&a, &nb);
    answer(&b);
    let placed = dialing.join().expect("dial");
    assert_eq!(placed.json()["state"], "active", "{placed:?}\n{}", a.log());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(b.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
    common::assert_heard_each_other(c.heard("A"), c.heard("B"));

    // The caller hangs up: the callee's side ends too.
    let dialing = common::dial_bg(&a, &nb);
    answer(&b);
    assert_eq!(dialing.join().expect("dial").json()["state"], "active");
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&b) && common::no_calls(&a));

    // The callee rejects.
    let dialing = common::dial_bg(&a, &nb);
    common::wait_call(&b, "incoming");
    assert_eq!(b.ctl(&["reject"]).code, 0);
    assert_eq!(dialing.join().expect("dial").json()["reason"], "rejected");
    // Busy (do not disturb).
    assert_eq!(b.ctl(&["dnd", "on"]).code, 0);
    assert_eq!(dial_reason(&a, &nb), "busy");
    assert_eq!(b.ctl(&["dnd", "off"]).code, 0);
    // Nobody answers before the ring timeout; the callee has a missed call.
    assert_eq!(dial_reason(&a, &nb), "no-answer");
    assert!(common::no_calls(&b));
    // From r2 to r1 too.
    let dialing = common::dial_bg(&b, &na);
    common::wait_call(&a, "incoming");
    assert_eq!(a.ctl(&["reject"]).code, 0);
    assert_eq!(dialing.join().expect("dial").json()["reason"], "rejected");

    // A device online nowhere: offline, at once.
    let mut b = b;
    b.stop();
    let offline = wait_for(Duration::from_secs(15), || {
        (dial_reason(&a, &nb) == "offline").then_some(())
    });
    assert!(offline.is_some(), "calling a device online nowhere");
}

#[test]
fn killing_the_callees_relay_ends_the_call_there_and_spares_the_others() {
    let Some(mut c) = cluster() else {
        return;
    };
    // A (r1) calls B (r2); D (r1) calls C (r3): r2 carries only the first call.
    let a = c.phone("A", &[0]);
    let b = c.phone("B", &[1]);
    let cc = c.phone("C", &[2]);
    let d = c.phone("D", &[0]);
    let (na, nb, nc) = (number(&a), number(&b), number(&cc));
    sees(&a, &[&nb]);
    sees(&d, &[&nc]);
    sees(&b, &[&na]);
    for p in [&b, &cc] {
        assert_eq!(p.ctl(&["autoanswer", "all"]).code, 0);
    }
    for (caller, callee) in [(&a, &nb), (&d, &nc)] {
        let out = caller.ctl(&["--json", "dial", callee, "--wait"]);
        assert_eq!(out.json()["state"], "active", "{out:?}");
    }
    common::wait_call(&b, "active");
    common::wait_call(&cc, "active");

    let killed = Instant::now();
    c.relays[1].kill();
    assert!(
        common::no_calls(&a),
        "A's call outlived its callee's relay; log:\n{}",
        a.log()
    );
    eprintln!(
        "A's call to B ended {:.1} s after B's relay was killed",
        killed.elapsed().as_secs_f64()
    );
    // The call r1 and r3 carry goes on.
    std::thread::sleep(Duration::from_secs(3));
    for p in [&d, &cc] {
        let calls = p.ctl(&["--json", "calls"]).json();
        let states: Vec<&str> = calls
            .as_array()
            .map(|l| l.iter().filter_map(|c| c["state"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(states, ["active"], "{}", p.log());
    }
    assert_eq!(d.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&cc));
}
