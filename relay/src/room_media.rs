//! The media of one conference room, as the sessions' forwarding tasks use it: the
//! members' connections and sources, and the room's [`Speakers`] behind a lock held for
//! one datagram's decision. A frame is forwarded only from a member in the room (not on
//! hold) whose frame carries its own source, and only to the members the speaker
//! selection gives it; reports are not forwarded in rooms (a sender adapts to one far
//! side, and a room has several).

use std::sync::{Arc, Mutex};

use phoned_proto::media::peek_level;

use crate::conference::speakers::Speakers;
use crate::hub::SessionId;
use crate::plane::forward::{Scratch, Sink, deliver};
use crate::plane::peer::Peer;
use crate::shared::lock;

pub(crate) struct Member {
    pub session: SessionId,
    pub source: u32,
    /// Where its media goes (UDP or QUIC, as it receives now).
    pub peer: Arc<Peer>,
    pub flowing: bool,
}

pub(crate) struct RoomMedia {
    pub call: u64,
    pub members: Vec<Member>,
    pub speakers: Arc<Mutex<Speakers>>,
}

impl RoomMedia {
    /// Forwards one datagram that session `from` sent on this room, at `now_ms` on the
    /// media clock ([`crate::plane::now_ms`]).
    pub fn forward(
        &self,
        from: SessionId,
        datagram: &[u8],
        now_ms: u64,
        scratch: &mut Scratch,
        sink: &mut impl Sink,
    ) {
        let Some(me) = self.members.iter().find(|m| m.session == from) else {
            return;
        };
        if !me.flowing {
            return;
        }
        let Some(head) = peek_level(datagram) else {
            return;
        };
        let Some(level) = head.level else {
            return;
        };
        if head.call != self.call || head.source != me.source {
            return;
        }
        let mut speakers = lock(&self.speakers);
        speakers.observe(now_ms, me.source, level);
        for to in &self.members {
            if to.flowing && to.session != from && speakers.forwards(me.source, to.source) {
                // A full or closed peer drops the frame: media is never worth waiting for.
                deliver(&to.peer, datagram, now_ms, scratch, sink);
            }
        }
    }
}
