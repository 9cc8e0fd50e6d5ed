//! `org.phoned.Phone1.Files`: files sent and received through the relay.

use std::collections::HashMap;
use std::path::PathBuf;

use phoned_proto::dbus::PhoneError;
use phoned_proto::dbus::files::Row;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::wire::OwnedFd;

use super::error::intake_error;
use super::{Bus, check_arg, no_arguments, recipient};
use crate::driver::Handle;
use crate::files;
use crate::intake::{self, IntakeError, Source};
use crate::store::new_client_id;

pub struct FilesIface {
    phone: Handle,
    bus: Bus,
}

impl FilesIface {
    pub fn new(phone: Handle, bus: Bus) -> Self {
        FilesIface { phone, bus }
    }

    /// Copies the caller's file into the outbox (on the bounded work queue) and queues it.
    async fn take(&self, to: &str, source: Source, name: &str) -> Result<String, PhoneError> {
        let (number, peer_name) = recipient(&self.phone, to)?;
        let id = new_client_id();
        let (state, config, copy_id) = (
            self.phone.state_dir.clone(),
            self.phone.config_path.clone(),
            id.clone(),
        );
        let taken = self
            .phone
            .work
            .run(move || intake::take(source, &state, &config, &copy_id))
            .await?
            .map_err(intake_error)?;
        Ok(files::send_taken(
            &self.phone,
            id,
            number,
            peer_name,
            name,
            taken,
        )?)
    }
}

#[interface(name = "org.phoned.Phone1.Files")]
impl FilesIface {
    /// Sends the regular file the caller opened and passes as `file` to `to`, as `name`
    /// (what the recipient sees; made safe); returns the transfer id. The daemon reads it
    /// through the descriptor only, so it sends what the caller may read, and copies it
    /// before answering: the caller may close or change it afterwards. `Progress` and
    /// `StatusChanged` follow; the upload resumes after a broken connection or a restart.
    /// A FIFO, socket, device or directory is refused (`InvalidArgument`); `Busy` when
    /// too many files are being taken in at once.
    async fn send_fd(&self, to: &str, file: OwnedFd, name: &str) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        check_arg("name", name)?;
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(file));
        // Before taking a place in the work queue: a flood of FIFOs is refused as such.
        intake::regular(&file, intake::FD).map_err(intake_error)?;
        self.take(to, Source::Fd(file), name).await
    }

    /// Sends the file at the absolute `path`, opened by the daemon, to `to`; returns the
    /// transfer id. Session bus only (`PermissionDenied` on the system bus: use
    /// `SendFd`); the daemon's state dir, its config file and /proc are refused
    /// (`PermissionDenied`), and so is anything but a regular file (`InvalidArgument`).
    async fn send(&self, to: &str, path: &str) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        check_arg("path", path)?;
        if self.bus == Bus::System {
            return Err(intake_error(IntakeError::PathOnSystemBus));
        }
        let path = PathBuf::from(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.take(to, Source::Path(path), &name).await
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

    /// Why each failed transfer failed, by id: the relay's words (the file is too large
    /// for the recipient's mailbox, the mailbox is full, the number is unknown, ...).
    fn reasons(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, String>, PhoneError> {
        no_arguments(&header)?;
        self.phone
            .store
            .file_reasons()
            .map_err(|e| PhoneError::Failed(e.to_string()))
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
