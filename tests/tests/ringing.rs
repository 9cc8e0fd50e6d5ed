//! Ringing, heard through the `file` backend's speaker (one WAV holds everything a daemon
//! played, ring and calls in order): an incoming call rings until it is answered,
//! declined or given up; `ring = "off"` rings nothing; a call that comes during a call
//! is heard as the call-waiting tone inside that call, not as a ring. And once through a
//! real PulseAudio server (its speaker's monitor recorded with `parec`), as a desktop
//! rings.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use phoned::audio::analysis::goertzel_power;
use phoned_tests::process::PhonedProcess;
use phoned_tests::pulse::{self, CpuMeter, PulseServer};
use phoned_tests::{wait_for, wav};

const RATE: u32 = 48_000;
/// Analysis window: 100 ms holds whole periods of every tone below.
const WINDOW: usize = RATE as usize / 10;

/// A phone whose speaker is `NAME-speaker.wav` and whose microphone plays `tone` Hz (or
/// silence), with `extra` in its `[audio]` section.
fn phone(
    w: &common::World,
    name: &str,
    tone: Option<f32>,
    extra: &str,
) -> (PhonedProcess, PathBuf) {
    let dir = w.dir.path().join(format!("{name}-audio"));
    std::fs::create_dir_all(&dir).unwrap();
    let speaker = dir.join("speaker.wav");
    let mic = match tone {
        Some(freq) => {
            let path = dir.join("mic.wav");
            let samples = (0..RATE * 60)
                .map(|i| 0.3 * (std::f32::consts::TAU * freq * (i as f32 / RATE as f32)).sin());
            wav::write(&path, RATE, 1, samples);
            format!("input_wav = \"{}\"\n", path.display())
        }
        None => String::new(),
    };
    let p = w.phone_with(
        name,
        &format!(
            "relay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\n{mic}output_wav = \"{}\"\n{extra}",
            w.relay.fingerprint,
            speaker.display()
        ),
    );
    (p, speaker)
}

fn number(p: &PhonedProcess) -> String {
    p.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Seconds of audio in the WAV at `path` so far (its header is rewritten about once a
/// second while it grows).
fn seconds(path: &Path) -> f64 {
    hound::WavReader::open(path).map_or(0.0, |r| f64::from(r.duration()) / f64::from(RATE))
}

/// Waits until the speaker at `path` has played `at_least` seconds.
fn wait_played(p: &PhonedProcess, path: &Path, at_least: f64) {
    let played = wait_for(Duration::from_secs(30), || {
        (seconds(path) >= at_least).then_some(())
    });
    assert!(
        played.is_some(),
        "{} holds {:.2} s, not {at_least} s\n{}",
        path.display(),
        seconds(path),
        p.log()
    );
}

/// The speaker's file stays as it is: no stream is open on it any more. (The file
/// backend writes to it every 10 ms while a stream is open, flushed every ~85 ms.)
fn speaker_closed(path: &Path) -> bool {
    let size = || std::fs::metadata(path).map_or(0, |m| m.len());
    let before = size();
    std::thread::sleep(Duration::from_millis(600));
    size() == before
}

/// What a 100 ms window of the speaker holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Silence,
    /// The built-in ring: 660 Hz and 880 Hz together.
    Ring,
    /// The far side's voice (its microphone's tone).
    Voice,
    /// The voice with the call-waiting tone (440 Hz) in it.
    VoiceAndWaiting,
    Other,
}

fn classify(samples: &[f32], voice: f32) -> Vec<Heard> {
    samples
        .chunks_exact(WINDOW)
        .map(|w| {
            let p = |f: f32| goertzel_power(w, RATE as f32, f);
            let (ring, voice, waiting) = (
                p(660.0) > 1e-3 && p(880.0) > 1e-3,
                p(voice) > 2e-3,
                p(440.0) > 5e-4,
            );
            let loud = w.iter().any(|s| s.abs() > 0.01);
            match (ring, voice, waiting) {
                (true, false, false) => Heard::Ring,
                (false, true, false) => Heard::Voice,
                (false, true, true) => Heard::VoiceAndWaiting,
                _ if !loud => Heard::Silence,
                _ => Heard::Other,
            }
        })
        .collect()
}

/// Where each run of `what` starts, and how long it is (in windows).
fn runs(heard: &[Heard], what: Heard) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, h) in heard.iter().enumerate() {
        if *h != what {
            continue;
        }
        match runs.last_mut() {
            Some((start, len)) if *start + *len == i => *len += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

fn count(heard: &[Heard], what: Heard) -> usize {
    heard.iter().filter(|h| **h == what).count()
}

#[test]
fn an_incoming_call_rings_through_the_speaker_until_it_is_answered() {
    let w = common::world();
    let (a, _) = phone(&w, "A", Some(1000.0), "");
    let (b, speaker) = phone(&w, "B", None, "");
    number(&a);
    let nb = number(&b);
    let dialing = common::dial_bg(&a, &nb);
    let id = common::wait_call(&b, "incoming");
    // A whole ring period (3 s) and a little more before answering.
    wait_played(&b, &speaker, 3.5);
    let rang = seconds(&speaker);
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    wait_played(&b, &speaker, rang + 3.0);
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&b));
    // The call's media thread may still be draining its last block when the call object
    // is gone: the speaker closes within a few seconds, not necessarily at once.
    let closed = wait_for(Duration::from_secs(5), || {
        speaker_closed(&speaker).then_some(())
    });
    assert!(closed.is_some(), "the speaker stayed open after the call");

    let (samples, rate) = wav::read(&speaker);
    assert_eq!(rate, RATE);
    let heard = classify(&samples, 1000.0);
    let first_voice = heard
        .iter()
        .position(|h| *h == Heard::Voice)
        .unwrap_or_else(|| panic!("no voice after the answer: {heard:?}"));
    let (ringing, call) = heard.split_at(first_voice);
    eprintln!("ringing: {ringing:?}\ncall: {call:?}");
    // The double ring: 0.8 s of ring in every 3 s, silence between.
    assert!(
        count(ringing, Heard::Ring) >= 6 && count(ringing, Heard::Silence) >= 15,
        "no ring cadence before the answer: {ringing:?}"
    );
    assert_eq!(count(call, Heard::Ring), 0, "rings after the answer");
    assert!(
        count(call, Heard::Voice) >= 20,
        "the call is not heard after the ring: {call:?}"
    );
}

