//! The D-Bus service `org.phoned.Phone1`, an adapter of the driver: one struct per
//! interface at the root object, an ObjectManager, and a task that turns [`Change`]s
//! into signals. Methods send commands through a [`Handle`] and wait for the reply;
//! properties read the driver's latest snapshot. Core errors become `PhoneError` here
//! ([`error`]).

mod account;
mod announced;
pub mod call;
pub mod conference;
mod contacts;
mod error;
mod files;
mod history;
mod manager;
mod messages;
pub mod notify;
mod presence;
mod voice;

use std::sync::Arc;

use phoned_proto::FileKind;
use phoned_proto::call::CallState;
use phoned_proto::dbus::{BUS_NAME, MAX_ARG, PhoneError, ROOT_PATH};
use smol::channel::Receiver;
use thiserror::Error;
use zbus::Connection;

use crate::core::Change;
use crate::driver::Handle;
pub use account::AccountIface;
pub use call::CallIface;
pub use conference::ConferenceIface;
pub use contacts::ContactsIface;
pub use files::FilesIface;
pub use history::HistoryIface;
pub use manager::ManagerIface;
pub use messages::MessagesIface;
pub use presence::PresenceIface;
pub use voice::VoiceIface;

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

/// Refuses a call that brings arguments to a method that takes none. zbus 6 hands such a
/// method its call whatever the body holds (the generated code does not compare the
/// body's signature with the method's when there is nothing to read), so those methods
/// look at the signature themselves: a caller passing arguments has made a mistake it
/// should hear about, as it does for a method with arguments (`InvalidArgs`).
pub(crate) fn no_arguments(header: &zbus::message::Header<'_>) -> Result<(), PhoneError> {
    let signature = header.signature();
    if signature.string_len() == 0 {
        return Ok(());
    }
    Err(PhoneError::ZBus(zbus::Error::FDO(Box::new(
        zbus::fdo::Error::InvalidArgs(format!("this method takes no arguments, not ({signature})")),
    ))))
}

/// Resolves a number or a contact's name to (number, name).
pub(crate) fn recipient(handle: &Handle, to: &str) -> Result<(String, String), PhoneError> {
    handle.store.recipient(to).map_err(error::contact_error)
}

/// Why the service could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("{BUS_NAME} is already taken on the {0} bus: is another phoned running?")]
    NameTaken(&'static str),
    #[error("cannot serve on the {bus} bus (is it running?): {source}")]
    Bus {
        bus: &'static str,
        source: zbus::Error,
    },
}

/// Connects to the bus, exports the interfaces and takes the bus name.
pub async fn serve(bus: Bus, phone: Handle) -> Result<Connection, ServeError> {
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
        .serve_at(ROOT_PATH, HistoryIface::new(phone.clone()))
        .serve_at(ROOT_PATH, MessagesIface::new(phone.clone()))
        .serve_at(ROOT_PATH, FilesIface::new(phone.clone(), bus))
        .serve_at(ROOT_PATH, VoiceIface::new(phone.clone()))
        .serve_at(ROOT_PATH, zbus::fdo::ObjectManager)
        .name(BUS_NAME)
        .build()
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => ServeError::NameTaken(which),
            source => ServeError::Bus { bus: which, source },
        })
}

/// Emits the signals for changes, forever.
pub async fn announce(conn: Connection, phone: Handle, changes: Receiver<Change>) {
    let notifier = notify::Notifier::new(conn.clone(), phone.clone());
    while let Ok(change) = changes.recv().await {
        if let Err(e) = emit(&conn, &phone, &notifier, change).await {
            tracing::warn!("emitting a D-Bus signal: {e}");
        }
    }
}

