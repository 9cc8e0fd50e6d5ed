//! The real GNOME Calls (Debian's `gnome-calls`, its oFono provider) as phoned's dialer,
//! through `phoned-ofono`: under Xvfb, with a private session bus and a private "system"
//! bus, against a real relay and two daemons. GNOME Calls is checked through its own D-Bus
//! interface (`org.gnome.Calls`: an ObjectManager at `/org/gnome/Calls` with an
//! `org.gnome.Calls.Call` object per call). The ringing screen is kept as
//! `target/test-artifacts/gnome-calls-ringing.png`.
//!
//! Skipped, saying so, when `gnome-calls`, `Xvfb` or ImageMagick's `import` is missing
//! (`apt-get install gnome-calls xvfb imagemagick`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{no_calls, wait_call};
use phoned_tests::ofono::{BridgeProcess, connect, text};
use phoned_tests::process::{DbusDaemon, PhonedProcess};
use phoned_tests::{wait_for, wav};
use zbus::OwnedVariant;

const SOON: Duration = Duration::from_secs(30);
/// GNOME Calls' `org.gnome.Calls.Call.State` values.
const INCOMING: u32 = 5;
const ACTIVE: u32 = 1;

/// A process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Xvfb on a free display: (process, ":N").
fn xvfb() -> (Killed, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "720x1280x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("Xvfb's display");
    let display = format!(":{}", line.trim());
    assert!(line.trim().parse::<u32>().is_ok(), "Xvfb printed {line:?}");
    (Killed(child), display)
}

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

/// How GNOME Calls is run here: its own home, the test's buses and display.
struct Env {
    home: PathBuf,
    display: String,
    session: String,
    system: String,
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("gnome-calls");
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("XDG_RUNTIME_DIR", self.home.join("runtime"))
            .env("DISPLAY", &self.display)
            .env("GDK_BACKEND", "x11")
            .env("GSK_RENDERER", "cairo")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("NO_AT_BRIDGE", "1")
            .env("GSETTINGS_BACKEND", "memory")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.session)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.system)
            .env("G_MESSAGES_DEBUG", "all");
        cmd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("gnome-calls.log")).unwrap_or_default()
    }
}

/// GNOME Calls' calls on its session bus: path → (State, Inbound, Id).
fn gnome_calls(session: &zbus::Connection) -> HashMap<String, (u32, bool, String)> {
    let managed = smol::block_on(async {
        let om = zbus::fdo::ObjectManagerProxy::builder(session)
            .destination("org.gnome.Calls")
            .path("/org/gnome/Calls")
            .build()
            .await
            .ok()?;
        om.get_managed_objects().await.ok()
    });
    let mut calls = HashMap::new();
    for (path, ifaces) in managed.unwrap_or_default() {
        let Some(props) = ifaces
            .iter()
            .find(|(i, _)| i.as_str() == "org.gnome.Calls.Call")
            .map(|(_, p)| p)
        else {
            continue;
        };
        let get = |k: &str| props.get(k).map(|v: &OwnedVariant| (**v).clone());
        let state = match get("State") {
            Some(zbus::Variant::U32(s)) => s,
            _ => 0,
        };
        let inbound = matches!(get("Inbound"), Some(zbus::Variant::Bool(true)));
        let id = get("Id").map(|v| text(&v)).unwrap_or_default();
        calls.insert(path.as_str().to_owned(), (state, inbound, id));
    }
    calls
}

