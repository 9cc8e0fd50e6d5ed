//! Delivery receipts survive a sender that is cut off when its message is acknowledged:
//! the relay keeps a receipt until the sender's daemon says it has recorded it.

mod common;

use std::time::Duration;

use phoned_tests::process::PhonedProcess;
use phoned_tests::proxy::UdpProxy;
use phoned_tests::wait_for;

fn status_of(p: &PhonedProcess, id: &str) -> Option<String> {
    p.ctl(&["--json", "msg", "history"])
        .json()
        .as_array()?
        .iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["status"].as_str().map(str::to_owned))
}

fn wait_status(p: &PhonedProcess, id: &str, status: &str, within: Duration) -> bool {
    wait_for(within, || {
        (status_of(p, id).as_deref() == Some(status)).then_some(())
    })
    .is_some()
}

#[test]
fn a_receipt_reaches_a_sender_that_was_cut_off_while_the_recipient_acknowledged() {
    // The relay notices a vanished device only after 8 s: long enough for Bob to start,
    // take the message and acknowledge it while Alice's dead session still looks alive,
    // so the relay pushes her receipt into a connection that will never deliver it.
    let w = common::world_with("idle_timeout_ms = 8000\nkeep_alive_ms = 500");
    let proxy = smol::block_on(UdpProxy::start(w.relay.addr)).expect("proxy");
    let mut a = PhonedProcess::start(
        &w.dir.path().join("Alice"),
        proxy.addr,
        &format!(
            "display_name = \"Alice\"\nrelay_fingerprint = \"{}\"",
            w.relay.fingerprint
        ),
    );
    let mut b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    b.stop();

    let out = a.ctl(&["--json", "msg", "send", &nb, "did you get this?"]);
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.json()["id"].as_str().expect("an id").to_owned();
    assert!(
        wait_status(&a, &id, "stored", Duration::from_secs(10)),
        "not stored: {:?}",
        status_of(&a, &id)
    );

    proxy.cut();
    b.restart();
    b.wait_online(common::ONLINE);
    let got = wait_for(Duration::from_secs(10), || {
        let h = b.ctl(&["--json", "msg", "history"]).json();
        h.as_array()?
            .iter()
            .any(|m| m["text"] == "did you get this?")
            .then_some(())
    });
    assert!(got.is_some(), "Bob never got the message");
    // Bob's ack is on its way; the receipt goes to Alice's dead connection. Keep her
    // cut off until her daemon has given that connection up too.
    let down = wait_for(Duration::from_secs(40), || {
        a.status().filter(|s| s["connection_state"] != "online")
    });
    assert!(down.is_some(), "Alice never noticed the cut");
    assert_eq!(status_of(&a, &id).as_deref(), Some("stored"));
    proxy.restore();

    assert!(
        wait_status(&a, &id, "delivered", Duration::from_secs(60)),
        "the receipt was lost: {:?}\nAlice's log:\n{}",
        status_of(&a, &id),
        a.log()
    );
    // Recorded for good: a restart (the relay has forgotten it by now) keeps it.
    a.restart();
    a.wait_online(common::ONLINE);
    assert_eq!(status_of(&a, &id).as_deref(), Some("delivered"));
}
