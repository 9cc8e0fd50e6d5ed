//! Config reload of a running `phoned` (SIGHUP and `Manager.Reload` via `phonectl reload`):
//! what changed takes effect without a restart, nothing is dropped to apply it, and a bad
//! config changes nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{dial_bg, no_calls, wait_call};
use phoned_tests::process::PhonedProcess;
use phoned_tests::wait_for;

fn write_config(p: &PhonedProcess, text: &str) {
    let path = p.dir.join("phoned.toml");
    let tmp = p.dir.join("phoned.toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn sighup(p: &PhonedProcess) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(p.child.id() as i32, libc::SIGHUP) }, 0);
}

fn log_has(p: &PhonedProcess, needle: &str) -> bool {
    wait_for(Duration::from_secs(10), || {
        p.log().contains(needle).then_some(())
    })
    .is_some()
}

#[test]
fn reload_fixes_a_mistyped_relay_and_the_link_comes_up() {
    let w = common::world();
    // Nothing listens on this port: the daemon stays offline, retrying.
    let nowhere = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let bad = nowhere.local_addr().unwrap();
    drop(nowhere);
    let pin = format!("relay_fingerprint = \"{}\"", w.relay.fingerprint);
    let a = PhonedProcess::start(
        &w.dir.path().join("A"),
        bad,
        &format!("display_name = \"A\"\n{pin}"),
    );
    let offline = wait_for(Duration::from_secs(20), || {
        a.status()
            .filter(|s| s["connection_state"] != "online" && s["last_error"] != "")
    });
    assert!(offline.is_some(), "{}", a.log());

    write_config(
        &a,
        &format!(
            "relay = \"{}\"\ndisplay_name = \"A\"\n{pin}\n",
            w.relay.addr
        ),
    );
    let out = a.ctl(&["--json", "reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json()["changes"],
        serde_json::json!({ "relay": "reconnect" })
    );
    let status = a.wait_online(common::ONLINE);
    assert_eq!(status["relay"], w.relay.addr.to_string());

    // Reloading the same file again changes nothing and keeps the link.
    let out = a.ctl(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "config reloaded: nothing changed");
    assert_eq!(a.status().unwrap()["connection_state"], "online");
}

#[test]
fn sighup_renames_and_a_bad_config_changes_nothing() {
    let w = common::world();
    let a = w.phone("A");
    let b = w.phone("B");
    let na = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    b.wait_online(common::ONLINE);
    let pin = format!("relay_fingerprint = \"{}\"", w.relay.fingerprint);
    let relay = format!("relay = \"{}\"", w.relay.addr);

    write_config(&a, &format!("{relay}\ndisplay_name = \"Kitchen\"\n{pin}\n"));
    sighup(&a);
    assert!(
        log_has(&a, "config reloaded: display_name (now)"),
        "{}",
        a.log()
    );
    // The relay has the new name: the other phone sees it.
    let seen = wait_for(Duration::from_secs(10), || {
        let who = b.ctl(&["--json", "who"]).json();
        who.as_array()?
            .iter()
            .any(|p| p["number"] == na.as_str() && p["name"] == "Kitchen")
            .then_some(())
    });
    assert!(seen.is_some(), "B sees {:?}", b.ctl(&["--json", "who"]));
    assert_eq!(a.status().unwrap()["display_name"], "Kitchen");

    // A config that does not load: the method fails naming the key, SIGHUP logs it, and
    // the daemon keeps serving with what it had.
    write_config(
        &a,
        &format!("{relay}\ndisplay_name = \"Hall\"\ncolour = 1\n{pin}\n"),
    );
    let out = a.ctl(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("colour"), "{out:?}");
    assert!(out.stderr.contains("InvalidConfig"), "{out:?}");
    sighup(&a);
    assert!(log_has(&a, "config not reloaded, keeping the old one"));
    let status = a.status().unwrap();
    assert_eq!(status["connection_state"], "online");
    assert_eq!(status["display_name"], "Kitchen");
    // Still the old config, so a valid one with only the name changed says just that.
    write_config(&a, &format!("{relay}\ndisplay_name = \"Hall\"\n{pin}\n"));
    let out = a.ctl(&["--json", "reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json()["changes"],
        serde_json::json!({ "display_name": "now" })
    );
}

fn wav_seconds(path: &Path) -> f64 {
    let reader = hound::WavReader::open(path).unwrap();
    f64::from(reader.duration()) / f64::from(reader.spec().sample_rate)
}

#[test]
fn link_changes_wait_for_the_call_and_audio_changes_take_the_next_call() {
    let w = common::world();
    let pin = format!("relay_fingerprint = \"{}\"", w.relay.fingerprint);
    let a = w.phone_with("A", &format!("{pin}\n[audio]\nbackend = \"null\""));
    let b = w.phone_with("B", &format!("{pin}\n[audio]\nbackend = \"null\""));
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();

    let dialing = dial_bg(&a, &nb);
    let id = wait_call(&b, "incoming");
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["state"], "active");

    // Mid-call: the same relay under another name (the link must reconnect), and the file
    // backend recording what A hears.
    let recording = a.dir.join("heard.wav");
    let port = w.relay.addr.port();
    write_config(
        &a,
        &format!(
            "relay = \"localhost:{port}\"\ndisplay_name = \"A\"\n{pin}\n\
             [audio]\nbackend = \"file\"\noutput_wav = \"{}\"\n",
            recording.display()
        ),
    );
    let out = a.ctl(&["--json", "reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.json()["changes"],
        serde_json::json!({
            "relay": "reconnect",
            "audio.backend": "next-call",
            "audio.output_wav": "next-call",
        })
    );
    assert!(log_has(&a, "once the calls in progress end"), "{}", a.log());
    // The call goes on: the link waits for it, and its audio stays on the old devices.
    std::thread::sleep(Duration::from_secs(2));
    wait_call(&a, "active");
    wait_call(&b, "active");
    assert!(!a.log().contains("reconnecting with the new config"));
    assert!(!recording.exists());

    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(no_calls(&a) && no_calls(&b));
    assert!(
        log_has(&a, "reconnecting with the new config"),
        "{}",
        a.log()
    );
    let online = wait_for(common::ONLINE, || {
        let s = a.status()?;
        (s["connection_state"] == "online" && s["relay"] == format!("localhost:{port}"))
            .then_some(())
    });
    assert!(online.is_some(), "{}", a.log());
    // The link is up again over the new name and carries a call, which records to the file.
    let dialing = dial_bg(&a, &nb);
    let id = wait_call(&b, "incoming");
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    assert!(no_calls(&a));
    let heard = wait_for(Duration::from_secs(10), || {
        let s = recording
            .exists()
            .then(|| wav_seconds(&recording))
            .filter(|s| *s >= 0.5)?;
        Some(s)
    });
    assert!(heard.is_some(), "no recording; log:\n{}", a.log());
}
