//! The live sessions of one relay: each one's writer queue, connection and media routes,
//! by session id. It owns the only map from a [`SessionId`] to a connection, so it is
//! where the hub's and the call router's actions are carried out (events pushed, sessions
//! revoked, routes installed). Its one lock is private and never held while another is
//! taken: route changes are applied after the map is released.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use phoned_proto::call::CallId;
use phoned_proto::error::close;
use phoned_proto::{ErrorCode, Event, ServerMsg, WireError, encode_server};
use smol::channel::Sender;

use crate::calls::CallAction;
use crate::hub::batch::Batch;
use crate::hub::{Action, SessionId};
use crate::shared::lock;

/// What a session's writer task is asked to do.
pub(crate) enum Outgoing {
    /// Already framed bytes.
    Frame(Vec<u8>),
    /// Send `Goodbye`, then close the connection with `code`.
    Close { code: u32, error: WireError },
}

/// Media routes of one session: call → the connection of the other party. Read once per
/// datagram by the session's forwarding task (the relay's hot path), written only when a
/// call is answered, held, resumed or ended.
pub(crate) type Routes = Arc<Mutex<HashMap<CallId, quinn::Connection>>>;

pub(crate) struct SessionHandle {
    pub out: Sender<Outgoing>,
    pub conn: quinn::Connection,
    /// Where this session's media datagrams go, per call (set by the call router).
    pub routes: Routes,
}

#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<SessionId, SessionHandle>>,
}

/// A route change, resolved to the maps and connections it touches.
enum RouteChange {
    Add(Routes, CallId, quinn::Connection),
    Remove(Routes, CallId),
}

impl Registry {
    pub fn insert(&self, sid: SessionId, handle: SessionHandle) {
        lock(&self.sessions).insert(sid, handle);
    }

    pub fn remove(&self, sid: SessionId) {
        lock(&self.sessions).remove(&sid);
    }

    /// How many more frames session `sid`'s writer queue takes now (0 if it is gone).
    pub fn room(&self, sid: SessionId) -> usize {
        lock(&self.sessions).get(&sid).map_or(0, |h| {
            h.out
                .capacity()
                .unwrap_or(usize::MAX)
                .saturating_sub(h.out.len())
        })
    }

    /// Pushes events and closes revoked sessions, as the hub asked.
    pub fn dispatch(&self, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let sessions = lock(&self.sessions);
        for action in actions {
            match action {
                Action::Send(sid, event) => {
                    if let Some(h) = sessions.get(&sid) {
                        send_event(h, event);
                    }
                }
                Action::Presence(batch) => send_presence(&sessions, &batch),
                Action::Revoke(sid) => {
                    if let Some(h) = sessions.get(&sid) {
                        revoke(h);
                    }
                }
            }
        }
    }

    /// Pushes call events and installs or removes media routes, as the router asked.
    pub fn dispatch_calls(&self, actions: Vec<CallAction>) {
        if actions.is_empty() {
            return;
        }
        let mut changes = Vec::new();
        {
            let sessions = lock(&self.sessions);
            for action in actions {
                match action {
                    CallAction::Send(sid, event) => {
                        if let Some(h) = sessions.get(&sid) {
                            send_event(h, event);
                        }
                    }
                    CallAction::Route { call, from, to } => {
                        if let (Some(f), Some(t)) = (sessions.get(&from), sessions.get(&to)) {
                            changes.push(RouteChange::Add(f.routes.clone(), call, t.conn.clone()));
                        }
                    }
                    CallAction::Unroute { call, from } => {
                        if let Some(f) = sessions.get(&from) {
                            changes.push(RouteChange::Remove(f.routes.clone(), call));
                        }
                    }
                }
            }
        }
        // In the router's order: a call's unroute never overtakes its route.
        for change in changes {
            match change {
                RouteChange::Add(routes, call, to) => {
                    lock(&routes).insert(call, to);
                }
                RouteChange::Remove(routes, call) => {
                    lock(&routes).remove(&call);
                }
            }
        }
    }
}

fn send_event(h: &SessionHandle, event: Event) {
    let mut bytes = Vec::new();
    if encode_server(&mut bytes, &ServerMsg::Event(event)).is_ok() {
        send_frames(h, bytes);
    }
}

/// Queues already framed events, or closes a session that does not read its events.
fn send_frames(h: &SessionHandle, bytes: Vec<u8>) {
    if h.out.try_send(Outgoing::Frame(bytes)).is_err() {
        h.conn
            .close(close::TOO_SLOW.into(), b"client not reading its events");
    }
}

/// Sends each session its share of a presence batch as one write: each event is framed
/// once, and most sessions get the same bytes.
fn send_presence(sessions: &HashMap<SessionId, SessionHandle>, batch: &Batch) {
    let frames: Vec<Vec<u8>> = batch
        .events
        .iter()
        .map(|e| {
            let mut bytes = Vec::new();
            // A presence event is a number and a display name: always far below a frame.
            let _ = encode_server(&mut bytes, &ServerMsg::Event(e.clone()));
            bytes
        })
        .collect();
    let every = frames.concat();
    for sid in &batch.all {
        if let Some(h) = sessions.get(sid) {
            send_frames(h, every.clone());
        }
    }
    for (sid, events) in &batch.some {
        if let Some(h) = sessions.get(sid) {
            send_frames(h, events.iter().flat_map(|&i| frames[i].clone()).collect());
        }
    }
}

fn revoke(h: &SessionHandle) {
    let error = WireError::new(
        ErrorCode::SessionRevoked,
        "the account was disabled, deleted or its password reset",
    );
    if h.out
        .try_send(Outgoing::Close {
            code: close::REVOKED,
            error,
        })
        .is_err()
    {
        h.conn.close(close::REVOKED.into(), b"session revoked");
    }
}
