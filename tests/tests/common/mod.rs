//! Setup shared by the end-to-end tests: a relay process and daemons on private buses.
#![allow(dead_code)]

use std::time::Duration;

use phoned_tests::process::{PhonedProcess, RelayProcess, bin, phonectl};
use phoned_tests::wait_for;

pub const ONLINE: Duration = Duration::from_secs(20);

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
