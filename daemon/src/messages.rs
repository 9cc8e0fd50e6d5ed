//! Text messages: sending (through the outbox, in order, now or when the link comes
//! back), receiving (stored here before the relay is told it may forget the message),
//! delivery receipts (recorded here before the relay is told it may forget them).

use phoned_proto::transfer::MessageStatus;
use phoned_proto::{MessageId, Request, Response, StoredMessage};

use crate::core::{Change, CoreError};
use crate::driver::{Handle, unix_ms};
use crate::store::messages::LocalMessage;
use crate::store::new_client_id;

/// Longest text accepted from D-Bus (the relay may allow less; it says so).
pub const MAX_TEXT: usize = 16 * 1024;

/// Queues a message to `number` and hands the outbox to the relay, up to this message.
/// Errors the relay gives for the message itself (unknown number, too large, mailbox
/// full) come back to the caller; a missing link only leaves it queued.
pub async fn send(
    phone: &Handle,
    number: String,
    name: String,
    text: String,
) -> Result<String, CoreError> {
    let m = LocalMessage {
        id: new_client_id(),
        peer: number,
        peer_name: name,
        outgoing: true,
        text,
        status: MessageStatus::Queued,
        reason: String::new(),
        at_ms: unix_ms(),
        relay_id: None,
    };
    phone
        .store
        .add_message(&m)
        .map_err(|e| CoreError::failed(e.to_string()))?;
    phone.announce(Change::MessageStatus(m.id.clone(), m.status));
    match push_outbox(phone, Some(&m.id)).await {
        Some(Err(e)) if !e.is_transient() => Err(e),
        _ => Ok(m.id),
    }
}

/// Hands one queued message to the relay and records the outcome.
async fn push(phone: &Handle, m: &LocalMessage) -> Result<(), CoreError> {
    let req = Request::SendMessage {
        client_id: m.id.clone(),
        to: m.peer.clone(),
        text: m.text.clone(),
    };
    match phone.request(req).await {
        Ok(Response::Stored { id }) => {
            set_status(phone, &m.id, MessageStatus::Stored, "", Some(id));
            Ok(())
        }
        Ok(other) => Err(CoreError::failed(format!("unexpected answer: {other:?}"))),
        Err(e) if e.is_transient() => Err(e),
        Err(e) => {
            set_status(phone, &m.id, MessageStatus::Failed, &e.message, None);
            Err(e)
        }
    }
}

/// Records a new status; `false` if it could not be written.
fn set_status(
    phone: &Handle,
    id: &str,
    status: MessageStatus,
    reason: &str,
    relay_id: Option<MessageId>,
) -> bool {
    let mut changed = false;
    let updated = phone.store.update_message(id, |m| {
        // A receipt can overtake the `Stored` answer; never go back from delivered.
        if m.status != MessageStatus::Delivered && m.status != status {
            m.status = status;
            changed = true;
        }
        m.reason = reason.to_owned();
        if relay_id.is_some() {
            m.relay_id = relay_id;
        }
    });
    match updated {
        Ok(Some(m)) => {
            // A receipt pushed again (the relay had no `ReceiptSeen` yet) changes nothing.
            if changed {
                phone.announce(Change::MessageStatus(m.id, m.status));
            }
            true
        }
        Ok(None) => true,
        Err(e) => {
            tracing::error!("recording message status: {e}");
            false
        }
    }
}

/// Sends everything still queued, oldest first (after the link comes up).
pub async fn flush(phone: Handle) {
    push_outbox(&phone, None).await;
}

/// Hands queued messages to the relay, oldest first and one at a time, holding the
/// outbox: the relay stores them in the order it receives them, so each conversation
/// keeps its order through outages and reconnects (a message written after the link
/// came back never overtakes the backlog). Stops at the first message the link could
/// not take, or after `upto` (whose outcome it returns).
async fn push_outbox(phone: &Handle, upto: Option<&str>) -> Option<Result<(), CoreError>> {
    let _outbox = phone.outbox.lock().await;
    let queued = match phone.store.queued_messages() {
        Ok(q) => q,
        Err(e) => {
            tracing::error!("reading the outbox: {e}");
            return Some(Err(CoreError::failed(e.to_string())));
        }
    };
    for m in queued {
        let outcome = push(phone, &m).await;
        if upto == Some(m.id.as_str()) {
            return Some(outcome);
        }
        if let Err(e) = outcome
            && e.is_transient()
        {
            return None;
        }
    }
    // `upto` was handed over by an earlier holder of the outbox.
    None
}

/// A message arrived: keep it, announce it, then let the relay forget it.
pub fn received(phone: &Handle, msg: StoredMessage) {
    let m = LocalMessage {
        id: format!("r{}", msg.id),
        peer: msg.from_number.clone(),
        peer_name: msg.from_name.clone(),
        outgoing: false,
        text: msg.text.clone(),
        status: MessageStatus::Received,
        reason: String::new(),
        at_ms: msg.sent_ms,
        relay_id: Some(msg.id),
    };
    match phone.store.add_message(&m) {
        Ok(true) => phone.announce(Change::MessageReceived(m)),
        Ok(false) => {} // Delivered again after a lost ack: already here.
        Err(e) => {
            // Not stored: do not ack, so the relay delivers it again.
            tracing::error!("storing a received message: {e}");
            return;
        }
    }
    let phone = phone.clone();
    smol::spawn(async move {
        if let Err(e) = phone.request(Request::Delivered { id: msg.id }).await {
            tracing::info!("acknowledging message {}: {e}", msg.id);
        }
    })
    .detach();
}

/// The relay says a message we sent was delivered; `false` if that could not be
/// recorded (then the receipt must not be acknowledged).
pub fn delivered(phone: &Handle, client_id: &str, id: MessageId) -> bool {
    set_status(phone, client_id, MessageStatus::Delivered, "", Some(id))
}

/// Tells the relay the receipt of our message `id` is recorded, so that it stops
/// pushing it at every login.
pub fn receipt_seen(phone: &Handle, id: MessageId) {
    let phone = phone.clone();
    smol::spawn(async move {
        if let Err(e) = phone.request(Request::ReceiptSeen { id }).await {
            // Pushed again at the next login, and recorded again (no change).
            tracing::info!("acknowledging the receipt of message {id}: {e}");
        }
    })
    .detach();
}
