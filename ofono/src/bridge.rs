//! The bridge's model, sans I/O: what phoned says about its calls goes in as [`Event`]s,
//! what oFono's clients must be told comes out as [`Output`]s (signals, in order), and
//! oFono's requests are checked against what the clients were last told.
//!
//! An oFono client sees one modem whose calls are phoned's: call `n` of phoned is
//! `/phoned/voicecall<n>` ([`crate::paths::call`]). Every event recomputes every call's
//! oFono properties and announces what changed with `PropertyChanged`, as oFono does: a
//! call's state can change because another call changed (an incoming call is `waiting`
//! while another is in progress, and `incoming` once it is alone).

use std::collections::{BTreeMap, VecDeque};

use phoned_proto::call::{CallDirection, CallState, EndReason};

use crate::start_time;
use crate::state::{self, DisconnectReason, OfonoState, PhoneOp, Waiting};

/// A value of an oFono property dict (`a{sv}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Strs(Vec<String>),
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

/// A property dict, in a fixed order.
pub type Props = Vec<(&'static str, Value)>;

/// The interface that makes a modem a phone for oFono clients.
pub const VOICE_CALL_MANAGER: &str = "org.ofono.VoiceCallManager";

/// A call as phoned shows it (`org.phoned.Phone1.Call` properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneCall {
    pub local: u32,
    pub state: CallState,
    pub direction: CallDirection,
    pub number: String,
    pub name: String,
    /// `AnsweredAt` (Unix ms), 0 until answered.
    pub answered_ms: u64,
}

/// What phoned (or the bridge's own requests to it) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// phoned is on its bus with these calls (at start, and each time it appears).
    Synced {
        calls: Vec<PhoneCall>,
        online: bool,
        number: String,
    },
    /// phoned left its bus: its calls are gone.
    Gone,
    /// `Manager.CallAdded`.
    Added(PhoneCall),
    /// `PropertiesChanged` of a call: the properties that changed.
    Changed {
        local: u32,
        state: Option<CallState>,
        reason: Option<EndReason>,
        answered_ms: Option<u64>,
    },
    /// `Manager.CallRemoved`.
    Removed { local: u32, reason: EndReason },
    /// The link to the relay came up or went down (`Account.ConnectionState`).
    Online(bool),
    /// The account's number changed (`Account.Number`).
    Number(String),
    /// The bridge asked phoned to end this call (for `DisconnectReason` `local`).
    EndingHere(u32),
}

/// What oFono clients are told, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `Modem.PropertyChanged`.
    ModemChanged(&'static str, Value),
    /// `VoiceCallManager.CallAdded`: export the call's object first.
    CallAdded { local: u32, props: Props },
    /// `VoiceCall.PropertyChanged` of call `local`.
    CallChanged {
        local: u32,
        name: &'static str,
        value: Value,
    },
    /// `VoiceCall.DisconnectReason`, just before the call's state becomes `disconnected`.
    DisconnectReason {
        local: u32,
        reason: DisconnectReason,
    },
    /// `VoiceCallManager.CallRemoved`: remove the call's object after it.
    CallRemoved { local: u32 },
}

/// Why an oFono request was refused (each becomes an `org.ofono.Error.<name>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `org.ofono.Error.Failed`: not possible in the call's state.
    #[error("{0}")]
    Failed(String),
    /// `org.ofono.Error.NotFound`: no such call (any more).
    #[error("{0}")]
    NotFound(String),
    /// `org.ofono.Error.InvalidFormat`: an argument oFono would not take.
    #[error("{0}")]
    InvalidFormat(String),
}

/// Settings that shape what clients see.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How a waiting call is shown.
    pub waiting: Waiting,
    /// The modem's `Revision` (the bridge's version).
    pub revision: String,
}

#[derive(Debug)]
struct Entry {
    call: PhoneCall,
    reason: Option<EndReason>,
    ended_here: bool,
    /// The properties clients were last told.
    told: Props,
}

/// How many ended calls are remembered for [`Bridge::seen`].
const GONE_KEPT: usize = 64;

/// The modem and its calls as oFono clients see them.
#[derive(Debug)]
pub struct Bridge {
    options: Options,
    /// phoned is on its bus (the modem then has a `VoiceCallManager`).
    present: bool,
    online: bool,
    number: String,
    calls: BTreeMap<u32, Entry>,
    /// Calls that ended lately, newest last.
    gone: VecDeque<u32>,
}

