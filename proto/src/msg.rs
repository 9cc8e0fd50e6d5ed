//! The control messages between a device (client) and the relay.
//!
//! Every client frame is a [`ClientFrame`]: a request id chosen by the client and a
//! [`Request`]. The relay answers each with [`ServerMsg::Response`] echoing the id, and
//! pushes [`ServerMsg::Event`]s at any time. The first request must be [`Request::Hello`].
//! Append new variants at the end only: postcard encodes variants by index.

use serde::{Deserialize, Serialize};

use crate::call::{CallId, CallPhase, EndReason};
use crate::conference::Roster;
use crate::error::WireError;
use crate::names::string_enum;

/// One frame from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Echoed in the response. The id comes first on the wire so that the relay can
    /// answer even a request it cannot decode.
    pub id: u32,
    pub req: Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u16,
    /// Free-form client name and version, for logs (e.g. `phoned/0.1.0`).
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Must be the first request on a connection. Answered by [`Response::Welcome`].
    Hello(Hello),
    /// A device without an account asks for a free number. The relay creates the account
    /// with a random secret, logs the session in, and answers [`Response::Provisioned`].
    Provision {
        display_name: String,
    },
    /// Creates an account with a chosen number and password and logs the session in.
    Register {
        number: String,
        password: String,
        display_name: String,
    },
    /// Logs the session in. Answered by [`Response::LoggedIn`].
    Login {
        number: String,
        password: String,
    },
    /// The logged-in account's information.
    AccountInfo,
    SetDisplayName {
        name: String,
    },
    /// Sets a new password so that the same number can log in from another device.
    SetPassword {
        password: String,
    },
    /// Moves the account to another number, atomically. Answered by [`Response::Account`].
    ChangeNumber {
        number: String,
    },
    /// The accounts online now. Answered by [`Response::Online`].
    ListOnline,
    /// Answered by [`Response::Pong`] with the same nonce.
    Ping {
        nonce: u64,
    },
    /// Calls a number. Answered by [`Response::CallPlaced`]; the call's progress then
    /// arrives as [`Event::CallState`].
    Dial {
        to: String,
    },
    /// Answers a ringing call on this device; the other devices stop ringing.
    Answer {
        call: CallId,
    },
    /// Declines a ringing call (`Rejected`, or `Busy` for do-not-disturb).
    Reject {
        call: CallId,
        reason: EndReason,
    },
    /// Ends a call in any phase.
    Hangup {
        call: CallId,
    },
    /// Puts the call on hold (`true`) or resumes it (`false`).
    Hold {
        call: CallId,
        held: bool,
    },
    /// Sends DTMF digits to the other party, reliably, in order.
    Dtmf {
        call: CallId,
        digits: String,
    },
    /// Stores a text message for `to` and delivers it now or when `to` next comes online.
    /// Answered by [`Response::Stored`] once it is on the relay's disk. Retrying with the
    /// same `client_id` never stores it twice.
    SendMessage {
        client_id: String,
        to: String,
        text: String,
    },
    /// The recipient has stored message `id` itself: the relay deletes its copy and tells
    /// the sender.
    Delivered {
        id: MessageId,
    },
    /// (Protocol 2.) The sender has recorded the receipt [`Event::MessageDelivered`] for
    /// its message `id`: the relay forgets the receipt. Until then it pushes the receipt
    /// again on every login of the sender.
    ReceiptSeen {
        id: MessageId,
    },
    /// [`Request::Login`] from a device that may have logged in before: `token` is the
    /// one the relay gave it last time, if any. A valid token lets the device past a
    /// back-off that strangers' failed logins put on its number; the password is checked
    /// all the same. Answered by [`Response::DeviceLoggedIn`] with the token to keep.
    DeviceLogin {
        number: String,
        password: String,
        token: Option<String>,
    },
    /// A login token for this device, for a session that logged in without one (right
    /// after `Provision` or `Register`). Answered by [`Response::DeviceToken`].
    DeviceToken,
    /// (Protocol 3.) Starts a conference hosted by this session and invites `numbers`
    /// (1..=15, distinct, not the host's own): every online device of each rings. Answered
    /// by [`Response::ConferencePlaced`]; this session joins at once (`CallState` active),
    /// and the invitees' fates arrive in [`Event::ConferenceRoster`]s.
    ConferenceCreate {
        numbers: Vec<String>,
    },
    /// (Protocol 3.) Invites `number` into conference `call` (host only), or turns the
    /// answered two-party call `call` into a conference hosted by this session and invites
    /// `number`. Answered by [`Response::ConferencePlaced`].
    ConferenceAdd {
        call: CallId,
        number: String,
    },
    /// (Protocol 3.) The host takes `number` out of conference `call` (ringing or in it).
    ConferenceRemove {
        call: CallId,
        number: String,
    },
    /// (Protocol 3.) Merges two answered calls of this session into one conference hosted
    /// by it; all three parties stay in. Answered by [`Response::ConferencePlaced`].
    ConferenceMerge {
        first: CallId,
        second: CallId,
    },
    /// This session beats (docs/protocol.md §16.7): the relay is to close it (close code
    /// `SILENT`) once nothing has come from it, on its connection or on the media plane,
    /// for `silent_after_ms` (taken between 1 000 and 60 000). Answered by
    /// [`Response::Done`]. Not tied to a protocol version: a relay from before it answers
    /// `UnknownRequest` (§3.3) and watches nothing.
    Watch {
        silent_after_ms: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
    /// Relay software name and version, for logs.
    pub relay: String,
    /// The largest frame the relay accepts, in bytes.
    pub max_frame: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub number: String,
    pub display_name: String,
    /// Unix time in milliseconds.
    pub created_ms: u64,
    /// Sessions of this account logged in right now (this one included).
    pub devices_online: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineUser {
    pub number: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Welcome(Welcome),
    /// The answer to `Provision`: keep `number` and `secret` to log in next time.
    Provisioned {
        account: AccountInfo,
        secret: String,
    },
    /// The answer to `Login` and `Register`.
    LoggedIn(AccountInfo),
    /// The answer to `AccountInfo`, `SetDisplayName` and `ChangeNumber`.
    Account(AccountInfo),
    /// A request that has nothing to return succeeded.
    Done,
    Online(Vec<OnlineUser>),
    Pong {
        nonce: u64,
    },
    /// The answer to `Dial`: the relay's id of the new call.
    CallPlaced {
        call: CallId,
    },
    /// The answer to `SendMessage`: the message is durably stored on the relay.
    Stored {
        id: MessageId,
    },
    /// The answer to `DeviceLogin`: keep `token` with the credentials and send it at the
    /// next login (it changes when the password does).
    DeviceLoggedIn {
        account: AccountInfo,
        token: String,
    },
    /// The answer to `DeviceToken`.
    DeviceToken {
        token: String,
    },
    /// (Protocol 3.) The conference a `ConferenceCreate`, `ConferenceAdd` or
    /// `ConferenceMerge` made or added to.
    ConferencePlaced {
        conference: CallId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Someone came online (first device) or went offline (last device), or an online
    /// account changed its name or number (sent as offline for the old number, online
    /// for the new one).
    Presence {
        number: String,
        name: String,
        online: bool,
    },
    /// This session's own account changed (from another device or an administrator).
    AccountChanged(AccountInfo),
    /// Someone calls this account; every online device of it gets this and rings.
    CallIncoming {
        call: CallId,
        from_number: String,
        from_name: String,
    },
    /// A call this session takes part in changed phase.
    CallState { call: CallId, phase: CallPhase },
    /// The other party sent DTMF digits.
    CallDtmf { call: CallId, digits: String },
    /// A message for this account. Ack with `Delivered` after storing it; until then it
    /// is sent again on every login.
    Message(StoredMessage),
    /// A message this account sent was delivered. In protocol 2 the relay keeps it until
    /// a device answers [`Request::ReceiptSeen`]; in protocol 1 it forgets it once sent.
    MessageDelivered { client_id: String, id: MessageId },
    /// A file (or voice message) for this account: fetch it on a bulk stream with
    /// [`BulkRequest::Download`], then ack with `Delivered`.
    File(StoredFile),
    /// (Protocol 3.) Who holds an answered call now, as this party sees it: sent to both
    /// parties after every hold or resume, right after their [`Event::CallState`], which
    /// cannot tell a call both sides hold from one only this side holds.
    CallHold {
        call: CallId,
        by_me: bool,
        by_peer: bool,
    },
    /// (Protocol 3.) This account is invited into a conference: every online device of it
    /// gets this and rings. Answer, reject and hang up with the call requests on
    /// `conference`.
    ConferenceIncoming {
        conference: CallId,
        /// Who invited (the host).
        from_number: String,
        from_name: String,
    },
    /// (Protocol 3.) This session's call `call` now goes on as conference `conference`
    /// (a merge or an add turned it into one): same parties, new id and media source.
    ConferenceMoved { call: CallId, conference: CallId },
    /// (Protocol 3.) Who is in conference `conference` now; sent to every party in the
    /// room on each change.
    ConferenceRoster { conference: CallId, roster: Roster },
    /// (Protocol 4.) Right after the login's answer, when the relay has a UDP media
    /// plane: this session's media id, and the UDP port (on the relay's address) to send
    /// its media packets to. The keys come from the connection's TLS exporter
    /// ([`crate::plane::packet`]); docs/protocol.md §16.
    MediaPlane { id: u32, port: u16 },
}

impl Event {
    /// The first protocol version that has this event: a session speaking an older one
    /// is never sent it (its decoder would not know the variant).
    pub fn since(&self) -> u16 {
        match self {
            Event::CallHold { .. }
            | Event::ConferenceIncoming { .. }
            | Event::ConferenceMoved { .. }
            | Event::ConferenceRoster { .. } => 3,
            Event::MediaPlane { .. } => 4,
            Event::Presence { .. }
            | Event::AccountChanged(_)
            | Event::CallIncoming { .. }
            | Event::CallState { .. }
            | Event::CallDtmf { .. }
            | Event::Message(_)
            | Event::MessageDelivered { .. }
            | Event::File(_) => 1,
        }
    }
}

string_enum! {
    /// What a stored file is (also D-Bus `Files.List`'s kind).
    #[derive(Serialize, Deserialize)]
    pub enum FileKind as "file kind" {
        File = "file",
        /// An Ogg Opus voice message.
        Voice = "voice",
    }
}

/// A file waiting on the relay, as announced to its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub id: MessageId,
    pub from_number: String,
    pub from_name: String,
    /// The sender's file name: untrusted, sanitise before use.
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub kind: FileKind,
    pub sent_ms: u64,
}

/// The first frame on a bulk stream (a bidirectional stream opened by the client for
/// one upload or download, so transfers never delay signalling or voice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkRequest {
    /// Upload a file for `to`. The relay answers `Resume` with how many bytes it already
    /// has from an earlier, broken upload of the same `client_id`; the client sends the
    /// rest and finishes its side; the relay checks the SHA-256 and answers `Stored`.
    Upload {
        client_id: String,
        to: String,
        name: String,
        size: u64,
        sha256: [u8; 32],
        kind: FileKind,
    },
    /// Download file `id` from `offset`: the relay answers `Sending` and then the bytes.
    Download { id: MessageId, offset: u64 },
}

/// The relay's frames on a bulk stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkReply {
    Resume { offset: u64 },
    Stored { id: MessageId },
    Sending { size: u64, offset: u64 },
    Error(WireError),
}

/// A relay-assigned message id.
pub type MessageId = u64;

/// A stored text message as it reaches its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: MessageId,
    pub from_number: String,
    pub from_name: String,
    pub text: String,
    /// When the relay stored it (Unix ms).
    pub sent_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMsg {
    Response {
        id: u32,
        result: Result<Response, WireError>,
    },
    Event(Event),
    /// The relay is about to close the connection, and why.
    Goodbye(WireError),
}
