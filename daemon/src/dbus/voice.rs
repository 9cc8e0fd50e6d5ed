//! `org.phoned.Phone1.VoiceMessages`: voice messages (Ogg Opus), sent and received.

use std::path::PathBuf;

use phoned_proto::FileKind;
use phoned_proto::dbus::PhoneError;
use phoned_proto::dbus::voice::Row;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::wire::OwnedFd;

use super::error::intake_error;
use super::{check_arg, no_arguments, recipient};
use crate::driver::Handle;
use crate::intake::{self, Source};
use crate::voice::message;

pub struct VoiceIface {
    phone: Handle,
}

impl VoiceIface {
    pub fn new(phone: Handle) -> Self {
        VoiceIface { phone }
    }
}

#[interface(name = "org.phoned.Phone1.VoiceMessages")]
impl VoiceIface {
    /// Encodes the WAV file the caller opened and passes as `wav` (any rate and channel
    /// count) as Ogg Opus and sends it to `to`; returns the transfer id (see
    /// `Files.StatusChanged`). Only a regular file is taken (`InvalidArgument`); `Busy`
    /// when too many files are being taken in at once.
    async fn send_file_fd(&self, to: &str, wav: OwnedFd) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(wav));
        intake::regular(&file, intake::FD).map_err(intake_error)?;
        let (number, name) = recipient(&self.phone, to)?;
        Ok(message::send_wav(&self.phone, number, name, Source::Fd(file)).await?)
    }

    /// Encodes the WAV file at the absolute `wav_path`, opened by the daemon (never its
    /// own files or /proc; a regular file), as Ogg Opus and sends it to `to`; returns the
    /// transfer id (see `Files.StatusChanged`).
    async fn send_file(&self, to: &str, wav_path: &str) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        check_arg("wav_path", wav_path)?;
        let (number, name) = recipient(&self.phone, to)?;
        let wav = PathBuf::from(wav_path);
        Ok(message::send_wav(&self.phone, number, name, Source::Path(wav)).await?)
    }

    /// Records `seconds` (1 to 300) from the input device and sends it to `to`.
    async fn record(&self, to: &str, seconds: u32) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        let (number, name) = recipient(&self.phone, to)?;
        Ok(message::record(&self.phone, number, name, seconds).await?)
    }

    /// Voice messages sent and received, oldest first.
    fn list(&self, #[zbus(header)] header: Header<'_>) -> Result<Vec<Row>, PhoneError> {
        no_arguments(&header)?;
        let all = self
            .phone
            .store
            .files()
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(all
            .into_iter()
            .filter(|f| f.kind == FileKind::Voice)
            .map(|f| {
                let dir = f.direction().as_str().to_owned();
                let status = f.status.as_str().to_owned();
                let ms = message::duration_ms(std::path::Path::new(&f.path));
                (f.id, f.peer, dir, f.path, ms, status, f.at_ms)
            })
            .collect())
    }

    /// Plays voice message `id` through the output device; returns when it has played.
    async fn play(&self, id: &str) -> Result<(), PhoneError> {
        check_arg("id", id)?;
        let f = self
            .phone
            .store
            .file(id)
            .map_err(|e| PhoneError::Failed(e.to_string()))?
            .filter(|f| f.kind == FileKind::Voice && !f.path.is_empty())
            .ok_or_else(|| PhoneError::NotFound(format!("no voice message {id:?}")))?;
        Ok(message::play(&self.phone, PathBuf::from(f.path)).await?)
    }

    /// A voice message arrived.
    #[zbus(signal)]
    pub async fn received(
        emitter: &SignalEmitter<'_>,
        id: &str,
        from: &str,
        duration_ms: u32,
    ) -> zbus::Result<()>;
}
