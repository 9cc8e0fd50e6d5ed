//! What the relay remembers about each session's deliveries: how far into its account's
//! inbox it has been sent (so that items go out in id order, each once per connection,
//! whichever task pushes them), whether it acknowledges delivery receipts (protocol 2),
//! and one lock per account that makes pushes to that account's sessions take turns.
//!
//! Why the turns: a message's push runs in a task of its own once its commit is done, and
//! a login pushes the whole backlog. Without them, two such tasks could reach a session's
//! writer in either order, and the recipient would see a conversation out of order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use phoned_proto::MessageId;

use crate::hub::SessionId;
use crate::shared::lock;
use crate::store::AccountId;

#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    /// The highest inbox id pushed to this session (0: none yet).
    upto: MessageId,
    /// It said `Hello` with protocol 2 or later: it answers receipts with `ReceiptSeen`.
    acks_receipts: bool,
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

    /// The highest inbox id pushed to `sid`.
    pub fn upto(&self, sid: SessionId) -> MessageId {
        lock(&self.sessions).get(&sid).map_or(0, |s| s.upto)
    }

    /// Items up to `id` have been pushed to `sid` (if it is still there: a push may end
    /// after its session did).
    pub fn sent_upto(&self, sid: SessionId, id: MessageId) {
        if let Some(sent) = lock(&self.sessions).get_mut(&sid) {
            sent.upto = sent.upto.max(id);
        }
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
        d.sent_upto(1, 7);
        d.sent_upto(1, 5);
        assert_eq!(d.upto(1), 7);
        d.leave(1);
        assert_eq!(d.upto(1), 0);
        assert!(!d.any_acks_receipts(&[1]));
        d.sent_upto(1, 9);
        assert_eq!(
            d.upto(1),
            0,
            "a push that ends after its session leaves no trace"
        );
    }
}
