//! Setup shared by the end-to-end tests: a relay process and daemons on private buses.
#![allow(dead_code)]

pub mod heard;

use std::path::Path;
use std::time::Duration;

use phoned_tests::process::{PhonedProcess, RelayProcess, bin, phonectl};
use phoned_tests::{wait_for, wav};

pub const ONLINE: Duration = Duration::from_secs(20);

/// Whether a test that needs `what` (a sound server, JACK) skips, because it is not
/// `installed`: it says so with `why`. Not on CI (`CI=true`), which installs everything
/// with `scripts/deps.sh`: a run there that skips proves nothing, so it fails instead.
pub fn skip_unless(installed: bool, what: &str, why: &str) -> bool {
    if installed {
        return false;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but {what} is missing: run scripts/deps.sh"
    );
    eprintln!("SKIPPED: {why}");
    true
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub relay: RelayProcess,
}

/// A relay with a short idle timeout, so lost links are noticed in tests within seconds.
pub fn world() -> World {
    world_with("idle_timeout_ms = 2000\nkeep_alive_ms = 500")
}

pub fn world_with(relay_extra: &str) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = RelayProcess::start(
        &bin("phone-relay"),
        &dir.path().join("relay"),
        "127.0.0.1:0",
        relay_extra,
    );
    World { dir, relay }
}

impl World {
    /// A daemon named `name`, pinned to this relay, started (not yet waited for).
    pub fn phone(&self, name: &str) -> PhonedProcess {
        self.phone_with(
            name,
            &format!("relay_fingerprint = \"{}\"", self.relay.fingerprint),
        )
    }

    pub fn phone_with(&self, name: &str, extra: &str) -> PhonedProcess {
        PhonedProcess::start(
            &self.dir.path().join(name),
            self.relay.addr,
            &format!("display_name = \"{name}\"\n{extra}"),
        )
    }
}

/// Waits until `p` has a call in `state`; returns its short id.
pub fn wait_call(p: &PhonedProcess, state: &str) -> String {
    wait_for(Duration::from_secs(10), || {
        let calls = p.ctl(&["--json", "calls"]).json();
        calls
            .as_array()?
            .iter()
            .find(|c| c["state"] == state)
            .map(|c| {
                c["path"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
    })
    .unwrap_or_else(|| {
        panic!(
            "no {state} call; calls: {:?}\nlog:\n{}",
            p.ctl(&["--json", "calls"]),
            p.log()
        )
    })
}

pub fn no_calls(p: &PhonedProcess) -> bool {
    wait_for(Duration::from_secs(10), || {
        let calls = p.ctl(&["--json", "calls"]).json();
        calls.as_array()?.is_empty().then_some(())
    })
    .is_some()
}

pub fn dial_bg(
    p: &PhonedProcess,
    target: &str,
) -> std::thread::JoinHandle<phoned_tests::process::CtlOutput> {
    let (bus, target) = (p.bus.address.clone(), target.to_owned());
    std::thread::spawn(move || phonectl(&bus, &["--json", "dial", &target, "--wait"], ""))
}

/// Waits for `p`'s first received voice message and returns its `voice ls` entry.
pub fn received_voice_message(p: &PhonedProcess) -> serde_json::Value {
    wait_for(Duration::from_secs(20), || {
        let list = p.ctl(&["--json", "voice", "ls"]).json();
        list.as_array()?
            .iter()
            .find(|v| v["status"] == "received")
            .cloned()
    })
    .expect("recorded voice message arrives")
}

/// `b` answers everything, then `a` dials it and waits until the call is active.
pub fn call_answered(a: &PhonedProcess, b: &PhonedProcess) {
    let nb = b.wait_online(ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    assert_eq!(b.ctl(&["autoanswer", "all"]).code, 0);
    let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
}

/// Asserts that A (440 Hz) heard B's 1000 Hz tone and B (1000 Hz) heard A's 440 Hz, each
/// over a hundred times its own tone's power, given the (440 Hz, 1000 Hz) Goertzel powers
/// of what each heard; prints the four.
pub fn assert_heard_each_other((a440, a1000): (f64, f64), (b440, b1000): (f64, f64)) {
    eprintln!("A heard 440 {a440:.2e} 1000 {a1000:.2e}; B heard 440 {b440:.2e} 1000 {b1000:.2e}");
    assert!(
        a1000 > 100.0 * a440 && a1000 > 1e-3,
        "A did not hear B's 1000 Hz"
    );
    assert!(
        b440 > 100.0 * b1000 && b440 > 1e-3,
        "B did not hear A's 440 Hz"
    );
}

/// A WAV of a `freq` Hz tone, `seconds` long, at 48 kHz.
pub fn write_tone(path: &Path, freq: f32, seconds: u32) {
    let tone = (0..48_000 * seconds)
        .map(|i| 0.3 * (2.0 * std::f32::consts::PI * freq * (i as f32 / 48_000.0)).sin());
    wav::write(path, 48_000, 1, tone);
}

/// A daemon named `name` whose `file` microphone plays a 30 s tone of `freq` Hz and whose
/// speaker records to `<name>-audio/out.wav`.
pub fn phone_with_tone(w: &World, name: &str, freq: f32) -> PhonedProcess {
    phone_with_tone_and(w, name, freq, "")
}

/// [`phone_with_tone`] with more `[audio]` lines (`frame_ms = 10`).
pub fn phone_with_tone_and(w: &World, name: &str, freq: f32, audio: &str) -> PhonedProcess {
    let dir = w.dir.path().join(format!("{name}-audio"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.wav");
    write_tone(&input, freq, 30);
    let output = dir.join("out.wav");
    w.phone_with(
        name,
        &format!(
            "relay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"\n{audio}",
            w.relay.fingerprint,
            input.display(),
            output.display()
        ),
    )
}