impl Bridge {
    /// phoned not seen yet: the modem has no calls and no `VoiceCallManager`.
    pub fn new(options: Options) -> Bridge {
        Bridge {
            options,
            present: false,
            online: false,
            number: String::new(),
            calls: BTreeMap::new(),
            gone: VecDeque::new(),
        }
    }

    /// The modem's properties (`Modem.GetProperties`, `Manager.GetModems`).
    pub fn modem_props(&self) -> Props {
        vec![
            ("Powered", Value::Bool(true)),
            ("Online", Value::Bool(self.online)),
            ("Lockdown", Value::Bool(false)),
            ("Emergency", Value::Bool(false)),
            ("Name", "phoned".into()),
            ("Manufacturer", "phoned".into()),
            ("Model", "phoned".into()),
            ("Revision", self.options.revision.as_str().into()),
            ("Serial", self.number.as_str().into()),
            ("Features", Value::Strs(Vec::new())),
            ("Interfaces", self.interfaces()),
            ("Type", "hardware".into()),
        ]
    }

    fn interfaces(&self) -> Value {
        let list = if self.present {
            vec![VOICE_CALL_MANAGER.to_owned()]
        } else {
            Vec::new()
        };
        Value::Strs(list)
    }

    /// The calls and their properties as last announced (`VoiceCallManager.GetCalls`).
    pub fn calls(&self) -> Vec<(u32, Props)> {
        self.calls
            .iter()
            .map(|(l, e)| (*l, e.told.clone()))
            .collect()
    }

    /// One call's properties as last announced (`VoiceCall.GetProperties`).
    pub fn call_props(&self, local: u32) -> Option<Props> {
        self.calls.get(&local).map(|e| e.told.clone())
    }

    /// Whether call `local` has been added (or added and removed lately).
    pub fn seen(&self, local: u32) -> bool {
        self.calls.contains_key(&local) || self.gone.contains(&local)
    }

    /// The oFono state clients were last told for call `local`.
    fn told_state(&self, local: u32) -> Result<OfonoState, Refusal> {
        let e = self
            .calls
            .get(&local)
            .ok_or_else(|| Refusal::NotFound(format!("no call {local}")))?;
        Ok(state_of(&e.told))
    }

    /// `VoiceCall.Answer`: what to ask phoned.
    pub fn answer(&self, local: u32) -> Result<PhoneOp, Refusal> {
        let s = self.told_state(local)?;
        state::answer(s).ok_or_else(|| Refusal::Failed(format!("the call is {s}, not incoming")))
    }

    /// `VoiceCall.Hangup`: what to ask phoned.
    pub fn hangup(&self, local: u32) -> Result<PhoneOp, Refusal> {
        let s = self.told_state(local)?;
        state::hangup(s).ok_or_else(|| Refusal::Failed("the call is already disconnected".into()))
    }

    /// The calls in oFono state `s`, in call order.
    fn in_state(&self, s: OfonoState) -> Vec<u32> {
        self.calls
            .iter()
            .filter(|(_, e)| state_of(&e.told) == s)
            .map(|(l, _)| *l)
            .collect()
    }

    /// `VoiceCallManager.SendTones`: the call that takes them (the active one) and the
    /// DTMF pieces to send it.
    pub fn send_tones(&self, tones: &str) -> Result<(u32, Vec<String>), Refusal> {
        let pieces = state::dtmf_pieces(tones)
            .ok_or_else(|| Refusal::InvalidFormat("tones are 0-9, *, #, A-D (no pauses)".into()))?;
        let local = *self
            .in_state(OfonoState::Active)
            .first()
            .ok_or_else(|| Refusal::Failed("no active call".into()))?;
        Ok((local, pieces))
    }

    /// The incoming (or waiting) call `HoldAndAnswer` and `ReleaseAndAnswer` answer.
    fn ringing_call(&self) -> Result<u32, Refusal> {
        self.calls
            .iter()
            .find(|(_, e)| state_of(&e.told).is_ringing_here())
            .map(|(l, _)| *l)
            .ok_or_else(|| Refusal::Failed("no incoming or waiting call".into()))
    }

