//! The one task that owns the call router ([`Calls`]). Sessions send it their call
//! requests and departures over a channel ([`Router`]); between commands it sleeps
//! exactly until the next ring timeout ([`Calls::next_deadline`]), the way quinn's driver
//! sleeps until `poll_timeout`. A command can move that deadline (a new ringing call, a
//! reload's ring timeout), and it wakes the task anyway, so the deadline is read afresh
//! before every wait. Nothing else touches the router, so no lock guards it.
//!
//! A request's actions go back to its session, which applies them after its response is
//! queued (a client sees `CallPlaced` before the call's first event); the task applies
//! the actions nobody asked for (ring timeouts, departures) itself.

use std::future::Future;
use std::time::{Duration, Instant};

use phoned_proto::call::{CallId, EndReason};
use smol::channel::{Receiver, Sender};
use thiserror::Error;

use crate::calls::{CallAction, CallError, Callee, Caller, Calls};
use crate::conference::Invitee;
use crate::hub::SessionId;

/// What a session asks of an existing call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Answer(CallId),
    Reject(CallId, EndReason),
    Hangup(CallId),
    Hold(CallId, bool),
    Dtmf(CallId, String),
    /// The host takes a number out of a conference.
    Remove(CallId, String),
    /// The party a relay link stands for ended the call ([`Calls::ended_by`]).
    Ended(CallId, EndReason),
}

impl Op {
    fn call(&self) -> CallId {
        match *self {
            Op::Answer(id)
            | Op::Reject(id, _)
            | Op::Hangup(id)
            | Op::Hold(id, _)
            | Op::Dtmf(id, _)
            | Op::Remove(id, _)
            | Op::Ended(id, _) => id,
        }
    }
}

/// A conference request that answers with the room's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoomOp {
    Create {
        host: Caller,
        invitees: Vec<Invitee>,
    },
    Add {
        call: CallId,
        invitee: Invitee,
    },
    Merge {
        first: CallId,
        second: CallId,
    },
}

pub(crate) enum Command {
    Dial {
        caller: Caller,
        callee: Callee,
        reply: Sender<(CallId, Vec<CallAction>)>,
    },
    Op {
        sid: SessionId,
        op: Op,
        reply: Sender<Result<Vec<CallAction>, CallError>>,
    },
    Room {
        sid: SessionId,
        op: RoomOp,
        reply: Sender<Result<(CallId, Vec<CallAction>), CallError>>,
    },
    /// A call another relay placed, with its id (the callee's side of a call between
    /// relays); a failure comes back as an `Ended` state for the caller.
    DialAs {
        call: CallId,
        caller: Caller,
        callee: Callee,
        reply: Sender<Vec<CallAction>>,
    },
    /// The session is gone; `done` hears once its calls' actions are applied.
    Left {
        sid: SessionId,
        done: Sender<()>,
    },
    SetRingTimeout(u64),
}

/// The router task is gone: the relay is shutting down.
#[derive(Debug, Error)]
#[error("the call router has stopped")]
pub(crate) struct Stopped;

/// The sessions' handle on the router task.
#[derive(Clone)]
pub(crate) struct Router {
    commands: Sender<Command>,
}

impl Router {
    /// A handle and the receiving end for [`drive`].
    pub fn new() -> (Router, Receiver<Command>) {
        let (commands, rx) = smol::channel::unbounded();
        (Router { commands }, rx)
    }

    /// Places a call (or fails it at once, still with an id).
    pub async fn dial(
        &self,
        caller: Caller,
        callee: Callee,
    ) -> Result<(CallId, Vec<CallAction>), Stopped> {
        let (reply, rx) = smol::channel::bounded(1);
        self.send(Command::Dial {
            caller,
            callee,
            reply,
        })?;
        rx.recv().await.map_err(|_| Stopped)
    }

    /// Places a call another relay gave an id to.
    pub async fn dial_as(
        &self,
        call: CallId,
        caller: Caller,
        callee: Callee,
    ) -> Result<Vec<CallAction>, Stopped> {
        let (reply, rx) = smol::channel::bounded(1);
        self.send(Command::DialAs {
            call,
            caller,
            callee,
            reply,
        })?;
        rx.recv().await.map_err(|_| Stopped)
    }

    pub async fn op(
        &self,
        sid: SessionId,
        op: Op,
    ) -> Result<Result<Vec<CallAction>, CallError>, Stopped> {
        let (reply, rx) = smol::channel::bounded(1);
        self.send(Command::Op { sid, op, reply })?;
        rx.recv().await.map_err(|_| Stopped)
    }

    pub async fn room(
        &self,
        sid: SessionId,
        op: RoomOp,
    ) -> Result<Result<(CallId, Vec<CallAction>), CallError>, Stopped> {
        let (reply, rx) = smol::channel::bounded(1);
        self.send(Command::Room { sid, op, reply })?;
        rx.recv().await.map_err(|_| Stopped)
    }

    /// Ends or leaves the session's calls; returns once their actions are applied.
    pub async fn left(&self, sid: SessionId) {
        let (done, rx) = smol::channel::bounded(1);
        if self.send(Command::Left { sid, done }).is_ok() {
            let _ = rx.recv().await;
        }
    }

    pub fn set_ring_timeout(&self, ms: u64) {
        let _ = self.send(Command::SetRingTimeout(ms));
    }

    fn send(&self, command: Command) -> Result<(), Stopped> {
        self.commands.try_send(command).map_err(|_| Stopped)
    }
}

/// The router's time: milliseconds on a monotonic clock, and a way to sleep until one.
pub(crate) trait Clock {
    fn now_ms(&self) -> u64;
    fn sleep_until(&self, ms: u64) -> impl Future<Output = ()>;
}

