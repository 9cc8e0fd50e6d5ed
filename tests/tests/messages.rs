//! Text messages through the relay's store and forward, with real processes.

mod common;

use std::time::Duration;

use phoned_tests::process::PhonedProcess;
use phoned_tests::wait_for;

fn history(p: &PhonedProcess) -> Vec<serde_json::Value> {
    p.ctl(&["--json", "msg", "history"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn status_of(p: &PhonedProcess, id: &str) -> Option<String> {
    history(p)
        .into_iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["status"].as_str().map(str::to_owned))
}

fn wait_status(p: &PhonedProcess, id: &str, status: &str) -> bool {
    wait_for(Duration::from_secs(10), || {
        (status_of(p, id).as_deref() == Some(status)).then_some(())
    })
    .is_some()
}

fn send(p: &PhonedProcess, to: &str, text: &str) -> String {
    let out = p.ctl(&["--json", "msg", "send", to, text]);
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_message_to_an_offline_daemon_arrives_once_when_it_starts_even_after_a_relay_kill() {
    let mut w = common::world();
    let a = w.phone("Alice");
    let mut b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    b.stop();

    let id = send(&a, &nb, "are you there?");
    assert!(
        wait_status(&a, &id, "stored"),
        "not stored: {:?}",
        history(&a)
    );
    // The relay dies right after acknowledging: nothing is lost.
    w.relay.kill();
    w.relay.restart();
    a.wait_online(common::ONLINE);
    b.restart();
    b.wait_online(common::ONLINE);
    let got = wait_for(Duration::from_secs(10), || {
        let h = history(&b);
        h.iter().any(|m| m["text"] == "are you there?").then_some(h)
    })
    .expect("message delivered after restart");
    let copies = got.iter().filter(|m| m["text"] == "are you there?").count();
    assert_eq!(copies, 1);
    assert_eq!(got[0]["direction"], "in");
    assert_eq!(
        got[0]["peer"],
        a.ctl(&["--json", "account"]).json()["number"]
    );
    assert!(
        wait_status(&a, &id, "delivered"),
        "no delivery receipt: {:?}",
        history(&a)
    );
    // Restarting again delivers nothing twice.
    b.restart();
    b.wait_online(common::ONLINE);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        history(&b)
            .iter()
            .filter(|m| m["text"] == "are you there?")
            .count(),
        1
    );
}

#[test]
fn messages_written_while_the_relay_is_down_are_sent_when_it_is_back() {
    let mut w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(a.ctl(&["contacts", "add", "Bob", &nb]).code, 0);
    w.relay.kill();
    let down = wait_for(Duration::from_secs(15), || {
        a.status().filter(|s| s["connection_state"] != "online")
    });
    assert!(down.is_some());
    let id = send(&a, "bob", "sent while offline");
    assert_eq!(status_of(&a, &id).as_deref(), Some("queued"));
    w.relay.restart();
    assert!(wait_status(&a, &id, "delivered"), "{:?}", history(&a));
    assert!(
        history(&b)
            .iter()
            .any(|m| m["text"] == "sent while offline")
    );
}

/// A relay short of disk space (its reserve set above what the disk has) refuses the
/// message with a clear reason, which `phonectl` shows; the message is marked failed.
#[test]
fn a_relay_out_of_space_refuses_with_a_clear_message() {
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nmin_free_space_mib = 1073741824",
    );
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = a.ctl(&["msg", "send", &nb, "hello"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("QuotaExceeded") && out.stderr.contains("out of storage space"),
        "{out:?}"
    );
    let failed = history(&a)
        .into_iter()
        .filter(|m| m["status"] == "failed")
        .count();
    assert_eq!(failed, 1);
}

#[test]
fn size_quota_and_unknown_number_errors_are_clear() {
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nmax_message_bytes = 6000\nmailbox_quota_kib = 8\nmax_file_mib = 0",
    );
    let a = w.phone("Alice");
    let mut b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    b.stop();
    let out = a.ctl(&["msg", "send", "99999", "hello"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("NotFound") && out.stderr.contains("99999"),
        "{out:?}"
    );
    let big = "x".repeat(7000);
    let out = a.ctl(&["msg", "send", &nb, &big]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("6000"), "{out:?}");
    let fits = "y".repeat(5000);
    send(&a, &nb, &fits);
    let out = a.ctl(&["msg", "send", &nb, &fits]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("QuotaExceeded"), "{out:?}");
    let failed = history(&a)
        .into_iter()
        .filter(|m| m["status"] == "failed")
        .count();
    assert_eq!(failed, 3);
}

/// What a user types: several words are one text, `-` reads the text from stdin, and
/// `msg history` takes a contact's name, refusing one that is no contact.
#[test]
fn words_stdin_and_contact_names_in_msg() {
    let w = common::world();
    let a = w.phone("A");
    let b = w.phone("B");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned();
    assert_eq!(a.ctl(&["contacts", "add", "Bob", &nb]).code, 0);
    let out = a.ctl(&["msg", "send", "Bob", "hello", "there", "Bob"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = phoned_tests::process::phonectl(
        &a.bus.address,
        &["msg", "send", &nb, "-"],
        "from\nstdin\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let texts = || -> Option<Vec<String>> {
        let rows = a.ctl(&["--json", "msg", "history", "Bob"]).json();
        let texts: Vec<String> = rows
            .as_array()?
            .iter()
            .filter_map(|r| r["text"].as_str().map(str::to_owned))
            .collect();
        (texts.len() == 2).then_some(texts)
    };
    let texts = wait_for(Duration::from_secs(10), texts).expect("two messages with Bob");
    assert_eq!(texts, ["hello there Bob", "from\nstdin"]);
    let out = a.ctl(&["msg", "history", "Nobody"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("NotFound"), "{out:?}");
}
