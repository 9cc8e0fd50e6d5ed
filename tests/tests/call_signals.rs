//! What a desktop shell watching the daemon's objects sees: one `PropertiesChanged` per
//! change, carrying only the properties whose value changed; for a call, a last one that
//! says why it ended (`State` "ended" with its `Reason`). Recorded from the daemon's own
//! bus by a match rule, as `dbus-monitor` would.

mod common;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phoned_tests::process::PhonedProcess;
use phoned_tests::wait_for;
use smol::stream::StreamExt;

/// One `PropertiesChanged`: the object's path and the changed values (as text).
type Changed = (String, HashMap<String, String>);

const CALL: &str = "org.phoned.Phone1.Call";

/// Records every `PropertiesChanged` of `interface` on `p`'s bus.
struct Recorder {
    seen: Arc<Mutex<Vec<Changed>>>,
    _task: smol::Task<()>,
}

impl Recorder {
    fn start(p: &PhonedProcess, interface: &'static str) -> Recorder {
        let seen: Arc<Mutex<Vec<Changed>>> = Arc::default();
        let address = p.bus.address.clone();
        let (ready_tx, ready) = smol::channel::bounded(1);
        let sink = seen.clone();
        let task = smol::spawn(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .build()
                .await
                .expect("connect to the daemon's bus");
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface("org.freedesktop.DBus.Properties")
                .member("PropertiesChanged")
                .add_arg(interface)
                .build()
                .expect("match rule");
            let mut stream =
                zbus::MessageStream::for_match_rule(rule, &conn, NonZeroUsize::new(256))
                    .await
                    .expect("match rule");
            let _ = ready_tx.send(()).await;
            while let Some(Ok(msg)) = stream.next().await {
                let path = msg
                    .header()
                    .path()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let Ok((_, changed, _)) =
                    msg.body()
                        .deserialize::<(String, HashMap<String, zbus::OwnedVariant>, Vec<String>)>(
                        )
                else {
                    continue;
                };
                let changed = changed
                    .into_iter()
                    .map(|(k, v)| (k, format!("{v:?}")))
                    .collect();
                sink.lock().unwrap().push((path, changed));
            }
        });
        smol::block_on(ready.recv()).expect("recorder ready");
        Recorder { seen, _task: task }
    }

    fn seen(&self) -> Vec<Changed> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits for a signal that says the call ended, and returns everything seen.
    fn until_ended(&self) -> Vec<Changed> {
        wait_for(Duration::from_secs(10), || {
            let seen = self.seen();
            seen.iter()
                .any(|(_, c)| c.get("State").is_some_and(|s| s.contains("ended")))
                .then_some(seen)
        })
        .unwrap_or_else(|| panic!("no State=ended among {:?}", self.seen()))
    }
}

/// Each signal changes something, and repeats no value a previous one already gave.
fn assert_only_changes(seen: &[Changed]) {
    let mut known: HashMap<(String, String), String> = HashMap::new();
    for (path, changed) in seen {
        assert!(!changed.is_empty(), "an empty PropertiesChanged: {seen:?}");
        for (name, value) in changed {
            let before = known.insert((path.clone(), name.clone()), value.clone());
            assert_ne!(
                before.as_ref(),
                Some(value),
                "{name} re-sent unchanged on {path}: {seen:?}"
            );
        }
    }
}

fn number(p: &PhonedProcess) -> String {
    p.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned()
}

#[test]
fn the_last_signal_of_a_hung_up_call_says_why_and_none_repeats_a_value() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    b.wait_online(common::ONLINE);
    let (ra, rb) = (Recorder::start(&a, CALL), Recorder::start(&b, CALL));
    common::call_answered(&a, &b);
    assert_eq!(a.ctl(&["mute"]).code, 0, "{}", a.log());
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    for (who, r, reason) in [("A", &ra, "hangup"), ("B", &rb, "hangup")] {
        let seen = r.until_ended();
        assert_only_changes(&seen);
        let (_, last) = seen.last().expect("signals");
        assert!(
            last.get("Reason").is_some_and(|r| r.contains(reason)),
            "{who}: the last signal has no Reason {reason}: {seen:?}"
        );
    }
    // A's mute was announced once, by zbus after the setter or by the daemon, not twice.
    let mutes = ra
        .seen()
        .iter()
        .filter(|(_, c)| c.contains_key("Muted"))
        .count();
    assert_eq!(mutes, 1, "{:?}", ra.seen());
}

#[test]
fn a_declined_call_ends_with_its_reason_on_the_callers_object() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = number(&b);
    let ra = Recorder::start(&a, CALL);
    let out = a.ctl(&["dial", &nb]);
    assert_eq!(out.code, 0, "{out:?}");
    let incoming = wait_for(Duration::from_secs(10), || {
        let calls = b.ctl(&["--json", "calls"]).json();
        let ringing = calls.as_array()?.iter().any(|c| c["state"] == "incoming");
        ringing.then_some(())
    });
    assert!(incoming.is_some(), "B never rang: {}", b.log());
    assert_eq!(b.ctl(&["reject"]).code, 0, "{}", b.log());
    let seen = ra.until_ended();
    assert_only_changes(&seen);
    let (_, last) = seen.last().expect("signals");
    assert!(
        last.get("Reason").is_some_and(|r| r.contains("rejected")),
        "{seen:?}"
    );
}

#[test]
fn a_new_display_name_is_one_signal_with_only_the_name() {
    let w = common::world();
    let a = w.phone("Alice");
    a.wait_online(common::ONLINE);
    let r = Recorder::start(&a, "org.phoned.Phone1.Account");
    for name in ["Alice Liddell", "Alice L."] {
        let out = a.ctl(&["name", "set", name]);
        assert_eq!(out.code, 0, "{out:?}");
        let told = wait_for(Duration::from_secs(10), || {
            r.seen()
                .iter()
                .any(|(_, c)| c.get("DisplayName").is_some_and(|v| v.contains(name)))
                .then_some(())
        });
        assert!(told.is_some(), "{name} never announced: {:?}", r.seen());
    }
    // The second name's signal came after everything the first one caused.
    let seen = r.seen();
    assert_only_changes(&seen);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|(_, c)| c.len() == 1), "{seen:?}");
}
