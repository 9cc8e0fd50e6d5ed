//! The plain-ALSA (`cpal`) path in a call, on a real-time-paced stand-in for a sound card:
//! each daemon's ALSA `default` is a JACK client of its own `jackd -d dummy` (see
//! `phoned_tests::jack` for what that does and does not share with a `hw:` device). A
//! relay, two daemons, a call: each side hears the other's tone without a gap, on 10 ms
//! device periods. What the path costs is measured by the `call_cpu` bench (`--only alsa`).

mod common;

use std::time::Duration;

use common::heard::Heard;
use phoned_tests::jack::{self, JackServer};
use phoned_tests::process::PhonedProcess;

fn skip_without_jack() -> bool {
    common::skip_unless(
        jack::available(),
        "jackd2",
        "no jackd/jack_rec or no ALSA jack plugin (apt-get install jackd2 libasound2-plugins)",
    )
}

/// One phone of the call: its daemon on cpal, its tone, and its JACK stand-in.
struct Phone {
    process: PhonedProcess,
    tone: u32,
    jack: JackServer,
}

fn start(w: &common::World, name: &str, tone: u32) -> Phone {
    let jack = JackServer::start(&w.dir.path().join(format!("{name}-audio")), tone, 480);
    let process = PhonedProcess::start_with_env(
        &w.dir.path().join(name),
        w.relay.addr,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n\
             [audio]\nbackend = \"cpal\"\ninput = \"default\"\noutput = \"default\"",
            w.relay.fingerprint
        ),
        &jack.client_env(),
    );
    Phone {
        process,
        tone,
        jack,
    }
}

/// What a Raspberry Pi without a sound server runs: the default `cpal` backend on ALSA's
/// `default` device. Each side hears the other's tone with no 20 ms window below −26 dBFS
/// after the first 500 ms, on the 10 ms periods the daemon asks for. (Left to cpal's
/// default, alsa-lib picked 0.64 s periods on this device and the call carried nothing.)
#[test]
fn a_call_on_plain_alsa_carries_each_sides_tone_without_a_gap() {
    if skip_without_jack() {
        return;
    }
    let w = common::world();
    let a = start(&w, "A", 440);
    let b = start(&w, "B", 1000);
    a.process.wait_online(common::ONLINE);
    common::call_answered(&a.process, &b.process);
    // The stand-in refuses a JACK client now and then while another of the same name is
    // still going (the ring's speaker, the configuration probe's): the daemon reports
    // the audio problem and opens the device again a second later. A card does not do
    // that, so the check starts once both devices of both phones run.
    for (name, p) in [("A", &a), ("B", &b)] {
        let works = phoned_tests::wait_for(Duration::from_secs(15), || {
            let log = p.process.log();
            let opened =
                log.contains("audio capture started") && log.contains("audio playback started");
            let last_problem = log.rfind("audio problem");
            let recovered = log.rfind("audio works again");
            (opened && (last_problem.is_none() || recovered > last_problem)).then_some(())
        });
        assert!(
            works.is_some(),
            "{name}'s devices never both ran:\n{}",
            p.process.log()
        );
        let retries = p.process.log().matches("audio problem").count();
        if retries > 0 {
            eprintln!("{name}: the stand-in refused a device {retries} time(s) at first");
        }
    }
    // The far side's microphone opens when the call is answered, as the near speaker
    // does: the speaker is silent until the first frames come, so the recording starts
    // a second in.
    std::thread::sleep(Duration::from_secs(1));
    let recordings: Vec<_> = [&a, &b].iter().map(|p| p.jack.record_speaker(5)).collect();
    let samples: Vec<Vec<f32>> = recordings.into_iter().map(|r| r.finish()).collect();
    assert_eq!(a.process.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a.process) && common::no_calls(&b.process));
    for ((name, me, other), samples) in [("A", &a, &b), ("B", &b, &a)].into_iter().zip(&samples) {
        let log = me.process.log();
        let h = Heard::of(samples, other.tone, me.tone);
        eprintln!("{name}: {}", h.describe());
        for stream in ["capture", "playback"] {
            // The stream as it runs now: the last one opened.
            let opened = log
                .lines()
                .rfind(|l| l.contains(&format!("audio {stream} started")))
                .unwrap_or_default();
            assert!(
                opened.contains("backend::cpal") && opened.contains("period=480"),
                "{name}: the {stream} stream is not on cpal with 10 ms periods:\n{log}"
            );
        }
        h.assert_without_a_gap(name, 4.5, &log);
    }
}
