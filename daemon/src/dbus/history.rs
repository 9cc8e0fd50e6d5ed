//! `org.phoned.Phone1.History`: finished calls and the count of missed ones.

use phoned_proto::dbus::PhoneError;
use phoned_proto::dbus::history::Entry;
use zbus::interface;
use zbus::message::Header;

use super::no_arguments;
use crate::core::Change;
use crate::driver::Handle;

pub struct HistoryIface {
    phone: Handle,
}

impl HistoryIface {
    pub fn new(phone: Handle) -> Self {
        HistoryIface { phone }
    }
}

#[interface(name = "org.phoned.Phone1.History")]
impl HistoryIface {
    /// The newest `limit` calls, newest first: (number, name, direction, result,
    /// start Unix ms, duration ms, missed). `result` is `answered` or the end reason.
    fn list(&self, limit: u32) -> Result<Vec<Entry>, PhoneError> {
        let entries = self
            .phone
            .store
            .history(limit.min(10_000) as usize)
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(entries
            .into_iter()
            .map(|e| {
                (
                    e.number,
                    e.name,
                    e.direction.as_str().to_owned(),
                    e.result.as_str().to_owned(),
                    e.start_ms,
                    e.duration_ms,
                    e.missed,
                )
            })
            .collect())
    }

    /// Marks the missed calls as seen.
    fn clear_missed(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.phone
            .store
            .clear_missed()
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        self.phone.announce(Change::History);
        Ok(())
    }

    /// Missed calls not yet marked as seen.
    #[zbus(property)]
    fn missed_count(&self) -> u32 {
        self.phone.store.missed_count().unwrap_or(0)
    }
}
