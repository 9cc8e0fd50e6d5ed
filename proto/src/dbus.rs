//! The D-Bus API of `phoned` (v1): names, typed errors and client proxies, shared by the
//! daemon, `phonectl` and any other Rust client. See `docs/dbus-api.md`.

use zbus::{DBusError, proxy};

/// The daemon's well-known bus name.
pub const BUS_NAME: &str = "org.phoned.Phone1";
/// The root object: Manager, Account, Presence, Contacts and the ObjectManager.
pub const ROOT_PATH: &str = "/org/phoned/Phone1";

/// The object path of call number `n`: `/org/phoned/Phone1/Call/<n>`.
///
/// ```
/// use phoned_proto::dbus::{call_path, parse_call_path};
/// assert_eq!(call_path(3), "/org/phoned/Phone1/Call/3");
/// assert_eq!(parse_call_path("/org/phoned/Phone1/Call/3"), Some(3));
/// ```
pub fn call_path(n: u32) -> String {
    format!("{ROOT_PATH}/Call/{n}")
}

/// The object path of conference `n` (the conference of call `n`).
pub fn conference_path(n: u32) -> String {
    format!("{ROOT_PATH}/Conference/{n}")
}

/// The number of the call at `path`, if it is a call object's path as [`call_path`] writes
/// it (no sign, no leading zeros, no trailing parts).
pub fn parse_call_path(path: &str) -> Option<u32> {
    let n = path.strip_prefix(ROOT_PATH)?.strip_prefix("/Call/")?;
    let canonical =
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
    if canonical { n.parse().ok() } else { None }
}

/// Interface names.
pub mod iface {
    pub const MANAGER: &str = "org.phoned.Phone1.Manager";
    pub const ACCOUNT: &str = "org.phoned.Phone1.Account";
    pub const PRESENCE: &str = "org.phoned.Phone1.Presence";
    pub const CONTACTS: &str = "org.phoned.Phone1.Contacts";
    pub const CALL: &str = "org.phoned.Phone1.Call";
    pub const CONFERENCE: &str = "org.phoned.Phone1.Conference";
    pub const HISTORY: &str = "org.phoned.Phone1.History";
    pub const MESSAGES: &str = "org.phoned.Phone1.Messages";
    pub const FILES: &str = "org.phoned.Phone1.Files";
    pub const VOICE: &str = "org.phoned.Phone1.VoiceMessages";
}

/// The keys of a call's `Quality` property (`a{sv}`), in the order `phonectl` shows
/// them; `docs/dbus-api.md` says what each means. Doubles (`d`) unless said.
pub mod quality {
    /// Loss over the last 5 s, %.
    pub const LOSS_PERCENT: &str = "LossPercent";
    /// Loss over the whole call, %.
    pub const CALL_LOSS_PERCENT: &str = "CallLossPercent";
    /// Loss that FEC did not recover, over the last 5 s, %.
    pub const UNRECOVERED_PERCENT: &str = "UnrecoveredPercent";
    /// Packet delay variation, ms (`u`).
    pub const JITTER_MS: &str = "JitterMs";
    /// The jitter buffer's delay now, ms (`u`).
    pub const JITTER_BUFFER_MS: &str = "JitterBufferMs";
    /// Estimated mouth-to-ear delay, ms (`u`).
    pub const MOUTH_TO_EAR_MS: &str = "MouthToEarMs";
    /// Media sent, kbit/s over the last 5 s.
    pub const SEND_KBPS: &str = "SendKbps";
    /// Media received, kbit/s over the last 5 s.
    pub const RECEIVE_KBPS: &str = "ReceiveKbps";
    /// The E-model rating R.
    pub const R_FACTOR: &str = "RFactor";
    /// The MOS the E-model estimates, 1–4.5.
    pub const MOS: &str = "Mos";
    /// All keys, in order.
    pub const ALL: [&str; 10] = [
        LOSS_PERCENT,
        CALL_LOSS_PERCENT,
        UNRECOVERED_PERCENT,
        JITTER_MS,
        JITTER_BUFFER_MS,
        MOUTH_TO_EAR_MS,
        SEND_KBPS,
        RECEIVE_KBPS,
        R_FACTOR,
        MOS,
    ];
}

