//! `org.phoned.Phone1.Files`: files sent and received through the relay.

use std::path::PathBuf;

use phoned_proto::FileKind;
use phoned_proto::dbus::PhoneError;
use phoned_proto::dbus::files::Row;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use super::{check_arg, no_arguments, recipient};
use crate::driver::Handle;
use crate::files;

pub struct FilesIface {
    phone: Handle,
}

impl FilesIface {
    pub fn new(phone: Handle) -> Self {
        FilesIface { phone }
    }
}

#[interface(name = "org.phoned.Phone1.Files")]
impl FilesIface {
    /// Sends the file at `path` (read by the daemon) to `to`; returns the transfer id.
    /// `Progress` and `StatusChanged` follow it; it resumes after a broken connection.
    async fn send(&self, to: &str, path: &str) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        check_arg("path", path)?;
        let (number, name) = recipient(&self.phone, to)?;
        let path = PathBuf::from(path);
        Ok(files::send(&self.phone, number, name, path, FileKind::File).await?)
    }

    /// Every transfer, oldest first: (id, peer, direction `in`/`out`, kind, name, path,
    /// size, status, at Unix ms).
    fn list(&self, #[zbus(header)] header: Header<'_>) -> Result<Vec<Row>, PhoneError> {
        no_arguments(&header)?;
        let all = self
            .phone
            .store
            .files()
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(all
            .into_iter()
            .map(|f| {
                let dir = f.direction().as_str().to_owned();
                (
                    f.id,
                    f.peer,
                    dir,
                    f.kind.as_str().to_owned(),
                    f.name,
                    f.path,
                    f.size,
                    f.status.as_str().to_owned(),
                    f.at_ms,
                )
            })
            .collect())
    }

    /// A file arrived and was saved at `path`.
    #[zbus(signal)]
    pub async fn received(
        emitter: &SignalEmitter<'_>,
        id: &str,
        from: &str,
        name: &str,
        path: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn progress(
        emitter: &SignalEmitter<'_>,
        id: &str,
        done: u64,
        size: u64,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn status_changed(
        emitter: &SignalEmitter<'_>,
        id: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
