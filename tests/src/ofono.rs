//! The oFono side of the bridge's tests: `phoned-ofono` run as a process, and a client
//! that makes the calls GNOME Calls' oFono provider makes (`plugins/provider/ofono/` in
//! GNOME Calls: `Manager.GetModems`, the modem's `Interfaces`, `VoiceCallManager.GetCalls`,
//! `Dial(number, "default")`, `SendTones` one key at a time, `VoiceCall.Answer`/`Hangup`,
//! and the signals `CallAdded`, `CallRemoved`, `PropertyChanged(State)`,
//! `DisconnectReason`), seen in the order the bus delivers them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smol::stream::StreamExt;
use zbus::{Connection, MatchRule, MessageStream, OwnedVariant, Variant};

use crate::process::bin;

pub const OFONO: &str = "org.ofono";

/// A running `phoned-ofono`, its stderr in `log`.
pub struct BridgeProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl BridgeProcess {
    /// Starts `phoned-ofono --phone-bus PHONE --ofono-bus OFONO ARGS` (not waited for).
    pub fn spawn(dir: &Path, phone_bus: &str, ofono_bus: &str, args: &[&str]) -> BridgeProcess {
        std::fs::create_dir_all(dir).expect("dir");
        let log = dir.join("phoned-ofono.log");
        let stderr = std::fs::File::create(&log).expect("log");
        let child = Command::new(bin("phoned-ofono"))
            .args(["--phone-bus", phone_bus, "--ofono-bus", ofono_bus])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn phoned-ofono");
        BridgeProcess { child, log }
    }

