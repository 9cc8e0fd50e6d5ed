//! The live sessions of one relay: each one's writer queue, connection and media routes,
//! by session id. It owns the only map from a [`SessionId`] to a connection, so it is
//! where the hub's and the call router's actions are carried out (events pushed, sessions
//! revoked, routes installed). Its one lock is private and never held while another is
//! taken: route changes are applied after the map is released.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phoned_proto::call::CallId;
use phoned_proto::error::close;
use phoned_proto::{ErrorCode, Event, ServerMsg, WireError, encode_server};
use smol::channel::Sender;

use crate::calls::{CallAction, RoomMember};
use crate::conference::speakers::Speakers;
use crate::hub::batch::Batch;
use crate::hub::{Action, SessionId};
use crate::plane::peer::Peer;
use crate::room_media::{self, RoomMedia};
use crate::shared::lock;

mod routes;
pub(crate) use routes::RouteMap;

/// What a session's writer task is asked to do.
pub(crate) enum Outgoing {
    /// Already framed bytes.
    Frame(Vec<u8>),
    /// Send `Goodbye`, then close the connection with `code`.
    Close { code: u32, error: WireError },
}

/// Where one session's media of one call goes.
#[derive(Clone)]
pub(crate) enum Route {
    /// To the other party of a two-party call (by UDP or QUIC, as it receives now).
    Peer(Arc<Peer>),
    /// Into a conference room, which picks the listeners.
    Room(Arc<RoomMedia>),
}

/// Media routes of one session: call → where its datagrams go. Read once per datagram by
/// the forwarders (the relay's hot path: the session's QUIC datagram task, the media
/// plane's threads), written only when a call is
/// answered, held, resumed or ended, or a room's members change.
pub(crate) type Routes = Arc<Mutex<RouteMap>>;

pub(crate) struct SessionHandle {
    pub out: Sender<Outgoing>,
    pub conn: quinn::Connection,
    /// This session as a media endpoint; its `routes` say where its media datagrams go,
    /// per call (set by the call router).
    pub peer: Arc<Peer>,
    /// The protocol version the session speaks (its `Hello`'s; the oldest served until
    /// then): events newer than it are not sent to it ([`Event::since`]).
    pub version: u16,
    /// It asked to be watched (`Watch`): closed after this long without a packet from it
    /// ([`crate::liveness`]).
    pub watch: Option<Duration>,
}

/// A room's media members now, and its speaker selection (kept across member changes).
struct RoomState {
    sessions: Vec<SessionId>,
    speakers: Arc<Mutex<Speakers>>,
}

#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<SessionId, SessionHandle>>,
    rooms: Mutex<HashMap<CallId, RoomState>>,
}

/// A route change, resolved to the maps and connections it touches.
enum RouteChange {
    Add(Routes, CallId, Route),
    Remove(Routes, CallId),
}

impl Registry {
    pub fn insert(&self, sid: SessionId, handle: SessionHandle) {
        lock(&self.sessions).insert(sid, handle);
    }

    /// Session `sid` said `Hello` with protocol `version`.
    pub fn hello(&self, sid: SessionId, version: u16) {
        if let Some(h) = lock(&self.sessions).get_mut(&sid) {
            h.version = version;
        }
    }

    /// Session `sid` asked to be watched, with silence bound `bound`.
    pub fn watch(&self, sid: SessionId, bound: Duration) {
        if let Some(h) = lock(&self.sessions).get_mut(&sid) {
            h.watch = Some(bound);
        }
    }

    /// The sessions that asked to be watched: connection, media endpoint and silence
    /// bound, for the liveness watch (the lock is held only to copy the handles).
    pub fn watched(&self) -> Vec<(SessionId, quinn::Connection, Arc<Peer>, Duration)> {
        lock(&self.sessions)
            .iter()
            .filter_map(|(sid, h)| Some((*sid, h.conn.clone(), h.peer.clone(), h.watch?)))
            .collect()
    }