/// The relay's monotonic clock: milliseconds since it started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mono {
    started: Instant,
}

impl Mono {
    pub fn new() -> Mono {
        Mono {
            started: Instant::now(),
        }
    }
}

impl Clock for Mono {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn sleep_until(&self, ms: u64) {
        // Timer::at fires at or after the instant, so `now_ms` is then at least `ms`.
        match self.started.checked_add(Duration::from_millis(ms)) {
            Some(at) => {
                smol::Timer::at(at).await;
            }
            None => std::future::pending().await,
        }
    }
}

enum Wake {
    Command(Command),
    Deadline,
    Closed,
}

/// Runs the router until every [`Router`] handle is dropped. `apply` carries out the
/// actions no session waits for; `count` hears how many calls and conference rooms there
/// are after each step.
pub(crate) async fn drive(
    mut calls: Calls,
    commands: Receiver<Command>,
    clock: impl Clock,
    mut apply: impl FnMut(Vec<CallAction>),
    mut count: impl FnMut(usize, usize),
) {
    loop {
        let next = async {
            match commands.recv().await {
                Ok(c) => Wake::Command(c),
                Err(_) => Wake::Closed,
            }
        };
        let wake = match calls.next_deadline() {
            None => next.await,
            Some(at) => {
                let due = async {
                    clock.sleep_until(at).await;
                    Wake::Deadline
                };
                // Commands first: one that arrives with the deadline is not starved.
                smol::future::or(next, due).await
            }
        };
        match wake {
            Wake::Closed => return,
            Wake::Deadline => {
                let actions = calls.tick(clock.now_ms());
                tracing::debug!(actions = actions.len(), "ring timeouts");
                apply(actions)
            }
            Wake::Command(command) => handle(&mut calls, command, clock.now_ms(), &mut apply),
        }
        count(calls.len(), calls.rooms_len());
    }
}

fn handle(
    calls: &mut Calls,
    command: Command,
    now_ms: u64,
    apply: &mut impl FnMut(Vec<CallAction>),
) {
    match command {
        Command::Dial {
            caller,
            callee,
            reply,
        } => {
            let sid = caller.session;
            let (call, actions) = match calls.dial(now_ms, caller, callee) {
                Ok(placed) => placed,
                Err(reason) => calls.failed(sid, reason),
            };
            tracing::debug_span!("call", call, caller = sid)
                .in_scope(|| tracing::debug!(rings = ringing(&actions), "dialled"));
            // A session that has gone meanwhile has left too; its call ends with it.
            let _ = reply.try_send((call, actions));
        }
        Command::DialAs {
            call,
            caller,
            callee,
            reply,
        } => {
            let sid = caller.session;
            let actions = calls
                .dial_as(now_ms, call, caller, callee)
                .unwrap_or_else(|reason| {
                    vec![CallAction::Send(
                        sid,
                        phoned_proto::Event::CallState {
                            call,
                            phase: phoned_proto::call::CallPhase::Ended(reason),
                        },
                    )]
                });
            tracing::debug_span!("call", call, caller = sid).in_scope(|| {
                tracing::debug!(rings = ringing(&actions), "dialled from another relay")
            });
            let _ = reply.try_send(actions);
        }
        Command::Op { sid, op, reply } => {
            // Synchronous from here on, so entering the span is safe.
            let span = tracing::debug_span!("call", call = op.call(), sid);
            let _enter = span.enter();
            let name = op_name(&op);
            let result = match op {
                Op::Answer(id) => calls.answer(sid, id),
                Op::Reject(id, reason) => calls.reject(sid, id, reason),
                Op::Hangup(id) => calls.hangup(sid, id),
                Op::Hold(id, held) => calls.hold(sid, id, held),
                Op::Dtmf(id, digits) => calls.dtmf(sid, id, digits),
                Op::Remove(id, number) => calls.conference_remove(sid, id, &number),
                Op::Ended(id, reason) => calls.ended_by(sid, id, reason),
            };
            tracing::debug!(ok = result.is_ok(), "{name}");
            let _ = reply.try_send(result);
        }
        Command::Room { sid, op, reply } => {
            let name = match &op {
                RoomOp::Create { .. } => "conference create",
                RoomOp::Add { .. } => "conference add",
                RoomOp::Merge { .. } => "conference merge",
            };
            let result = match op {
                RoomOp::Create { host, invitees } => {
                    calls.conference_create(now_ms, host, invitees)
                }
                RoomOp::Add { call, invitee } => calls.conference_add(now_ms, sid, call, invitee),
                RoomOp::Merge { first, second } => calls.conference_merge(sid, first, second),
            };
            let room = result.as_ref().ok().map(|(id, _)| *id);
            tracing::debug!(sid, ?room, ok = result.is_ok(), "{name}");
            let _ = reply.try_send(result);
        }
        Command::Left { sid, done } => {
            apply(calls.session_left(sid));
            let _ = done.try_send(());
        }
        Command::SetRingTimeout(ms) => calls.set_ring_timeout(ms),
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Answer(_) => "answer",
        Op::Reject(..) => "reject",
        Op::Hangup(_) => "hangup",
        Op::Hold(_, true) => "hold",
        Op::Hold(_, false) => "resume",
        Op::Dtmf(..) => "dtmf",
        Op::Remove(..) => "conference remove",
        Op::Ended(..) => "ended by the other relay",
    }
}

fn ringing(actions: &[CallAction]) -> usize {
    actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                CallAction::Send(_, phoned_proto::Event::CallIncoming { .. })
            )
        })
        .count()
}

#[cfg(test)]
mod tests;
