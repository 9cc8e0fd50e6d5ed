//! Calls between real daemons through a real relay, driven by phonectl; the incoming
//! call's desktop notification is received by a mock notification server on the bus.

mod common;

use std::time::Duration;

use common::{dial_bg, no_calls, wait_call};
use phoned_tests::notifications::NotificationServer;
use phoned_tests::wait_for;

#[test]
fn dial_answer_talk_hold_dtmf_hangup_and_history() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    // Dial by contact name.
    assert_eq!(a.ctl(&["contacts", "add", "Bob", &nb]).code, 0);
    let dialing = dial_bg(&a, "bob");
    let id = wait_call(&b, "incoming");
    let calls = b.ctl(&["--json", "calls"]).json();
    assert_eq!(calls[0]["direction"], "incoming");
    assert_eq!(calls[0]["remote_name"], "Alice");
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    let out = dialing.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["state"], "active");
    wait_call(&a, "active");
    let calls = a.ctl(&["--json", "calls"]).json();
    assert_eq!(
        (
            calls[0]["remote_number"].as_str(),
            calls[0]["remote_name"].as_str()
        ),
        (Some(nb.as_str()), Some("Bob"))
    );

    // Held by A: held on A's side, active and held by the other side on B's (the whole
    // story is in hold_waiting.rs).
    assert_eq!(a.ctl(&["hold"]).code, 0);
    wait_call(&a, "held");
    assert!(
        phoned_tests::wait_for(Duration::from_secs(10), || {
            let c = &b.ctl(&["--json", "calls"]).json()[0];
            (c["state"] == "active" && c["remote_held"] == true).then_some(())
        })
        .is_some()
    );
    let out = b.ctl(&["resume", &id]);
    assert_eq!(out.code, 1, "only the side that held can resume: {out:?}");
    assert_eq!(a.ctl(&["resume"]).code, 0);
    assert!(
        phoned_tests::wait_for(Duration::from_secs(10), || {
            let c = &b.ctl(&["--json", "calls"]).json()[0];
            (c["state"] == "active" && c["remote_held"] == false).then_some(())
        })
        .is_some()
    );
    assert_eq!(a.ctl(&["mute"]).code, 0);
    assert_eq!(a.ctl(&["--json", "calls"]).json()[0]["state"], "active");
    let watch = phoned_tests::process::Watch::start(&b.bus.address);
    let out = a.ctl(&["dtmf", "12#"]);
    assert_eq!(out.code, 0, "{out:?}");
    let dtmf = watch.wait(Duration::from_secs(5), |v| v["event"] == "dtmf");
    assert_eq!(
        dtmf.map(|v| v["digits"].clone()),
        Some(serde_json::json!("12#")),
        "DTMF not raised on the far side"
    );
    assert_eq!(a.ctl(&["dtmf", "x"]).code, 1);

    assert_eq!(b.ctl(&["hangup"]).code, 0);
    let removed = watch.wait(Duration::from_secs(5), |v| v["event"] == "call_removed");
    assert_eq!(
        removed.map(|v| v["reason"].clone()),
        Some(serde_json::json!("hangup"))
    );
    assert!(no_calls(&a) && no_calls(&b));
    let h = a.ctl(&["--json", "history"]).json();
    assert_eq!(h[0]["direction"], "outgoing");
    assert_eq!(h[0]["result"], "answered");
    let h = b.ctl(&["--json", "history"]).json();
    assert_eq!(
        (h[0]["direction"].as_str(), h[0]["missed"].as_bool()),
        (Some("incoming"), Some(false))
    );
}