fn call_method(session: &zbus::Connection, path: &str, method: &str) {
    smol::block_on(session.call_method(
        Some("org.gnome.Calls"),
        path,
        Some("org.gnome.Calls.Call"),
        method,
        &(),
    ))
    .unwrap_or_else(|e| panic!("org.gnome.Calls.Call.{method}: {e}"));
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[test]
fn gnome_calls_rings_answers_hangs_up_and_dials_through_the_bridge() {
    let missing: Vec<_> = ["gnome-calls", "Xvfb", "import"]
        .into_iter()
        .filter(|t| !phoned_tests::on_path(t))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: {} not installed (apt-get install gnome-calls xvfb imagemagick)",
            missing.join(", ")
        );
        return;
    }
    let w = common::world();
    let a = phone(&w, "Alice");
    let b = phone(&w, "Bob");
    let na = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let system = DbusDaemon::start();
    let session_bus = DbusDaemon::start();
    // As the packaged user unit runs it.
    let bridge = BridgeProcess::start(
        &w.dir.path().join("bridge"),
        &a.bus.address,
        &system.address,
        &["--waiting-as-incoming"],
    );
    let (_xvfb, display) = xvfb();
    let home = w.dir.path().join("gnome-calls-home");
    std::fs::create_dir_all(home.join("runtime")).unwrap();
    let env = Env {
        home: home.clone(),
        display: display.clone(),
        session: session_bus.address.clone(),
        system: system.address.clone(),
    };
    let log = std::fs::File::create(home.join("gnome-calls.log")).unwrap();
    let _calls = Killed(
        env.command(&["--provider", "ofono"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("gnome-calls"),
    );
    let session = smol::block_on(connect(&session_bus.address));
    let up = wait_for(SOON, || {
        smol::block_on(phoned_tests::ofono::has_owner(&session, "org.gnome.Calls")).then_some(())
    });
    assert!(
        up.is_some(),
        "GNOME Calls never came up; log:\n{}",
        env.log()
    );

    // Bob calls Alice: the call rings in GNOME Calls.
    let dialing = common::dial_bg(&b, &na);
    wait_call(&a, "incoming");
    let ringing = wait_for(SOON, || {
        gnome_calls(&session)
            .into_iter()
            .find(|(_, (state, inbound, _))| *state == INCOMING && *inbound)
    });
    let Some((call, (_, _, id))) = ringing else {
        panic!(
            "no incoming call in GNOME Calls: {:?}\nbridge:\n{}\nGNOME Calls:\n{}",
            gnome_calls(&session),
            bridge.log(),
            env.log()
        );
    };
    assert_eq!(id, nb, "GNOME Calls shows the caller's number");
    // Let the call window draw, then keep a screenshot of it.
    std::thread::sleep(Duration::from_secs(2));
    let shot = artifacts().join("gnome-calls-ringing.png");
    let status = Command::new("import")
        .args(["-display", &display, "-window", "root"])
        .arg(&shot)
        .status()
        .expect("import");
    assert!(status.success() && shot.exists(), "no screenshot");
    eprintln!("screenshot of the ringing screen: {}", shot.display());

    // Answering in GNOME Calls makes the call active on both sides.
    call_method(&session, &call, "Accept");
    wait_call(&a, "active");
    wait_call(&b, "active");
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    let active = wait_for(SOON, || {
        (gnome_calls(&session).get(&call).map(|c| c.0) == Some(ACTIVE)).then_some(())
    });
    assert!(
        active.is_some(),
        "GNOME Calls does not show the call active"
    );

    // Hanging up in GNOME Calls ends it.
    call_method(&session, &call, "Hangup");
    assert!(no_calls(&a) && no_calls(&b), "the call did not end");

    // Dialling from GNOME Calls (`gnome-calls --dial`, handed to the running instance)
    // reaches Bob.
    let out = env
        .command(&["--dial", &nb])
        .output()
        .expect("gnome-calls --dial");
    assert!(out.status.success(), "{out:?}");
    let id = wait_call(&b, "incoming");
    wait_call(&a, "ringing");
    let outgoing = wait_for(SOON, || {
        gnome_calls(&session)
            .into_iter()
            .find(|(_, (_, inbound, id))| !*inbound && *id == nb)
    });
    assert!(outgoing.is_some(), "GNOME Calls does not show its call");
    assert_eq!(b.ctl(&["answer", &id]).code, 0);
    wait_call(&a, "active");
    assert_eq!(b.ctl(&["hangup"]).code, 0);
    assert!(no_calls(&a) && no_calls(&b));
    let gone = wait_for(SOON, || gnome_calls(&session).is_empty().then_some(()));
    assert!(
        gone.is_some(),
        "GNOME Calls still shows calls: {:?}",
        gnome_calls(&session)
    );
}
