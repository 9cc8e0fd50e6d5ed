//! Daemon call engines against the relay's call router, on virtual time, in the spirit of
//! quinn-proto's `Pair::drive`: every device is a real [`Engine`], the relay is the real
//! [`Calls`] router with the few lines of `requests.rs`/`session.rs` around it (callee
//! lookup, responses before a request's events, media routes, departures), and between
//! them a queue of messages with a latency per link. Nothing here sleeps or spawns.
//!
//! The relay→device direction mirrors the daemon: events are handled in arrival order by
//! the link task, a response by the task that sent the request, so a response may come
//! late relative to the events after it (`Sim::response_jitter_ms`).

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use phone_relay::calls::{CallAction, CallError, CallIds, Callee, Caller, Calls};
use phone_relay::hub::SessionId;
use phone_relay::store::AccountId;
use phoned::call::engine::{Engine, Local, Output, Policy, Record};
use phoned_proto::call::{CallId, CallState, EndReason};
use phoned_proto::state::AutoAnswer;
use phoned_proto::{Event, Request};

/// A device's index in [`Sim::devices`].
pub type Dev = usize;

pub struct Account {
    pub id: AccountId,
    pub number: String,
    pub name: String,
}

/// One daemon: its engine, and what its adapters (D-Bus, notifications, media, history)
/// were told to do.
pub struct Device {
    pub name: &'static str,
    pub account: usize,
    pub engine: Engine,
    /// Its relay session while online.
    pub session: Option<SessionId>,
    /// One-way latency of its link to the relay.
    pub latency_ms: u64,
    pub dnd: bool,
    pub auto_answer: AutoAnswer,
    /// Calls that ring here now (Ring without StopRinging yet).
    pub ringing: BTreeSet<Local>,
    /// Calls whose media runs (`true`) or is paused (`false`).
    pub media: BTreeMap<Local, bool>,
    /// Why each call went away, in order.
    pub removed: Vec<(Local, EndReason)>,
    pub missed: Vec<Local>,
    pub history: Vec<Record>,
    pub dtmf: Vec<String>,
    /// Requests in flight whose response matters: a `Dial`'s local call.
    dials: HashMap<u64, Local>,
}

impl Device {
    /// The engine's calls, in local order.
    pub fn calls(&self) -> Vec<phoned::call::engine::Call> {
        self.engine.calls().cloned().collect()
    }

    pub fn call_for(&self, call: CallId) -> Option<phoned::call::engine::Call> {
        self.engine.calls().find(|c| c.relay == Some(call)).cloned()
    }
}

enum Msg {
    /// Device → relay, from `session`.
    Request {
        session: SessionId,
        id: u64,
        req: Request,
    },
    /// The relay notices that `session` is gone.
    SessionEnd(SessionId),
    /// Relay → the device holding `session`.
    Event(SessionId, Event),
    /// Relay → device: the answer to request `id` (only `Dial`'s matters to the engine).
    Placed {
        session: SessionId,
        id: u64,
        call: CallId,
    },
}

struct Queued {
    at: u64,
    seq: u64,
    msg: Msg,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    // BinaryHeap is a max-heap: the earliest message (then the first sent) is greatest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Sim {
    pub now: u64,
    pub accounts: Vec<Account>,
    pub devices: Vec<Device>,
    pub router: Calls,
    /// Installed media routes: (from session, call) → to session.
    pub routes: BTreeMap<(SessionId, CallId), SessionId>,
    /// Sessions the relay holds (logged in), and whose they are.
    pub sessions: BTreeMap<SessionId, Dev>,
    /// How long the relay takes to notice a lost link.
    pub detect_ms: u64,
    /// Extra delay before a device handles a response (see the module comment).
    pub response_jitter_ms: u64,
    queue: BinaryHeap<Queued>,
    seq: u64,
    next_session: SessionId,
    next_request: u64,
}

pub const RING_TIMEOUT_MS: u64 = 30_000;

