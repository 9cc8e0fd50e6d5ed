//! Hold as each side sees it, and call waiting, between real daemons through a real
//! relay, driven by phonectl and watched on D-Bus: a call the other side holds stays
//! `active` with `RemoteHeld`, and only they can resume it; a call during a call is
//! `waiting` (its notification says so, without a ring sound) and answering it holds the
//! first call on this side.

mod common;

use std::time::Duration;

use common::{dial_bg, wait_call};
use phoned_tests::notifications::NotificationServer;
use phoned_tests::process::{PhonedProcess, Watch};
use serde_json::{Value, json};

const SIGNAL: Duration = Duration::from_secs(10);

/// `p`'s call with the other party `number`, as `phonectl --json calls` shows it.
fn call_with(p: &PhonedProcess, number: &str) -> Value {
    let calls = p.ctl(&["--json", "calls"]).json();
    calls
        .as_array()
        .and_then(|c| c.iter().find(|c| c["remote_number"] == number).cloned())
        .unwrap_or_else(|| panic!("no call with {number}: {calls}"))
}

/// Waits until `p`'s call with `number` is in `state` with `RemoteHeld` = `remote_held`.
fn wait_call_with(p: &PhonedProcess, number: &str, state: &str, remote_held: bool) {
    let reached = phoned_tests::wait_for(SIGNAL, || {
        let c = call_with(p, number);
        (c["state"] == state && c["remote_held"] == remote_held).then_some(())
    });
    assert!(
        reached.is_some(),
        "never {state}, remote_held {remote_held}: {}",
        call_with(p, number)
    );
}

/// The call's short id (the end of its path).
fn short(call: &Value) -> String {
    call["path"]
        .as_str()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// Waits for a `call_changed` of `watch` whose `changed` has `key` = `value`; returns
/// everything that signal carried.
fn changed(watch: &Watch, key: &str, value: Value) -> Value {
    watch
        .wait(SIGNAL, |v| {
            v["event"] == "call_changed" && v["changed"][key] == value
        })
        .unwrap_or_else(|| panic!("no call_changed with {key} = {value}"))["changed"]
        .clone()
}

fn number(p: &PhonedProcess) -> String {
    p.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned()
}

#[test]
fn a_call_the_other_side_holds_stays_active_here_and_only_they_resume_it() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    let (na, nb) = (number(&a), number(&b));
    common::call_answered(&a, &b);
    let watch = Watch::start(&a.bus.address);

    // Bob holds: Alice's call stays active, held by the other side (one signal, with
    // only what changed: no `State`).
    assert_eq!(b.ctl(&["hold"]).code, 0);
    let first = changed(&watch, "RemoteHeld", json!(true));
    assert!(first.get("State").is_none(), "State stays active: {first}");
    let at_a = call_with(&a, &nb);
    assert_eq!(
        (&at_a["state"], &at_a["remote_held"]),
        (&json!("active"), &json!(true))
    );
    let human = a.ctl(&["calls"]).stdout;
    assert!(human.contains("active (held by the other side)"), "{human}");
    assert_eq!(
        call_with(&b, &na)["state"],
        "held",
        "held on the side that held"
    );

    // Alice cannot resume what Bob holds, and is told why.
    let out = a.ctl(&["resume", &short(&at_a)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("the other side holds the call") && out.stderr.contains("InvalidState"),
        "{out:?}"
    );

    // Alice may hold it too: held here, still held by Bob.
    assert_eq!(a.ctl(&["hold"]).code, 0);
    changed(&watch, "State", json!("held"));
    let at_a = call_with(&a, &nb);
    assert_eq!(
        (&at_a["state"], &at_a["remote_held"]),
        (&json!("held"), &json!(true))
    );
    assert!(a.ctl(&["calls"]).stdout.contains("held (by both sides)"));
    // Bob resumes: Alice still holds, but is told Bob no longer does.
    assert_eq!(b.ctl(&["resume"]).code, 0);
    let resumed = changed(&watch, "RemoteHeld", json!(false));
    assert!(resumed.get("State").is_none(), "still held here: {resumed}");
    assert_eq!(call_with(&a, &nb)["state"], "held");
    wait_call_with(&b, &na, "active", true);
    // Alice resumes: both talk again.
    assert_eq!(a.ctl(&["resume"]).code, 0);
    changed(&watch, "State", json!("active"));
    wait_call_with(&a, &nb, "active", false);
    wait_call_with(&b, &na, "active", false);
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
}

#[test]
fn a_call_during_a_call_waits_and_answering_it_holds_the_first_call_here() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    let c = w.phone("Carol");
    let (na, nb, nc) = (number(&a), number(&b), number(&c));
    common::call_answered(&a, &b);
    let server = NotificationServer::start(&a.bus.address, false);

    // Carol calls Alice during Alice–Bob: the relay offers it, Alice's daemon says
    // waiting, and the notification is the call-waiting one, without a ring sound.
    let carol = dial_bg(&c, &na);
    let waiting = wait_call(&a, "waiting");
    assert_eq!(call_with(&a, &nc)["state"], "waiting");
    let posted = server.wait_posted("Call waiting", 0);
    assert!(!posted.hints.contains_key("sound-name"), "{posted:?}");
    assert!(
        posted.hints["suppress-sound"].contains("true"),
        "{posted:?}"
    );
    assert!(posted.body.contains(&nc), "{posted:?}");
    assert!(
        !server.posted().iter().any(|p| p.summary == "Incoming call"),
        "{:?}",
        server.posted()
    );

    // Alice answers (no call named: the waiting one): Alice–Bob is held by Alice,
    // Alice–Carol talks.
    let out = a.ctl(&["answer"]);
    assert_eq!(out.code, 0, "{out:?}");
    let carol = carol.join().unwrap();
    assert_eq!(carol.json()["state"], "active", "{carol:?}");
    wait_call_with(&a, &nb, "held", false);
    wait_call_with(&a, &nc, "active", false);
    assert_eq!(short(&call_with(&a, &nc)), waiting);
    assert!(server.wait_closed(posted.id), "the notification goes");
    // Bob sees his call held by the other side.
    wait_call_with(&b, &na, "active", true);

    // Carol hangs up; Alice resumes Bob.
    assert_eq!(c.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&c));
    assert_eq!(a.ctl(&["resume"]).code, 0);
    wait_call_with(&a, &nb, "active", false);
    wait_call_with(&b, &na, "active", false);
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a) && common::no_calls(&b));
}