/// Longest string argument the daemon accepts, other than vCard text.
pub const MAX_ARG: usize = 4096;
/// Longest vCard text accepted by `ImportVCard` (1 MiB).
pub const MAX_VCARD: usize = 1 << 20;

/// Errors of the API, as `org.phoned.Phone1.Error.<Variant>`, each with a message.
#[derive(DBusError, Debug)]
#[zbus(prefix = "org.phoned.Phone1.Error")]
pub enum PhoneError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// Not connected to the relay.
    Offline(String),
    NotFound(String),
    InvalidArgument(String),
    InvalidNumber(String),
    /// Not possible in the current state.
    InvalidState(String),
    Busy(String),
    NumberTaken(String),
    PermissionDenied(String),
    QuotaExceeded(String),
    Timeout(String),
    /// The config file does not load (a reload kept the old one); the message names the key.
    InvalidConfig(String),
    /// Anything else that went wrong, with a message.
    Failed(String),
}

impl PhoneError {
    /// The D-Bus error name's last part, e.g. `NumberTaken` (or the raw name for others).
    pub fn kind(&self) -> String {
        use zbus::DBusError as _;
        let name = self.name().to_string();
        name.rsplit('.').next().unwrap_or(&name).to_owned()
    }

    /// The human-readable message.
    pub fn message(&self) -> String {
        use zbus::DBusError as _;
        match self {
            PhoneError::ZBus(e) => e.to_string(),
            other => other.description().unwrap_or_default().to_owned(),
        }
    }
}

/// Proxy of `org.phoned.Phone1.Manager` (its signal types live here).
pub mod manager {
    use super::*;

    #[proxy(
        interface = "org.phoned.Phone1.Manager",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait Manager {
        /// Object paths of the current calls.
        #[zbus(property)]
        fn calls(&self) -> zbus::Result<Vec<zbus::wire::OwnedObjectPath>>;
        #[zbus(property)]
        fn do_not_disturb(&self) -> zbus::Result<bool>;
        #[zbus(property)]
        fn set_do_not_disturb(&self, on: bool) -> zbus::Result<()>;
        /// `off`, `all` or `contacts`.
        #[zbus(property)]
        fn auto_answer(&self) -> zbus::Result<String>;
        #[zbus(property)]
        fn set_auto_answer(&self, mode: &str) -> zbus::Result<()>;
        /// The daemon's version.
        #[zbus(property)]
        fn version(&self) -> zbus::Result<String>;
        /// The latest audio problem of any call or voice message recording, or "".
        #[zbus(property)]
        fn audio_error(&self) -> zbus::Result<String>;
        /// Calls a number or a contact's name; returns the call's object.
        fn dial(
            &self,
            target: &str,
            options: std::collections::HashMap<&str, zbus::Variant<'_>>,
        ) -> Result<zbus::wire::OwnedObjectPath, PhoneError>;
        fn hangup_all(&self) -> Result<(), PhoneError>;
        /// Opens a conference inviting `numbers` (or contacts' names); returns its object.
        fn create_conference(
            &self,
            numbers: &[&str],
        ) -> Result<zbus::wire::OwnedObjectPath, PhoneError>;
        /// Merges the active and the held call into one conference; returns its object.
        fn merge(&self) -> Result<zbus::wire::OwnedObjectPath, PhoneError>;
        /// Re-reads the config file; returns each changed key and when it applies
        /// (`now`, `next-call`, `reconnect`).
        fn reload(&self) -> Result<std::collections::HashMap<String, String>, PhoneError>;
        /// The audio backend a call would use and its devices: (direction `input` or
        /// `output`, name, description, is the default).
        #[allow(clippy::type_complexity)]
        fn audio_devices(
            &self,
        ) -> Result<(String, Vec<(String, String, String, bool)>), PhoneError>;
        #[zbus(signal)]
        fn incoming_call(
            &self,
            call: zbus::wire::ObjectPath<'_>,
            number: String,
            name: String,
        ) -> zbus::Result<()>;
        #[zbus(signal)]
        fn call_removed(
            &self,
            call: zbus::wire::ObjectPath<'_>,
            reason: String,
        ) -> zbus::Result<()>;
    }
}