impl Sim {
    /// Accounts A (device A), B (devices B1, B2) and C (device C), all online.
    pub fn new() -> Sim {
        let accounts = [
            (1, "1001", "Alice"),
            (2, "1002", "Bob"),
            (3, "1003", "Carol"),
        ]
        .into_iter()
        .map(|(id, number, name)| Account {
            id,
            number: number.into(),
            name: name.into(),
        })
        .collect();
        let mut sim = Sim {
            now: 0,
            accounts,
            devices: Vec::new(),
            router: Calls::new(RING_TIMEOUT_MS, CallIds::new([5; 32])),
            routes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            detect_ms: 0,
            response_jitter_ms: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            next_session: 1,
            next_request: 1,
        };
        for (name, account) in [("A", 0), ("B1", 1), ("B2", 1), ("C", 2)] {
            sim.devices.push(Device {
                name,
                account,
                engine: Engine::new(),
                session: None,
                latency_ms: 10,
                dnd: false,
                auto_answer: AutoAnswer::Off,
                ringing: BTreeSet::new(),
                media: BTreeMap::new(),
                removed: Vec::new(),
                missed: Vec::new(),
                history: Vec::new(),
                dtmf: Vec::new(),
                dials: HashMap::new(),
            });
            let dev = sim.devices.len() - 1;
            sim.connect(dev);
        }
        sim
    }

    pub fn dev(&self, name: &str) -> Dev {
        self.devices
            .iter()
            .position(|d| d.name == name)
            .unwrap_or_else(|| panic!("no device {name}"))
    }

    fn send(&mut self, delay: u64, msg: Msg) {
        self.seq += 1;
        self.queue.push(Queued {
            at: self.now + delay,
            seq: self.seq,
            msg,
        });
    }

    // ---- what the user does on a device ----

    pub fn dial(&mut self, dev: Dev, number: &str) -> Local {
        let now = self.now;
        let (local, out) = self.devices[dev]
            .engine
            .dial(number.to_owned(), String::new(), now);
        self.apply(dev, out);
        local
    }

    pub fn answer(&mut self, dev: Dev, local: Local) {
        if let Ok(out) = self.devices[dev].engine.answer(local) {
            self.apply(dev, out);
        }
    }

    pub fn reject(&mut self, dev: Dev, local: Local, busy: bool) {
        if let Ok(out) = self.devices[dev].engine.reject(local, busy) {
            self.apply(dev, out);
        }
    }

    pub fn hangup(&mut self, dev: Dev, local: Local) {
        let now = self.now;
        if let Ok(out) = self.devices[dev].engine.hangup(local, now) {
            self.apply(dev, out);
        }
    }

    pub fn hold(&mut self, dev: Dev, local: Local, held: bool) {
        if let Ok(out) = self.devices[dev].engine.hold(local, held) {
            self.apply(dev, out);
        }
    }

    pub fn send_dtmf(&mut self, dev: Dev, local: Local, digits: &str) {
        if let Ok(out) = self.devices[dev].engine.send_dtmf(local, digits.to_owned()) {
            self.apply(dev, out);
        }
    }

    /// The device's link drops: the daemon notices at once, the relay `detect_ms` later.
    /// Whatever was in flight on the link is lost.
    pub fn lose_link(&mut self, dev: Dev) {
        let Some(session) = self.devices[dev].session.take() else {
            return;
        };
        let now = self.now;
        let d = &mut self.devices[dev];
        d.dials.clear();
        let out = d.engine.link_lost(now);
        self.apply(dev, out);
        self.queue.retain(|q| match &q.msg {
            Msg::Request { session: s, .. } | Msg::Event(s, _) | Msg::Placed { session: s, .. } => {
                *s != session
            }
            Msg::SessionEnd(_) => true,
        });
        self.send(self.detect_ms, Msg::SessionEnd(session));
    }

    /// The device connects and logs in with a new session (instantly: the handshake
    /// matters to no call).
    pub fn connect(&mut self, dev: Dev) {
        if self.devices[dev].session.is_some() {
            return;
        }
        let sid = self.next_session;
        self.next_session += 1;
        self.devices[dev].session = Some(sid);
        self.sessions.insert(sid, dev);
    }

    // ---- the daemon's adapters ----

