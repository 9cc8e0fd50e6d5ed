//! The daemon's link to the relay: reconnection and certificate pinning.

mod common;

use std::time::Duration;

use phoned_tests::wait_for;

#[test]
fn every_daemon_comes_back_after_the_relay_is_killed_and_restarted() {
    let mut w = common::world();
    let a = w.phone("A");
    let b = w.phone("B");
    let na = a.wait_online(common::ONLINE)["number"].clone();
    b.wait_online(common::ONLINE);
    w.relay.kill();
    let offline = wait_for(Duration::from_secs(15), || {
        a.status().filter(|s| s["connection_state"] != "online")
    });
    assert!(offline.is_some(), "A still online with the relay dead");
    w.relay.restart();
    let s = a.wait_online(common::ONLINE);
    assert_eq!(s["number"], na, "same account after reconnecting");
    b.wait_online(common::ONLINE);
    let who = wait_for(Duration::from_secs(10), || {
        let list = b.ctl(&["--json", "who"]).json();
        list.as_array()?
            .iter()
            .any(|u| u["number"] == na)
            .then_some(())
    });
    assert!(who.is_some(), "presence restored after reconnect");
}

#[test]
fn a_wrong_pinned_fingerprint_is_refused_naming_both() {
    let w = common::world();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let p = w.phone_with("Pinned", &format!("relay_fingerprint = \"{wrong}\""));
    let status = wait_for(Duration::from_secs(15), || {
        p.status().filter(|s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("does not match"))
        })
    })
    .unwrap_or_else(|| panic!("no mismatch error; log:\n{}", p.log()));
    let err = status["last_error"].as_str().unwrap();
    assert!(
        err.contains(&wrong) && err.contains(&w.relay.fingerprint),
        "{err}"
    );
    assert_ne!(status["connection_state"], "online");
    assert!(
        !p.dir.join("state/account.toml").exists(),
        "nothing provisioned from an unverified relay"
    );
}

#[test]
fn trust_on_first_use_pins_the_relay_and_refuses_a_new_identity() {
    let mut w = common::world();
    let p = w.phone_with("Tofu", "");
    p.wait_online(common::ONLINE);
    // The relay is reinstalled: same address, new certificate.
    w.relay.kill();
    std::fs::remove_file(w.relay.state_dir.join("relay-cert.der")).unwrap();
    std::fs::remove_file(w.relay.state_dir.join("relay-key.der")).unwrap();
    w.relay.restart();
    let status = wait_for(Duration::from_secs(20), || {
        p.status().filter(|s| {
            s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("does not match"))
        })
    })
    .unwrap_or_else(|| panic!("new relay identity accepted; log:\n{}", p.log()));
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains(&w.relay.fingerprint)
    );
}
