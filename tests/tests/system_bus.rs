//! phoned on a private system-style bus with the shipped policy
//! (`systemd/org.phoned.Phone1.conf`): members of the group `phone` may call methods,
//! other users may only introspect and read properties.
//!
//! Needs root (to run callers as other users) and the users `phonetest` (in group
//! `phone`) and `nobody`; `.ci/run` creates them. Elsewhere the test says why it
//! cannot run and passes without checking anything.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use phoned_tests::process::{RelayProcess, bin};
use phoned_tests::system_bus::{Killed, SystemBus, as_user, can_run_as_others};
use phoned_tests::wait_for;

/// Runs phonectl on the system bus as `user`.
fn phonectl_as(user: &str, bus: &str, args: &[&str]) -> Output {
    let mut all = vec!["--system"];
    all.extend_from_slice(args);
    as_user(user, &bin("phonectl"), &all)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn only_the_phone_group_may_call_methods_but_everyone_may_look() {
    if !can_run_as_others() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let relay = RelayProcess::start(
        &bin("phone-relay"),
        &dir.path().join("relay"),
        "127.0.0.1:0",
        "",
    );
    // A system bus like Debian's, with the shipped policy. The daemon runs as root here
    // (there is no user phoned), so root may own the name too.
    let bus = SystemBus::start(
        dir.path(),
        "systemd/org.phoned.Phone1.conf",
        r#"<policy user="root"><allow own="org.phoned.Phone1"/></policy>"#,
    );
    let address = bus.address.clone();
    std::fs::write(
        dir.path().join("phoned.toml"),
        format!(
            "relay = \"{}\"\nrelay_fingerprint = \"{}\"\n",
            relay.addr, relay.fingerprint
        ),
    )
    .unwrap();
    let _daemon = Killed(
        Command::new(bin("phoned"))
            .args(["--bus", "system", "--config"])
            .arg(dir.path().join("phoned.toml"))
            .arg("--state-dir")
            .arg(dir.path().join("phoned"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let online = wait_for(Duration::from_secs(20), || {
        let out = phonectl_as("root", &address, &["--json", "status"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("\"online\"")
            .then_some(())
    });
    assert!(
        online.is_some(),
        "phoned never came online on the system bus"
    );

    // A member of `phone` may dial (the call then ends as unknown-number, which
    // `dial` reports as its failure: the daemon took the call).
    let out = phonectl_as("phonetest", &address, &["dial", "99999"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains("unknown-number"),
        "phone member refused: {stderr}"
    );
    // Anyone else is refused with an access error …
    let out = phonectl_as("nobody", &address, &["dial", "99999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AccessDenied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Files go as the file the caller opened: phonectl opens it with the member's
    // rights, so what only the daemon (root here) may read is out of reach …
    let readable = dir.path().join("note.txt");
    std::fs::write(&readable, "for everyone").unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = phonectl_as(
        "phonetest",
        &address,
        &["file", "send", "99999", readable.to_str().unwrap()],
    );
    // The daemon took it and offered it to the relay, which knows no 99999: that refusal
    // (not a permission error) is what phonectl reports.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no account has number 99999"),
        "a readable file was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let account = dir.path().join("phoned/account.toml");
    assert!(account.exists());
    let out = phonectl_as(
        "phonetest",
        &address,
        &["file", "send", "99999", account.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "phonectl opened the daemon's credentials"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ermission denied"));
    // … and naming a path for the daemon to open is refused on the system bus.
    let out = as_user("phonetest", Path::new("dbus-send"), &[])
        .args(["--system", "--print-reply", "--dest=org.phoned.Phone1"])
        .args([
            "/org/phoned/Phone1",
            "org.phoned.Phone1.Files.Send",
            "string:99999",
        ])
        .arg(format!("string:{}", account.display()))
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr)
                .contains("org.phoned.Phone1.Error.PermissionDenied"),
        "Files.Send by path on the system bus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = phonectl_as("nobody", &address, &["dnd", "on"]);
    assert_eq!(out.status.code(), Some(1), "nobody may not set properties");
    // … but may look: properties and introspection.
    for user in ["phonetest", "nobody"] {
        let out = phonectl_as(user, &address, &["--json", "status"]);
        assert!(
            out.status.success(),
            "{user} cannot read properties: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = as_user(user, Path::new("dbus-send"), &[])
            .args(["--system", "--print-reply", "--dest=org.phoned.Phone1"])
            .args([
                "/org/phoned/Phone1",
                "org.freedesktop.DBus.Introspectable.Introspect",
            ])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .output()
            .unwrap();
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("org.phoned.Phone1.Manager"),
            "{user} cannot introspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
