//! Audio devices that are missing or go away, through real daemons, a relay and private
//! PulseAudio servers: the call goes on with what works, the problem is visible
//! (`AudioError` on the Call and the Manager, `phonectl status`/`calls`/`watch`, one log
//! warning), the daemon does not spin, a device that comes back is picked up again, and a
//! voice message whose device dies while recording is refused rather than sent short.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use phoned::audio::analysis::goertzel_power;
use phoned_proto::dbus::{CallProxy, ManagerProxy};
use phoned_tests::process::{PhonedProcess, Watch};
use phoned_tests::pulse::{self, CpuMeter, PulseServer, RATE};
use phoned_tests::wait_for;
use zbus::proxy::CacheProperties;

/// One test at a time: each runs two daemons and up to two sound servers.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a log line of the one warning for an audio problem contains.
const WARNING: &str = "audio problem:";

fn skip_without_pulseaudio() -> bool {
    if pulse::available() {
        return false;
    }
    eprintln!("SKIPPED: no `pulseaudio` binary (scripts/deps.sh installs it)");
    true
}

/// A daemon named `name` with `audio` config lines and `env`.
fn daemon(w: &common::World, name: &str, audio: &str, env: &[(String, String)]) -> PhonedProcess {
    PhonedProcess::start_with_env(
        &w.dir.path().join(name),
        w.relay.addr,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n{audio}",
            w.relay.fingerprint
        ),
        env,
    )
}

/// `AudioError` of the Manager and of each call, read over D-Bus.
fn audio_errors(p: &PhonedProcess) -> (String, Vec<String>) {
    smol::block_on(async {
        let conn = zbus::connection::Builder::address(p.bus.address.as_str())
            .build()
            .await
            .expect("connect to the daemon's bus");
        let m = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("manager proxy");
        let manager = m.audio_error().await.expect("Manager.AudioError");
        let mut calls = Vec::new();
        for path in m.calls().await.expect("calls") {
            let c = CallProxy::builder(&conn)
                .path(path)
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .expect("call proxy");
            calls.push(c.audio_error().await.expect("Call.AudioError"));
        }
        (manager, calls)
    })
}

/// Waits until the Manager's and the one call's `AudioError` satisfy `ok`; returns them.
fn wait_audio_errors(p: &PhonedProcess, ok: impl Fn(&str, &str) -> bool) -> (String, String) {
    wait_for(Duration::from_secs(15), || {
        let (manager, calls) = audio_errors(p);
        let call = calls.first()?.clone();
        ok(&manager, &call).then_some((manager, call))
    })
    .unwrap_or_else(|| {
        panic!(
            "AudioError never as expected: {:?}\nlog:\n{}",
            audio_errors(p),
            p.log()
        )
    })
}

fn warnings(p: &PhonedProcess) -> usize {
    p.log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(WARNING))
        .count()
}

/// The pulse device threads' own "connection lost" lines (the `audio problem` warning
/// quotes them): one per direction when a server goes, not one per retry.
fn lost_lines(p: &PhonedProcess) -> usize {
    p.log()
        .lines()
        .filter(|l| l.contains("audio server connection lost") && !l.contains("audio problem"))
        .count()
}

/// The CPU share of `p` over a few seconds: far below a spinning thread's 100 %.
fn assert_not_spinning(p: &PhonedProcess, what: &str) {
    let meter = CpuMeter::start(p.child.id());
    std::thread::sleep(Duration::from_secs(3));
    let cpu = meter.percent();
    eprintln!("{what}: CPU {cpu:.1} % of a core");
    // A busy loop shows ~100 %; a loaded machine cannot push a daemon whose only work is
    // a call on stand-ins and one failed open a second anywhere near 50 %.
    assert!(cpu < 50.0, "{what}: the daemon spins at {cpu:.1} %");
}

#[test]
fn without_any_audio_device_the_call_connects_and_the_audio_error_is_visible() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    // A PulseAudio server nobody runs: every open fails.
    let nowhere = w.dir.path().join("no-server/native");
    let env = [(
        "PULSE_SERVER".to_owned(),
        format!("unix:{}", nowhere.display()),
    )];
    let a = daemon(&w, "A", "[audio]\nbackend = \"pulse\"", &env);
    let b = daemon(&w, "B", "[audio]\nbackend = \"null\"", &[]);
    a.wait_online(common::ONLINE);
    let watch = Watch::start(&a.bus.address);
    common::call_answered(&a, &b);

    // Both directions fail; the account shows the same line as the call.
    let (manager, call) = wait_audio_errors(&a, |m, c| {
        m == c && c.contains("no audio input") && c.contains("no audio output")
    });
    let event = watch.wait(Duration::from_secs(10), |e| {
        e["event"] == "properties"
            && e["interface"] == "org.phoned.Phone1.Manager"
            && e["changed"]["AudioError"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
    });
    assert!(event.is_some(), "watch printed no AudioError event");
    let status = a.ctl(&["status"]);
    assert!(
        status.stdout.contains(&format!("audio: {manager}")),
        "{status:?}"
    );
    assert_eq!(a.ctl(&["--json", "status"]).json()["audio_error"], manager);
    let calls = a.ctl(&["calls"]);
    assert!(calls.stdout.contains("active"), "{calls:?}");
    assert!(
        calls.stdout.contains(&format!("audio: {call}")),
        "{calls:?}"
    );
    assert_eq!(a.ctl(&["--json", "calls"]).json()[0]["audio_error"], call);
    // The far side, on a working device, has the call and no problem.
    assert_eq!(common::wait_call(&b, "active"), "1");
    assert_eq!(audio_errors(&b), (String::new(), vec![String::new()]));

    // Retries (one a second) neither spin nor log: after several, still one warning.
    assert_not_spinning(&a, "A without devices, in a call");
    assert_eq!(warnings(&a), 1, "one warning, not a flood:\n{}", a.log());
    let all_warnings = a.log().lines().filter(|l| l.contains("WARN")).count();
    assert_eq!(all_warnings, 1, "nothing else warns:\n{}", a.log());
    assert_eq!(common::wait_call(&a, "active"), "1");
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
    // The account keeps the problem after the call: the devices are still missing.
    assert_eq!(audio_errors(&a).0, manager);
}