    /// Starts it and waits until it owns `org.ofono` on `ofono_bus`.
    pub fn start(dir: &Path, phone_bus: &str, ofono_bus: &str, args: &[&str]) -> BridgeProcess {
        let mut bridge = BridgeProcess::spawn(dir, phone_bus, ofono_bus, args);
        let conn = smol::block_on(connect(ofono_bus));
        let owned = crate::wait_for(Duration::from_secs(20), || {
            if let Ok(Some(status)) = bridge.child.try_wait() {
                panic!("phoned-ofono exited ({status}); log:\n{}", bridge.log());
            }
            smol::block_on(has_owner(&conn, OFONO)).then_some(())
        });
        assert!(
            owned.is_some(),
            "phoned-ofono never owned {OFONO}; log:\n{}",
            bridge.log()
        );
        bridge
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn connect(address: &str) -> Connection {
    zbus::connection::Builder::address(address)
        .build()
        .await
        .expect("connect to the test bus")
}

pub async fn has_owner(conn: &Connection, name: &str) -> bool {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.expect("DBus proxy");
    let name = zbus::names::BusName::try_from(name).expect("name");
    dbus.name_has_owner(name).await.unwrap_or(false)
}

/// One oFono signal.
#[derive(Debug, Clone)]
pub enum Signal {
    /// `PropertyChanged(name, value)` of `interface` at `path`, the value as text.
    PropertyChanged {
        path: String,
        interface: String,
        name: String,
        value: String,
    },
    CallAdded {
        path: String,
        props: HashMap<String, String>,
    },
    CallRemoved {
        path: String,
    },
    DisconnectReason {
        path: String,
        reason: String,
    },
    ModemRemoved {
        path: String,
    },
}

/// A value as text: strings as they are, booleans as `true`/`false`, string arrays joined
/// with `,`.
pub fn text(v: &Variant<'_>) -> String {
    match v {
        Variant::Str(s) => s.as_str().to_owned(),
        Variant::Bool(b) => b.to_string(),
        Variant::ObjectPath(p) => p.as_str().to_owned(),
        Variant::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        Variant::Variant(inner) => text(inner),
        other => format!("{other:?}"),
    }
}

pub fn texts(props: &HashMap<String, OwnedVariant>) -> HashMap<String, String> {
    props.iter().map(|(k, v)| (k.clone(), text(v))).collect()
}

fn signal_of(msg: &zbus::Message) -> Option<Signal> {
    let h = msg.header();
    let path = h.path()?.as_str().to_owned();
    let interface = h.interface()?.as_str().to_owned();
    let member = h.member()?.as_str().to_owned();
    if !interface.starts_with("org.ofono.") {
        return None;
    }
    let body = msg.body();
    Some(match member.as_str() {
        "PropertyChanged" => {
            let (name, value): (String, OwnedVariant) = body.deserialize().ok()?;
            Signal::PropertyChanged {
                path,
                interface,
                name,
                value: text(&value),
            }
        }
        "CallAdded" => {
            let (call, props): (zbus::wire::OwnedObjectPath, HashMap<String, OwnedVariant>) =
                body.deserialize().ok()?;
            Signal::CallAdded {
                path: call.as_str().to_owned(),
                props: texts(&props),
            }
        }
        "CallRemoved" => {
            let (call,): (zbus::wire::OwnedObjectPath,) = body.deserialize().ok()?;
            Signal::CallRemoved {
                path: call.as_str().to_owned(),
            }
        }
        "DisconnectReason" => {
            let (reason,): (String,) = body.deserialize().ok()?;
            Signal::DisconnectReason { path, reason }
        }
        "ModemRemoved" => {
            let (modem,): (zbus::wire::OwnedObjectPath,) = body.deserialize().ok()?;
            Signal::ModemRemoved {
                path: modem.as_str().to_owned(),
            }
        }
        _ => return None,
    })
}

/// An oFono client on the oFono bus, its signals collected on a thread.
pub struct OfonoClient {
    pub conn: Connection,
    signals: mpsc::Receiver<Signal>,
}

impl OfonoClient {
    /// Connects and subscribes to every oFono signal (as GNOME Calls' proxies do when
    /// they are made), before any call.
    pub fn connect(address: &str) -> OfonoClient {
        let conn = smol::block_on(connect(address));
        let (tx, signals) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let c = conn.clone();
        std::thread::spawn(move || {
            smol::block_on(async move {
                let rule = MatchRule::builder()
                    .msg_type(zbus::message::Type::Signal)
                    .build()
                    .expect("rule");
                let mut stream = MessageStream::for_match_rule(rule, &c, None)
                    .await
                    .expect("subscribe");
                let _ = ready_tx.send(());
                while let Some(Ok(msg)) = stream.next().await {
                    if let Some(s) = signal_of(&msg)
                        && tx.send(s).is_err()
                    {
                        break;
                    }
                }
            })
        });
        ready.recv().expect("subscribed");
        OfonoClient { conn, signals }
    }

    /// Calls `interface.method(args)` on `path` of `org.ofono`.
    pub fn call<A, R>(&self, path: &str, interface: &str, method: &str, args: &A) -> zbus::Result<R>
    where
        A: serde::Serialize + zbus::wire::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::wire::Type,
    {
        smol::block_on(async {
            let reply = self
                .conn
                .call_method(Some(OFONO), path, Some(interface), method, args)
                .await?;
            reply.body().deserialize::<R>()
        })
    }

    /// `Manager.GetModems`: (path, properties as text).
    pub fn modems(&self) -> Vec<(String, HashMap<String, String>)> {
        let modems: Vec<(zbus::wire::OwnedObjectPath, HashMap<String, OwnedVariant>)> = self
            .call("/", "org.ofono.Manager", "GetModems", &())
            .expect("GetModems");
        modems
            .into_iter()
            .map(|(p, props)| (p.as_str().to_owned(), texts(&props)))
            .collect()
    }

    /// `VoiceCallManager.GetCalls` of `modem`.
    pub fn calls(&self, modem: &str) -> Vec<(String, HashMap<String, String>)> {
        let calls: Vec<(zbus::wire::OwnedObjectPath, HashMap<String, OwnedVariant>)> = self
            .call(modem, "org.ofono.VoiceCallManager", "GetCalls", &())
            .expect("GetCalls");
        calls
            .into_iter()
            .map(|(p, props)| (p.as_str().to_owned(), texts(&props)))
            .collect()
    }

    /// The first signal (dropping those before it) for which `f` gives `Some`, within
    /// `within`.
    pub fn wait<T>(&self, within: Duration, mut f: impl FnMut(&Signal) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.signals.recv_timeout(left) {
                Ok(s) => {
                    if let Some(v) = f(&s) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Every signal received so far and not yet taken.
    pub fn drain(&self) -> Vec<Signal> {
        self.signals.try_iter().collect()
    }
}