/// Proxy of `org.phoned.Phone1.Account` (its signal types live here).
pub mod account {
    use super::*;

    #[proxy(
        interface = "org.phoned.Phone1.Account",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait Account {
        /// Moves the account to another number; returns the new number.
        fn change_number(&self, number: &str) -> Result<String, PhoneError>;
        fn set_display_name(&self, name: &str) -> Result<(), PhoneError>;
        /// Sets the account password, so that the number can log in from another device.
        fn set_password(&self, password: &str) -> Result<(), PhoneError>;
        /// The relay fingerprint trusted, and where from: `config`, `learnt` or "".
        fn relay_trust(&self) -> Result<(String, String), PhoneError>;
        /// Forgets the fingerprint learnt on the first connection.
        fn forget_relay(&self) -> Result<(), PhoneError>;
        #[zbus(property)]
        fn number(&self) -> zbus::Result<String>;
        #[zbus(property)]
        fn display_name(&self) -> zbus::Result<String>;
        /// `offline`, `connecting` or `online`.
        #[zbus(property)]
        fn connection_state(&self) -> zbus::Result<String>;
        /// Why the link is down, or "".
        #[zbus(property)]
        fn last_error(&self) -> zbus::Result<String>;
        /// Unix ms.
        #[zbus(property)]
        fn created_at(&self) -> zbus::Result<u64>;
        /// The relay's address as configured.
        #[zbus(property)]
        fn relay(&self) -> zbus::Result<String>;
        /// Devices logged in to this account right now, this one included.
        #[zbus(property)]
        fn devices_online(&self) -> zbus::Result<u32>;
    }
}

/// Proxy of `org.phoned.Phone1.Presence` (its signal types live here).
pub mod presence {
    use super::*;

    #[proxy(
        interface = "org.phoned.Phone1.Presence",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait Presence {
        /// (number, name) of everyone online, this account excluded.
        fn list_online(&self) -> Result<Vec<(String, String)>, PhoneError>;
        #[zbus(signal)]
        fn changed(&self, number: String, name: String, online: bool) -> zbus::Result<()>;
    }
}

/// Proxy of `org.phoned.Phone1.Contacts` (its signal types live here).
pub mod contacts {
    use super::*;

    #[proxy(
        interface = "org.phoned.Phone1.Contacts",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait Contacts {
        /// Adds a contact; returns its id.
        fn add(&self, name: &str, number: &str) -> Result<String, PhoneError>;
        fn remove(&self, id: &str) -> Result<(), PhoneError>;
        fn rename(&self, id: &str, name: &str) -> Result<(), PhoneError>;
        /// (id, name, number), ordered by name.
        fn list(&self) -> Result<Vec<(String, String, String)>, PhoneError>;
        /// The contact whose name (case-insensitive), id or number is `query`.
        fn lookup(&self, query: &str) -> Result<(String, String, String), PhoneError>;
        /// Imports vCard 3.0/4.0 text; returns the ids of the contacts added (cards that
        /// cannot be saved are left out).
        #[zbus(name = "ImportVCard")]
        fn import_vcard(&self, text: &str) -> Result<Vec<String>, PhoneError>;
        /// As `import_vcard`, and why each card left out was left out.
        #[zbus(name = "ImportVCardReport")]
        fn import_vcard_report(&self, text: &str)
        -> Result<(Vec<String>, Vec<String>), PhoneError>;
        /// All contacts as vCard 4.0 text.
        #[zbus(name = "ExportVCard")]
        fn export_vcard(&self) -> Result<String, PhoneError>;
        #[zbus(signal)]
        fn changed(&self) -> zbus::Result<()>;
    }
}

/// Proxy of `org.phoned.Phone1.Call` (one object per call).
pub mod call {
    use super::*;