    fn policy(&self, dev: Dev) -> Policy {
        let d = &self.devices[dev];
        Policy {
            do_not_disturb: d.dnd,
            auto_answer: d.auto_answer,
            known_caller: false,
        }
    }

    /// Carries out an engine's outputs on device `dev`.
    fn apply(&mut self, dev: Dev, out: Vec<Output>) {
        for o in out {
            let d = &mut self.devices[dev];
            match o {
                Output::Send(local, req) => match d.session {
                    Some(session) => {
                        let id = self.next_request;
                        self.next_request += 1;
                        if matches!(req, Request::Dial { .. }) {
                            d.dials.insert(id, local);
                        }
                        let latency = d.latency_ms;
                        self.send(latency, Msg::Request { session, id, req });
                    }
                    None => {
                        let now = self.now;
                        let more = d.engine.request_failed(local, now);
                        self.apply(dev, more);
                    }
                },
                Output::Added(_) | Output::Changed(_) | Output::Conference(_) => {}
                Output::Removed(local, reason) => d.removed.push((local, reason)),
                Output::Ring(local) => {
                    assert!(d.ringing.insert(local), "{} rang twice", d.name);
                }
                // Also sent for an incoming call that never rang (do not disturb,
                // auto-answer): closing no notification is harmless.
                Output::StopRinging(local) => {
                    d.ringing.remove(&local);
                }
                Output::StartMedia { local, .. } => {
                    d.media.insert(local, true);
                }
                Output::PauseMedia(local) => {
                    d.media.insert(local, false);
                }
                Output::StopMedia(local) => {
                    assert!(
                        d.media.remove(&local).is_some(),
                        "{} stopped no media",
                        d.name
                    );
                }
                Output::DtmfReceived(_, digits) => d.dtmf.push(digits),
                Output::Missed(local) => d.missed.push(local),
                Output::Record(r) => d.history.push(r),
            }
        }
    }

    // ---- the relay ----

    /// Carries out the router's actions, as `Registry::dispatch_calls` does.
    fn relay_actions(&mut self, actions: Vec<CallAction>) {
        for a in actions {
            match a {
                CallAction::Send(sid, event) => {
                    if let Some(&dev) = self.sessions.get(&sid) {
                        let latency = self.devices[dev].latency_ms;
                        self.send(latency, Msg::Event(sid, event));
                    }
                }
                CallAction::Route { call, from, to } => {
                    if self.sessions.contains_key(&from) && self.sessions.contains_key(&to) {
                        self.routes.insert((from, call), to);
                    }
                }
                CallAction::Unroute { call, from } => {
                    self.routes.remove(&(from, call));
                }
                // This simulation places no conferences.
                CallAction::Room { .. } => {}
            }
        }
    }

    fn relay_request(&mut self, session: SessionId, id: u64, req: Request) {
        let Some(&dev) = self.sessions.get(&session) else {
            return;
        };
        let op = |r: Result<Vec<CallAction>, CallError>| r.unwrap_or_default();
        let actions = match req {
            Request::Dial { to } => {
                let callee = match self.accounts.iter().find(|a| a.number == to) {
                    Some(a) => Callee::Account {
                        id: a.id,
                        sessions: self
                            .sessions
                            .iter()
                            .filter(|&(_, &d)| self.accounts[self.devices[d].account].id == a.id)
                            .map(|(&s, _)| s)
                            .collect(),
                        number: a.number.clone(),
                        name: a.name.clone(),
                    },
                    None => Callee::Unknown,
                };
                let me = &self.accounts[self.devices[dev].account];
                let caller = Caller {
                    session,
                    account: me.id,
                    number: me.number.clone(),
                    name: me.name.clone(),
                };
                let (call, actions) = match self.router.dial(self.now, caller, callee) {
                    Ok(placed) => placed,
                    Err(reason) => self.router.failed(session, reason),
                };
                // The response is queued before the call's events (`after_reply`).
                let latency = self.devices[dev].latency_ms + self.response_jitter_ms;
                self.send(latency, Msg::Placed { session, id, call });
                actions
            }
            Request::Answer { call } => op(self.router.answer(session, call)),
            Request::Reject { call, reason } => op(self.router.reject(session, call, reason)),
            Request::Hangup { call } => op(self.router.hangup(session, call)),
            Request::Hold { call, held } => op(self.router.hold(session, call, held)),
            Request::Dtmf { call, digits } => op(self.router.dtmf(session, call, digits)),
            other => panic!("the engine sent {other:?}"),
        };
        self.relay_actions(actions);
    }