#[test]
fn declining_and_the_caller_giving_up_stop_the_ring() {
    let w = common::world();
    let (a, _) = phone(&w, "A", Some(1000.0), "");
    let (b, speaker) = phone(&w, "B", None, "");
    number(&a);
    let nb = number(&b);

    // Declined.
    let dialing = common::dial_bg(&a, &nb);
    common::wait_call(&b, "incoming");
    wait_played(&b, &speaker, 1.0);
    assert_eq!(b.ctl(&["reject"]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["reason"], "rejected");
    assert!(common::no_calls(&b));
    assert!(speaker_closed(&speaker), "still ringing after the decline");
    let declined = seconds(&speaker);

    // The caller gives up.
    let _dialing = common::dial_bg(&a, &nb);
    common::wait_call(&b, "incoming");
    wait_played(&b, &speaker, declined + 1.0);
    common::wait_call(&a, "ringing");
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&b));
    assert!(
        speaker_closed(&speaker),
        "still ringing after the caller hung up"
    );

    let (samples, _) = wav::read(&speaker);
    let heard = classify(&samples, 1000.0);
    assert!(count(&heard, Heard::Ring) >= 4, "{heard:?}");
    assert_eq!(count(&heard, Heard::Voice), 0, "{heard:?}");
}

#[test]
fn ring_off_rings_nothing() {
    let w = common::world();
    let (a, _) = phone(&w, "A", Some(1000.0), "");
    let (b, speaker) = phone(&w, "B", None, "ring = \"off\"");
    number(&a);
    let nb = number(&b);
    let dialing = common::dial_bg(&a, &nb);
    common::wait_call(&b, "incoming");
    // Long enough for a ring to open the speaker, which it does within milliseconds.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!speaker.exists(), "something played with ring = \"off\"");
    assert_eq!(b.ctl(&["reject"]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["reason"], "rejected");
    assert!(!speaker.exists());
}

#[test]
fn a_call_during_a_call_is_heard_as_the_waiting_tone_inside_it() {
    let w = common::world();
    let (a, _) = phone(&w, "A", Some(1000.0), "");
    let (b, speaker) = phone(&w, "B", None, "");
    let c = w.phone("C");
    number(&a);
    number(&c);
    let nb = number(&b);
    assert_eq!(b.ctl(&["autoanswer", "all"]).code, 0);
    let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    wait_played(&b, &speaker, 1.0);

    // Auto-answer leaves a call that comes during a call to ring: it waits.
    let waiting = common::dial_bg(&c, &nb);
    common::wait_call(&b, "waiting");
    let from = seconds(&speaker);
    // Two waiting beeps (one every 4 s, the first at once).
    wait_played(&b, &speaker, from + 5.0);
    assert_eq!(c.ctl(&["hangup"]).code, 0);
    assert_eq!(waiting.join().unwrap().json()["reason"], "hangup");
    let after = seconds(&speaker);
    wait_played(&b, &speaker, after + 4.5);
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&b));

    let (samples, _) = wav::read(&speaker);
    let heard = classify(&samples, 1000.0);
    eprintln!("{heard:?}");
    assert_eq!(
        count(&heard, Heard::Ring),
        0,
        "the device rang during a call"
    );
    // Beeps of 300 ms (up to 4 windows), 4 s apart, while the second call waited.
    let beeps = runs(&heard, Heard::VoiceAndWaiting);
    assert!(beeps.len() >= 2, "beeps at {beeps:?}: {heard:?}");
    for (&(start, len), &(next, _)) in beeps.iter().zip(&beeps[1..]) {
        // (A late tick of the busy machine adds silence to the recording: some slack.)
        assert!(len <= 5, "a beep of {len} windows at {start}");
        assert!(
            (36..=46).contains(&(next - start)),
            "beeps at {start} and {next}, not 4 s apart"
        );
    }
    // Only while the second call waited: none in the last 4 s, after it gave up.
    let tail = &heard[heard.len().saturating_sub(40)..];
    assert_eq!(count(tail, Heard::VoiceAndWaiting), 0, "{tail:?}");
    assert!(count(tail, Heard::Voice) >= 25, "{tail:?}");
}