#[test]
fn busy_reject_offline_unknown_and_missed_are_reported() {
    let w = world_with_short_ring();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = a.ctl(&["--json", "dial", "99999", "--wait"]);
    assert_eq!(
        (out.code, out.json()["reason"].as_str()),
        (1, Some("unknown-number")),
        "{out:?}"
    );
    // Without --wait too: a call the relay refuses is an error, not "calling".
    let out = a.ctl(&["dial", "99999"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unknown-number"), "{out:?}");
    assert!(!out.stdout.contains("calling"), "{out:?}");
    let out = a.ctl(&["dial", "nobody"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("NotFound"), "{out:?}");
    // With --json the error is one JSON object too (on stderr, where errors go).
    let out = a.ctl(&["--json", "dial", "nobody"]);
    let error: serde_json::Value = serde_json::from_str(out.stderr.trim()).expect("JSON error");
    assert_eq!(
        (out.code, &error["error"], &error["exit"]),
        (1, &serde_json::json!("NotFound"), &serde_json::json!(1)),
        "{out:?}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );

    assert_eq!(b.ctl(&["dnd", "on"]).code, 0);
    // The settings read back: `dnd`/`autoanswer` without an argument, and `status`.
    assert_eq!(b.ctl(&["dnd"]).stdout.trim(), "do not disturb is on");
    assert_eq!(b.ctl(&["--json", "dnd"]).json()["do_not_disturb"], true);
    let status = b.ctl(&["status"]).stdout;
    assert!(status.contains("; do not disturb"), "{status}");
    assert_eq!(b.ctl(&["--json", "status"]).json()["do_not_disturb"], true);
    let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
    assert_eq!(out.json()["reason"], "busy", "{out:?}");
    assert_eq!(b.ctl(&["dnd", "off"]).code, 0);
    assert_eq!(b.ctl(&["dnd"]).stdout.trim(), "do not disturb is off");
    assert!(!b.ctl(&["status"]).stdout.contains("do not disturb"));
    assert_eq!(b.ctl(&["autoanswer"]).stdout.trim(), "auto-answer: off");
    assert_eq!(b.ctl(&["autoanswer", "contacts"]).code, 0);
    assert_eq!(
        b.ctl(&["--json", "autoanswer"]).json()["auto_answer"],
        "contacts"
    );
    assert!(
        b.ctl(&["status"])
            .stdout
            .contains("; auto-answer: contacts")
    );
    assert_eq!(
        b.ctl(&["--json", "status"]).json()["auto_answer"],
        "contacts"
    );
    assert_eq!(b.ctl(&["autoanswer", "off"]).code, 0);

    let dialing = dial_bg(&a, &nb);
    wait_call(&b, "incoming");
    assert_eq!(b.ctl(&["reject"]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["reason"], "rejected");

    // Nobody answers: no-answer for the caller, a missed call for the callee.
    let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
    assert_eq!(out.json()["reason"], "no-answer", "{out:?}");
    let missed = wait_for(Duration::from_secs(5), || {
        let h = b.ctl(&["--json", "history"]).json();
        h.as_array()?
            .iter()
            .any(|e| e["missed"] == true)
            .then_some(())
    });
    assert!(missed.is_some());

    let mut b = b;
    b.stop();
    let offline = wait_for(Duration::from_secs(10), || {
        let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
        (out.json()["reason"] == "offline").then_some(())
    });
    assert!(
        offline.is_some(),
        "calling a stopped daemon is not reported offline"
    );
}

fn world_with_short_ring() -> common::World {
    common::world_with("idle_timeout_ms = 2000\nkeep_alive_ms = 500\nring_timeout_ms = 1500")
}

#[test]
fn the_incoming_call_notification_answers_the_call() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = NotificationServer::start(&b.bus.address, true);
    let dialing = dial_bg(&a, &nb);
    wait_call(&b, "incoming");
    let posted = server.wait_posted("Incoming call", 0);
    // A click on the notification itself (`default`) answers, like Answer.
    assert_eq!(
        posted.actions,
        [
            "default", "Answer", "answer", "Answer", "decline", "Decline"
        ]
    );
    let hints = &posted.hints;
    assert!(hints["category"].contains("call.incoming"), "{hints:?}");
    assert!(hints["resident"].contains("true"), "{hints:?}");
    // The sound theme's name for it; the daemon rings itself, so the server should not.
    assert!(
        hints["sound-name"].contains("phone-incoming-call"),
        "{hints:?}"
    );
    assert!(hints["suppress-sound"].contains("true"), "{hints:?}");
    server.invoke(posted.id, "answer");
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    assert!(
        server.wait_closed(posted.id),
        "the notification is closed when the call stops ringing"
    );
    assert_eq!(a.ctl(&["hangup"]).code, 0);
}

#[test]
fn dial_wait_ends_when_the_daemon_goes_away() {
    let w = common::world();
    let mut a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let dialing = dial_bg(&a, &nb);
    wait_call(&b, "incoming");
    a.stop();
    // Not "still not answered" after two minutes, nor a loop on a dead bus: at once,
    // as "not running" (exit 3).
    let out = dialing.join().unwrap();
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("phoned went away"), "{out:?}");
}
