//! What the daemon announces: the [`Change`]s the D-Bus side turns into signals and
//! notifications, and the link [`Status`] its properties show. The core makes most of
//! them; the message and file adapters make their own.

use std::collections::BTreeMap;
use std::sync::Arc;

use phoned_proto::AccountInfo;
use phoned_proto::call::EndReason;
use phoned_proto::state::ConnectionState;
use phoned_proto::transfer::{FileStatus, MessageStatus};

use crate::call::engine::Local;
use crate::store::files::LocalFile;
use crate::store::messages::LocalMessage;

/// A change the D-Bus side should announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ConnectionState` / `LastError`.
    Connection,
    /// Account properties.
    Account,
    Presence {
        number: String,
        name: String,
        online: bool,
    },
    Contacts,
    /// A call object appeared.
    CallAdded(Local),
    /// A call's properties changed.
    CallChanged(Local),
    /// A call's `AudioError` changed.
    CallAudio(Local),
    /// A call's `Quality` changed.
    CallQuality(Local),
    /// The account's `AudioError` (on the Manager) changed.
    AudioError,
    /// A call ended and its object goes away.
    CallRemoved(Local, EndReason),
    /// The call is (now) a conference, or its roster changed: its `Conference` object.
    Conference(Local),
    /// An incoming call rings: signal and notify. `waiting`: during another call (the
    /// call-waiting tone sounds, not the ring).
    Ring {
        local: Local,
        number: String,
        name: String,
        waiting: bool,
    },
    StopRinging(Local),
    /// A missed call (number, name).
    Missed(String, String),
    /// DTMF from the far side.
    Dtmf(Local, String),
    /// History and `MissedCount` changed.
    History,
    /// A text message arrived (and is stored).
    MessageReceived(LocalMessage),
    /// A sent message's status changed: (id, status).
    MessageStatus(String, MessageStatus),
    /// A file transfer's status changed: (id, status).
    FileStatus(String, FileStatus),
    /// Transfer progress: (id, bytes done, size).
    FileProgress(String, u64, u64),
    /// A file arrived and is saved.
    FileReceived(LocalFile),
    /// Not a change: answered once every change queued before it has been announced
    /// (a method that returns an object's path waits for it, so the object exists).
    Barrier(Barrier),
}

/// What a [`Change::Barrier`] calls once it is reached (the driver's answer; the core
/// only carries it).
#[derive(Clone)]
pub struct Barrier(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Barrier")
    }
}

impl PartialEq for Barrier {
    fn eq(&self, other: &Barrier) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Barrier {}

/// The link as the `Account` and `Presence` interfaces show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub connection: ConnectionState,
    /// Why the last connection attempt failed or the link dropped ("" if none).
    pub last_error: String,
    pub account: Option<AccountInfo>,
    /// number → name, this account excluded.
    pub online: BTreeMap<String, String>,
}

impl Default for Status {
    fn default() -> Status {
        Status {
            connection: ConnectionState::Offline,
            last_error: String::new(),
            account: None,
            online: BTreeMap::new(),
        }
    }
}