async fn emit(
    conn: &Connection,
    phone: &Handle,
    notifier: &Arc<notify::Notifier>,
    change: Change,
) -> zbus::Result<()> {
    let server = conn.object_server();
    match change {
        Change::CallAdded(local) => {
            let path = call::path(local);
            server
                .at(path.as_str(), CallIface::new(phone.clone(), local))
                .await?;
            let snapshot = phone.snapshot();
            let Some(c) = snapshot.calls.get(&local) else {
                return Ok(());
            };
            let mut props: std::collections::HashMap<&str, zbus::Variant<'_>> =
                std::collections::HashMap::new();
            props.insert("State", zbus::Variant::from(c.state.as_str()));
            props.insert("Direction", zbus::Variant::from(c.direction.as_str()));
            props.insert("RemoteNumber", zbus::Variant::from(c.remote_number.clone()));
            props.insert("RemoteName", zbus::Variant::from(c.remote_name.clone()));
            let manager = server.interface::<_, ManagerIface>(ROOT_PATH).await?;
            let op = zbus::wire::ObjectPath::try_from(path.as_str())?;
            ManagerIface::call_added(manager.signal_emitter(), op, props).await?;
            manager
                .get()
                .await
                .calls_changed(manager.signal_emitter())
                .await?;
        }
        Change::CallChanged(local) | Change::CallAudio(local) | Change::CallQuality(local) => {
            let path = call::path(local);
            if let Ok(iface) = server.interface::<_, CallIface>(path.as_str()).await {
                iface
                    .get()
                    .await
                    .announce(iface.signal_emitter(), None)
                    .await?;
            }
            // A ringing call that turned from waiting to incoming (or back) says so.
            let state = phone.snapshot().calls.get(&local).map(|c| c.state);
            match state {
                Some(CallState::Waiting) => notifier.update(local, true).await,
                Some(CallState::Incoming) => notifier.update(local, false).await,
                _ => {}
            }
            if matches!(change, Change::CallQuality(_))
                && let Ok(iface) = server
                    .interface::<_, ConferenceIface>(conference::path(local).as_str())
                    .await
            {
                // Who speaks comes with the quality reports.
                iface.get().await.announce(iface.signal_emitter()).await?;
            }
        }
        Change::AudioError => {
            let manager = server.interface::<_, ManagerIface>(ROOT_PATH).await?;
            manager
                .get()
                .await
                .audio_error_changed(manager.signal_emitter())
                .await?;
        }
        Change::CallRemoved(local, reason) => {
            let path = call::path(local);
            if let Ok(iface) = server.interface::<_, CallIface>(path.as_str()).await {
                let c = iface.get().await;
                c.announce(iface.signal_emitter(), Some(reason)).await?;
            }
            server.remove::<CallIface, _>(path.as_str()).await?;
            // Its conference object, if it was one, goes with it.
            let _ = server
                .remove::<ConferenceIface, _>(conference::path(local).as_str())
                .await;
            let manager = server.interface::<_, ManagerIface>(ROOT_PATH).await?;
            let op = zbus::wire::ObjectPath::try_from(path.as_str())?;
            ManagerIface::call_removed(manager.signal_emitter(), op, reason.as_str()).await?;
            manager
                .get()
                .await
                .calls_changed(manager.signal_emitter())
                .await?;
        }
        Change::Ring {
            local,
            number,
            name,
            waiting,
        } => {
            let manager = server.interface::<_, ManagerIface>(ROOT_PATH).await?;
            let path = call::path(local);
            let op = zbus::wire::ObjectPath::try_from(path.as_str())?;
            ManagerIface::incoming_call(manager.signal_emitter(), op, &number, &name).await?;
            let conference = phone
                .snapshot()
                .calls
                .get(&local)
                .is_some_and(|c| c.conference.is_some());
            notifier
                .ring(local, &number, &name, waiting, conference)
                .await;
        }
        Change::StopRinging(local) => notifier.stop_ringing(local).await,
        Change::Barrier(reached) => (reached.0)(),
        Change::Conference(local) => {
            let path = conference::path(local);
            match server.interface::<_, ConferenceIface>(path.as_str()).await {
                Ok(iface) => {
                    iface.get().await.announce(iface.signal_emitter()).await?;
                }
                Err(_) => {
                    server
                        .at(path.as_str(), ConferenceIface::new(phone.clone(), local))
                        .await?;
                }
            }
        }
        Change::Missed(number, name) => notifier.missed(&number, &name).await,
        Change::Dtmf(local, digits) => {
            if let Ok(iface) = server
                .interface::<_, CallIface>(call::path(local).as_str())
                .await
            {
                CallIface::dtmf_received(iface.signal_emitter(), &digits).await?;
            }
        }
        Change::MessageReceived(m) => {
            let iface = server.interface::<_, MessagesIface>(ROOT_PATH).await?;
            MessagesIface::received(iface.signal_emitter(), &m.id, &m.peer, &m.text, m.at_ms)
                .await?;
            notifier.message(&m.peer, &m.peer_name, &m.text).await;
        }
        Change::MessageStatus(id, status) => {
            let iface = server.interface::<_, MessagesIface>(ROOT_PATH).await?;
            MessagesIface::status_changed(iface.signal_emitter(), &id, status.as_str()).await?;
        }
        Change::FileStatus(id, status) => {
            let iface = server.interface::<_, FilesIface>(ROOT_PATH).await?;
            FilesIface::status_changed(iface.signal_emitter(), &id, status.as_str()).await?;
        }
        Change::FileProgress(id, done, size) => {
            let iface = server.interface::<_, FilesIface>(ROOT_PATH).await?;
            FilesIface::progress(iface.signal_emitter(), &id, done, size).await?;
        }
        Change::FileReceived(f) => {
            let iface = server.interface::<_, FilesIface>(ROOT_PATH).await?;
            FilesIface::received(iface.signal_emitter(), &f.id, &f.peer, &f.name, &f.path).await?;
            if f.kind == FileKind::Voice {
                let ms = crate::voice::message::duration_ms(std::path::Path::new(&f.path));
                let voice = server.interface::<_, VoiceIface>(ROOT_PATH).await?;
                VoiceIface::received(
                    voice.signal_emitter(),
                    &f.id,
                    &f.peer,
                    ms.min(u64::from(u32::MAX)) as u32,
                )
                .await?;
            }
            notifier.file(&f.peer, &f.peer_name, &f.name).await;
        }
        Change::History => {
            let iface = server.interface::<_, HistoryIface>(ROOT_PATH).await?;
            iface
                .get()
                .await
                .missed_count_changed(iface.signal_emitter())
                .await?;
        }
        Change::Connection | Change::Account => {
            let iface = server.interface::<_, AccountIface>(ROOT_PATH).await?;
            iface.get().await.announce(iface.signal_emitter()).await?;
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
