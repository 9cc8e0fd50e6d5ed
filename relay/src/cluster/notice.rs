//! What another relay says through PostgreSQL `NOTIFY`, parsed. A payload names the
//! relay it came from, so that a relay skips its own (it pushed those already). Anything
//! unreadable is ignored: a notice only ever makes a relay look sooner.

use crate::store::AccountId;
use crate::store::pg::leases::{INBOX, PRESENCE, RECEIPTS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Relay `relay`'s sessions changed.
    Presence { relay: String },
    /// Relay `relay` stored item `id` for `account`.
    Inbox {
        account: AccountId,
        id: u64,
        relay: String,
    },
    /// Relay `relay` stored the receipt of message `id` (`client_id`) for `sender`.
    Receipt {
        sender: AccountId,
        id: u64,
        relay: String,
        client_id: String,
    },
    /// The listening connection was (re)established: notices may have been missed.
    Reconnected,
}

impl Notice {
    /// Reads a notification: `PRESENCE` with `relay`; `INBOX` with `account:id:relay`;
    /// `RECEIPTS` with `sender:id:relay:client_id` (the client id may hold colons).
    pub fn parse(channel: &str, payload: &str) -> Option<Notice> {
        match channel {
            PRESENCE if !payload.is_empty() => Some(Notice::Presence {
                relay: payload.to_owned(),
            }),
            INBOX => {
                let mut parts = payload.splitn(3, ':');
                let account = parts.next()?.parse().ok()?;
                let id = parts.next()?.parse().ok()?;
                let relay = parts.next()?.to_owned();
                Some(Notice::Inbox { account, id, relay })
            }
            RECEIPTS => {
                let mut parts = payload.splitn(4, ':');
                let sender = parts.next()?.parse().ok()?;
                let id = parts.next()?.parse().ok()?;
                let relay = parts.next()?.to_owned();
                let client_id = parts.next()?.to_owned();
                Some(Notice::Receipt {
                    sender,
                    id,
                    relay,
                    client_id,
                })
            }
            _ => None,
        }
    }

    /// Whether relay `me` sent it.
    pub fn from(&self, me: &str) -> bool {
        match self {
            Notice::Presence { relay }
            | Notice::Inbox { relay, .. }
            | Notice::Receipt { relay, .. } => relay == me,
            Notice::Reconnected => false,
        }
    }

    /// The payload of an `INBOX` notice.
    pub fn inbox_payload(account: AccountId, id: u64, relay: &str) -> String {
        format!("{account}:{id}:{relay}")
    }

    /// The payload of a `RECEIPTS` notice.
    pub fn receipt_payload(sender: AccountId, id: u64, relay: &str, client_id: &str) -> String {
        format!("{sender}:{id}:{relay}:{client_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn payloads_read_back_and_name_their_relay() {
        let n = Notice::parse(INBOX, &Notice::inbox_payload(7, 42, "r1")).unwrap();
        assert_eq!(
            n,
            Notice::Inbox {
                account: 7,
                id: 42,
                relay: "r1".into()
            }
        );
        assert!(n.from("r1") && !n.from("r2"));
        let n = Notice::parse(RECEIPTS, &Notice::receipt_payload(3, 9, "r2", "a:b")).unwrap();
        assert!(matches!(n, Notice::Receipt { ref client_id, .. } if client_id == "a:b"));
        assert_eq!(
            Notice::parse(PRESENCE, "r3"),
            Some(Notice::Presence { relay: "r3".into() })
        );
        for (c, p) in [
            (INBOX, "x:1:r"),
            (INBOX, "1:2"),
            (RECEIPTS, "1:2:r"),
            (PRESENCE, ""),
            ("other", "1:2:r"),
        ] {
            assert_eq!(Notice::parse(c, p), None, "{c} {p}");
        }
    }

    proptest! {
        /// Any payload on any channel is read or refused, never a panic.
        #[test]
        fn any_payload_is_safe(channel in 0usize..4, payload in ".{0,80}") {
            let c = [INBOX, RECEIPTS, PRESENCE, "x"][channel];
            let _ = Notice::parse(c, &payload);
        }
    }
}