    pub fn remove(&self, sid: SessionId) {
        lock(&self.sessions).remove(&sid);
    }

    /// Of `sids`, the sessions that speak protocol `version` or later.
    pub fn speaking(&self, sids: Vec<SessionId>, version: u16) -> Vec<SessionId> {
        let sessions = lock(&self.sessions);
        sids.into_iter()
            .filter(|s| sessions.get(s).is_some_and(|h| h.version >= version))
            .collect()
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
        // Rooms first, under their own lock: who was in each room before.
        let mut before: HashMap<CallId, (Vec<SessionId>, Arc<Mutex<Speakers>>)> = HashMap::new();
        {
            let mut rooms = lock(&self.rooms);
            for action in &actions {
                if let CallAction::Room { room, members } = action {
                    let new: Vec<SessionId> = members.iter().map(|m| m.session).collect();
                    let state = rooms.entry(*room).or_insert_with(|| RoomState {
                        sessions: Vec::new(),
                        speakers: Arc::new(Mutex::new(Speakers::new())),
                    });
                    let old = std::mem::replace(&mut state.sessions, new);
                    let speakers = state.speakers.clone();
                    if members.is_empty() {
                        rooms.remove(room);
                    }
                    // Several changes of one room in a batch: the first one's "before".
                    before.entry(*room).or_insert((old, speakers));
                }
            }
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
                            let route = Route::Peer(t.peer.clone());
                            changes.push(RouteChange::Add(f.peer.routes.clone(), call, route));
                        }
                    }
                    CallAction::Room { room, members } => {
                        let Some((old, speakers)) = before.get(&room) else {
                            continue;
                        };
                        self.room_changes(&sessions, room, &members, old, speakers, &mut changes);
                    }
                    CallAction::Unroute { call, from } => {
                        if let Some(f) = sessions.get(&from) {
                            changes.push(RouteChange::Remove(f.peer.routes.clone(), call));
                        }
                    }
                }
            }
        }
        // In the router's order: a call's unroute never overtakes its route.
        for change in changes {
            match change {
                RouteChange::Add(routes, call, route) => {
                    lock(&routes).insert(call, route);
                }
                RouteChange::Remove(routes, call) => {
                    lock(&routes).remove(&call);
                }
            }
        }
    }
}

impl Registry {
    /// The routes that put room `room`'s media between `members` (none: the room ended),
    /// given who was in it before.
    fn room_changes(
        &self,
        sessions: &HashMap<SessionId, SessionHandle>,
        room: CallId,
        members: &[RoomMember],
        old: &[SessionId],
        speakers: &Arc<Mutex<Speakers>>,
        changes: &mut Vec<RouteChange>,
    ) {
        for gone in old
            .iter()
            .filter(|s| !members.iter().any(|m| m.session == **s))
        {
            if let Some(h) = sessions.get(gone) {
                changes.push(RouteChange::Remove(h.peer.routes.clone(), room));
            }
        }
        if members.is_empty() {
            return;
        }
        lock(speakers).retain(|source| members.iter().any(|m| m.source == source));
        let media = Arc::new(RoomMedia {
            call: room,
            members: members
                .iter()
                .filter_map(|m| {
                    sessions.get(&m.session).map(|h| room_media::Member {
                        session: m.session,
                        source: m.source,
                        peer: h.peer.clone(),
                        flowing: m.flowing,
                    })
                })
                .collect(),
            speakers: speakers.clone(),
        });
        for m in members {
            if let Some(h) = sessions.get(&m.session) {
                changes.push(RouteChange::Add(
                    h.peer.routes.clone(),
                    room,
                    Route::Room(media.clone()),
                ));
            }
        }
    }
}

/// Queues `event` for the session, unless its protocol version has no such event: an
/// older client's decoder would not know it.
fn send_event(h: &SessionHandle, event: Event) {
    if event.since() > h.version {
        return;
    }
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
