//! `org.phoned.Phone1.Presence`: who is online, and live changes.

use phoned_proto::dbus::PhoneError;
use phoned_proto::state::ConnectionState;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use super::no_arguments;
use crate::driver::Handle;

pub struct PresenceIface {
    phone: Handle,
}

impl PresenceIface {
    pub fn new(phone: Handle) -> Self {
        PresenceIface { phone }
    }
}

#[interface(name = "org.phoned.Phone1.Presence")]
impl PresenceIface {
    /// (number, name) of everyone online but this account, ordered by number.
    fn list_online(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String)>, PhoneError> {
        no_arguments(&header)?;
        let snapshot = self.phone.snapshot();
        let status = &snapshot.status;
        if status.connection != ConnectionState::Online {
            return Err(PhoneError::Offline("not connected to the relay".into()));
        }
        Ok(status.online.clone().into_iter().collect())
    }

    #[zbus(signal)]
    pub async fn changed(
        emitter: &SignalEmitter<'_>,
        number: &str,
        name: &str,
        online: bool,
    ) -> zbus::Result<()>;
}
