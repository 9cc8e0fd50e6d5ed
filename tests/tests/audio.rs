//! Two daemons with the `file` audio backend talk through a real relay with the real
//! Opus codec: each plays its own tone and records what it hears.

mod common;

use common::{phone_with_tone, phone_with_tone_and, write_tone};

use std::time::Duration;

use phoned::audio::analysis::{goertzel_power, rms};
use phoned_tests::process::{PhonedProcess, phonectl};
use phoned_tests::{wait_for, wav};

fn heard(p: &PhonedProcess, name: &str) -> (f64, f64, f64) {
    let path = p
        .dir
        .parent()
        .unwrap()
        .join(format!("{name}-audio/out.wav"));
    let (samples, rate) = wav::read(&path);
    // Skip the first half second (set-up), judge the rest.
    let s = &samples[(rate as usize / 2).min(samples.len())..];
    (
        goertzel_power(s, rate as f32, 440.0),
        goertzel_power(s, rate as f32, 1000.0),
        rms(s),
    )
}

#[test]
fn each_side_hears_the_other_sides_tone_and_not_its_own() {
    talk_440_and_1000(("", ""));
}

/// One phone sends 10 ms frames, the other the default 20 ms: each plays what the other
/// sends (the receive side follows the frames it gets).
#[test]
fn a_phone_sending_10_ms_frames_and_one_sending_20_ms_hear_each_other() {
    talk_440_and_1000(("frame_ms = 10", "frame_ms = 20"));
}

/// A (440 Hz) calls B (1000 Hz) with these `[audio]` lines each; both hear the other's tone
/// and not their own.
fn talk_440_and_1000((a_audio, b_audio): (&str, &str)) {
    let w = common::world();
    let a = phone_with_tone_and(&w, "A", 440.0, a_audio);
    let b = phone_with_tone_and(&w, "B", 1000.0, b_audio);
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let bus = a.bus.address.clone();
    let dialing =
        std::thread::spawn(move || phonectl(&bus, &["--json", "dial", &nb, "--wait"], ""));
    let answered = wait_for(Duration::from_secs(10), || {
        let calls = b.ctl(&["--json", "calls"]).json();
        let ringing = calls.as_array()?.iter().any(|c| c["state"] == "incoming");
        (ringing && b.ctl(&["answer"]).code == 0).then_some(())
    });
    assert!(answered.is_some());
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    // Talk for a while (the file backend runs in real time).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    let idle = wait_for(Duration::from_secs(10), || {
        let none = |p: &PhonedProcess| {
            p.ctl(&["--json", "calls"])
                .json()
                .as_array()
                .is_some_and(|c| c.is_empty())
        };
        (none(&a) && none(&b)).then_some(())
    });
    assert!(idle.is_some());

    for (name, p) in [("A", &a), ("B", &b)] {
        let log = p.log();
        let stats = log
            .lines()
            .rev()
            .find(|l| l.contains("call media ended"))
            .unwrap_or("no media stats");
        eprintln!("{name}: {stats}");
    }
    let (a440, a1000, a_rms) = heard(&a, "A");
    let (b440, b1000, b_rms) = heard(&b, "B");
    eprintln!(
        "A heard 440: {a440:.2e} 1000: {a1000:.2e} rms {a_rms:.3}; B heard 440: {b440:.2e} 1000: {b1000:.2e} rms {b_rms:.3}"
    );
    assert!(
        a_rms > 0.05 && b_rms > 0.05,
        "silence: A rms {a_rms}, B rms {b_rms}\n{}",
        a.log()
    );
    assert!(
        a1000 > 100.0 * a440,
        "A (440 Hz) should hear B's 1000 Hz: {a1000:e} vs {a440:e}"
    );
    assert!(
        b440 > 100.0 * b1000,
        "B (1000 Hz) should hear A's 440 Hz: {b440:e} vs {b1000:e}"
    );
}

