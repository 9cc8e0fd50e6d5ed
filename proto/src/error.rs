//! Typed errors the relay answers with. Codes are stable; messages are for people.

use serde::{Deserialize, Serialize};

/// What went wrong, as a stable code a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The client's protocol version is not one the relay speaks.
    UnsupportedVersion,
    /// A frame could not be decoded, or was not allowed at this point (e.g. not `Hello` first).
    ProtocolViolation,
    /// A request the relay does not know (a newer client); the connection stays up.
    UnknownRequest,
    /// The request needs a logged-in session.
    NotLoggedIn,
    /// `Login`, `Register` or `Provision` on a session that is already logged in.
    AlreadyLoggedIn,
    /// Unknown number or wrong password: deliberately the same error for both.
    InvalidCredentials,
    /// The account is disabled by an administrator.
    AccountDisabled,
    /// Too many failed attempts; `retry_after_ms` says when to try again.
    RateLimited,
    /// The number is not a valid number.
    InvalidNumber,
    /// The number belongs to someone else.
    NumberTaken,
    /// No free number is left in the relay's range.
    NumbersExhausted,
    /// The display name is empty, too long or has control characters.
    InvalidName,
    /// The password is too short or too long.
    InvalidPassword,
    /// This relay does not allow self-registration or provisioning.
    RegistrationClosed,
    /// The session was ended by the relay: account disabled, deleted or its password reset.
    SessionRevoked,
    /// The relay is overloaded or shutting down; try again later.
    Unavailable,
    /// A fault inside the relay; the request may be retried.
    Internal,
    /// No such call, or this session takes no part in it.
    NoSuchCall,
    /// The call is not in a phase that allows this (e.g. answering an active call).
    InvalidCallState,
    /// DTMF digits other than 0-9, *, #, A-D, or more than 32 at once.
    InvalidDtmf,
    /// The recipient's mailbox on the relay is full.
    QuotaExceeded,
    /// The message or file is larger than the relay accepts.
    TooLarge,
    /// No account has that number.
    UnknownNumber,
    /// The relay is short of disk space (below its reserve, `min_free_space_mib`), or
    /// unfinished uploads take all the room it allows them: try again later.
    OutOfSpace,
    /// (Protocol 3.) The conference already has its most parties (16).
    ConferenceFull,
    /// (Protocol 3.) Only the conference's host may add or remove parties.
    NotHost,
    /// (Protocol 3.) The number cannot be added or removed: it is the requester's own,
    /// already in the conference, not in it, or listed twice.
    InvalidParty,
}

/// An error answer: a code, a message for people, and a retry hint when rate limited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    /// Set with [`ErrorCode::RateLimited`]: milliseconds until the next attempt is allowed.
    pub retry_after_ms: Option<u32>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}

/// QUIC application close codes used by the relay.
pub mod close {
    /// Normal shutdown of the connection by either side.
    pub const NORMAL: u32 = 0;
    /// The peer broke the protocol (bad frame, oversized frame, wrong first message).
    pub const PROTOCOL: u32 = 1;
    /// The client's protocol version is not supported.
    pub const VERSION: u32 = 2;
    /// The session was revoked by an administrator.
    pub const REVOKED: u32 = 3;
    /// The client did not keep up with its event stream.
    pub const TOO_SLOW: u32 = 4;
    /// The relay is shutting down.
    pub const SHUTDOWN: u32 = 5;
    /// Nothing came from the peer for `liveness::SILENT_AFTER`: the link is taken as dead.
    pub const SILENT: u32 = 6;
}
