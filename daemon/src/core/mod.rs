//! The daemon's core, sans-IO: the call engine, the link and account status, the config
//! in effect, do-not-disturb and auto-answer, the ringer (when the device rings), and
//! every request it has issued to the relay. [`Core::handle`] takes the time and an [`Input`] (a command from D-Bus, an
//! event from the link, a relay answer) and returns the [`Effect`]s for the driver
//! (`crate::driver`) to carry out. No sockets, no clock, no locks, no tasks: the
//! driver owns the only `Core` and is the only code that touches it; the rest reads the
//! [`Snapshot`]s it publishes.
//!
//! [`link`] follows the link and the relay's events, [`calls`] turns the call engine's
//! outputs into effects, [`answers`] settles the requests it issued, [`audio`] keeps the
//! audio problems the media threads and the recorder report, [`quality`] each active
//! call's latest quality report. Its one timer is
//! the deadline of the oldest request the relay has not answered
//! ([`Core::next_deadline`]); when it passes, the request counts as timed out.

mod answers;
mod audio;
mod calls;
mod change;
mod error;
mod io;
mod link;
mod quality;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use phoned_proto::state::{AutoAnswer, ConnectionState};
use phoned_proto::{Request, Response};

use crate::call::engine::{Call, Engine, EngineError, Local};
use crate::call::quality::Quality;
use crate::config::Config;
use crate::reload;
use crate::ring::Ringer;

use answers::Purpose;
pub use audio::{AudioSource, AudioStatus};
pub use change::{Barrier, Change, Status};
pub use error::{CoreError, ErrorKind};
pub use io::{
    CallOp, Command, Effect, Input, LinkEvent, Media, Remember, Reply, ReplyTo, Setting, Token,
};

/// How long a request waits for the relay before it counts as failed (ms).
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// How incoming calls are treated, as set over D-Bus (and stored by the driver).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallSettings {
    pub do_not_disturb: bool,
    pub auto_answer: AutoAnswer,
}

/// What D-Bus property getters read: a copy made after each input.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: Status,
    pub calls: BTreeMap<Local, Call>,
    pub config: Arc<Config>,
    pub settings: CallSettings,
    pub audio: AudioStatus,
    /// The latest quality report of each active call.
    pub quality: BTreeMap<Local, Quality>,
}

pub struct Core {
    engine: Engine,
    status: Status,
    config: Arc<Config>,
    settings: CallSettings,
    audio: AudioStatus,
    quality: BTreeMap<Local, Quality>,
    /// A display name from a reload not yet told to the relay (we were offline).
    name_pending: Option<String>,
    /// A reload changed what the link uses: reconnect once no call is in progress.
    relink_pending: bool,
    /// Requests sent and not answered: why, and until when the answer may come.
    requests: HashMap<Token, (Purpose, u64)>,
    next_token: Token,
    effects: Vec<Effect>,
    /// When the device rings or plays the call-waiting tone.
    ringer: Ringer,
}

/// The error a command gets when the link is down.
fn offline() -> CoreError {
    CoreError::offline("not connected to the relay")
}

fn unexpected(r: &Response) -> CoreError {
    CoreError::failed(format!("unexpected answer: {r:?}"))
}

fn engine_error(e: EngineError) -> CoreError {
    match e {
        EngineError::NoSuchCall => CoreError::new(ErrorKind::NotFound, "the call has ended"),
        EngineError::InvalidState(s) => CoreError::new(
            ErrorKind::InvalidState,
            format!("not possible while the call is {}", s.as_str()),
        ),
        EngineError::HeldByOtherSide => CoreError::new(
            ErrorKind::InvalidState,
            "the other side holds the call: it resumes when they do",
        ),
    }
}
impl Core {
    pub fn new(config: Arc<Config>, settings: CallSettings) -> Core {
        Core {
            engine: Engine::new(),
            status: Status::default(),
            config,
            settings,
            audio: AudioStatus::default(),
            quality: BTreeMap::new(),
            name_pending: None,
            relink_pending: false,
            requests: HashMap::new(),
            next_token: 1,
            effects: Vec::new(),
            ringer: Ringer::new(),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.engine.calls()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            status: self.status.clone(),
            calls: self.engine.calls().map(|c| (c.local, c.clone())).collect(),
            config: self.config.clone(),
            settings: self.settings,
            audio: self.audio.clone(),
            quality: self.quality.clone(),
        }
    }

