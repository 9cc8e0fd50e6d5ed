//! The wiring: the two buses, the oFono objects, the name `org.ofono` (refused when
//! someone already has it: a real oFono, or another bridge), and the loop that feeds
//! phoned's signals to the model.

use futures_lite::StreamExt;
use thiserror::Error;
use zbus::Connection;
use zbus::fdo::{DBusProxy, RequestNameFlags};

use crate::bridge::{Bridge, Event, Options};
use crate::paths;
use crate::phone::{self, Heard, Phone};
use crate::service::{self, ManagerIface, ModemIface, Shared, VoiceCallManagerIface};

/// oFono's bus name.
pub const OFONO: &str = "org.ofono";

/// A bus: the session or system bus, or an address (`unix:path=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    Session,
    System,
    Address(String),
}

impl Bus {
    /// `session`, `system`, or a D-Bus address.
    pub fn parse(s: &str) -> Result<Bus, String> {
        match s {
            "session" => Ok(Bus::Session),
            "system" => Ok(Bus::System),
            a if a.contains(':') => Ok(Bus::Address(a.to_owned())),
            other => Err(format!(
                "{other:?} is neither session, system nor a D-Bus address (unix:path=…)"
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Bus::Session => "the session bus".into(),
            Bus::System => "the system bus".into(),
            Bus::Address(a) => format!("the bus at {a}"),
        }
    }

    async fn connect(&self) -> zbus::Result<Connection> {
        let builder = match self {
            Bus::Session => zbus::connection::Builder::session(),
            Bus::System => zbus::connection::Builder::system(),
            Bus::Address(a) => zbus::connection::Builder::address(a.as_str()),
        };
        builder.build().await
    }
}

pub struct Settings {
    /// Where phoned serves `org.phoned.Phone1`.
    pub phone_bus: Bus,
    /// Where to serve `org.ofono`.
    pub ofono_bus: Bus,
    pub options: Options,
}

#[derive(Debug, Error)]
pub enum Failure {
    /// Someone else serves `org.ofono` there: exit status 3.
    #[error(
        "{OFONO} is already owned on {bus} by {owner}: a real oFono runs there, or another phoned-ofono. Stop it first (systemctl stop ofono), or serve another bus (--ofono-bus)"
    )]
    NameTaken { bus: String, owner: String },
    #[error("lost the connection to phoned's bus, {0}")]
    Lost(String),
    #[error("{what}: {error}")]
    Bus { what: String, error: zbus::Error },
}

fn bus_error(what: impl Into<String>) -> impl FnOnce(zbus::Error) -> Failure {
    let what = what.into();
    move |error| Failure::Bus { what, error }
}

/// Who owns `name`: its unique name, and the process's id and command when the bus says.
async fn owner_of(dbus: &DBusProxy<'_>, name: &str) -> Option<String> {
    let bus_name = zbus::names::BusName::try_from(name).ok()?;
    let unique = dbus.get_name_owner(bus_name.clone()).await.ok()?;
    let mut owner = unique.to_string();
    if let Ok(pid) = dbus.get_connection_unix_process_id(bus_name).await {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        owner.push_str(&format!(" (pid {pid}"));
        if !comm.trim().is_empty() {
            owner.push_str(&format!(", {}", comm.trim()));
        }
        owner.push(')');
    }
    Some(owner)
}

/// Serves `org.ofono` on the oFono bus for phoned on its bus until `stop` completes.
pub async fn run(settings: Settings, stop: impl Future<Output = ()>) -> Result<(), Failure> {
    let ofono_bus = settings.ofono_bus.describe();
    let ofono = settings
        .ofono_bus
        .connect()
        .await
        .map_err(bus_error(format!("cannot connect to {ofono_bus}")))?;
    let dbus = DBusProxy::new(&ofono)
        .await
        .map_err(bus_error("the oFono bus"))?;
    // Refuse early, with who has it; RequestName below refuses a racing owner too.
    if let Some(owner) = owner_of(&dbus, OFONO).await {
        return Err(Failure::NameTaken {
            bus: ofono_bus,
            owner,
        });
    }
    let phone_bus = settings.phone_bus.describe();
    let phone_conn = settings
        .phone_bus
        .connect()
        .await
        .map_err(bus_error(format!(
            "cannot connect to phoned's bus, {phone_bus}"
        )))?;
    let phone = Phone::new(phone_conn);
    let shared = Shared::new(Bridge::new(settings.options), phone.clone());

    let server = ofono.object_server();
    let serve = async {
        server
            .at(
                "/",
                ManagerIface {
                    shared: shared.clone(),
                },
            )
            .await?;
        server
            .at(
                paths::MODEM,
                ModemIface {
                    shared: shared.clone(),
                },
            )
            .await?;
        server
            .at(
                paths::MODEM,
                VoiceCallManagerIface {
                    shared: shared.clone(),
                },
            )
            .await
    };
    serve
        .await
        .map_err(bus_error("cannot serve the oFono objects"))?;

    // Listen to phoned before reading its state, then claim the name: the first client
    // sees the modem with phoned's calls.
    let mut messages = phone
        .listen()
        .await
        .map_err(bus_error(format!("cannot listen to phoned on {phone_bus}")))?;
    let (heard_tx, heard_rx) = smol::channel::unbounded();
    // Drains the connection's queue at once (a full queue would hold up the replies the
    // loop below waits for), keeping phoned's signals in order.
    let pump = smol::spawn(async move {
        while let Some(msg) = messages.next().await {
            let Ok(msg) = msg else { continue };
            if let Some(heard) = phone::heard(&msg)
                && heard_tx.send(heard).await.is_err()
            {
                break;
            }
        }
    });
    service::apply(&shared, &ofono, phone.snapshot().await).await;

    match ofono
        .request_name_with_flags(OFONO, RequestNameFlags::DO_NOT_QUEUE)
        .await
    {
        Ok(_) => {}
        Err(zbus::Error::NameTaken) => {
            let owner = owner_of(&dbus, OFONO)
                .await
                .unwrap_or_else(|| "another connection".into());
            return Err(Failure::NameTaken {
                bus: ofono_bus,
                owner,
            });
        }
        Err(e) => return Err(bus_error(format!("cannot own {OFONO}"))(e)),
    }
    tracing::info!("serving {OFONO} on {ofono_bus} for phoned on {phone_bus}");
    phoned_client::systemd::ready(&format!("serving {OFONO} for phoned"));

    let follow = async {
        while let Ok(heard) = heard_rx.recv().await {
            let event = match heard {
                Heard::Event(e) => e,
                Heard::Resync => phone.snapshot().await,
            };
            service::apply(&shared, &ofono, event).await;
        }
        true
    };
    let lost = smol::future::or(follow, async {
        stop.await;
        false
    })
    .await;
    drop(pump);

    // Clients hear the modem go, then the name.
    service::apply(&shared, &ofono, Event::Gone).await;
    if let Ok(emitter) = zbus::object_server::SignalEmitter::new(&ofono, "/") {
        let modem = zbus::wire::ObjectPath::from_static_str_unchecked(paths::MODEM);
        let _ = ManagerIface::modem_removed(&emitter, modem).await;
    }
    let _ = ofono.release_name(OFONO).await;
    if lost {
        return Err(Failure::Lost(phone_bus));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_arguments() {
        assert_eq!(Bus::parse("system"), Ok(Bus::System));
        assert_eq!(Bus::parse("session"), Ok(Bus::Session));
        assert_eq!(
            Bus::parse("unix:path=/run/x"),
            Ok(Bus::Address("unix:path=/run/x".into()))
        );
        assert!(Bus::parse("sytem").is_err());
    }
}