    #[proxy(
        interface = "org.phoned.Phone1.Call",
        default_service = "org.phoned.Phone1"
    )]
    pub trait Call {
        fn answer(&self) -> Result<(), PhoneError>;
        fn reject(&self, reason: &str) -> Result<(), PhoneError>;
        fn hangup(&self) -> Result<(), PhoneError>;
        fn hold(&self) -> Result<(), PhoneError>;
        fn resume(&self) -> Result<(), PhoneError>;
        fn send_dtmf(&self, digits: &str) -> Result<(), PhoneError>;
        /// Invites `number`: the call becomes (or is) a conference; its object.
        fn add_party(&self, number: &str) -> Result<zbus::wire::OwnedObjectPath, PhoneError>;
        #[zbus(property)]
        fn state(&self) -> zbus::Result<String>;
        #[zbus(property)]
        fn reason(&self) -> zbus::Result<String>;
        #[zbus(property)]
        fn direction(&self) -> zbus::Result<String>;
        #[zbus(property)]
        fn remote_number(&self) -> zbus::Result<String>;
        #[zbus(property)]
        fn remote_name(&self) -> zbus::Result<String>;
        /// The other side holds the call (`State` stays `active` unless this side holds
        /// it too).
        #[zbus(property)]
        fn remote_held(&self) -> zbus::Result<bool>;
        #[zbus(property)]
        fn muted(&self) -> zbus::Result<bool>;
        #[zbus(property)]
        fn set_muted(&self, muted: bool) -> zbus::Result<()>;
        #[zbus(property)]
        fn started_at(&self) -> zbus::Result<u64>;
        #[zbus(property)]
        fn answered_at(&self) -> zbus::Result<u64>;
        /// Why the call's audio does not fully work, or "".
        #[zbus(property)]
        fn audio_error(&self) -> zbus::Result<String>;
        /// The call's live quality while it is active (empty otherwise); keys in
        /// [`crate::dbus::quality`].
        #[zbus(property)]
        fn quality(&self) -> zbus::Result<std::collections::HashMap<String, zbus::OwnedVariant>>;
        #[zbus(signal)]
        fn dtmf_received(&self, digits: String) -> zbus::Result<()>;
    }
}

/// Proxy of `org.phoned.Phone1.Conference` (one object per conference).
pub mod conference {
    use super::*;

    #[proxy(
        interface = "org.phoned.Phone1.Conference",
        default_service = "org.phoned.Phone1"
    )]
    pub trait Conference {
        /// Invites `number` (host only).
        fn add(&self, number: &str) -> Result<(), PhoneError>;
        /// Takes `number` out (host only).
        fn remove(&self, number: &str) -> Result<(), PhoneError>;
        /// Hangs up this device's call in the conference.
        fn leave(&self) -> Result<(), PhoneError>;
        /// Every party: number, name, state, speaking.
        #[zbus(property)]
        fn parties(&self) -> zbus::Result<Vec<(String, String, String, bool)>>;
        /// The host's number.
        #[zbus(property)]
        fn host(&self) -> zbus::Result<String>;
        /// This device's call in the conference.
        #[zbus(property)]
        fn call(&self) -> zbus::Result<zbus::wire::OwnedObjectPath>;
    }
}

/// Proxy of `org.phoned.Phone1.History`.
pub mod history {
    use super::*;

    /// (number, name, direction, result, start ms, duration ms, missed).
    pub type Entry = (String, String, String, String, u64, u64, bool);

    #[proxy(
        interface = "org.phoned.Phone1.History",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait History {
        fn list(&self, limit: u32) -> Result<Vec<Entry>, PhoneError>;
        fn clear_missed(&self) -> Result<(), PhoneError>;
        #[zbus(property)]
        fn missed_count(&self) -> zbus::Result<u32>;
    }
}

/// Proxy of `org.phoned.Phone1.Messages`.
pub mod messages {
    use super::*;

    /// (id, peer, direction `in`/`out`, text, status, at Unix ms).
    pub type Row = (String, String, String, String, String, u64);