#[test]
fn a_waiting_call_can_be_declined_and_the_first_call_goes_on() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    let c = w.phone("Carol");
    let (na, nb) = (number(&a), number(&b));
    number(&c);
    common::call_answered(&a, &b);
    let carol = dial_bg(&c, &na);
    wait_call(&a, "waiting");
    let out = a.ctl(&["reject"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(carol.join().unwrap().json()["reason"], "rejected");
    assert!(common::no_calls(&c));
    wait_call_with(&a, &nb, "active", false);
    let one = phoned_tests::wait_for(SIGNAL, || {
        let calls = a.ctl(&["--json", "calls"]).json();
        (calls.as_array()?.len() == 1).then_some(())
    });
    assert!(
        one.is_some(),
        "the declined call is gone, the first goes on"
    );
    assert_eq!(a.ctl(&["hangup"]).code, 0);
}

#[test]
fn a_waiting_call_rings_as_incoming_once_the_other_call_ends() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    let c = w.phone("Carol");
    let (na, nc) = (number(&a), number(&c));
    number(&b);
    common::call_answered(&a, &b);
    let server = NotificationServer::start(&a.bus.address, false);
    let watch = Watch::start(&a.bus.address);
    let carol = dial_bg(&c, &na);
    wait_call(&a, "waiting");
    let waiting = server.wait_posted("Call waiting", 0);
    // Bob hangs up: Carol's call is an ordinary incoming call now, and its notification
    // says so (with the ring's sound name).
    assert_eq!(b.ctl(&["hangup"]).code, 0);
    changed(&watch, "State", json!("incoming"));
    assert_eq!(call_with(&a, &nc)["state"], "incoming");
    let incoming = server.wait_posted("Incoming call", 0);
    assert!(
        incoming.hints["sound-name"].contains("phone-incoming-call"),
        "{incoming:?}"
    );
    assert_eq!(incoming.replaces, waiting.id, "replaces the waiting one");
    assert_eq!(waiting.replaces, 0);
    assert_eq!(a.ctl(&["answer"]).code, 0);
    assert_eq!(carol.join().unwrap().json()["state"], "active");
    assert!(server.wait_closed(incoming.id));
    assert_eq!(a.ctl(&["hangup"]).code, 0);
}
