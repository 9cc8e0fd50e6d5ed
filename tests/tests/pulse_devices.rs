//! Choosing PulseAudio devices by name or description, devices that go and come back
//! mid-call, and `phonectl audio devices`: a real relay, real daemons, each with its own
//! private `pulseaudio` (see `phoned_tests::pulse`). Extra devices are null sinks loaded
//! with `pactl load-module`, so "unplugging" one is `pactl unload-module`.

mod common;

use std::time::Duration;

use phoned::audio::analysis::{goertzel_power, rms};
use phoned_tests::process::PhonedProcess;
use phoned_tests::pulse::{self, PulseServer, RATE};
use phoned_tests::wait_for;

/// One test at a time: each runs two daemons and two sound servers (see pulseaudio.rs).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A 20 ms window louder than this (−34 dBFS) carries the far side's tone; the null sinks
/// are digitally silent otherwise.
const HEARD: f64 = 0.02;
/// 20 ms at [`RATE`].
const WINDOW: usize = RATE as usize / 50;

fn skip() -> bool {
    if pulse::available() {
        return false;
    }
    eprintln!("SKIPPED: no `pulseaudio` binary (scripts/deps.sh installs it)");
    true
}

/// A daemon on `sound`, with `audio` as its `[audio]` section (empty: the default).
fn daemon(w: &common::World, name: &str, sound: &PulseServer, audio: &str) -> PhonedProcess {
    PhonedProcess::start_with_env(
        &w.dir.path().join(name),
        w.relay.addr,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n{audio}",
            w.relay.fingerprint
        ),
        &sound.client_env(),
    )
}

/// A (on `a_sound`, with `a_audio` as its `[audio]` section) calls B (on its own server,
/// default config) and B answers: the call every test here starts from.
fn a_calls_b(
    w: &common::World,
    a_sound: &PulseServer,
    a_audio: &str,
) -> (PhonedProcess, PulseServer, PhonedProcess) {
    let a = daemon(w, "A", a_sound, a_audio);
    let b_sound = sound(w, "B", 1000);
    let b = daemon(w, "B", &b_sound, "");
    a.wait_online(common::ONLINE);
    common::call_answered(&a, &b);
    (a, b_sound, b)
}

fn sound(w: &common::World, name: &str, tone: u32) -> PulseServer {
    PulseServer::start(&w.dir.path().join(format!("{name}-sound")), tone)
}

/// Adds a null sink `name` described as `description` (as a USB headset would appear).
fn plug(server: &PulseServer, name: &str, description: &str) -> String {
    server.load_module(
        "module-null-sink",
        &[
            &format!("sink_name={name}"),
            &format!("rate={RATE}"),
            "channels=1",
            // Quoted the way both PulseAudio and pipewire-pulse parse (PulseAudio also
            // takes `\ `, which pipewire-pulse keeps as it is).
            &format!("sink_properties='device.description=\"{description}\"'"),
        ],
    )
}

/// Where, from sample `from` on, the first 20 ms window carrying sound starts.
fn heard_from(samples: &[f32], from: usize) -> Option<usize> {
    let from = from.min(samples.len());
    samples[from..]
        .chunks_exact(WINDOW)
        .position(|w| rms(w) > HEARD)
        .map(|i| from + i * WINDOW)
}

fn ms(samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(RATE)
}

fn path(w: &common::World, name: &str) -> std::path::PathBuf {
    w.dir.path().join(name)
}

