//! `phonectl watch` prints every event a script needs, as JSON lines with a stable `event`
//! field: calls (added, state changes, removed), messages with their text and status,
//! files and voice messages with their progress and status. Real relay, real daemons on
//! their own dbus-daemons, the real phonectl.

mod common;

use std::time::Duration;

use common::{dial_bg, wait_call};
use phoned_tests::process::Watch;
use phoned_tests::wav;
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(20);

/// The next event called `name` matching `pred`, or a panic naming what was missing.
fn expect(watch: &Watch, name: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    watch
        .wait(WITHIN, |v| v["event"] == name && pred(v))
        .unwrap_or_else(|| panic!("watch printed no {name:?} event"))
}

#[test]
fn watch_prints_calls_messages_files_and_voice_messages() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    let na = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_a = Watch::start(&a.bus.address);
    let on_b = Watch::start(&b.bus.address);

    // A message: its text at B, its status at A.
    let text = "watch <this> & \"that\"";
    assert_eq!(a.ctl(&["msg", "send", &nb, text]).code, 0);
    let got = expect(&on_b, "message_received", |_| true);
    assert_eq!(
        (got["from"].as_str(), got["text"].as_str()),
        (Some(na.as_str()), Some(text))
    );
    assert!(got["id"].as_str().is_some_and(|id| !id.is_empty()), "{got}");
    assert!(got["at"].as_u64().is_some(), "{got}");
    expect(&on_a, "message_status", |v| v["status"] == "delivered");

    // A file: progress and status at A, arrival with its path at B.
    let file = w.dir.path().join("notes.bin");
    std::fs::write(&file, vec![7u8; 300_000]).unwrap();
    assert_eq!(
        a.ctl(&["file", "send", &nb, file.to_str().unwrap()]).code,
        0
    );
    let got = expect(&on_b, "file_received", |_| true);
    assert_eq!(got["name"], "notes.bin");
    let saved = got["path"].as_str().expect("path");
    assert_eq!(std::fs::read(saved).unwrap().len(), 300_000);
    let progress = expect(&on_a, "file_progress", |_| true);
    assert_eq!(progress["size"], 300_000, "{progress}");
    expect(&on_a, "file_status", |v| v["status"] == "stored");

    // A voice message.
    let wav_path = w.dir.path().join("hello.wav");
    wav::write(
        &wav_path,
        48_000,
        1,
        (0..48_000).map(|i| 0.2 * (i as f32 * 0.05).sin()),
    );
    let sent = a.ctl(&["voice", "send", &nb, "--file", wav_path.to_str().unwrap()]);
    assert_eq!(sent.code, 0, "{sent:?}");
    let got = expect(&on_b, "voice_received", |_| true);
    assert_eq!(got["from"], na.as_str());
    let ms = got["duration_ms"].as_u64().expect("duration_ms");
    assert!((900..=1100).contains(&ms), "{got}");

    // A call: added (with its first properties), each state change, removed with the reason.
    let dialing = dial_bg(&a, &nb);
    let added = expect(&on_b, "call_added", |_| true);
    let path = added["path"].as_str().expect("path").to_owned();
    assert_eq!(added["properties"]["State"], "incoming", "{added}");
    assert_eq!(added["properties"]["RemoteNumber"], na.as_str(), "{added}");
    expect(&on_b, "incoming_call", |v| v["path"] == path.as_str());
    let id = wait_call(&b, "incoming");
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    expect(&on_b, "call_changed", |v| {
        v["path"] == path.as_str() && v["changed"]["State"] == "active"
    });
    expect(&on_a, "call_changed", |v| v["changed"]["State"] == "active");
    assert_eq!(dialing.join().unwrap().code, 0);
    assert_eq!(b.ctl(&["hangup", &id]).code, 0);
    let removed = expect(&on_b, "call_removed", |v| v["path"] == path.as_str());
    assert_eq!(removed["reason"], "hangup", "{removed}");
    expect(&on_a, "call_removed", |v| v["reason"] == "hangup");
}

#[test]
fn a_reconnect_prints_the_link_state_and_nothing_unchanged() {
    let mut w = common::world();
    let a = w.phone("Alice");
    a.wait_online(common::ONLINE);
    let watch = Watch::start(&a.bus.address);
    w.relay.restart();
    // The link goes down and comes back: those changes are printed …
    expect(&watch, "properties", |v| {
        v["changed"]["ConnectionState"] == "connecting"
    });
    let back = expect(&watch, "properties", |v| {
        v["changed"]["ConnectionState"] == "online"
    });
    // … and nothing that stayed the same: not the number, the name or the relay.
    let mut seen = vec![back];
    while let Some(v) = watch.wait(Duration::from_secs(2), |_| true) {
        seen.push(v);
    }
    for v in &seen {
        if v["event"] != "properties" {
            continue;
        }
        let changed = v["changed"].as_object().expect("changed");
        for key in ["Number", "DisplayName", "Relay", "CreatedAt"] {
            assert!(!changed.contains_key(key), "unchanged {key} re-sent: {v}");
        }
    }
}
