//! A relay reinstalled with a new certificate: a device that pinned the old one on first
//! use refuses it, says which command to run, and after `phonectl relay forget` pins the
//! new one and comes back online. `phonectl relay trust` shows what is trusted.

mod common;

use std::time::Duration;

use phoned_tests::wait_for;

#[test]
fn a_reinstalled_relay_is_trusted_again_after_relay_forget() {
    let mut w = common::world();
    // No relay_fingerprint in the config: the daemon pins on first use.
    let a = w.phone_with("A", "");
    a.wait_online(common::ONLINE);
    let trust = a.ctl(&["--json", "relay", "trust"]).json();
    assert_eq!(trust["source"], "learnt", "{trust}");
    assert_eq!(
        trust["fingerprint"],
        w.relay.fingerprint.as_str(),
        "{trust}"
    );

    // Reinstalled: same address and accounts, a new self-signed certificate.
    w.relay.kill();
    for f in ["relay-cert.der", "relay-key.der"] {
        std::fs::remove_file(w.relay.state_dir.join(f)).expect("the relay's identity");
    }
    w.relay.restart();
    assert_ne!(trust["fingerprint"], w.relay.fingerprint.as_str());
    let refused = wait_for(Duration::from_secs(20), || {
        let status = a.ctl(&["--json", "status"]).json();
        let error = status["last_error"].as_str()?.to_owned();
        error.contains("does not match").then_some(error)
    })
    .unwrap_or_else(|| panic!("no mismatch reported:\n{}", a.log()));
    assert!(refused.contains("`phonectl relay forget`"), "{refused}");

    let out = a.ctl(&["relay", "forget"]);
    assert_eq!(out.code, 0, "{out:?}");
    a.wait_online(Duration::from_secs(20));
    let trust = a.ctl(&["--json", "relay", "trust"]).json();
    assert_eq!(trust["source"], "learnt", "{trust}");
    assert_eq!(
        trust["fingerprint"],
        w.relay.fingerprint.as_str(),
        "{trust}"
    );
}

#[test]
fn a_fingerprint_from_the_config_is_not_forgotten_by_the_command() {
    let w = common::world();
    let a = w.phone("A");
    a.wait_online(common::ONLINE);
    let trust = a.ctl(&["--json", "relay", "trust"]).json();
    assert_eq!(trust["source"], "config", "{trust}");
    let out = a.ctl(&["relay", "forget"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("relay_fingerprint in the config"),
        "{out:?}"
    );
}
