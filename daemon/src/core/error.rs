//! The core's error: a kind a caller can act on and a message for people. The D-Bus layer
//! maps the kind to its error name (`dbus::error`); nothing here knows about D-Bus.

use thiserror::Error;

/// What went wrong, as a caller can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not connected to the relay (or the link dropped while waiting).
    Offline,
    /// The relay did not answer in time.
    Timeout,
    NotFound,
    InvalidArgument,
    InvalidNumber,
    /// Not possible in the current state.
    InvalidState,
    Busy,
    NumberTaken,
    PermissionDenied,
    QuotaExceeded,
    /// A config that does not load (a reload kept the old one).
    InvalidConfig,
    /// Anything else.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct CoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CoreError {
        CoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn offline(message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::Offline, message)
    }

    pub fn failed(message: impl Into<String>) -> CoreError {
        CoreError::new(ErrorKind::Failed, message)
    }

    /// The link is down or the relay is slow: worth trying again later, not a verdict on
    /// the request itself.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Offline | ErrorKind::Timeout)
    }
}
