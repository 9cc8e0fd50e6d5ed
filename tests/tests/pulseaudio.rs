//! Calls through real sound servers: a relay and two daemons, each daemon with its own
//! private `pulseaudio` or PipeWire (a microphone playing a sine of its own frequency, a
//! null-sink speaker whose monitor is recorded). Each side must hear the other's tone
//! without a gap, and a voice message recorded through either server is as long as asked. The daemons'
//! CPU use during the call is printed (not asserted: a loaded CI machine would make any
//! bound tight enough to matter flaky); `docs/benchmarks.md` has the figures.

mod common;

use std::time::Duration;

use common::heard::{Heard, dbfs};
use phoned::audio::analysis::goertzel_power;
use phoned_tests::process::PhonedProcess;
use phoned_tests::pulse::{self, CpuMeter, PulseServer, RATE, rss_kib};

/// The tests of this file run one at a time: each starts two daemons and two sound
/// servers, and several at once on a small machine make the servers' timer-driven null
/// sinks late, which is not what is being tested.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long each speaker is recorded.
const TALK: Duration = Duration::from_secs(5);

struct Phone {
    process: PhonedProcess,
    pulse: PulseServer,
    tone: u32,
}

/// How a phone's sound server is started: [`PulseServer::start`] (PulseAudio) or
/// [`PulseServer::start_pipewire`].
type Server = fn(&std::path::Path, u32) -> PulseServer;

fn phone(w: &common::World, name: &str, tone: u32, audio: &str, server: Server) -> Phone {
    let pulse = server(&w.dir.path().join(format!("{name}-sound")), tone);
    let process = PhonedProcess::start_with_env(
        &w.dir.path().join(name),
        w.relay.addr,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n{audio}",
            w.relay.fingerprint
        ),
        &pulse.client_env(),
    );
    Phone {
        process,
        pulse,
        tone,
    }
}

/// Places a call from A to B, records both speakers for [`TALK`] and returns what each
/// heard, printing each daemon's CPU share during the recording.
fn call_and_record(
    w: &common::World,
    server: Server,
    audio: impl Fn(&str) -> String,
) -> Vec<(&'static str, Heard, String)> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = phone(w, "A", 440, &audio("A"), server);
    let b = phone(w, "B", 1000, &audio("B"), server);
    a.process.wait_online(common::ONLINE);
    common::call_answered(&a.process, &b.process);

    let recordings: Vec<_> = [&a, &b]
        .iter()
        .map(|p| p.pulse.record_speaker(&p.pulse.dir.join("speaker.raw")))
        .collect();
    let meters: Vec<_> = [&a, &b]
        .iter()
        .map(|p| CpuMeter::start(p.process.child.id()))
        .collect();
    std::thread::sleep(TALK / 2);
    let rss: Vec<u64> = [&a, &b]
        .iter()
        .map(|p| rss_kib(p.process.child.id()))
        .collect();
    std::thread::sleep(TALK / 2);
    let cpu: Vec<f64> = meters.iter().map(CpuMeter::percent).collect();
    let heard: Vec<Vec<f32>> = recordings.into_iter().map(|r| r.finish()).collect();
    assert_eq!(a.process.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a.process) && common::no_calls(&b.process));

    let mut results = Vec::new();
    for ((name, me, other), (samples, (cpu, rss))) in [("A", &a, &b), ("B", &b, &a)]
        .into_iter()
        .zip(heard.iter().zip(cpu.iter().zip(&rss)))
    {
        let h = Heard::of(samples, other.tone, me.tone);
        let stats = me
            .process
            .log()
            .lines()
            .rev()
            .find(|l| l.contains("call media ended"))
            .unwrap_or("no media stats")
            .to_owned();
        eprintln!(
            "{name}: CPU {cpu:.1} % of a core, RSS {:.1} MiB mid-call; heard {:.2} s, quietest 20 ms window {:.1} dBFS at {} ms; \
             {} Hz {:.2e}, own {} Hz {:.2e}\n   {stats}",
            *rss as f64 / 1024.0,
            h.seconds,
            dbfs(h.quietest),
            h.quietest_at_ms,
            other.tone,
            h.other,
            me.tone,
            h.own
        );
        results.push((name, h, me.process.log()));
    }
    results
}

fn skip_without_pipewire() -> bool {
    common::skip_unless(
        pulse::pipewire_available(),
        "PipeWire",
        "no pipewire, wireplumber or pipewire-pulse (apt-get install pipewire pipewire-pulse wireplumber)",
    )
}

fn skip_without_pulseaudio() -> bool {
    common::skip_unless(
        pulse::available(),
        "PulseAudio",
        "no `pulseaudio` binary (scripts/deps.sh installs it)",
    )
}

#[test]
fn with_the_default_config_each_side_hears_the_other_through_pulseaudio() {
    if skip_without_pulseaudio() {
        return;
    }
    hears_the_other_side_with_the_default_config(PulseServer::start);
}

/// pipewire-pulse hands a playback stream room a graph quantum at a time, so the daemon's
/// 20 ms writes, and with them the frames it pops from the jitter buffer, come irregularly
/// (every 8th or 16th early by up to a frame). Before the jitter buffer judged its delay by
/// the earliest pops (`audio/jitter/pops.rs`), that made it skip and conceal a frame in
/// turn: 15–40 of 255 frames concealed without any loss, and gaps below −26 dBFS.
#[test]
fn with_the_default_config_each_side_hears_the_other_through_pipewire() {
    if skip_without_pipewire() {
        return;
    }
    hears_the_other_side_with_the_default_config(PulseServer::start_pipewire);
}

