//! Store-and-forward requests: `SendMessage`, `Delivered` and `ReceiptSeen`. Each checks
//! what it can at once and queues its write with the group committer, in the order the
//! requests arrived; what it returns is a task that waits for that write's commit, then
//! pushes the message or the delivery receipt to the devices online, and gives the answer
//! (which [`crate::pipeline`] sends in request order).
//!
//! Pushes of an account's inbox take turns and start from where each session's last one
//! ended ([`crate::delivery`]), so a recipient gets items in id order, which is the order
//! they were stored in. Receipts stay stored until a device of the sender that speaks
//! protocol 2 answers `ReceiptSeen`; with protocol 1 devices only, once pushed.

use phoned_proto::{ErrorCode, Event, Number, Response, StoredMessage, WireError};
use smol::Task;
use tracing::Instrument;

use crate::hub;
use crate::requests::{Answer, err, store_err, unblock};
use crate::server::unix_ms;
use crate::session::Session;
use crate::shared::Shared;
use crate::store::messages::{Item, Stored};

/// A request whose write is queued: resolves to its answer once committed.
pub(crate) type Queued = Task<Answer>;

impl Session {
    /// Checks a message and queues it to be stored durably; the task answers `Stored`
    /// once it is committed, after handing it to the recipient's online devices.
    pub(crate) async fn send_message(
        &mut self,
        me: u64,
        client_id: String,
        to: String,
        text: String,
    ) -> Result<Queued, WireError> {
        if client_id.is_empty() || client_id.len() > 64 {
            return Err(err(
                ErrorCode::ProtocolViolation,
                "client_id must be 1 to 64 bytes",
            ));
        }
        if text.is_empty() {
            return Err(err(ErrorCode::TooLarge, "an empty message"));
        }
        let max = self.shared.config().max_message_bytes as usize;
        if text.len() > max {
            return Err(err(
                ErrorCode::TooLarge,
                format!(
                    "the message is {} bytes; this relay takes at most {max}",
                    text.len()
                ),
            ));
        }
        let number: Number = to
            .parse()
            .map_err(|e: phoned_proto::IdentError| err(ErrorCode::InvalidNumber, e.to_string()))?;
        let store = self.shared.store.clone();
        let lookup = number.clone();
        let recipient = unblock(move || store.account_by_number(lookup.as_str())).await?;
        let Some(recipient) = recipient.filter(|a| !a.disabled) else {
            return Err(err(
                ErrorCode::UnknownNumber,
                format!("no account has number {number}"),
            ));
        };
        let (from_number, from_name) = self.shared.identity(me);
        let msg = StoredMessage {
            id: 0,
            from_number,
            from_name,
            text,
            sent_ms: unix_ms(),
        };
        let quota = self.shared.config().mailbox_quota_bytes;
        let rid = recipient.id;
        let pending = self
            .shared
            .committer
            .queue_store_item(me, client_id, rid, Item::Text(msg), quota)
            .await
            .map_err(store_err)?;
        let shared = self.shared.clone();
        Ok(smol::spawn(
            async move {
                let stored = pending.wait().await.map_err(store_err)?;
                if let Stored::New(_) = stored {
                    push_pending(&shared, rid).await;
                }
                Ok(Response::Stored { id: stored.id() })
            }
            .in_current_span(),
        ))
    }

    /// The recipient has message `id`: queue its deletion; once committed, the task tells
    /// the sender and answers `Done`.
    pub(crate) async fn delivered(&mut self, me: u64, id: u64) -> Result<Queued, WireError> {
        let pending = self
            .shared
            .committer
            .queue_deliver_message(me, id)
            .await
            .map_err(store_err)?;
        let shared = self.shared.clone();
        Ok(smol::spawn(
            async move {
                if let Some((sender, client_id, item)) = pending.wait().await.map_err(store_err)? {
                    if let Item::File(f) = item {
                        crate::bulk::release_blob(&shared, f.sha256).await;
                    }
                    push_receipt(&shared, sender, id, client_id).await;
                }
                Ok(Response::Done)
            }
            .in_current_span(),
        ))
    }

    /// The sender has recorded the receipt of its message `id`: queue forgetting it; the
    /// task answers `Done` once that is committed.
    pub(crate) async fn receipt_seen(&mut self, me: u64, id: u64) -> Result<Queued, WireError> {
        let pending = self
            .shared
            .committer
            .queue_drop_receipt(me, id)
            .await
            .map_err(store_err)?;
        Ok(smol::spawn(
            async move {
                pending.wait().await.map_err(store_err)?;
                Ok(Response::Done)
            }
            .in_current_span(),
        ))
    }
}

/// Receipts waiting for `account` (it just logged in): push them to its devices.
pub(crate) async fn push_receipts(shared: &Shared, account: u64) {
    if shared.sessions_of(account).is_empty() {
        return;
    }
    let store = shared.store.clone();
    let Ok(receipts) = blocking::unblock(move || store.pending_receipts(account)).await else {
        return;
    };
    for (id, client_id) in receipts {
        push_receipt(shared, account, id, client_id).await;
    }
}

/// Pushes the receipt of message `id` to `sender`'s devices, if any is online. It stays
/// stored until one of them answers `ReceiptSeen` (pushed again at every login until
/// then), unless none speaks protocol 2: those never answer, so it is forgotten now.
async fn push_receipt(shared: &Shared, sender: u64, id: u64, client_id: String) {
    let sessions = shared.sessions_of(sender);
    if sessions.is_empty() {
        return;
    }
    let acked = shared.delivery.any_acks_receipts(&sessions);
    let actions: Vec<hub::Action> = sessions
        .iter()
        .map(|&s| {
            hub::Action::Send(
                s,
                Event::MessageDelivered {
                    client_id: client_id.clone(),
                    id,
                },
            )
        })
        .collect();
    shared.dispatch(actions);
    if acked {
        return;
    }
    // Queued behind this batch; nobody waits for it (a receipt left over is pushed
    // again at the next login).
    if let Err(e) = shared.committer.queue_drop_receipt(sender, id).await {
        tracing::error!("dropping a receipt: {e}");
    }
}

/// Sends `account`'s devices the waiting messages and files each has not been sent yet
/// on its connection, oldest first.
pub(crate) async fn push_pending(shared: &Shared, account: u64) {
    let turn = shared.delivery.turn(account);
    let _turn = turn.lock().await;
    let sessions = shared.sessions_of(account);
    let Some(from) = sessions.iter().map(|&s| shared.delivery.upto(s)).min() else {
        return;
    };
    let store = shared.store.clone();
    let pending = match blocking::unblock(move || store.pending_after(account, from)).await {
        Ok(p) => p,
        Err(e) => {
            // Left for the next push or login, which starts from the same place.
            tracing::error!("reading an inbox: {e}");
            return;
        }
    };
    let Some(last) = pending.last().map(Item::id) else {
        return;
    };
    let mut actions = Vec::new();
    for &s in &sessions {
        let upto = shared.delivery.upto(s);
        for item in pending.iter().filter(|i| i.id() > upto) {
            let event = match item.clone() {
                Item::Text(m) => Event::Message(m),
                Item::File(f) => Event::File(f),
            };
            actions.push(hub::Action::Send(s, event));
        }
        shared.delivery.sent_upto(s, last);
    }
    // Inside the turn: the next push's events queue behind these.
    shared.dispatch(actions);
}
