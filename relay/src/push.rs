//! What the relay pushes to a logged-in device from the store, in which order and how
//! much at once: its account's inbox (messages and files) and the delivery receipts of
//! what it sent.
//!
//! Pushes to one account take turns and start from where each session's last one ended
//! ([`crate::delivery`]), so a device gets items in id order (the order they were stored
//! in), each once per connection. A push takes only what fits in the session's queue,
//! leaving [`RESERVE`] frames for answers and other events; the rest follows when the
//! device acknowledges (`Delivered`, `ReceiptSeen`), or at its next login. Receipts stay
//! stored until a device of the sender that speaks protocol 2 answers `ReceiptSeen`; with
//! protocol 1 devices only, they are forgotten once pushed.

use std::sync::Arc;

use phoned_proto::{Event, MessageId};
use tracing::Instrument;

use crate::delivery::Feed;
use crate::hub::{self, SessionId};
use crate::shared::Shared;
use crate::store::Item;

/// Frames a backlog push leaves free in a session's queue, for answers and other events.
pub(crate) const RESERVE: usize = 128;

/// If a push of `feed` to `account`'s devices stopped short, pushes more (in a task of
/// its own: the answer that freed the room does not wait for it).
pub(crate) fn continue_push(shared: &Arc<Shared>, account: u64, feed: Feed) {
    if !shared.delivery.any_more(&shared.sessions_of(account), feed) {
        return;
    }
    let shared = shared.clone();
    smol::spawn(
        async move {
            match feed {
                Feed::Inbox => push_pending(&shared, account).await,
                Feed::Receipts => push_receipts(&shared, account).await,
            }
        }
        .in_current_span(),
    )
    .detach();
}

/// For each of `sessions`: (its cursor in `feed`, how many frames it may be pushed now).
/// What one read must cover for all `windows`: from the lowest cursor, as many as the
/// roomiest queue takes (None without a session).
fn span(windows: &[(SessionId, u64, usize)]) -> Option<(u64, usize)> {
    let from = windows.iter().map(|w| w.1).min()?;
    let limit = windows.iter().map(|w| w.2).max()?;
    Some((from, limit))
}

fn windows(shared: &Shared, sessions: &[SessionId], feed: Feed) -> Vec<(SessionId, u64, usize)> {
    sessions
        .iter()
        .map(|&s| {
            let room = shared.sessions.room(s).saturating_sub(RESERVE);
            (s, shared.delivery.upto(s, feed), room)
        })
        .collect()
}

/// Picks, for a session at `upto` with `room`, the ids above `upto` it gets from `read`
/// (ascending, `complete` if nothing waits beyond it); returns their indexes, the new
/// cursor and whether more waits.
fn window(ids: &[u64], upto: u64, room: usize, complete: bool) -> (Vec<usize>, u64, bool) {
    let above: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] > upto).collect();
    let taken: Vec<usize> = above.iter().copied().take(room).collect();
    let more = taken.len() < above.len() || !complete;
    let last = taken.last().map_or(upto, |&i| ids[i]);
    (taken, last, more)
}

/// Receipts waiting for `account` (it just logged in, or acknowledged some after a push
/// that stopped short): push each device those above its cursor that fit in its queue.
/// Devices of protocol 1 never acknowledge: what is pushed to them is forgotten at once.
pub(crate) async fn push_receipts(shared: &Shared, account: u64) {
    let turn = shared.delivery.turn(account);
    let _turn = turn.lock().await;
    let sessions = shared.sessions_of(account);
    let windows = windows(shared, &sessions, Feed::Receipts);
    let Some((from, limit)) = span(&windows) else {
        return;
    };
    let store = shared.store.clone();
    let read = blocking::unblock(move || store.pending_receipts_after(account, from, limit));
    let receipts = match read.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("reading receipts: {e}");
            return;
        }
    };
    let ids: Vec<u64> = receipts.iter().map(|r| r.0).collect();
    let complete = receipts.len() < limit;
    let mut actions = Vec::new();
    let mut pushed = std::collections::BTreeSet::new();
    for (s, upto, room) in windows {
        let (taken, last, more) = window(&ids, upto, room, complete);
        for i in taken {
            let (id, client_id) = &receipts[i];
            pushed.insert(*id);
            actions.push(hub::Action::Send(
                s,
                Event::MessageDelivered {
                    client_id: client_id.clone(),
                    id: *id,
                },
            ));
        }
        shared.delivery.sent_upto(s, Feed::Receipts, last, more);
    }
    shared.dispatch(actions);
    if shared.delivery.any_acks_receipts(&sessions) {
        return;
    }
    for id in pushed {
        if let Err(e) = shared.committer.queue_drop_receipt(account, id).await {
            tracing::error!("dropping a receipt: {e}");
        }
    }
}