fn hears_the_other_side_with_the_default_config(server: Server) {
    let w = common::world();
    for (name, h, log) in call_and_record(&w, server, |_| String::new()) {
        assert!(
            log.contains("backend=pulse") || log.contains("backend=\"pulse\""),
            "{name} did not pick the pulse backend:\n{log}"
        );
        h.assert_without_a_gap(name, 3.0, &log);
    }
}

/// The old path for comparison: cpal's ALSA host through the pulse ALSA plugin, to
/// PulseAudio and to PipeWire's pipewire-pulse (naming ALSA's `default` device keeps the
/// daemon on cpal). Prints CPU and what was heard; run with `--ignored` for the before/after
/// figures in `docs/benchmarks.md`.
#[test]
#[ignore = "a measurement, not a check: the pulse ALSA plugin path is known to spin"]
fn cpal_through_the_pulse_alsa_plugin_for_comparison() {
    let alsa_default =
        |_: &str| "[audio]\nbackend = \"cpal\"\ninput = \"default\"\noutput = \"default\"".into();
    if !skip_without_pulseaudio() {
        eprintln!("PulseAudio:");
        call_and_record(&common::world(), PulseServer::start, alsa_default);
    }
    if pulse::pipewire_available() {
        eprintln!("PipeWire:");
        call_and_record(&common::world(), PulseServer::start_pipewire, alsa_default);
    }
}

/// The file backend under the same test, for the CPU baseline.
#[test]
#[ignore = "a measurement, not a check"]
fn file_backend_for_comparison() {
    let w = common::world();
    let dir = w.dir.path();
    let tone = |hz: f32| {
        (0..RATE * 30)
            .map(move |i| 0.3 * (2.0 * std::f32::consts::PI * hz * (i as f32 / RATE as f32)).sin())
    };
    phoned_tests::wav::write(&dir.join("in.wav"), RATE, 1, tone(440.0));
    let audio = |name: &str| {
        format!(
            "[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
            dir.join("in.wav").display(),
            dir.join(format!("{name}-out.wav")).display()
        )
    };
    // The speakers are not used; only the CPU line matters here.
    call_and_record(&w, PulseServer::start, audio);
}

/// A voice message recorded from the PulseAudio microphone is as long as asked, in about
/// that much wall time, and carries the microphone's tone.
#[test]
fn a_voice_message_recorded_through_pulseaudio_has_the_asked_length() {
    if skip_without_pulseaudio() {
        return;
    }
    voice_message_has_the_asked_length(PulseServer::start);
}

/// The same through PipeWire (pipewire-pulse), whose capture comes a graph quantum at a
/// time rather than in the 10 ms blocks the daemon reads.
#[test]
fn a_voice_message_recorded_through_pipewire_has_the_asked_length() {
    if skip_without_pipewire() {
        return;
    }
    voice_message_has_the_asked_length(PulseServer::start_pipewire);
}

fn voice_message_has_the_asked_length(server: Server) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a = phone(&w, "A", 440, "", server);
    let b = w.phone("B");
    a.process.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    let started = std::time::Instant::now();
    let out = a.process.ctl(&["voice", "send", &nb, "--seconds", "3"]);
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    let got = common::received_voice_message(&b);
    let ms = got["duration_ms"].as_u64().unwrap_or(0);
    eprintln!("recorded {ms} ms in {took:?}");
    assert!((2960..=3040).contains(&ms), "duration {ms} ms");
    // Recording is paced by the device: not much longer than the message itself.
    assert!(took < Duration::from_secs(6), "recording took {took:?}");
    let (samples, _) = phoned::voice::ogg::decode(
        &std::fs::read(got["path"].as_str().unwrap_or_default()).expect("the received file"),
    )
    .expect("a playable message");
    assert!(
        goertzel_power(&samples, RATE as f32, 440.0) > 1e-3,
        "the microphone's tone is missing"
    );
    let log = a.process.log();
    assert!(
        log.contains("backend=\"pulse\""),
        "not through pulse:\n{log}"
    );
}

/// A server that dies mid-call stops the audio threads (one log line each), and the daemon
/// does not spin: its CPU share afterwards stays far from a busy loop's 100 %.
#[test]
fn a_server_dying_mid_call_leaves_no_spinning_thread() {
    if skip_without_pulseaudio() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let mut a = phone(&w, "A", 440, "", PulseServer::start);
    let b = phone(&w, "B", 1000, "", PulseServer::start);
    a.process.wait_online(common::ONLINE);
    common::call_answered(&a.process, &b.process);
    std::thread::sleep(Duration::from_millis(500));
    a.pulse.kill();
    // The device threads' own lines; the media thread's `audio problem` lines quote them.
    let lost_lines = |p: &PhonedProcess| {
        p.log()
            .lines()
            .filter(|l| l.contains("audio server connection lost") && !l.contains("audio problem"))
            .count()
    };
    let lost = phoned_tests::wait_for(Duration::from_secs(5), || {
        (lost_lines(&a.process) >= 2).then_some(())
    });
    assert!(
        lost.is_some(),
        "no 'connection lost' for both directions:\n{}",
        a.process.log()
    );
    let meter = CpuMeter::start(a.process.child.id());
    std::thread::sleep(Duration::from_secs(2));
    let cpu = meter.percent();
    eprintln!("A after its server died: CPU {cpu:.1} % of a core");
    // A spinning thread would show ~100 %; a loaded machine cannot push an idle daemon
    // anywhere near 50 %.
    assert!(cpu < 50.0, "A spins after its server died: {cpu:.1} %");
    assert_eq!(
        lost_lines(&a.process),
        2,
        "one line per direction, not a flood"
    );
    assert_eq!(a.process.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a.process) && common::no_calls(&b.process));
}
