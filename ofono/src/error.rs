//! oFono's errors (`org.ofono.Error.<Name>`, each with a message), and phoned's errors and
//! the model's refusals as them.

use phoned_proto::dbus::PhoneError;
use zbus::DBusError;

use crate::bridge::Refusal;

/// The errors of oFono's API the bridge answers with.
#[derive(DBusError, Debug)]
#[zbus(prefix = "org.ofono.Error")]
pub enum OfonoError {
    #[zbus(error)]
    ZBus(zbus::Error),
    InvalidArguments(String),
    InvalidFormat(String),
    NotImplemented(String),
    NotFound(String),
    /// phoned is not connected to its relay.
    NotAvailable(String),
    Busy(String),
    Timedout(String),
    AccessDenied(String),
    Failed(String),
}

impl From<Refusal> for OfonoError {
    fn from(r: Refusal) -> OfonoError {
        match r {
            Refusal::Failed(m) => OfonoError::Failed(m),
            Refusal::NotFound(m) => OfonoError::NotFound(m),
            Refusal::InvalidFormat(m) => OfonoError::InvalidFormat(m),
        }
    }
}

impl From<PhoneError> for OfonoError {
    fn from(e: PhoneError) -> OfonoError {
        let m = e.message();
        match e {
            PhoneError::InvalidNumber(_) => OfonoError::InvalidFormat(m),
            PhoneError::InvalidArgument(_) => OfonoError::InvalidArguments(m),
            PhoneError::NotFound(_) => OfonoError::NotFound(m),
            PhoneError::Offline(_) => OfonoError::NotAvailable(m),
            PhoneError::Busy(_) => OfonoError::Busy(m),
            PhoneError::Timeout(_) => OfonoError::Timedout(m),
            PhoneError::PermissionDenied(_) => OfonoError::AccessDenied(m),
            // phoned not on its bus, or gone in the middle of the call.
            PhoneError::ZBus(_) => OfonoError::Failed(format!("phoned: {m}")),
            _ => OfonoError::Failed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let e = OfonoError::from(PhoneError::InvalidNumber("no".into()));
        assert_eq!(e.name().as_str(), "org.ofono.Error.InvalidFormat");
        let e = OfonoError::from(PhoneError::Offline("down".into()));
        assert_eq!(e.name().as_str(), "org.ofono.Error.NotAvailable");
        assert_eq!(e.description(), Some("down"));
        let e = OfonoError::from(Refusal::NotFound("gone".into()));
        assert_eq!(e.name().as_str(), "org.ofono.Error.NotFound");
    }
}