#[test]
fn a_server_dying_mid_call_shows_the_audio_error_and_a_new_one_brings_the_audio_back() {
    if skip_without_pulseaudio() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a_dir = w.dir.path().join("A-sound");
    let mut a_sound = PulseServer::start(&a_dir, 440);
    let b_sound = PulseServer::start(&w.dir.path().join("B-sound"), 1000);
    let a = daemon(&w, "A", "", &a_sound.client_env());
    let b = daemon(&w, "B", "", &b_sound.client_env());
    a.wait_online(common::ONLINE);
    common::call_answered(&a, &b);
    wait_audio_errors(&a, |m, c| m.is_empty() && c.is_empty());

    a_sound.kill();
    let (_, call) = wait_audio_errors(&a, |m, c| !c.is_empty() && m == c);
    eprintln!("A after its server died: {call}");
    // The call stays up on both sides, and A does not spin.
    assert_eq!(common::wait_call(&a, "active"), "1");
    assert_eq!(common::wait_call(&b, "active"), "1");
    assert_not_spinning(&a, "A after its server died");
    assert_eq!(warnings(&a), 1, "one warning, not a flood:\n{}", a.log());

    // A server on the same socket: A picks its devices up again within seconds, and
    // `watch` prints the line going away.
    let watch = Watch::start(&a.bus.address);
    let a_sound = PulseServer::start(&a_dir, 440);
    wait_audio_errors(&a, |m, c| m.is_empty() && c.is_empty());
    let cleared = watch.wait(Duration::from_secs(10), |e| {
        e["event"] == "properties"
            && e["interface"] == "org.phoned.Phone1.Manager"
            && e["changed"]["AudioError"] == ""
    });
    assert!(cleared.is_some(), "watch printed no cleared AudioError");
    assert!(a.log().contains("audio works again"), "{}", a.log());
    // Audio flows again both ways: each speaker carries the other side's tone.
    assert_hears(&a_sound, &a_dir.join("after.raw"), "A", 1000.0, 440.0);
    let b_after = w.dir.path().join("B-sound/after.raw");
    assert_hears(&b_sound, &b_after, "B", 440.0, 1000.0);
    assert_eq!(
        lost_lines(&a),
        2,
        "one line per direction while the server was away, not one per try:\n{}",
        a.log()
    );
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
}

/// Records `server`'s speaker a second and a half at a time until it carries the `other`
/// tone well above its `own` (a fresh server and stream take a moment to get going).
fn assert_hears(server: &PulseServer, path: &Path, who: &str, other: f32, own: f32) {
    let mut last = (0.0, 0.0);
    let heard = wait_for(Duration::from_secs(20), || {
        let recording = server.record_speaker(path);
        std::thread::sleep(Duration::from_millis(1500));
        let samples = recording.finish();
        let talk = &samples[samples.len().min(RATE as usize / 4)..];
        last = (
            goertzel_power(talk, RATE as f32, other),
            goertzel_power(talk, RATE as f32, own),
        );
        (talk.len() >= RATE as usize && last.0 > 100.0 * last.1 && last.0 > 1e-4).then_some(())
    });
    assert!(
        heard.is_some(),
        "{who} does not hear the other side again: {:e} vs its own {:e}",
        last.0,
        last.1
    );
}