#[test]
fn devices_named_by_description_carry_the_call() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a_sound = sound(&w, "A", 440);
    plug(&a_sound, "headset", "USB Headset");
    // A second microphone, at its own tone: a null sink with a sine, used through its
    // monitor, whose description PulseAudio makes "Monitor of Desk Mic".
    plug(&a_sound, "desk", "Desk Mic");
    a_sound.load_module("module-sine", &["sink=desk", "frequency=700"]);
    let (a, b_sound, _b) = a_calls_b(
        &w,
        &a_sound,
        "[audio]\nbackend = \"pulse\"\ninput = \"monitor of desk mic\"\noutput = \"usb headset\"",
    );

    let a_headset = a_sound.record("headset.monitor", &path(&w, "a-headset.raw"));
    let a_speaker = a_sound.record_speaker(&path(&w, "a-speaker.raw"));
    let b_speaker = b_sound.record_speaker(&path(&w, "b-speaker.raw"));
    let three_seconds = 3 * RATE as usize;
    let enough = wait_for(Duration::from_secs(30), || {
        (a_headset.so_far().len() >= three_seconds && b_speaker.so_far().len() >= three_seconds)
            .then_some(())
    });
    assert!(enough.is_some(), "the recordings did not run");
    let (headset, speaker, far) = (a_headset.finish(), a_speaker.finish(), b_speaker.finish());
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    let log = a.log();
    assert!(
        log.contains("device=headset") && log.contains("device=desk.monitor"),
        "A did not open the devices it was told by description:\n{log}"
    );
    let tail = |s: &[f32]| s[s.len() / 3..].to_vec();
    let (headset, far) = (tail(&headset), tail(&far));
    let power = |s: &[f32], hz: u32| goertzel_power(s, RATE as f32, hz as f32);
    assert!(
        power(&headset, 1000) > 100.0 * power(&headset, 440).max(1e-12),
        "A's headset should play B's tone\n{log}"
    );
    assert!(
        heard_from(&speaker, 0).is_none(),
        "A's default speaker should stay silent"
    );
    assert!(
        power(&far, 700) > 100.0 * power(&far, 440).max(1e-12),
        "B should hear A's desk microphone (700 Hz), not its default one (440 Hz)\n{log}"
    );
}

#[test]
fn an_unknown_device_name_gives_an_error_naming_the_devices_that_exist() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a_sound = sound(&w, "A", 440);
    plug(&a_sound, "headset", "USB Headset");
    let (a, _b_sound, _b) = a_calls_b(
        &w,
        &a_sound,
        "[audio]\nbackend = \"pulse\"\noutput = \"Bluetooth Speaker\"",
    );
    let line = wait_for(Duration::from_secs(10), || {
        a.log()
            .lines()
            .find(|l| l.contains("no playback audio device named"))
            .map(str::to_owned)
    });
    let line = line.unwrap_or_else(|| panic!("no device error in A's log:\n{}", a.log()));
    assert!(
        line.contains("\"Bluetooth Speaker\"")
            && line.contains("speaker (Null Output)")
            && line.contains("headset (USB Headset)"),
        "the error should name what was asked and what exists: {line}"
    );
    assert_eq!(a.ctl(&["hangup"]).code, 0);
}

#[test]
fn a_named_speaker_unplugged_mid_call_falls_back_to_the_default_and_comes_back() {
    if skip() {
        return;
    }
    unplug_and_plug_back(PulseServer::start);
}

/// The same through PipeWire (pipewire-pulse, WirePlumber's policy moving the stream).
#[test]
fn on_pipewire_a_named_speaker_unplugged_mid_call_falls_back_and_comes_back() {
    if skip() {
        return;
    }
    if !pulse::pipewire_available() {
        eprintln!("SKIPPED: no pipewire, wireplumber or pipewire-pulse");
        return;
    }
    unplug_and_plug_back(PulseServer::start_pipewire);
}

fn unplug_and_plug_back(server: fn(&std::path::Path, u32) -> PulseServer) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a_sound = server(&w.dir.path().join("A-sound"), 440);
    let module = plug(&a_sound, "headset", "USB Headset");
    let (a, _b_sound, b) = a_calls_b(
        &w,
        &a_sound,
        "[audio]\nbackend = \"pulse\"\noutput = \"USB Headset\"",
    );

    let speaker = a_sound.record_speaker(&path(&w, "speaker.raw"));
    let headset = a_sound.record("headset.monitor", &path(&w, "headset-1.raw"));
    let on_headset = wait_for(Duration::from_secs(20), || heard_from(&headset.so_far(), 0));
    assert!(
        on_headset.is_some(),
        "B's tone never reached A's headset\n{}",
        a.log()
    );
    assert_eq!(
        heard_from(&speaker.so_far(), 0),
        None,
        "the default speaker played while the headset was there"
    );

    // Unplugged: B's tone moves to the default speaker.
    let unplugged_at = speaker.so_far().len();
    a_sound.unload_module(&module);
    drop(headset);
    let moved = wait_for(Duration::from_secs(15), || {
        heard_from(&speaker.so_far(), unplugged_at)
    });
    let moved = moved.unwrap_or_else(|| panic!("B's tone never moved to the speaker\n{}", a.log()));
    eprintln!(
        "unplugged: the tone reached the default speaker {} ms later",
        ms(moved - unplugged_at)
    );
    // The target is within a second; the margin is for a loaded machine.
    assert!(
        ms(moved - unplugged_at) < 3000,
        "the tone took {} ms to move",
        ms(moved - unplugged_at)
    );

    // Plugged back in: the tone comes back to it, and the speaker falls silent.
    plug(&a_sound, "headset", "USB Headset");
    let headset = a_sound.record("headset.monitor", &path(&w, "headset-2.raw"));
    let back = wait_for(Duration::from_secs(15), || heard_from(&headset.so_far(), 0));
    let back =
        back.unwrap_or_else(|| panic!("B's tone never came back to the headset\n{}", a.log()));
    eprintln!(
        "plugged back: the tone was on the headset {} ms after its recording started",
        ms(back)
    );
    assert!(
        ms(back) < 3000,
        "the tone took {} ms to come back",
        ms(back)
    );
    let quiet = wait_for(Duration::from_secs(10), || {
        let s = speaker.so_far();
        let last_half_second = s.len().saturating_sub(RATE as usize / 2);
        (s.len() > last_half_second + WINDOW && heard_from(&s, last_half_second).is_none())
            .then_some(())
    });
    assert!(
        quiet.is_some(),
        "the speaker kept playing after the headset came back"
    );

    // PulseAudio itself moves the streams of a sink that goes to the default one, so
    // the daemon logs only the move back (it moves the stream itself where a server does
    // not, or kills the stream: see daemon/src/audio/backend/pulse/link.rs). On PipeWire
    // the call's device health may reopen the stream instead, which finds the headset.
    let log = a.log();
    let moved_back = log.lines().any(|l| {
        l.contains("audio device changed direction=playback") && l.contains("to=\"headset#")
    });
    // (The first such line is the call's start, on the headset.)
    let reopened_on_it = log
        .lines()
        .filter(|l| l.contains("audio playback started") && l.contains("device=headset"))
        .count()
        >= 2;
    assert!(
        moved_back || reopened_on_it,
        "A should log its move back:\n{log}"
    );
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
}

