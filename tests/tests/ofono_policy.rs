//! The shipped system-bus policy of the oFono bridge (`systemd/phoned-ofono.conf`) on a
//! private system-style bus: a member of the group `phone` may own `org.ofono` and call
//! it; anyone else may neither own it nor call its methods.
//!
//! Needs root (to run the bridge and callers as other users) and the users `phonetest`
//! (in group `phone`) and `nobody`; `.ci/run` creates them. Elsewhere the test says why it
//! cannot run and passes without checking anything.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use phoned_tests::process::bin;
use phoned_tests::wait_for;

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn gid(user: &str) -> String {
    let out = Command::new("id").args(["-g", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `program args` as `user`.
fn as_user(user: &str, program: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        user,
        "--regid",
        &gid(user),
        "--init-groups",
        "--",
    ])
    .arg(program)
    .args(args);
    cmd
}

fn get_modems_as(user: &str, bus: &str) -> Output {
    as_user(
        user,
        std::path::Path::new("busctl"),
        &[
            &format!("--address={bus}"),
            "call",
            "org.ofono",
            "/",
            "org.ofono.Manager",
            "GetModems",
        ],
    )
    .output()
    .expect("setpriv (util-linux), busctl (systemd)")
}

#[test]
fn only_the_phone_group_may_own_and_call_org_ofono() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !user_exists("phonetest") || !user_exists("nobody") {
        eprintln!(
            "skipped: needs root and the users phonetest (group phone) and nobody, as .ci/run makes"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let policy =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/phoned-ofono.conf");
    let socket = dir.path().join("system_bus_socket");
    let config = format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
        socket = socket.display(),
        policy = policy.display()
    );
    let config_path = dir.path().join("system.conf");
    std::fs::write(&config_path, config).unwrap();
    let _bus = Killed(
        Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config_path.display()))
            .arg("--nofork")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let address = format!("unix:path={}", socket.display());
    assert!(wait_for(Duration::from_secs(5), || socket.exists().then_some(())).is_some());
    // phoned is not on this bus: the modem has no calls, which is all this test needs.
    let bridge_args = ["--phone-bus", &address, "--ofono-bus", &address];

    let out = as_user("nobody", &bin("phoned-ofono"), &bridge_args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot own org.ofono") && err.contains("AccessDenied"),
        "{err}"
    );

    let _bridge = Killed(
        as_user("phonetest", &bin("phoned-ofono"), &bridge_args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let served = wait_for(Duration::from_secs(10), || {
        let out = get_modems_as("phonetest", &address);
        out.status.success().then_some(out)
    });
    let out = served.expect("a member of phone owns org.ofono and may call it");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/phoned"),
        "{out:?}"
    );
    let out = get_modems_as("nobody", &address);
    assert!(
        !out.status.success(),
        "nobody may not call org.ofono: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("denied")
            || String::from_utf8_lossy(&out.stderr).contains("Access"),
        "{out:?}"
    );
}
