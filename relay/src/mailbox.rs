//! Store-and-forward requests: `SendMessage` and `Delivered`. Each checks what it can
//! at once and queues its write with the group committer, in the order the requests
//! arrived; what it returns is a task that waits for that write's commit, then pushes the
//! message or the delivery receipt to the devices online, and gives the answer (which
//! [`crate::pipeline`] sends in request order).

use phoned_proto::{ErrorCode, Event, Number, Response, StoredMessage, WireError};
use smol::Task;
use tracing::Instrument;

use crate::hub;
use crate::requests::{Answer, err, store_err, unblock};
use crate::server::unix_ms;
use crate::session::Session;
use crate::shared::Shared;
use crate::store::StoreError;
use crate::store::messages::{Delivered, Item, Stored};

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
        Ok(smol::spawn(
            async move {
                let stored = pending.wait().await.map_err(store_err)?;
                if let Stored::New(id) = stored {
                    push_pending(&shared, rid, Some(id)).await;
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
        Ok(smol::spawn(
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

/// Pushes the receipt of message `id` to `sender`'s devices, if any is online, and then
/// forgets it; else it waits for the sender's next login.
async fn push_receipt(shared: &Shared, sender: u64, id: u64, client_id: String) {
    let sessions = shared.sessions_of(sender);
    if sessions.is_empty() {
        return;
    }
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
    // Queued behind this batch; nobody waits for it (a receipt left over is pushed
    // again at the next login).
    if let Err(e) = shared.committer.queue_drop_receipt(sender, id).await {
        tracing::error!("dropping a receipt: {e}");
    }
}

/// Sends `account`'s waiting messages and files (only message `only`, if given) to its devices.
pub(crate) async fn push_pending(shared: &Shared, account: u64, only: Option<u64>) {
    let sessions = shared.sessions_of(account);
    if sessions.is_empty() {
        return;
    }
    let store = shared.store.clone();
    let pending = blocking::unblock(move || match only {
        Some(id) => store.inbox_item(account, id).map(Vec::from_iter),
        None => store.pending_messages(account),
    });
    let Ok(pending) = pending.await else {
        return;
    };
    let actions: Vec<hub::Action> = pending
        .into_iter()
        .flat_map(|item| {
            let event = match item {
                Item::Text(m) => Event::Message(m),
                Item::File(f) => Event::File(f),
            };
            sessions
                .iter()
                .map(move |&s| hub::Action::Send(s, event.clone()))
        })
        .collect();
    shared.dispatch(actions);
}
