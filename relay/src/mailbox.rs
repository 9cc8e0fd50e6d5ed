//! Store-and-forward requests: `SendMessage`, `Delivered` and `ReceiptSeen`. Each checks
//! what it can at once and queues its write with the group committer, in the order the
//! requests arrived; what it returns is a task that waits for that write's commit, then
//! pushes the message or the delivery receipt to the devices online, and gives the answer
//! (which [`crate::pipeline`] sends in request order).
//!
//! What is pushed, in which order and how much at once, is [`crate::push`]'s.

use phoned_proto::{ErrorCode, Number, Response, StoredMessage, WireError};
use std::future::Future;
use std::pin::Pin;

use tracing::Instrument;

use crate::delivery::Feed;
use crate::push::{continue_push, push_receipt, push_stored};
use crate::requests::{Answer, err, store_err};
use crate::server::unix_ms;
use crate::session::Session;
use crate::shared::Shared;
use crate::store::StoreError;
use crate::store::{Delivered, Item, Stored};

/// A request whose write is queued: resolves to its answer once committed. Not a task
/// of its own: the session's replier ([`crate::pipeline`]) runs it in turn, so a batch of
/// commits wakes that one task once instead of a task per request.
pub(crate) type Queued = Pin<Box<dyn Future<Output = Answer> + Send + 'static>>;

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
        // Read here with the embedded store, not on the blocking pool: a lookup of two keys in the mapped
        // database costs a few µs, and the pool's hand-over (two thread wake-ups) cost
        // more than that per message, in a reader that waits for it before the next
        // request (docs/benchmarks.md, "Store and forward").
        // PostgreSQL is a round trip away: there the lookup goes to the blocking pool.
        let store = &self.shared.store;
        let recipient = if store.reads_inline() {
            store.account_by_number(number.as_str())
        } else {
            let (store, n) = (store.clone(), number.clone());
            blocking::unblock(move || store.account_by_number(n.as_str())).await
        }
        .map_err(store_err)?;
        let Some(recipient) = recipient.filter(|a| !a.disabled) else {
            return Err(err(
                ErrorCode::UnknownNumber,
                format!("no account has number {number}"),
            ));
        };
        self.shared
            .check_disk(text.len() as u64)
            .map_err(|_| out_of_space())?;
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
        Ok(Box::pin(
            async move {
                let stored = pending.wait().await.map_err(store_err)?;
                if let Stored::New(id) = stored {
                    shared.metrics.messages_stored.inc();
                    push_stored(&shared, rid, id).await;
                }
                Ok(Response::Stored { id: stored.id() })
            }
            .in_current_span(),
        ))
    }

    /// The recipient has message `id`: queue its deletion; once committed, the task tells
    /// the sender and answers `Done`. A delete the store cannot apply (out of space, say)
    /// is answered `Done` too: the recipient is done with the message, and the upkeep task
    /// applies the delete once it can (if the relay restarts first, the message is
    /// delivered again at the next login, as after any lost ack).
    pub(crate) async fn delivered(&mut self, me: u64, id: u64) -> Result<Queued, WireError> {
        let pending = self
            .shared
            .committer
            .queue_deliver_message(me, id)
            .await
            .map_err(store_err)?;
        let shared = self.shared.clone();
        Ok(Box::pin(
            async move {
                match pending.wait().await {
                    Ok(delivered) => after_delivery(&shared, id, delivered).await,
                    Err(StoreError::CommitterStopped) => return Err(stopping()),
                    Err(e) => {
                        // Out of space is reported once by the upkeep task, not per ack.
                        if e.is_out_of_space() {
                            tracing::debug!(id, "acknowledgement waits for space: {e}");
                        } else {
                            tracing::warn!(id, "acknowledgement to retry: {e}");
                        }
                        shared.ack_failed(me, id);
                    }
                }
                // Room freed on the device: the rest of a backlog that did not fit.
                continue_push(&shared, me, Feed::Inbox);
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
        let shared = self.shared.clone();
        Ok(Box::pin(
            async move {
                pending.wait().await.map_err(store_err)?;
                continue_push(&shared, me, Feed::Receipts);
                Ok(Response::Done)
            }
            .in_current_span(),
        ))
    }
}

/// What follows a committed delete of message `id`: its blob goes if no one else needs
/// it, and the sender hears of the delivery.
pub(crate) async fn after_delivery(shared: &Shared, id: u64, delivered: Delivered) {
    if let Some((sender, client_id, item)) = delivered {
        shared.metrics.messages_delivered.inc();
        if let Item::File(f) = item {
            crate::bulk::release_blob(shared, f.sha256).await;
        }
        push_receipt(shared, sender, id, client_id).await;
    }
}

/// The answer to a new message or upload while the relay is short of space (the operator
/// learns the details from the relay's log).
pub(crate) fn out_of_space() -> WireError {
    err(
        ErrorCode::OutOfSpace,
        "the relay is out of storage space; try again later",
    )
}

fn stopping() -> WireError {
    err(ErrorCode::Unavailable, "the relay is shutting down")
}