    #[proxy(
        interface = "org.phoned.Phone1.Messages",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait Messages {
        fn send(&self, to: &str, text: &str) -> Result<String, PhoneError>;
        fn history(&self, peer: &str, limit: u32) -> Result<Vec<Row>, PhoneError>;
        #[zbus(signal)]
        fn received(&self, id: String, from: String, text: String, at: u64) -> zbus::Result<()>;
        #[zbus(signal)]
        fn status_changed(&self, id: String, status: String) -> zbus::Result<()>;
    }
}

/// Proxy of `org.phoned.Phone1.Files`.
pub mod files {
    use super::*;

    /// (id, peer, direction, kind, name, path, size, status, at Unix ms).
    pub type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        u64,
        String,
        u64,
    );

    #[proxy(
        interface = "org.phoned.Phone1.Files",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait Files {
        /// Sends the regular file open at `file` (opened by the caller) as `name`.
        fn send_fd(
            &self,
            to: &str,
            file: zbus::wire::Fd<'_>,
            name: &str,
        ) -> Result<String, PhoneError>;
        /// Sends the file at an absolute `path`, opened by the daemon (session bus only).
        fn send(&self, to: &str, path: &str) -> Result<String, PhoneError>;
        fn list(&self) -> Result<Vec<Row>, PhoneError>;
        /// Why each failed transfer failed, by id.
        fn reasons(&self) -> Result<std::collections::HashMap<String, String>, PhoneError>;
        #[zbus(signal)]
        fn received(
            &self,
            id: String,
            from: String,
            name: String,
            path: String,
        ) -> zbus::Result<()>;
        #[zbus(signal)]
        fn progress(&self, id: String, done: u64, size: u64) -> zbus::Result<()>;
        #[zbus(signal)]
        fn status_changed(&self, id: String, status: String) -> zbus::Result<()>;
    }
}

/// Proxy of `org.phoned.Phone1.VoiceMessages`.
pub mod voice {
    use super::*;

    /// (id, peer, direction, path, duration ms, status, at Unix ms).
    pub type Row = (String, String, String, String, u64, String, u64);

    #[proxy(
        interface = "org.phoned.Phone1.VoiceMessages",
        default_service = "org.phoned.Phone1",
        default_path = "/org/phoned/Phone1"
    )]
    pub trait VoiceMessages {
        /// Sends the WAV file open at `wav` (opened by the caller) as a voice message.
        fn send_file_fd(&self, to: &str, wav: zbus::wire::Fd<'_>) -> Result<String, PhoneError>;
        /// Sends the WAV file at an absolute `wav_path`, opened by the daemon.
        fn send_file(&self, to: &str, wav_path: &str) -> Result<String, PhoneError>;
        fn record(&self, to: &str, seconds: u32) -> Result<String, PhoneError>;
        fn list(&self) -> Result<Vec<Row>, PhoneError>;
        fn play(&self, id: &str) -> Result<(), PhoneError>;
        #[zbus(signal)]
        fn received(&self, id: String, from: String, duration_ms: u32) -> zbus::Result<()>;
    }
}

pub use account::AccountProxy;
pub use call::CallProxy;
pub use conference::ConferenceProxy;
pub use contacts::ContactsProxy;
pub use files::FilesProxy;
pub use history::HistoryProxy;
pub use manager::ManagerProxy;
pub use messages::MessagesProxy;
pub use presence::PresenceProxy;
pub use voice::VoiceMessagesProxy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_paths_round_trip() {
        for n in [0, 1, 42, u32::MAX] {
            assert_eq!(parse_call_path(&call_path(n)), Some(n));
        }
    }

    #[test]
    fn other_paths_are_not_calls() {
        for p in [
            "",
            ROOT_PATH,
            "/org/phoned/Phone1/Call",
            "/org/phoned/Phone1/Call/",
            "/org/phoned/Phone1/Call/x",
            "/org/phoned/Phone1/Call/+1",
            "/org/phoned/Phone1/Call/-1",
            "/org/phoned/Phone1/Call/01",
            "/org/phoned/Phone1/Call/1/2",
            "/org/phoned/Phone1/Call/4294967296",
            "/org/phoned/Phone2/Call/1",
            "org/phoned/Phone1/Call/1",
        ] {
            assert_eq!(parse_call_path(p), None, "{p:?}");
        }
    }
}