/// Polls until the `parec` recording at `path` holds `seconds` of audio.
fn wait_recorded(path: &Path, seconds: f64) {
    let bytes = (seconds * f64::from(RATE) * 2.0) as u64;
    let done = wait_for(Duration::from_secs(30), || {
        (std::fs::metadata(path).map_or(0, |m| m.len()) >= bytes).then_some(())
    });
    assert!(
        done.is_some(),
        "{} did not reach {seconds} s",
        path.display()
    );
}

#[test]
fn the_ring_plays_through_a_real_pulseaudio_server_and_gives_way_to_the_call() {
    if !pulse::available() {
        eprintln!("SKIPPED: no `pulseaudio` binary (scripts/deps.sh installs it)");
        return;
    }
    let w = common::world();
    let (a, _) = phone(&w, "A", Some(1000.0), "");
    let sound = PulseServer::start(&w.dir.path().join("B-sound"), 300);
    // The default config: the daemon finds the server and rings through it.
    let b = PhonedProcess::start_with_env(
        &w.dir.path().join("B"),
        w.relay.addr,
        &format!(
            "display_name = \"B\"\nrelay_fingerprint = \"{}\"",
            w.relay.fingerprint
        ),
        &sound.client_env(),
    );
    number(&a);
    let nb = number(&b);
    let dialing = common::dial_bg(&a, &nb);
    let id = common::wait_call(&b, "incoming");
    let path = sound.dir.join("ringing.raw");
    let recording = sound.record_speaker(&path);
    let cpu = CpuMeter::start(b.child.id());
    // A whole ring period (3 s: two 0.4 s bursts, 6 or more windows) and some.
    wait_recorded(&path, 3.5);
    let cpu = cpu.percent();
    let ringing = classify(&recording.finish(), 1000.0);
    eprintln!("ringing ({cpu:.1} % of a core): {ringing:?}");
    assert!(
        count(&ringing, Heard::Ring) >= 6,
        "{ringing:?}\n{}",
        b.log()
    );

    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    let path = sound.dir.join("call.raw");
    let recording = sound.record_speaker(&path);
    wait_recorded(&path, 2.5);
    let call = classify(&recording.finish(), 1000.0);
    eprintln!("call: {call:?}");
    assert_eq!(count(&call, Heard::Ring), 0, "{call:?}");
    assert!(count(&call, Heard::Voice) >= 15, "{call:?}\n{}", b.log());
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&b));
}