    /// `VoiceCallManager.HoldAndAnswer`: answer the waiting call (phoned puts the active
    /// one on hold as it answers).
    pub fn hold_and_answer(&self) -> Result<Vec<(u32, PhoneOp)>, Refusal> {
        Ok(vec![(self.ringing_call()?, PhoneOp::Answer)])
    }

    /// `VoiceCallManager.ReleaseAndAnswer`: end the active calls, answer the waiting one.
    pub fn release_and_answer(&self) -> Result<Vec<(u32, PhoneOp)>, Refusal> {
        let answer = self.ringing_call()?;
        let mut ops: Vec<_> = self
            .in_state(OfonoState::Active)
            .into_iter()
            .map(|l| (l, PhoneOp::Hangup))
            .collect();
        ops.push((answer, PhoneOp::Answer));
        Ok(ops)
    }

    /// `VoiceCallManager.SwapCalls`: resume the held call (phoned holds the active one as
    /// it resumes), or hold the active call when none is held.
    pub fn swap_calls(&self) -> Result<Vec<(u32, PhoneOp)>, Refusal> {
        if let Some(held) = self.in_state(OfonoState::Held).first() {
            return Ok(vec![(*held, PhoneOp::Resume)]);
        }
        match self.in_state(OfonoState::Active).first() {
            Some(active) => Ok(vec![(*active, PhoneOp::Hold)]),
            None => Err(Refusal::Failed("no active or held call".into())),
        }
    }

    /// Applies one event; returns what clients must be told, in order.
    pub fn step(&mut self, event: Event) -> Vec<Output> {
        let mut out = Vec::new();
        match event {
            Event::Synced {
                calls,
                online,
                number,
            } => self.synced(calls, online, number, &mut out),
            Event::Gone => {
                let all: Vec<u32> = self.calls.keys().copied().collect();
                for local in all {
                    self.remove(local, Some(EndReason::Network), &mut out);
                }
                self.set_presence(false, false, &mut out);
            }
            Event::Added(call) => {
                // An ended call is about to be removed: nothing to show.
                if !self.calls.contains_key(&call.local) && call.state != CallState::Ended {
                    self.add(call, &mut out);
                }
            }
            Event::Changed {
                local,
                state,
                reason,
                answered_ms,
            } => {
                // An ended call stays ended.
                if let Some(e) = self
                    .calls
                    .get_mut(&local)
                    .filter(|e| e.call.state != CallState::Ended)
                {
                    if let Some(s) = state {
                        e.call.state = s;
                    }
                    if reason.is_some() {
                        e.reason = reason;
                    }
                    if let Some(ms) = answered_ms {
                        e.call.answered_ms = ms;
                    }
                    if e.call.state == CallState::Ended {
                        self.disconnect(local, &mut out);
                    }
                }
            }
            Event::Removed { local, reason } => self.remove(local, Some(reason), &mut out),
            Event::Online(online) => {
                let present = self.present;
                self.set_presence(present, online, &mut out);
            }
            Event::Number(number) => {
                if number != self.number {
                    self.number = number;
                    out.push(Output::ModemChanged("Serial", self.number.as_str().into()));
                }
            }
            Event::EndingHere(local) => {
                if let Some(e) = self.calls.get_mut(&local) {
                    e.ended_here = true;
                }
            }
        }
        self.announce_changes(&mut out);
        out
    }

    fn synced(
        &mut self,
        calls: Vec<PhoneCall>,
        online: bool,
        number: String,
        out: &mut Vec<Output>,
    ) {
        self.set_presence(true, online, out);
        if number != self.number {
            self.number = number;
            out.push(Output::ModemChanged("Serial", self.number.as_str().into()));
        }
        let calls: Vec<PhoneCall> = calls
            .into_iter()
            .filter(|c| c.state != CallState::Ended)
            .collect();
        let stale: Vec<u32> = self
            .calls
            .keys()
            .filter(|l| !calls.iter().any(|c| c.local == **l))
            .copied()
            .collect();
        // Ended while phoned was out of sight.
        for local in stale {
            self.remove(local, Some(EndReason::Network), out);
        }
        for call in calls {
            match self.calls.get_mut(&call.local) {
                // A call phoned numbered anew after a restart is another call.
                Some(e)
                    if e.call.state == CallState::Ended
                        || e.call.direction != call.direction
                        || e.call.number != call.number =>
                {
                    let local = call.local;
                    self.remove(local, Some(EndReason::Network), out);
                    self.add(call, out);
                }
                Some(e) => e.call = call,
                None => self.add(call, out),
            }
        }
    }

