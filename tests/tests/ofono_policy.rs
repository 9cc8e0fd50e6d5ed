//! The shipped system-bus policy of the oFono bridge (`systemd/phoned-ofono.conf`) on a
//! private system-style bus: a member of the group `phone` may own `org.ofono` and call
//! it; anyone else may neither own it nor call its methods.
//!
//! Needs root (to run the bridge and callers as other users) and the users `phonetest`
//! (in group `phone`) and `nobody`; `.ci/run` creates them. Elsewhere the test says why it
//! cannot run and passes without checking anything.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use phoned_tests::process::bin;
use phoned_tests::system_bus::{Killed, SystemBus, as_user, can_run_as_others};
use phoned_tests::wait_for;

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
    if !can_run_as_others() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bus = SystemBus::start(dir.path(), "systemd/phoned-ofono.conf", "");
    let address = bus.address.clone();
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
