//! The `phone-relay` command line: fingerprint, bad config, clean exit on SIGTERM.

mod common;

use std::process::Command;

#[test]
fn fingerprint_matches_what_the_relay_serves() {
    let mut relay = common::relay("");
    let out = Command::new(common::BIN)
        .args(["fingerprint", "--state-dir"])
        .arg(&relay.process.state_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        relay.process.fingerprint
    );
    assert!(relay.process.terminate().success());
}

#[test]
fn bad_config_is_one_clear_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("numbers = \"9999-1000\"", "numbers"),
        ("listen = \"localhost\"", "listen"),
        ("idle_timeout_ms = \"soon\"", "idle_timeout_ms"),
        ("no_such_key = 1", "no_such_key"),
        // A largest file the mailbox could never hold: both keys named.
        (
            "mailbox_quota_kib = 65536\nmax_file_mib = 100",
            "max_file_mib: 100 MiB is more than mailbox_quota_kib",
        ),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(common::BIN)
            .args(["serve", "--state-dir"])
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(
            err.contains(key) && err.lines().count() == 1,
            "{text}: {err}"
        );
    }
    let out = Command::new(common::BIN)
        .args(["fingerprint", "--state-dir"])
        .arg(dir.path().join("never-started"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("started once"));
}