    fn set_presence(&mut self, present: bool, online: bool, out: &mut Vec<Output>) {
        if present != self.present {
            self.present = present;
            out.push(Output::ModemChanged("Interfaces", self.interfaces()));
        }
        if online != self.online {
            self.online = online;
            out.push(Output::ModemChanged("Online", Value::Bool(online)));
        }
    }

    fn add(&mut self, call: PhoneCall, out: &mut Vec<Output>) {
        let local = call.local;
        self.gone.retain(|l| *l != local);
        let mut entry = Entry {
            call,
            reason: None,
            ended_here: false,
            told: Vec::new(),
        };
        entry.told = self.view(&entry);
        out.push(Output::CallAdded {
            local,
            props: entry.told.clone(),
        });
        self.calls.insert(local, entry);
    }

    /// The call ended: `DisconnectReason` (the state change follows from the view).
    fn disconnect(&mut self, local: u32, out: &mut Vec<Output>) {
        let Some(e) = self.calls.get(&local) else {
            return;
        };
        if state_of(&e.told) == OfonoState::Disconnected {
            return;
        }
        out.push(Output::DisconnectReason {
            local,
            reason: state::disconnect_reason(e.reason, e.ended_here),
        });
    }

    /// The call is gone: it is disconnected first if it was not yet, then removed.
    fn remove(&mut self, local: u32, reason: Option<EndReason>, out: &mut Vec<Output>) {
        let Some(e) = self.calls.get_mut(&local) else {
            return;
        };
        e.call.state = CallState::Ended;
        if reason.is_some() {
            e.reason = reason;
        }
        if state_of(&e.told) != OfonoState::Disconnected {
            self.disconnect(local, out);
            out.push(Output::CallChanged {
                local,
                name: "State",
                value: OfonoState::Disconnected.as_str().into(),
            });
        }
        self.calls.remove(&local);
        out.push(Output::CallRemoved { local });
        self.gone.push_back(local);
        while self.gone.len() > GONE_KEPT {
            self.gone.pop_front();
        }
    }

    /// A call's oFono properties as they are now.
    fn view(&self, e: &Entry) -> Props {
        let c = &e.call;
        let others = self
            .calls
            .values()
            .any(|o| o.call.local != c.local && state::in_progress(o.call.state));
        let ofono = state::to_ofono(c.state, others, self.options.waiting);
        let mut props: Props = vec![
            ("LineIdentification", c.number.as_str().into()),
            ("Name", c.name.as_str().into()),
            ("State", ofono.as_str().into()),
            ("Multiparty", Value::Bool(false)),
            ("RemoteHeld", Value::Bool(false)),
            ("RemoteMultiparty", Value::Bool(false)),
            ("Emergency", Value::Bool(false)),
        ];
        if c.answered_ms > 0 {
            props.push(("StartTime", start_time::format(c.answered_ms).into()));
        }
        props
    }

    /// `PropertyChanged` for each call property that differs from what was told.
    fn announce_changes(&mut self, out: &mut Vec<Output>) {
        let locals: Vec<u32> = self.calls.keys().copied().collect();
        for local in locals {
            let Some(e) = self.calls.get(&local) else {
                continue;
            };
            let now = self.view(e);
            let told = &e.told;
            for (name, value) in &now {
                if told.iter().any(|(n, v)| n == name && v == value) {
                    continue;
                }
                out.push(Output::CallChanged {
                    local,
                    name,
                    value: value.clone(),
                });
            }
            if let Some(e) = self.calls.get_mut(&local) {
                e.told = now;
            }
        }
    }
}

/// The `State` in a property dict.
fn state_of(props: &Props) -> OfonoState {
    props
        .iter()
        .find_map(|(n, v)| match (n, v) {
            (&"State", Value::Str(s)) => s.parse().ok(),
            _ => None,
        })
        .unwrap_or(OfonoState::Disconnected)
}

#[cfg(test)]
mod tests;
