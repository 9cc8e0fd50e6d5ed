//! The boundary between the core's errors and D-Bus: each [`CoreError`] kind becomes the
//! `org.phoned.Phone1.Error.*` name scripts match on. `PhoneError` appears nowhere else
//! in the daemon.

use phoned_proto::dbus::PhoneError;

use crate::core::{CoreError, ErrorKind};
use crate::intake::IntakeError;
use crate::store::contacts::ContactError;
use crate::work::Busy;

impl From<CoreError> for PhoneError {
    fn from(e: CoreError) -> PhoneError {
        let m = e.message;
        match e.kind {
            ErrorKind::Offline => PhoneError::Offline(m),
            ErrorKind::Timeout => PhoneError::Timeout(m),
            ErrorKind::NotFound => PhoneError::NotFound(m),
            ErrorKind::InvalidArgument => PhoneError::InvalidArgument(m),
            ErrorKind::InvalidNumber => PhoneError::InvalidNumber(m),
            ErrorKind::InvalidState => PhoneError::InvalidState(m),
            ErrorKind::Busy => PhoneError::Busy(m),
            ErrorKind::NumberTaken => PhoneError::NumberTaken(m),
            ErrorKind::PermissionDenied => PhoneError::PermissionDenied(m),
            ErrorKind::QuotaExceeded => PhoneError::QuotaExceeded(m),
            ErrorKind::InvalidConfig => PhoneError::InvalidConfig(m),
            ErrorKind::Failed => PhoneError::Failed(m),
        }
    }
}

/// The bounded work queue is full.
impl From<Busy> for PhoneError {
    fn from(e: Busy) -> PhoneError {
        PhoneError::Busy(e.to_string())
    }
}

/// Why a caller's file was not taken, as D-Bus shows it: what the caller may not have
/// sent is `PermissionDenied`, what is not a file is `InvalidArgument`.
pub(crate) fn intake_error(e: IntakeError) -> PhoneError {
    let m = e.to_string();
    match e {
        IntakeError::NotRegular { .. } | IntakeError::Relative(_) => PhoneError::InvalidArgument(m),
        IntakeError::DaemonFile(_) | IntakeError::Proc(_) | IntakeError::PathOnSystemBus => {
            PhoneError::PermissionDenied(m)
        }
        IntakeError::Locked { .. } => PhoneError::Busy(m),
        IntakeError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PhoneError::NotFound(m),
            std::io::ErrorKind::PermissionDenied => PhoneError::PermissionDenied(m),
            _ => PhoneError::Failed(m),
        },
    }
}

/// A contact error as D-Bus shows it.
pub(crate) fn contact_error(e: ContactError) -> PhoneError {
    match e {
        ContactError::InvalidNumber(_) | ContactError::NotDialable { .. } => {
            PhoneError::InvalidNumber(e.to_string())
        }
        ContactError::NotFound(_) | ContactError::NoRecipient(_) => {
            PhoneError::NotFound(e.to_string())
        }
        ContactError::Store(_) => PhoneError::Failed(e.to_string()),
        _ => PhoneError::InvalidArgument(e.to_string()),
    }
}

/// A property setter's error (zbus wants its own type there).
pub(crate) fn property_error(e: CoreError) -> zbus::fdo::Error {
    zbus::fdo::Error::Failed(e.message)
}
