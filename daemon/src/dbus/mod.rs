//! The D-Bus service `org.phoned.Phone1`: one struct per interface at the root object,
//! an ObjectManager, and a task that turns [`Change`]s into signals.

mod account;
mod contacts;
mod manager;
mod presence;

use std::sync::Arc;

use phoned_proto::dbus::{BUS_NAME, MAX_ARG, PhoneError, ROOT_PATH};
use smol::channel::Receiver;
use zbus::Connection;

use crate::phone::{Change, Phone};
pub use account::AccountIface;
pub use contacts::ContactsIface;
pub use manager::ManagerIface;
pub use presence::PresenceIface;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Session,
    System,
}

/// Refuses over-long string arguments before any work is done.
pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<(), PhoneError> {
    if value.len() > max {
        return Err(PhoneError::InvalidArgument(format!(
            "{what} is {} bytes; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_arg(what: &str, value: &str) -> Result<(), PhoneError> {
    check_len(what, value, MAX_ARG)
}

/// Connects to the bus, exports the interfaces and takes the bus name.
pub async fn serve(bus: Bus, phone: Arc<Phone>) -> Result<Connection, String> {
    let builder = match bus {
        Bus::Session => zbus::connection::Builder::session(),
        Bus::System => zbus::connection::Builder::system(),
    };
    let which = match bus {
        Bus::Session => "session",
        Bus::System => "system",
    };
    builder
        .serve_at(ROOT_PATH, ManagerIface::new(phone.clone()))
        .serve_at(ROOT_PATH, AccountIface::new(phone.clone()))
        .serve_at(ROOT_PATH, PresenceIface::new(phone.clone()))
        .serve_at(ROOT_PATH, ContactsIface::new(phone.clone()))
        .serve_at(ROOT_PATH, zbus::fdo::ObjectManager)
        .name(BUS_NAME)
        .build()
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => format!(
                "{BUS_NAME} is already taken on the {which} bus: is another phoned running?"
            ),
            other => format!("cannot serve on the {which} bus (is it running?): {other}"),
        })
}

/// Emits the signals for changes, forever.
pub async fn announce(conn: Connection, changes: Receiver<Change>) {
    while let Ok(change) = changes.recv().await {
        if let Err(e) = emit(&conn, change).await {
            tracing::warn!("emitting a D-Bus signal: {e}");
        }
    }
}

async fn emit(conn: &Connection, change: Change) -> zbus::Result<()> {
    let server = conn.object_server();
    match change {
        Change::Connection => {
            let iface = server.interface::<_, AccountIface>(ROOT_PATH).await?;
            let emitter = iface.signal_emitter();
            let a = iface.get().await;
            a.connection_state_changed(emitter).await?;
            a.last_error_changed(emitter).await?;
        }
        Change::Account => {
            let iface = server.interface::<_, AccountIface>(ROOT_PATH).await?;
            let emitter = iface.signal_emitter();
            let a = iface.get().await;
            a.number_changed(emitter).await?;
            a.display_name_changed(emitter).await?;
            a.created_at_changed(emitter).await?;
            a.devices_online_changed(emitter).await?;
        }
        Change::Presence {
            number,
            name,
            online,
        } => {
            let iface = server.interface::<_, PresenceIface>(ROOT_PATH).await?;
            PresenceIface::changed(iface.signal_emitter(), &number, &name, online).await?;
        }
        Change::Contacts => {
            let iface = server.interface::<_, ContactsIface>(ROOT_PATH).await?;
            ContactsIface::changed(iface.signal_emitter()).await?;
        }
    }
    Ok(())
}
