//! The core's vocabulary with the world: [`Input`]s the driver feeds it (commands from
//! D-Bus, events from the link, answers to the requests it issued, the clock, audio
//! device problems, call quality) and the
//! [`Effect`]s it asks the driver to carry out.

use std::sync::Arc;

use phoned_proto::call::CallId;
use phoned_proto::state::AutoAnswer;
use phoned_proto::{AccountInfo, Event, Request, Response, StoredFile, StoredMessage};

use super::audio::AudioSource;
use super::change::Change;
use super::error::CoreError;
use crate::call::engine::{Local, Record};
use crate::call::quality::Quality;
use crate::config::Config;
use crate::reload;
use crate::ring::Sound;

/// Names a waiting caller; the driver keeps the way back to it.
pub type ReplyTo = u64;
/// Names a request the core issued to the relay; its answer comes back with it.
pub type Token = u64;

/// What a D-Bus caller (or a notification action, or SIGHUP) asks of the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Call `number` (already resolved from a contact name); replies [`Reply::Call`].
    Dial {
        number: String,
        name: String,
    },
    /// An action on one call.
    Call(Local, CallOp),
    /// Opens a conference with these numbers; replies [`Reply::Call`] (the conference's
    /// call) once the relay has placed it.
    CreateConference(Vec<String>),
    /// Adds a number to the conference `Local` is, or turns the call into one; replies
    /// [`Reply::Call`] once the relay accepted.
    ConferenceAdd(Local, String),
    /// The host takes a number out of conference `Local`.
    ConferenceRemove(Local, String),
    /// Merges the active call and the held one into a conference; replies [`Reply::Call`].
    Merge,
    HangupAll,
    /// Do-not-disturb on or off; replies once it is stored.
    SetDnd(bool),
    SetAutoAnswer(AutoAnswer),
    /// Puts a config already read and checked into effect; replies [`Reply::Reloaded`].
    Reload(Arc<Config>),
    /// Moves the account to a new number; replies [`Reply::Number`].
    ChangeNumber(String),
    SetDisplayName(String),
    SetPassword(String),
    /// Any other request to the relay (messages, acks); replies [`Reply::Response`].
    Relay(Request),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOp {
    Answer,
    /// Decline a ringing call, as busy or as rejected.
    Reject {
        busy: bool,
    },
    Hangup,
    /// Hold (`true`) or resume (`false`).
    Hold(bool),
    Mute(bool),
    Dtmf(String),
}

/// What the link reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    Connecting,
    /// Logged in: the account and who else is online.
    Online {
        account: AccountInfo,
        online: Vec<(String, String)>,
    },
    /// The link is down; `why` is kept for `LastError`.
    Offline {
        why: Option<String>,
    },
    /// The relay pushed an event. `caller_known` says whether the caller of a
    /// `CallIncoming` is a contact (auto-answer `contacts` needs it; the store knows).
    Relay {
        event: Event,
        caller_known: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A command; `reply` names the caller waiting for its answer, if one waits.
    Command {
        command: Command,
        reply: Option<ReplyTo>,
    },
    Link(LinkEvent),
    /// The relay's answer to request `token` (or why there is none).
    Answer {
        token: Token,
        result: Result<Response, CoreError>,
    },
    /// The time given by [`super::Core::next_deadline`] has come.
    Timeout,
    /// A call's media or the voice recorder says what is wrong with its audio devices
    /// now (`None`: they work).
    Audio {
        source: AudioSource,
        problem: Option<String>,
    },
    /// A call's media measured its quality (once a second while it is active).
    Quality {
        local: Local,
        quality: Quality,
    },
}

/// What a command succeeded with.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Done,
    /// The new call of a `Dial`.
    Call(Local),
    /// The changed config keys and when each applies.
    Reloaded(Vec<reload::Change>),
    /// The account's new number.
    Number(String),
    Response(Response),
}

/// A setting the driver stores (the store owns its keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    DoNotDisturb(bool),
    AutoAnswer(AutoAnswer),
}

/// A change to the stored credentials (only made when the config has none of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remember {
    Number(String),
    Password(String),
}

/// What a call's media should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Start (or resume from hold) sending and receiving as `source`.
    Start {
        local: Local,
        call: CallId,
        source: u32,
        muted: bool,
    },
    /// On hold: send nothing, play silence, keep the devices.
    Pause(Local),
    Stop(Local),
    Mute(Local, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send `request` to the relay; its answer comes back as [`Input::Answer`].
    Send {
        token: Token,
        request: Request,
    },
    /// Answer a waiting caller.
    Reply {
        to: ReplyTo,
        result: Result<Reply, CoreError>,
    },
    /// Announce on D-Bus.
    Change(Change),
    Media(Media),
    /// What the device should sound for incoming calls now (ring, waiting tone, nothing).
    /// A `Silent` comes before the `Media` effects of its batch, a sound to start after
    /// them (see `ring::ringer`).
    Sound(Sound),
    /// A finished call for the history.
    Record(Record),
    /// Store a setting, then answer `reply` with how that went.
    Save {
        setting: Setting,
        reply: Option<ReplyTo>,
    },
    Remember(Remember),
    /// Drop the link and connect again at once (a reload changed what it uses).
    Reconnect,
    /// The link is up: send what waited in the outboxes.
    FlushOutbox,
    /// A text message arrived: for the messages adapter.
    Message(StoredMessage),
    /// A file is offered: for the files adapter.
    File(StoredFile),
    /// A receipt for something we sent (a text or a file).
    Delivered {
        client_id: String,
        id: phoned_proto::MessageId,
    },
}
