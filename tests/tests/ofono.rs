//! The oFono bridge end to end: a real relay, real daemons (file audio), `phoned-ofono`
//! serving `org.ofono` on its own dbus-daemon (the "system bus"), and a client that makes
//! exactly the calls GNOME Calls' oFono provider makes (`phoned_tests::ofono`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{dial_bg, no_calls, wait_call};
use phoned_tests::ofono::{BridgeProcess, OfonoClient, Signal};
use phoned_tests::process::{DbusDaemon, PhonedProcess, Watch};
use phoned_tests::wav;

const VCM: &str = "org.ofono.VoiceCallManager";
const CALL: &str = "org.ofono.VoiceCall";
const SOON: Duration = Duration::from_secs(15);

/// A daemon with the file audio backend (a quiet tone in, a WAV out).
fn phone(w: &common::World, name: &str) -> PhonedProcess {
    let dir = w.dir.path().join(format!("{name}-audio"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.wav");
    let tone = (0..48_000 * 20).map(|i| 0.1 * (i as f32 * 0.05).sin());
    wav::write(&input, 48_000, 1, tone);
    w.phone_with(
        name,
        &format!(
            "relay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
            w.relay.fingerprint,
            input.display(),
            dir.join("out.wav").display()
        ),
    )
}

fn number(p: &PhonedProcess) -> String {
    p.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("a number")
        .to_owned()
}

/// Waits for `PropertyChanged("State", state)` of `call`.
fn wait_state(c: &OfonoClient, call: &str, state: &str) {
    let got = c.wait(SOON, |s| match s {
        Signal::PropertyChanged {
            path,
            interface,
            name,
            value,
        } if path == call && interface == CALL && name == "State" && value == state => Some(()),
        _ => None,
    });
    assert!(got.is_some(), "{call} never became {state}");
}

fn wait_added(c: &OfonoClient) -> (String, HashMap<String, String>) {
    c.wait(SOON, |s| match s {
        Signal::CallAdded { path, props } => Some((path.clone(), props.clone())),
        _ => None,
    })
    .expect("CallAdded")
}

/// After a hangup: `DisconnectReason`, `State` `disconnected`, `CallRemoved`, in order.
fn wait_gone(c: &OfonoClient, call: &str, reason: &str) {
    let mut seen = Vec::new();
    let removed = c.wait(SOON, |s| {
        match s {
            Signal::DisconnectReason { path, reason } if path == call => {
                seen.push(format!("reason {reason}"))
            }
            Signal::PropertyChanged {
                path, name, value, ..
            } if path == call && name == "State" => seen.push(format!("state {value}")),
            Signal::CallRemoved { path } if path == call => return Some(()),
            _ => {}
        }
        None
    });
    assert!(removed.is_some(), "{call} not removed; saw {seen:?}");
    assert_eq!(
        seen,
        [format!("reason {reason}"), "state disconnected".to_owned()],
        "{call}"
    );
}

#[test]
fn gnome_calls_dials_answers_sends_tones_and_hangs_up_through_the_bridge() {
    let w = common::world();
    let a = phone(&w, "Alice");
    let b = phone(&w, "Bob");
    let na = number(&a);
    let nb = number(&b);
    let system = DbusDaemon::start();
    let bridge = BridgeProcess::start(
        &w.dir.path().join("bridge"),
        &a.bus.address,
        &system.address,
        &[],
    );
    let c = OfonoClient::connect(&system.address);

    // GNOME Calls: GetModems, then an origin for each modem whose Interfaces hold
    // org.ofono.VoiceCallManager, named after its Name; then GetCalls.
    let modems = c.modems();
    assert_eq!(modems.len(), 1, "{modems:?}");
    let (modem, props) = &modems[0];
    assert_eq!(modem, "/phoned");
    assert_eq!(props["Interfaces"], VCM);
    assert_eq!(props["Name"], "phoned");
    assert_eq!(props["Powered"], "true");
    assert_eq!(props["Online"], "true");
    assert_eq!(props["Serial"], na);
    assert!(c.calls(modem).is_empty());

    // Dial(number, "default") → a phoned call, ringing at Bob.
    let path: zbus::wire::OwnedObjectPath = c
        .call(modem, VCM, "Dial", &(nb.as_str(), "default"))
        .expect("Dial");
    let path = path.as_str().to_owned();
    let (added, props) = wait_added(&c);
    assert_eq!(added, path);
    assert_eq!(props["LineIdentification"], nb);
    assert!(
        props["State"] == "dialing" || props["State"] == "alerting",
        "{props:?}"
    );
    // The same call in phonectl: phoned's call n is /phoned/voicecall<n>.
    let local = wait_call(&a, "ringing");
    assert_eq!(
        path,
        format!("/phoned/voicecall{:02}", local.parse::<u32>().unwrap())
    );
    if props["State"] == "dialing" {
        wait_state(&c, &path, "alerting");
    }
    let id = wait_call(&b, "incoming");
    assert_eq!(c.calls(modem)[0].1["State"], "alerting");

    // Bob answers: active here (with its StartTime).
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    wait_state(&c, &path, "active");
    wait_call(&a, "active");
    let props: HashMap<String, zbus::OwnedVariant> = c
        .call(&path, CALL, "GetProperties", &())
        .expect("GetProperties");
    assert!(props.contains_key("StartTime"), "{props:?}");

    // The dial pad: SendTones, one key at a time → DTMF at Bob.
    let watch = Watch::start(&b.bus.address);
    for key in ["1", "2", "#"] {
        let () = c.call(modem, VCM, "SendTones", &(key,)).expect("SendTones");
    }
    let mut digits = String::new();
    watch.wait(SOON, |v| {
        if v["event"] == "dtmf" {
            digits.push_str(v["digits"].as_str().unwrap_or_default());
        }
        digits.len() >= 3
    });
    assert_eq!(digits, "12#");
    let e = c
        .call::<_, ()>(modem, VCM, "SendTones", &("1w",))
        .expect_err("pauses are refused");
    assert!(e.to_string().contains("InvalidFormat"), "{e}");

    // Hangup from GNOME Calls.
    let () = c.call(&path, CALL, "Hangup", &()).expect("Hangup");
    wait_gone(&c, &path, "local");
    assert!(no_calls(&a) && no_calls(&b));
    assert!(c.calls(modem).is_empty());

    // Bob calls: an incoming call, answered from GNOME Calls; Bob hangs up.
    let dialing = dial_bg(&b, &na);
    let (call, props) = wait_added(&c);
    assert_eq!(props["State"], "incoming");
    assert_eq!(props["LineIdentification"], nb);
    assert_eq!(props["Name"], "Bob");
    wait_call(&a, "incoming");
    let e = c
        .call::<_, ()>(modem, VCM, "SendTones", &("1",))
        .expect_err("no active call");
    assert!(e.to_string().contains("Failed"), "{e}");
    let () = c.call(&call, CALL, "Answer", &()).expect("Answer");
    wait_state(&c, &call, "active");
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    wait_call(&a, "active");
    assert_eq!(b.ctl(&["hangup"]).code, 0);
    wait_gone(&c, &call, "remote");

    // Declining from GNOME Calls (Hangup of an incoming call) rejects it.
    let dialing = dial_bg(&b, &na);
    let (call, _) = wait_added(&c);
    let () = c.call(&call, CALL, "Hangup", &()).expect("Hangup");
    wait_gone(&c, &call, "local");
    let out = dialing.join().unwrap();
    assert!(
        out.stderr.contains("rejected") || out.stdout.contains("rejected"),
        "{out:?}"
    );
    drop(bridge);
}

#[test]
fn a_second_call_is_waiting_and_hold_and_answer_holds_the_first() {
    let w = common::world();
    let a = phone(&w, "Alice");
    let b = phone(&w, "Bob");
    let carol = phone(&w, "Carol");
    let na = number(&a);
    number(&b);
    number(&carol);
    let system = DbusDaemon::start();
    let _bridge = BridgeProcess::start(
        &w.dir.path().join("bridge"),
        &a.bus.address,
        &system.address,
        &[],
    );
    let c = OfonoClient::connect(&system.address);

    let bob = dial_bg(&b, &na);
    let (first, _) = wait_added(&c);
    let () = c.call(&first, CALL, "Answer", &()).expect("Answer");
    wait_state(&c, &first, "active");
    assert_eq!(bob.join().unwrap().json()["state"], "active");

    let _carol = dial_bg(&carol, &na);
    let (second, props) = wait_added(&c);
    assert_eq!(props["State"], "waiting");
    let () = c
        .call("/phoned", VCM, "HoldAndAnswer", &())
        .expect("HoldAndAnswer");
    wait_state(&c, &first, "held");
    wait_state(&c, &second, "active");
    wait_call(&carol, "active");

    let () = c.call("/phoned", VCM, "HangupAll", &()).expect("HangupAll");
    wait_gone(&c, &first, "local");
    assert!(no_calls(&a) && no_calls(&b) && no_calls(&carol));
}

#[test]
fn waiting_as_incoming_for_clients_without_waiting() {
    let w = common::world();
    let a = phone(&w, "Alice");
    let b = phone(&w, "Bob");
    let carol = phone(&w, "Carol");
    let na = number(&a);
    number(&b);
    number(&carol);
    let system = DbusDaemon::start();
    let _bridge = BridgeProcess::start(
        &w.dir.path().join("bridge"),
        &a.bus.address,
        &system.address,
        &["--waiting-as-incoming"],
    );
    let c = OfonoClient::connect(&system.address);
    let bob = dial_bg(&b, &na);
    let (first, _) = wait_added(&c);
    let () = c.call(&first, CALL, "Answer", &()).expect("Answer");
    assert_eq!(bob.join().unwrap().json()["state"], "active");
    let _carol = dial_bg(&carol, &na);
    let (_, props) = wait_added(&c);
    assert_eq!(props["State"], "incoming");
}

#[test]
fn phoned_going_away_takes_the_voice_call_manager_and_coming_back_returns_it() {
    let w = common::world();
    let mut a = phone(&w, "Alice");
    number(&a);
    let system = DbusDaemon::start();
    let mut bridge = BridgeProcess::start(
        &w.dir.path().join("bridge"),
        &a.bus.address,
        &system.address,
        &[],
    );
    let c = OfonoClient::connect(&system.address);
    let interfaces = |c: &OfonoClient| {
        c.wait(SOON, |s| match s {
            Signal::PropertyChanged {
                path, name, value, ..
            } if path == "/phoned" && name == "Interfaces" => Some(value.clone()),
            _ => None,
        })
    };
    a.stop();
    assert_eq!(interfaces(&c).as_deref(), Some(""));
    assert_eq!(c.modems()[0].1["Interfaces"], "");
    a.restart();
    assert_eq!(interfaces(&c).as_deref(), Some(VCM));
    // SIGTERM: the modem goes, then the name.
    assert!(bridge.terminate().success(), "{}", bridge.log());
    let gone = c.wait(SOON, |s| match s {
        Signal::ModemRemoved { path } => Some(path.clone()),
        _ => None,
    });
    assert_eq!(gone.as_deref(), Some("/phoned"));
}

#[test]
fn refuses_to_start_when_org_ofono_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let system = DbusDaemon::start();
    let squatter = smol::block_on(async {
        let conn = phoned_tests::ofono::connect(&system.address).await;
        conn.request_name("org.ofono").await.expect("own org.ofono");
        conn
    });
    let mut bridge = BridgeProcess::spawn(dir.path(), &system.address, &system.address, &[]);
    let status = bridge.child.wait().unwrap();
    let log = bridge.log();
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(
        log.contains("org.ofono is already owned on the bus at") && log.contains("pid"),
        "{log}"
    );
    drop(squatter);
}