/// The longest run of 20 ms windows quieter than `floor` (RMS) in `samples`.
fn longest_quiet_run(samples: &[f32], rate: u32, floor: f64) -> usize {
    let window = rate as usize / 50;
    let (mut run, mut longest) = (0, 0);
    for w in samples.chunks(window) {
        if rms(w) < floor {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// `max_delay_ms` and `max_allowed_ms` from the daemon's "call media ended" log line.
fn jitter_delays(log: &str) -> Option<(u32, u32)> {
    let line = log.lines().rev().find(|l| l.contains("call media ended"))?;
    let field = |name: &str| -> Option<u32> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("max_delay_ms")?, field("max_allowed_ms")?))
}

#[test]
fn ten_percent_loss_with_jitter_leaves_no_audible_gap() {
    use phoned_tests::impair::Impairment;
    use phoned_tests::proxy::UdpProxy;
    let w = common::world();
    let a = phone_with_tone(&w, "A", 440.0);
    let impairment = Impairment {
        loss: 0.10,
        duplicate: 0.02,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(30),
        ..Impairment::default()
    };
    let proxy = smol::block_on(UdpProxy::start_impaired(w.relay.addr, impairment, 42)).unwrap();
    // B reaches the relay through the impaired path, its media too: on QUIC datagrams
    // (`relay_media_port = 0`), as the proxy carries only the QUIC connection.
    let dir = w.dir.path().join("B-audio");
    std::fs::create_dir_all(&dir).unwrap();
    write_tone(&dir.join("in.wav"), 1000.0, 30);
    let b = PhonedProcess::start(
        &w.dir.path().join("B"),
        proxy.addr,
        &format!(
            "display_name = \"B\"\nrelay_fingerprint = \"{}\"\nrelay_media_port = 0\n[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
            w.relay.fingerprint,
            dir.join("in.wav").display(),
            dir.join("out.wav").display()
        ),
    );
    let na = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    b.wait_online(common::ONLINE);
    assert_eq!(a.ctl(&["autoanswer", "all"]).code, 0);
    let out = b.ctl(&["--json", "dial", &na, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.ctl(&["hangup"]).code, 0);
    let log = wait_for(Duration::from_secs(10), || {
        let log = b.log();
        log.contains("call media ended").then_some(log)
    })
    .expect("media stats logged");

    let (samples, rate) = wav::read(&dir.join("out.wav"));
    // Judge the middle of the call: after set-up, before hang-up.
    let talk = &samples
        [rate as usize..(samples.len().saturating_sub(rate as usize / 2)).max(rate as usize)];
    let quiet = longest_quiet_run(talk, rate, 0.02);
    let (p440, p1000) = (
        goertzel_power(talk, rate as f32, 440.0),
        goertzel_power(talk, rate as f32, 1000.0),
    );
    let (max_delay, allowed) = jitter_delays(&log).expect("delays in the log");
    eprintln!(
        "B heard 440: {p440:.2e} 1000: {p1000:.2e}; longest quiet run {quiet} × 20 ms; jitter delay max {max_delay} ms of {allowed}"
    );
    assert!(
        p440 > 100.0 * p1000,
        "the tone did not get through: {p440:e} vs {p1000:e}"
    );
    assert!(
        quiet <= 5,
        "a gap of {} ms, longer than concealment covers",
        quiet * 20
    );
    assert!(
        max_delay < allowed,
        "jitter buffer delay {max_delay} ms reached its maximum {allowed} ms"
    );
}

#[test]
fn hold_silences_the_held_call_and_resume_brings_the_audio_back() {
    let w = common::world();
    let a = phone_with_tone(&w, "A", 440.0);
    let b = phone_with_tone(&w, "B", 1000.0);
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(b.ctl(&["autoanswer", "all"]).code, 0);
    let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.ctl(&["hold"]).code, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.ctl(&["resume"]).code, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    let done = wait_for(Duration::from_secs(10), || {
        b.log().contains("call media ended").then_some(())
    });
    assert!(done.is_some());

    let (samples, rate) = wav::read(&w.dir.path().join("B-audio/out.wav"));
    let quiet = longest_quiet_run(&samples[rate as usize / 2..], rate, 0.02);
    let third = samples.len() / 3;
    let (before, after) = (&samples[..third], &samples[2 * third..]);
    let tone = |s: &[f32]| goertzel_power(s, rate as f32, 440.0);
    eprintln!(
        "B: longest quiet run {quiet} × 20 ms; 440 Hz before {:.2e}, after {:.2e}",
        tone(before),
        tone(after)
    );
    // The 1.5 s hold is a silent stretch (at least 1 s of it, whatever the set-up jitter),
    // with A's tone before and after it.
    assert!(
        quiet >= 50,
        "no silence during hold: longest quiet run {} ms",
        quiet * 20
    );
    assert!(
        tone(before) > 1e-3 && tone(after) > 1e-3,
        "A's tone missing around the hold"
    );
}
