//! Bad input to the daemon and to phonectl: typed errors, right exit codes, no crash.

mod common;

use std::process::Command;
use std::time::Duration;

use phoned_proto::dbus::{BUS_NAME, ROOT_PATH, iface};
use phoned_tests::process::{DbusDaemon, bin, phonectl};

async fn call(
    conn: &zbus::Connection,
    path: &str,
    interface: &str,
    method: &str,
    body: &(impl serde::Serialize + zbus::wire::DynamicType),
) -> Result<(), String> {
    conn.call_method(Some(BUS_NAME), path, Some(interface), method, body)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            zbus::Error::MethodError(name, _, _) => name.to_string(),
            zbus::Error::FDO(e) => zbus::DBusError::name(&*e).to_string(),
            other => other.to_string(),
        })
}

#[test]
fn bad_dbus_input_gets_typed_errors_and_the_daemon_keeps_serving() {
    let w = common::world();
    let p = w.phone("Target");
    p.wait_online(common::ONLINE);
    smol::block_on(async {
        let conn = zbus::connection::Builder::address(p.bus.address.as_str())
            .build()
            .await
            .unwrap();
        // Wrong argument types.
        let e = call(&conn, ROOT_PATH, iface::ACCOUNT, "ChangeNumber", &(42u32,))
            .await
            .unwrap_err();
        assert_eq!(e, "org.freedesktop.DBus.Error.InvalidArgs");
        let e = call(&conn, ROOT_PATH, iface::CONTACTS, "Add", &("only one",))
            .await
            .unwrap_err();
        assert_eq!(e, "org.freedesktop.DBus.Error.InvalidArgs");
        // Unknown object and method.
        let e = call(
            &conn,
            "/org/phoned/Phone1/Nope",
            iface::ACCOUNT,
            "SetDisplayName",
            &("x",),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "org.freedesktop.DBus.Error.UnknownObject");
        let e = call(&conn, ROOT_PATH, iface::ACCOUNT, "Explode", &())
            .await
            .unwrap_err();
        assert_eq!(e, "org.freedesktop.DBus.Error.UnknownMethod");
        // Huge strings and invalid values.
        let huge = "9".repeat(1 << 20);
        let e = call(
            &conn,
            ROOT_PATH,
            iface::CONTACTS,
            "Add",
            &(huge.as_str(), "1042"),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "org.phoned.Phone1.Error.InvalidArgument");
        let e = call(
            &conn,
            ROOT_PATH,
            iface::ACCOUNT,
            "ChangeNumber",
            &(huge.as_str(),),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "org.phoned.Phone1.Error.InvalidArgument");
        let e = call(&conn, ROOT_PATH, iface::ACCOUNT, "ChangeNumber", &("12x",))
            .await
            .unwrap_err();
        assert_eq!(e, "org.phoned.Phone1.Error.InvalidNumber");
        let e = call(
            &conn,
            ROOT_PATH,
            iface::ACCOUNT,
            "SetDisplayName",
            &("bad\u{7}name",),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "org.phoned.Phone1.Error.InvalidArgument");
        // Names that hide or reorder text are refused where they are set.
        for name in ["Alice\u{202E}ecilA", "\u{FEFF}Bob", "a\u{2066}b\u{2069}"] {
            let e = call(&conn, ROOT_PATH, iface::ACCOUNT, "SetDisplayName", &(name,))
                .await
                .unwrap_err();
            assert_eq!(e, "org.phoned.Phone1.Error.InvalidArgument", "{name:?}");
            let e = call(&conn, ROOT_PATH, iface::CONTACTS, "Add", &(name, "1042"))
                .await
                .unwrap_err();
            assert_eq!(e, "org.phoned.Phone1.Error.InvalidArgument", "{name:?}");
        }
        let e = call(&conn, ROOT_PATH, iface::CONTACTS, "Remove", &("999",))
            .await
            .unwrap_err();
        assert_eq!(e, "org.phoned.Phone1.Error.NotFound");
        let e = call(
            &conn,
            ROOT_PATH,
            iface::CONTACTS,
            "ImportVCard",
            &("BEGIN:VCARD\n:broken\nEND:VCARD",),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "org.phoned.Phone1.Error.InvalidArgument");
        let props = zbus::fdo::PropertiesProxy::builder(&conn)
            .destination(BUS_NAME)
            .path(ROOT_PATH)
            .build()
            .await
            .unwrap();
        let bad = zbus::Variant::from("sometimes");
        let name = zbus::names::InterfaceName::try_from(iface::MANAGER).unwrap();
        assert!(props.set(name, "AutoAnswer", &bad).await.is_err());
        // The ObjectManager is at the root and introspection works.
        let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
            .destination(BUS_NAME)
            .path(ROOT_PATH)
            .build()
            .await
            .unwrap();
        assert!(om.get_managed_objects().await.is_ok());
        let xml = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(BUS_NAME)
            .path(ROOT_PATH)
            .build()
            .await
            .unwrap()
            .introspect()
            .await
            .unwrap();
        for i in [
            iface::MANAGER,
            iface::ACCOUNT,
            iface::PRESENCE,
            iface::CONTACTS,
            "org.freedesktop.DBus.ObjectManager",
        ] {
            assert!(xml.contains(i), "introspection lacks {i}");
        }
    });
    // Still serving.
    let s = p.ctl(&["--json", "status"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert_eq!(s.json()["connection_state"], "online");
}

/// Every method that takes no arguments, as (interface, method).
const NO_ARGUMENTS: [(&str, &str); 9] = [
    (iface::MANAGER, "HangupAll"),
    (iface::MANAGER, "Reload"),
    (iface::MANAGER, "AudioDevices"),
    (iface::PRESENCE, "ListOnline"),
    (iface::CONTACTS, "List"),
    (iface::CONTACTS, "ExportVCard"),
    (iface::HISTORY, "ClearMissed"),
    (iface::FILES, "List"),
    (iface::VOICE, "List"),
];

#[test]
fn methods_without_arguments_refuse_extra_ones() {
    let w = common::world();
    let a = w.phone("Strict");
    let b = w.phone("Callee");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    // A call object to try the call methods on: Bob's phone rings and nobody answers.
    assert_eq!(a.ctl(&["dial", &nb]).code, 0);
    let call_path = format!("{ROOT_PATH}/Call/{}", common::wait_call(&a, "ringing"));
    smol::block_on(async {
        let conn = zbus::connection::Builder::address(a.bus.address.as_str())
            .build()
            .await
            .unwrap();
        let methods = NO_ARGUMENTS.iter().map(|&(i, m)| (ROOT_PATH, i, m)).chain(
            ["Answer", "Hangup", "Hold", "Resume"].map(|m| (call_path.as_str(), iface::CALL, m)),
        );
        for (path, interface, method) in methods {
            let e = call(&conn, path, interface, method, &("extra",))
                .await
                .unwrap_err();
            assert_eq!(
                e, "org.freedesktop.DBus.Error.InvalidArgs",
                "{interface}.{method}(\"extra\")"
            );
            let e = call(&conn, path, interface, method, &(1u32, 2u32))
                .await
                .unwrap_err();
            assert_eq!(
                e, "org.freedesktop.DBus.Error.InvalidArgs",
                "{interface}.{method}(1, 2)"
            );
        }
        // The same methods without arguments still work.
        call(&conn, ROOT_PATH, iface::CONTACTS, "List", &())
            .await
            .unwrap();
        call(&conn, &call_path, iface::CALL, "Hangup", &())
            .await
            .unwrap();
    });
    assert!(common::no_calls(&a));
}

#[test]
fn phonectl_exit_codes() {
    let bus = DbusDaemon::start();
    let out = phonectl(&bus.address, &["status"], "");
    assert_eq!(out.code, 3, "no daemon on the bus: {out:?}");
    assert!(out.stderr.contains("not running"), "{out:?}");
    let out = phonectl("unix:path=/nonexistent/bus", &["who"], "");
    assert_eq!(out.code, 3, "no bus: {out:?}");
    let out = phonectl(&bus.address, &["dial-a-pizza"], "");
    assert_eq!(out.code, 2, "{out:?}");
    let out = phonectl(
        &bus.address,
        &["contacts", "import", "/nonexistent.vcf"],
        "",
    );
    assert_ne!(out.code, 0);
    for shell in ["bash", "zsh", "fish"] {
        let out = phonectl(&bus.address, &["completions", shell], "");
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("phonectl"), "{shell}");
    }
    let out = phonectl(&bus.address, &["man"], "");
    assert!(
        out.stdout.contains(".TH phonectl"),
        "{}",
        &out.stdout[..out.stdout.len().min(200)]
    );
}

#[test]
fn phoned_config_problems_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("", "relay"),
        (
            "relay = \"127.0.0.1:7447\"\nrelay_fingerprint = \"nope\"",
            "relay_fingerprint",
        ),
        (
            "relay = \"127.0.0.1:7447\"\n[audio]\nbackend = \"oss\"",
            "audio.backend",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(bin("phoned"))
            .arg("--config")
            .arg(&path)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(
            err.contains(key) && err.trim().lines().count() == 1,
            "{text}: {err}"
        );
    }
    let out = Command::new(bin("phoned"))
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// A second `phoned` on a state dir in use exits 1 at once, naming the PID that holds it,
/// and the first one stays online.
#[test]
fn a_second_phoned_on_the_same_state_dir_is_refused() {
    let w = common::world();
    let p = w.phone("First");
    p.wait_online(common::ONLINE);
    let mut second = Command::new(bin("phoned"))
        .arg("--config")
        .arg(p.dir.join("phoned.toml"))
        .arg("--state-dir")
        .arg(p.dir.join("state"))
        .env("DBUS_SESSION_BUS_ADDRESS", &p.bus.address)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status =
        phoned_tests::wait_for(Duration::from_secs(20), || second.try_wait().ok().flatten());
    if status.is_none() {
        let _ = second.kill();
    }
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{err}");
    assert!(
        err.contains(&format!("PID {}", p.child.id())) && err.contains("state dir"),
        "{err}"
    );
    p.wait_online(common::ONLINE);
}

/// The interface blocks of an introspection document, whitespace-normalised, each once
/// (two calls' objects describe the Call interface twice).
fn phoned_interfaces(xml: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in xml
        .split("<interface ")
        .skip(1)
        .filter(|b| b.starts_with("name=\"org.phoned."))
    {
        let block = b.split("</interface>").next().unwrap_or_default();
        let block = block.split_whitespace().collect::<Vec<_>>().join(" ");
        if !out.contains(&block) {
            out.push(block);
        }
    }
    // The objects' order in a live introspection depends on which came first (a call
    // or a conference): compare the interfaces by name.
    out.sort();
    out
}

#[test]
fn the_shipped_introspection_xml_matches_the_daemon() {
    let w = common::world();
    let p = w.phone("Doc");
    let callee = w.phone("Callee");
    p.wait_online(common::ONLINE);
    let number = callee.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    // A call, for the Call interface, which only call objects have.
    let _ringing = common::dial_bg(&p, &number);
    common::wait_call(&p, "ringing");
    // zbus describes the child objects' interfaces too, the call's among them; and a
    // conference, for the Conference interface.
    let live = smol::block_on(async {
        let conn = zbus::connection::Builder::address(p.bus.address.as_str())
            .build()
            .await
            .unwrap();
        conn.call_method(
            Some(BUS_NAME),
            ROOT_PATH,
            Some("org.phoned.Phone1.Manager"),
            "CreateConference",
            &(vec![number.clone()],),
        )
        .await
        .unwrap();
        zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(BUS_NAME)
            .path(ROOT_PATH)
            .build()
            .await
            .unwrap()
            .introspect()
            .await
            .unwrap()
    });
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/org.phoned.Phone1.xml"
    ))
    .unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/org.phoned.Phone1.xml");
    if std::env::var_os("PHONED_BLESS").is_some()
        && phoned_interfaces(&live) != phoned_interfaces(&shipped)
    {
        // Regenerate: the shipped file's header, then the daemon's own interface blocks.
        let head = shipped.split("  <interface ").next().unwrap_or_default();
        let mut blocks: Vec<&str> = Vec::new();
        for (at, _) in live.match_indices("<interface name=\"org.phoned.") {
            let Some(len) = live[at..].find("</interface>") else {
                continue;
            };
            let block = &live[at..at + len + "</interface>".len()];
            if !blocks.contains(&block) {
                blocks.push(block);
            }
        }
        let body: String = blocks.iter().map(|b| format!("  {b}\n")).collect();
        std::fs::write(path, format!("{head}{body}</node>\n")).unwrap();
        return;
    }
    let (live, shipped) = (phoned_interfaces(&live), phoned_interfaces(&shipped));
    assert_eq!(
        live.len(),
        10,
        "the root's 8 interfaces, Call and Conference"
    );
    assert_eq!(
        live, shipped,
        "docs/org.phoned.Phone1.xml is out of date: regenerate it from a running phoned \
         (PHONED_BLESS=1 cargo test -p phoned-tests --test robustness introspection)"
    );
}
