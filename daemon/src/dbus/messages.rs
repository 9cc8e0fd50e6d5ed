//! `org.phoned.Phone1.Messages`: text messages, stored and forwarded by the relay.

use phoned_proto::dbus::PhoneError;
use phoned_proto::dbus::messages::Row;
use zbus::interface;
use zbus::object_server::SignalEmitter;

use super::{check_arg, check_len, recipient};
use crate::driver::Handle;
use crate::messages::{self, MAX_TEXT};

pub struct MessagesIface {
    phone: Handle,
}

impl MessagesIface {
    pub fn new(phone: Handle) -> Self {
        MessagesIface { phone }
    }
}

#[interface(name = "org.phoned.Phone1.Messages")]
impl MessagesIface {
    /// Sends `text` to `to` (a number or a contact's name); returns the message id. It is
    /// kept and sent later if the relay is out of reach; `StatusChanged` follows it
    /// (`queued` → `stored` → `delivered`, or `failed`).
    async fn send(&self, to: &str, text: &str) -> Result<String, PhoneError> {
        check_arg("to", to)?;
        check_len("text", text, MAX_TEXT)?;
        if text.is_empty() {
            return Err(PhoneError::InvalidArgument("the message is empty".into()));
        }
        let (number, name) = recipient(&self.phone, to)?;
        Ok(messages::send(&self.phone, number, name, text.to_owned()).await?)
    }

    /// The newest `limit` messages with `peer` (a number or a contact's name; all peers
    /// if ""), oldest first: (id, peer, direction `in`/`out`, text, status, at Unix ms).
    fn history(&self, peer: &str, limit: u32) -> Result<Vec<Row>, PhoneError> {
        check_arg("peer", peer)?;
        // A name that is no contact is `NotFound`, as for `Send`, not an empty history.
        let number = match peer {
            "" => None,
            peer => Some(recipient(&self.phone, peer)?.0),
        };
        let list = self
            .phone
            .store
            .messages(number.as_deref(), limit.min(10_000) as usize)
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(list
            .into_iter()
            .map(|m| {
                let dir = m.direction().as_str().to_owned();
                let status = m.status.as_str().to_owned();
                (m.id, m.peer, dir, m.text, status, m.at_ms)
            })
            .collect())
    }

    #[zbus(signal)]
    pub async fn received(
        emitter: &SignalEmitter<'_>,
        id: &str,
        from: &str,
        text: &str,
        at: u64,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn status_changed(
        emitter: &SignalEmitter<'_>,
        id: &str,
        status: &str,
    ) -> zbus::Result<()>;
}
