//! A private system-style bus for the tests of the shipped D-Bus policies: deny by default,
//! as Debian's system bus, then the policy file under test; and callers run as other users.
//! Running programs as other users needs root and the users `phonetest` (in group `phone`)
//! and `nobody`, which `.ci/run` creates.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait_for;

/// Kills a child process when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether this process may run the policy tests (root, and the users they need); if not,
/// says why on stderr, and the test passes without checking anything.
pub fn can_run_as_others() -> bool {
    // SAFETY: geteuid has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0 && user_exists("phonetest") && user_exists("nobody");
    if !ok {
        eprintln!(
            "skipped: needs root and the users phonetest (group phone) and nobody, as .ci/run makes"
        );
    }
    ok
}

/// The primary group id of `user`.
pub fn gid(user: &str) -> String {
    let out = Command::new("id").args(["-g", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `program args` to be run as `user` (its groups too).
pub fn as_user(user: &str, program: &Path, args: &[&str]) -> Command {
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

/// A running system-style bus.
pub struct SystemBus {
    _daemon: Killed,
    pub address: String,
}

impl SystemBus {
    /// Starts one listening in `dir` with the shipped `policy` file (a path relative to the
    /// repository) included after the deny-by-default rules, and `extra` policy XML before it.
    pub fn start(dir: &Path, policy: &str, extra: &str) -> SystemBus {
        let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(policy);
        let socket = dir.join("system_bus_socket");
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
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {extra}
  <include>{policy}</include>
</busconfig>
"#,
            socket = socket.display(),
            policy = policy.display()
        );
        let config_path = dir.join("system.conf");
        std::fs::write(&config_path, config).expect("bus config");
        let daemon = Killed(
            Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config_path.display()))
                .arg("--nofork")
                .stderr(Stdio::null())
                .spawn()
                .expect("dbus-daemon"),
        );
        let up = wait_for(Duration::from_secs(5), || socket.exists().then_some(()));
        assert!(up.is_some(), "the system bus did not start");
        SystemBus {
            _daemon: daemon,
            address: format!("unix:path={}", socket.display()),
        }
    }
}