/// Whether `server` has a recording stream (a client reading a source) open.
fn recording_open(server: &PulseServer) -> bool {
    Command::new("pactl")
        .args([
            "--server",
            &server.address(),
            "list",
            "short",
            "source-outputs",
        ])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

#[test]
fn a_voice_message_whose_device_dies_while_recording_is_refused_and_not_sent() {
    if skip_without_pulseaudio() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let mut a_sound = PulseServer::start(&w.dir.path().join("A-sound"), 440);
    let a = daemon(&w, "A", "", &a_sound.client_env());
    let b = daemon(&w, "B", "[audio]\nbackend = \"null\"", &[]);
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    let bus = a.bus.address.clone();
    let send = std::thread::spawn(move || {
        phoned_tests::process::phonectl(&bus, &["voice", "send", &nb, "--seconds", "5"], "")
    });
    let started = wait_for(Duration::from_secs(10), || {
        recording_open(&a_sound).then_some(())
    });
    assert!(
        started.is_some(),
        "the recording never started:\n{}",
        a.log()
    );
    a_sound.kill();
    let out = send.join().expect("phonectl thread");
    eprintln!("{out:?}");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("of the 5000 ms asked") && out.stderr.contains("nothing was sent"),
        "{out:?}"
    );
    // Nothing left A, nothing reached B.
    let listed = |p: &PhonedProcess| p.ctl(&["--json", "voice", "ls"]).json();
    assert_eq!(listed(&a), serde_json::json!([]));
    assert_eq!(listed(&b), serde_json::json!([]));
    // The account shows the problem, logged once.
    let manager = audio_errors(&a).0;
    assert!(manager.contains("nothing was sent"), "{manager:?}");
    assert_eq!(warnings(&a), 1, "{}", a.log());
}

/// A recording from a device that cannot be opened fails at once with the reason.
#[test]
fn a_voice_message_without_an_input_device_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let nowhere = Path::new("/nonexistent/phoned-test/native");
    let env = [(
        "PULSE_SERVER".to_owned(),
        format!("unix:{}", nowhere.display()),
    )];
    let a = daemon(&w, "A", "[audio]\nbackend = \"pulse\"", &env);
    let b = daemon(&w, "B", "[audio]\nbackend = \"null\"", &[]);
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    let out = a.ctl(&["voice", "send", &nb, "--seconds", "2"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("cannot open the input device")
            && out.stderr.contains("nothing was sent"),
        "{out:?}"
    );
    assert_eq!(
        a.ctl(&["--json", "voice", "ls"]).json(),
        serde_json::json!([])
    );
    assert!(!audio_errors(&a).0.is_empty());
}

/// ALSA without a sound card (the default `cpal` backend where no sound server runs): the
/// call goes on, the problem is visible, and retrying the devices every second does not
/// fill the log with alsa-lib's own error lines.
#[test]
fn without_a_sound_card_retries_do_not_fill_the_log() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    // An ALSA config whose default device is one that does not exist, and no sound server
    // in sight: every open fails inside alsa-lib, which prints why (as with no card).
    let asound = w.dir.path().join("asound.conf");
    std::fs::write(
        &asound,
        "</usr/share/alsa/alsa.conf>\npcm.!default { type plug slave.pcm \"nowhere\" }\n",
    )
    .expect("asound.conf");
    let env = [
        ("ALSA_CONFIG_PATH".to_owned(), asound.display().to_string()),
        (
            "XDG_RUNTIME_DIR".to_owned(),
            w.dir.path().display().to_string(),
        ),
        ("PULSE_SERVER".to_owned(), String::new()),
    ];
    let a = daemon(&w, "A", "[audio]\nbackend = \"cpal\"", &env);
    let b = daemon(&w, "B", "[audio]\nbackend = \"null\"", &[]);
    a.wait_online(common::ONLINE);
    common::call_answered(&a, &b);
    let (_, call) = wait_audio_errors(&a, |m, c| !c.is_empty() && m == c);
    eprintln!("A without a sound card: {call}");
    let before = a.log().lines().count();
    // Three more seconds: three retries of each direction.
    assert_not_spinning(&a, "A without a sound card, in a call");
    let log = a.log();
    let added: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        added.is_empty(),
        "the retries logged:\n{}",
        added.join("\n")
    );
    assert_eq!(warnings(&a), 1, "{log}");
    assert_eq!(a.ctl(&["hangup"]).code, 0);
}

/// A speaker that cannot be opened does not silence the microphone: the far side still
/// hears this side, and this side's call shows what is missing.
#[test]
fn without_a_speaker_the_far_side_still_hears_the_microphone() {
    if skip_without_pulseaudio() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = common::world();
    let a_sound = PulseServer::start(&w.dir.path().join("A-sound"), 440);
    let b_dir = w.dir.path().join("B-sound");
    let b_sound = PulseServer::start(&b_dir, 1000);
    let audio = "[audio]\nbackend = \"pulse\"\noutput = \"no-such-speaker\"";
    let a = daemon(&w, "A", audio, &a_sound.client_env());
    let b = daemon(&w, "B", "", &b_sound.client_env());
    a.wait_online(common::ONLINE);
    common::call_answered(&a, &b);
    let (_, call) = wait_audio_errors(&a, |m, c| !c.is_empty() && m == c);
    assert!(
        call.contains("no audio output") && !call.contains("no audio input"),
        "{call}"
    );
    assert!(call.contains("no-such-speaker"), "{call}");
    assert_hears(&b_sound, &b_dir.join("heard.raw"), "B", 440.0, 1000.0);
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
}