/// A server that hangs (SIGSTOP) with the call's threads blocked in it: hanging up still
/// ends the call, and the daemon goes on answering.
#[test]
fn hanging_up_does_not_wait_for_a_frozen_server() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a_sound = sound(&w, "A", 440);
    let (a, _b_sound, b) = a_calls_b(&w, &a_sound, "");
    a_sound.freeze(true);
    let out = a.ctl(&["hangup"]);
    let ended = common::no_calls(&a) && common::no_calls(&b);
    let status = a.ctl(&["--json", "status"]);
    a_sound.freeze(false);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(ended, "the call did not end:\n{}", a.log());
    assert_eq!(status.code, 0, "the daemon stopped answering: {status:?}");
    // The threads were blocked in the server, and were left to end on their own.
    let detached = wait_for(Duration::from_secs(10), || {
        a.log()
            .contains("the audio server does not answer")
            .then_some(())
    });
    assert!(detached.is_some(), "{}", a.log());
}

#[test]
fn phonectl_audio_devices_lists_the_servers_sinks_and_sources() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let mut a_sound = sound(&w, "A", 440);
    plug(&a_sound, "headset", "USB Headset");
    let a = daemon(&w, "A", &a_sound, "");
    a.wait_online(common::ONLINE);

    let out = a.ctl(&["--json", "audio", "devices"]);
    assert_eq!(out.code, 0, "{out:?}");
    let devices = out.json();
    let list = devices.as_array().expect("a JSON array");
    let has = |direction: &str, name: &str, description: &str, default: bool| {
        list.iter().any(|d| {
            d["backend"] == "pulse"
                && d["direction"] == direction
                && d["name"] == name
                && d["description"] == description
                && d["default"] == default
        })
    };
    assert!(has("output", "speaker", "Null Output", true), "{devices:#}");
    assert!(
        has("output", "headset", "USB Headset", false),
        "{devices:#}"
    );
    assert!(has("output", "mic", "Null Output", false), "{devices:#}");
    assert!(
        has("input", "mic.monitor", "Monitor of Null Output", true),
        "{devices:#}"
    );
    assert!(
        has("input", "headset.monitor", "Monitor of USB Headset", false),
        "{devices:#}"
    );

    let human = a.ctl(&["audio", "devices"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human.stdout.contains("backend: pulse")
            && human
                .stdout
                .lines()
                .any(|l| l.starts_with('*') && l.contains("output") && l.contains("speaker")),
        "{}",
        human.stdout
    );

    // The server gone: a clear error, not a hang.
    a_sound.kill();
    let gone = a.ctl(&["audio", "devices"]);
    assert_eq!(gone.code, 1, "{gone:?}");
    assert!(
        gone.stderr
            .contains("cannot list the audio server's devices"),
        "{}",
        gone.stderr
    );
}