/// Pushes the receipt of message `id` to `sender`'s devices, if any is online. It stays
/// stored until one of them answers `ReceiptSeen` (pushed again at every login until
/// then), unless none speaks protocol 2: those never answer, so it is forgotten now.
pub(crate) async fn push_receipt(shared: &Shared, sender: u64, id: u64, client_id: String) {
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

/// Message `id` was stored for `account`: pushes it (and whatever else waits) unless
/// every device of the account has been sent it already. Messages committed together
/// each come here; the first push reads and sends them all, and the others need not read
/// the inbox again. A cursor only moves forward, and ids are given out in commit order,
/// so a cursor at `id` or beyond means `id` went out.
pub(crate) async fn push_stored(shared: &Shared, account: u64, id: MessageId) {
    let sessions = shared.sessions_of(account);
    if sessions
        .iter()
        .all(|&s| shared.delivery.upto(s, Feed::Inbox) >= id)
    {
        return;
    }
    push_pending(shared, account).await;
}

/// Sends `account`'s devices the waiting messages and files each has not been sent yet
/// on its connection, oldest first, as many as fit in its queue (the rest follows as it
/// acknowledges).
pub(crate) async fn push_pending(shared: &Shared, account: u64) {
    let turn = shared.delivery.turn(account);
    let _turn = turn.lock().await;
    let sessions = shared.sessions_of(account);
    let windows = windows(shared, &sessions, Feed::Inbox);
    let Some((from, limit)) = span(&windows) else {
        return;
    };
    let store = shared.store.clone();
    let pending = match blocking::unblock(move || store.pending_after(account, from, limit)).await {
        Ok(p) => p,
        Err(e) => {
            // Left for the next push or login, which starts from the same place.
            tracing::error!("reading an inbox: {e}");
            return;
        }
    };
    let ids: Vec<u64> = pending.iter().map(Item::id).collect();
    let complete = pending.len() < limit;
    let mut actions = Vec::new();
    for (s, upto, room) in windows {
        let (taken, last, more) = window(&ids, upto, room, complete);
        for i in taken {
            let event = match pending[i].clone() {
                Item::Text(m) => Event::Message(m),
                Item::File(f) => Event::File(f),
            };
            actions.push(hub::Action::Send(s, event));
        }
        shared.delivery.sent_upto(s, Feed::Inbox, last, more);
    }
    // Inside the turn: the next push's events queue behind these.
    shared.dispatch(actions);
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn a_window_takes_what_fits_above_the_cursor_and_says_if_more_waits() {
        let ids = [3, 5, 8, 9];
        // All above the cursor fit, and the read was complete.
        assert_eq!(window(&ids, 4, 10, true), (vec![1, 2, 3], 9, false));
        // Room for two: the cursor stops at the second, and more waits.
        assert_eq!(window(&ids, 0, 2, true), (vec![0, 1], 5, true));
        // No room: nothing moves.
        assert_eq!(window(&ids, 5, 0, true), (vec![], 5, true));
        // An incomplete read may hide more beyond it.
        assert_eq!(window(&ids, 9, 10, false), (vec![], 9, true));
    }
}