    /// The relay's side of a departure, in `session.rs`'s order: the router first, then
    /// the session and its routes are gone.
    fn relay_session_end(&mut self, session: SessionId) {
        let actions = self.router.session_left(session);
        self.relay_actions(actions);
        self.sessions.remove(&session);
        self.routes
            .retain(|&(from, _), to| from != session && *to != session);
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Request { session, id, req } => self.relay_request(session, id, req),
            Msg::SessionEnd(session) => self.relay_session_end(session),
            Msg::Event(session, event) => {
                let Some(dev) = self.device_of(session) else {
                    return;
                };
                let now = self.now;
                let policy = self.policy(dev);
                let engine = &mut self.devices[dev].engine;
                let out = match event {
                    Event::CallIncoming {
                        call,
                        from_number,
                        from_name,
                    } => engine.incoming(call, from_number, from_name, policy, now),
                    Event::CallState { call, phase } => engine.phase(call, phase, now),
                    Event::CallDtmf { call, digits } => engine.dtmf_received(call, digits),
                    Event::CallHold {
                        call,
                        by_me,
                        by_peer,
                    } => engine.hold_state(call, by_me, by_peer),
                    other => panic!("the router sent {other:?}"),
                };
                self.apply(dev, out);
            }
            Msg::Placed { session, id, call } => {
                let Some(dev) = self.device_of(session) else {
                    return;
                };
                if let Some(local) = self.devices[dev].dials.remove(&id) {
                    let out = self.devices[dev].engine.placed(local, call);
                    self.apply(dev, out);
                }
            }
        }
    }

    fn device_of(&self, session: SessionId) -> Option<Dev> {
        self.devices.iter().position(|d| d.session == Some(session))
    }

    /// When something next happens: a message arrives or a ring times out.
    fn next_event(&self) -> Option<u64> {
        let msg = self.queue.peek().map(|q| q.at);
        let ring = self.router.next_deadline();
        match (msg, ring) {
            (Some(m), Some(r)) => Some(m.min(r)),
            (m, r) => m.or(r),
        }
    }

    /// Runs until nothing is in flight and no ring timeout falls before `horizon`
    /// (virtual ms); time then stands at the last thing that happened, or at `horizon`
    /// if that is later.
    pub fn drive_until(&mut self, horizon: u64) {
        while let Some(at) = self.next_event().filter(|&at| at <= horizon) {
            self.now = self.now.max(at);
            if self.queue.peek().is_some_and(|q| q.at <= self.now) {
                let q = self.queue.pop().expect("peeked");
                self.deliver(q.msg);
            } else {
                let actions = self.router.tick(self.now);
                self.relay_actions(actions);
            }
        }
        self.now = self.now.max(horizon);
    }

    /// Runs for `ms` of virtual time.
    pub fn advance(&mut self, ms: u64) {
        self.drive_until(self.now + ms);
    }

    /// Runs until every message is delivered, short of ring timeouts.
    pub fn drive(&mut self) {
        while let Some(at) = self.queue.peek().map(|q| q.at) {
            self.drive_until(at);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The engine states of relay call `call`, per device that knows it.
    pub fn states(&self, call: CallId) -> Vec<(Dev, CallState)> {
        self.devices
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.call_for(call).map(|c| (i, c.state)))
            .collect()
    }

    /// Every relay call id some engine knows.
    pub fn relay_calls(&self) -> BTreeSet<CallId> {
        self.devices
            .iter()
            .flat_map(|d| d.engine.calls().filter_map(|c| c.relay))
            .collect()
    }

    pub fn end_reason(&self, dev: Dev, local: Local) -> Option<EndReason> {
        self.devices[dev]
            .removed
            .iter()
            .find(|(l, _)| *l == local)
            .map(|(_, r)| *r)
    }
}