    /// When the oldest unanswered request times out (Unix ms), if any is waiting.
    pub fn next_deadline(&self) -> Option<u64> {
        self.requests.values().map(|(_, at)| *at).min()
    }

    /// Takes one input at `now_ms` (Unix ms) and returns what to do, in order.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        match input {
            Input::Command { command, reply } => self.command(now_ms, command, reply),
            Input::Link(event) => self.link(now_ms, event),
            Input::Answer { token, result } => {
                if let Some((purpose, _)) = self.requests.remove(&token) {
                    self.answer(now_ms, purpose, result);
                }
            }
            Input::Timeout => self.expire(now_ms),
            Input::Audio { source, problem } => self.audio(source, problem),
            Input::Quality { local, quality } => self.quality(local, quality),
        }
        self.settle_sound();
        std::mem::take(&mut self.effects)
    }

    fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    fn change(&mut self, change: Change) {
        self.push(Effect::Change(change));
    }

    fn reply(&mut self, to: Option<ReplyTo>, result: Result<Reply, CoreError>) {
        if let Some(to) = to {
            self.push(Effect::Reply { to, result });
        }
    }

    fn online(&self) -> bool {
        self.status.connection == ConnectionState::Online
    }

    /// Sends `request` for `purpose`, or settles it as offline at once.
    fn request(&mut self, now_ms: u64, request: Request, purpose: Purpose) {
        if !self.online() {
            self.answer(now_ms, purpose, Err(offline()));
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.requests
            .insert(token, (purpose, now_ms + REQUEST_TIMEOUT_MS));
        self.push(Effect::Send { token, request });
    }

    fn command(&mut self, now_ms: u64, command: Command, reply: Option<ReplyTo>) {
        match command {
            Command::Dial { number, name } => {
                if !self.online() {
                    return self.reply(reply, Err(offline()));
                }
                let (local, out) = self.engine.dial(number, name, now_ms);
                self.run_calls(now_ms, out);
                self.reply(reply, Ok(Reply::Call(local)));
            }
            Command::Call(local, op) => {
                let mute = match op {
                    CallOp::Mute(muted) => Some(muted),
                    _ => None,
                };
                let result = match op {
                    CallOp::Answer => self.engine.answer(local),
                    CallOp::Reject { busy } => self.engine.reject(local, busy),
                    CallOp::Hangup => self.engine.hangup(local, now_ms),
                    CallOp::Hold(held) => self.engine.hold(local, held),
                    CallOp::Dtmf(digits) => self.engine.send_dtmf(local, digits),
                    CallOp::Mute(muted) => self.engine.set_muted(local, muted).map(|_| {
                        // The property setter announces `Muted` itself: only the media
                        // needs telling.
                        vec![]
                    }),
                };
                match result {
                    Ok(out) => {
                        if let Some(muted) = mute {
                            self.push(Effect::Media(Media::Mute(local, muted)));
                        }
                        self.run_calls(now_ms, out);
                        self.reply(reply, Ok(Reply::Done));
                    }
                    Err(e) => self.reply(reply, Err(engine_error(e))),
                }
            }
            Command::CreateConference(numbers) => {
                if !self.online() {
                    return self.reply(reply, Err(offline()));
                }
                let (local, request) = self.engine.create_conference(numbers, now_ms);
                self.change(Change::CallAdded(local));
                self.change(Change::Conference(local));
                let purpose = Purpose::Conference {
                    local,
                    create: true,
                    reply,
                };
                self.request(now_ms, request, purpose);
            }
            Command::ConferenceAdd(local, number) => {
                match self.engine.conference_add(local, number) {
                    Ok(request) => self.conference_request(now_ms, local, request, reply),
                    Err(e) => self.reply(reply, Err(engine_error(e))),
                }
            }
            Command::ConferenceRemove(local, number) => {
                match self.engine.conference_remove(local, number) {
                    Ok(request) => self.conference_request(now_ms, local, request, reply),
                    Err(e) => self.reply(reply, Err(engine_error(e))),
                }
            }
            Command::Merge => match self.engine.merge() {
                Ok((local, request)) => self.conference_request(now_ms, local, request, reply),
                Err(_) => self.reply(
                    reply,
                    Err(CoreError::new(
                        ErrorKind::InvalidState,
                        "merging needs one active call and one call held here",
                    )),
                ),
            },
            Command::HangupAll => {
                let locals: Vec<Local> = self.engine.calls().map(|c| c.local).collect();
                for local in locals {
                    if let Ok(out) = self.engine.hangup(local, now_ms) {
                        self.run_calls(now_ms, out);
                    }
                }
                self.reply(reply, Ok(Reply::Done));
            }
            Command::SetDnd(on) => {
                self.settings.do_not_disturb = on;
                self.push(Effect::Save {
                    setting: Setting::DoNotDisturb(on),
                    reply,
                });
            }
            Command::SetAutoAnswer(mode) => {
                self.settings.auto_answer = mode;
                self.push(Effect::Save {
                    setting: Setting::AutoAnswer(mode),
                    reply,
                });
            }
            Command::Reload(new) => self.reload(now_ms, new, reply),
            Command::ChangeNumber(number) => self.request(
                now_ms,
                Request::ChangeNumber { number },
                Purpose::ChangeNumber(reply),
            ),
            Command::SetDisplayName(name) => self.request(
                now_ms,
                Request::SetDisplayName { name },
                Purpose::SetDisplayName(reply),
            ),
            Command::SetPassword(password) => self.request(
                now_ms,
                Request::SetPassword {
                    password: password.clone(),
                },
                Purpose::SetPassword(reply, password),
            ),
            Command::Relay(request) => self.request(now_ms, request, Purpose::Forward(reply)),
        }
    }

    fn reload(&mut self, now_ms: u64, new: Arc<Config>, reply: Option<ReplyTo>) {
        let changes = reload::diff(&self.config, &new);
        self.config = new;
        if changes.iter().any(|(k, _)| *k == "display_name") {
            self.name_pending = Some(self.config.display_name.clone());
            self.push_pending_name(now_ms);
        }
        if reload::needs_reconnect(&changes) {
            self.relink_pending = true;
            self.relink_if_idle();
        }
        self.reply(reply, Ok(Reply::Reloaded(changes)));
    }

    /// Sends a conference request about `local`; the caller waits for the relay.
    fn conference_request(
        &mut self,
        now_ms: u64,
        local: Local,
        request: Request,
        reply: Option<ReplyTo>,
    ) {
        let purpose = Purpose::Conference {
            local,
            create: false,
            reply,
        };
        self.request(now_ms, request, purpose);
    }

    /// Tells the relay the name a reload set, if online; else it waits for the next login.
    fn push_pending_name(&mut self, now_ms: u64) {
        if !self.online() {
            return;
        }
        if let Some(name) = self.name_pending.clone() {
            self.request(
                now_ms,
                Request::SetDisplayName { name: name.clone() },
                Purpose::PushName(name),
            );
        }
    }

    /// Reconnects for a reload once no call is in progress.
    fn relink_if_idle(&mut self) {
        if self.relink_pending && self.engine.calls().next().is_none() {
            self.relink_pending = false;
            self.push(Effect::Reconnect);
        }
    }
}
