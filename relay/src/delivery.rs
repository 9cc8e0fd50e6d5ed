//! What the relay remembers about each session's deliveries: how far into its account's
//! inbox and receipts it has been sent (so that items go out in id order, each once per
//! connection, whichever task pushes them), whether a push stopped short for want of room
//! in the session's queue, whether the session acknowledges delivery receipts (protocol
//! 2), and one lock per account that makes pushes to that account's sessions take turns.
//!
//! Why the turns: a message's push runs in a task of its own once its commit is done, and
//! a login pushes the whole backlog. Without them, two such tasks could reach a session's
//! writer in either order, and the recipient would see a conversation out of order.
//! Why the room: a backlog pushed at once would overflow the session's queue and get it
//! closed as too slow, again at every login; so a push takes what fits, and the rest
//! follows as the device acknowledges (see [`crate::mailbox`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use phoned_proto::MessageId;

use crate::hub::SessionId;
use crate::shared::lock;
use crate::store::AccountId;

/// What is pushed in id order: the inbox (messages and files) or delivery receipts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    Inbox,
    Receipts,
}

#[derive(Debug, Default, Clone, Copy)]
struct Cursor {
    /// The highest id pushed to this session (0: none yet).
    upto: MessageId,
    /// The last push stopped short: more may wait above `upto`.
    more: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    inbox: Cursor,
    receipts: Cursor,
    /// It said `Hello` with protocol 2 or later: it answers receipts with `ReceiptSeen`.
    acks_receipts: bool,
}

impl Sent {
    fn cursor(&mut self, feed: Feed) -> &mut Cursor {
        match feed {
            Feed::Inbox => &mut self.inbox,
            Feed::Receipts => &mut self.receipts,
        }
    }
}

#[derive(Default)]
pub(crate) struct Delivery {
    sessions: Mutex<HashMap<SessionId, Sent>>,
    turns: Mutex<HashMap<AccountId, Arc<smol::lock::Mutex<()>>>>,
}

impl Delivery {
    /// Session `sid` said `Hello` with protocol `version`.
    pub fn hello(&self, sid: SessionId, version: u16) {
        lock(&self.sessions).entry(sid).or_default().acks_receipts = version >= 2;
    }

    /// Session `sid` is gone.
    pub fn leave(&self, sid: SessionId) {
        lock(&self.sessions).remove(&sid);
    }

    /// The lock pushes to `account`'s sessions take in turn.
    pub fn turn(&self, account: AccountId) -> Arc<smol::lock::Mutex<()>> {
        lock(&self.turns).entry(account).or_default().clone()
    }

    /// The highest id of `feed` pushed to `sid`.
    pub fn upto(&self, sid: SessionId, feed: Feed) -> MessageId {
        lock(&self.sessions)
            .get_mut(&sid)
            .map_or(0, |s| s.cursor(feed).upto)
    }

    /// `feed` up to `id` has been pushed to `sid`; `more` if that push stopped short (if
    /// `sid` is still there: a push may end after its session did).
    pub fn sent_upto(&self, sid: SessionId, feed: Feed, id: MessageId, more: bool) {
        if let Some(sent) = lock(&self.sessions).get_mut(&sid) {
            let cursor = sent.cursor(feed);
            cursor.upto = cursor.upto.max(id);
            cursor.more = more;
        }
    }

    /// Whether a push of `feed` to one of `sids` stopped short.
    pub fn any_more(&self, sids: &[SessionId], feed: Feed) -> bool {
        let mut sessions = lock(&self.sessions);
        sids.iter()
            .any(|s| sessions.get_mut(s).is_some_and(|s| s.cursor(feed).more))
    }

    /// Whether any of `sids` acknowledges receipts (else a receipt is forgotten once
    /// pushed, as protocol 1 has it).
    pub fn any_acks_receipts(&self, sids: &[SessionId]) -> bool {
        let sessions = lock(&self.sessions);
        sids.iter()
            .any(|s| sessions.get(s).is_some_and(|s| s.acks_receipts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_only_move_forward_and_go_with_the_session() {
        let d = Delivery::default();
        d.hello(1, 1);
        d.hello(2, 2);
        assert!(!d.any_acks_receipts(&[1]));
        assert!(d.any_acks_receipts(&[1, 2]));
        d.sent_upto(1, Feed::Inbox, 7, true);
        d.sent_upto(1, Feed::Inbox, 5, false);
        assert_eq!(d.upto(1, Feed::Inbox), 7);
        assert_eq!(d.upto(1, Feed::Receipts), 0, "each feed has its own cursor");
        assert!(!d.any_more(&[1, 2], Feed::Inbox));
        d.sent_upto(2, Feed::Receipts, 3, true);
        assert!(d.any_more(&[1, 2], Feed::Receipts));
        d.leave(1);
        assert_eq!(d.upto(1, Feed::Inbox), 0);
        assert!(!d.any_acks_receipts(&[1]));
        d.sent_upto(1, Feed::Inbox, 9, false);
        assert_eq!(
            d.upto(1, Feed::Inbox),
            0,
            "a push that ends after its session leaves no trace"
        );
    }
}
