//! Text messages on this device: sent (with their delivery status) and received.

use phoned_proto::transfer::{Direction, MessageStatus};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, named};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalMessage {
    /// Outgoing: the client id sent to the relay; incoming: `r<relay id>`.
    pub id: String,
    pub peer: String,
    pub peer_name: String,
    pub outgoing: bool,
    pub text: String,
    /// Queued, stored, delivered or failed (outgoing); received (incoming).
    #[serde(with = "named")]
    pub status: MessageStatus,
    /// Why sending failed, if it did.
    pub reason: String,
    pub at_ms: u64,
    pub relay_id: Option<u64>,
}

const NEXT: &str = "next_message_seq";

impl LocalMessage {
    pub fn direction(&self) -> Direction {
        Direction::of(self.outgoing)
    }
}

impl Store {
    /// Appends a message; `false` if an incoming one with the same relay id is there already.
    pub fn add_message(&self, m: &LocalMessage) -> Result<bool, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        if !m.outgoing && m.relay_id.is_some() {
            for entry in self.messages.rev_iter(&wtxn)? {
                let (_, bytes) = entry?;
                let old: LocalMessage = postcard::from_bytes(bytes).map_err(StoreError::Corrupt)?;
                if !old.outgoing && old.relay_id == m.relay_id && old.peer == m.peer {
                    return Ok(false);
                }
            }
        }
        self.append(&mut wtxn, self.messages, NEXT, m)?;
        wtxn.commit()?;
        Ok(true)
    }

    /// Changes the message with `id`; returns it as changed.
    pub fn update_message(
        &self,
        id: &str,
        change: impl FnOnce(&mut LocalMessage),
    ) -> Result<Option<LocalMessage>, StoreError> {
        self.update_newest(self.messages, |m: &LocalMessage| m.id == id, change)
    }

    /// The newest `limit` messages (with `peer` only, if given), oldest first.
    pub fn messages(
        &self,
        peer: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LocalMessage>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for entry in self.messages.rev_iter(&rtxn)? {
            if out.len() >= limit {
                break;
            }
            let (_, bytes) = entry?;
            let m: LocalMessage = postcard::from_bytes(bytes).map_err(StoreError::Corrupt)?;
            if peer.is_none_or(|p| p == m.peer) {
                out.push(m);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Outgoing messages not yet stored by the relay, oldest first.
    pub fn queued_messages(&self) -> Result<Vec<LocalMessage>, StoreError> {
        Ok(self
            .messages(None, usize::MAX)?
            .into_iter()
            .filter(|m| m.outgoing && m.status == MessageStatus::Queued)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, peer: &str, outgoing: bool, relay_id: Option<u64>) -> LocalMessage {
        LocalMessage {
            id: id.into(),
            peer: peer.into(),
            peer_name: String::new(),
            outgoing,
            text: "hi".into(),
            status: if outgoing {
                MessageStatus::Queued
            } else {
                MessageStatus::Received
            },
            reason: String::new(),
            at_ms: 0,
            relay_id,
        }
    }

    #[test]
    fn history_status_and_dedupe() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert!(s.add_message(&m("a", "1000", true, None)).unwrap());
        assert!(s.add_message(&m("r7", "2000", false, Some(7))).unwrap());
        assert!(
            !s.add_message(&m("r7", "2000", false, Some(7))).unwrap(),
            "an incoming message is kept once"
        );
        assert_eq!(s.queued_messages().unwrap().len(), 1);
        s.update_message("a", |x| x.status = MessageStatus::Stored)
            .unwrap();
        assert!(s.queued_messages().unwrap().is_empty());
        let all = s.messages(None, 10).unwrap();
        assert_eq!(
            all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            ["a", "r7"]
        );
        assert_eq!(s.messages(Some("2000"), 10).unwrap().len(), 1);
    }

    /// The record as daemons before the typed status wrote it.
    #[derive(Serialize)]
    struct StringMessage {
        id: String,
        peer: String,
        peer_name: String,
        outgoing: bool,
        text: String,
        status: String,
        reason: String,
        at_ms: u64,
        relay_id: Option<u64>,
    }

    #[test]
    fn records_written_with_a_string_status_still_read() {
        for status in MessageStatus::ALL {
            let old = StringMessage {
                id: "a".into(),
                peer: "1042".into(),
                peer_name: "Alice".into(),
                outgoing: true,
                text: "hi".into(),
                status: status.as_str().into(),
                reason: String::new(),
                at_ms: 5,
                relay_id: Some(9),
            };
            let old_bytes = postcard::to_allocvec(&old).unwrap();
            let m: LocalMessage = postcard::from_bytes(&old_bytes).unwrap();
            assert_eq!(m.status, *status);
            assert_eq!((m.text.as_str(), m.relay_id), ("hi", Some(9)));
            assert_eq!(postcard::to_allocvec(&m).unwrap(), old_bytes);
        }
    }
}
