//! Answers a session's requests in the order they arrived while the writes of
//! store-and-forward requests are pipelined: a client that sends several messages
//! without waiting gets them committed together (see [`crate::store::Committer`]) instead of
//! one fsync after the other, and still hears back in order (docs/protocol.md §6).
//!
//! Queued requests hand the future of their answer to the session's [`Pipeline`]; a
//! replier task runs them in order and sends each answer. A request that is not pipelined waits
//! for [`Pipeline::flush`] first, so it sees every earlier request done and answered.

use smol::Task;
use smol::channel::{Receiver, Sender};
use tracing::Instrument;

use crate::mailbox::Queued;
use crate::registry::Outgoing;
use crate::requests::Answer;
use crate::session::send_reply;

/// Requests queued on one session before its reader waits for answers to go out.
const DEPTH: usize = 256;

enum Slot {
    /// Answer request `id` when the future is done.
    Queued(u32, Queued),
    /// Answer request `id` with this (a request refused before anything was queued).
    Ready(u32, Answer),
    /// Everything before it is answered.
    Barrier(Sender<()>),
}

pub(crate) struct Pipeline {
    slots: Sender<Slot>,
    /// Whether something was queued since the last flush.
    unanswered: bool,
    _replier: Task<()>,
}

impl Pipeline {
    /// Sends answers through `out` (the session's writer), as [`send_reply`] does.
    pub fn new(out: Sender<Outgoing>, conn: quinn::Connection) -> Pipeline {
        let (slots, rx) = smol::channel::bounded(DEPTH);
        Pipeline {
            slots,
            unanswered: false,
            _replier: smol::spawn(replier(rx, out, conn).in_current_span()),
        }
    }

    /// Request `id` will be answered by `task` (run by the replier), after every earlier
    /// request.
    pub async fn queued(&mut self, id: u32, task: Queued) {
        self.push(Slot::Queued(id, task)).await;
    }

    /// Request `id` is answered with `answer`, after every earlier request.
    pub async fn ready(&mut self, id: u32, answer: Answer) {
        self.push(Slot::Ready(id, answer)).await;
    }

    async fn push(&mut self, slot: Slot) {
        self.unanswered = true;
        // Fails only once the replier is gone, with the session.
        let _ = self.slots.send(slot).await;
    }

    /// Waits until every request queued so far is answered.
    pub async fn flush(&mut self) {
        if !self.unanswered {
            return;
        }
        let (done, wait) = smol::channel::bounded(1);
        if self.slots.send(Slot::Barrier(done)).await.is_ok() {
            let _ = wait.recv().await;
        }
        self.unanswered = false;
    }
}

async fn replier(rx: Receiver<Slot>, out: Sender<Outgoing>, conn: quinn::Connection) {
    while let Ok(slot) = rx.recv().await {
        match slot {
            Slot::Queued(id, task) => send_reply(&out, &conn, id, task.await),
            Slot::Ready(id, answer) => send_reply(&out, &conn, id, answer),
            Slot::Barrier(done) => {
                let _ = done.try_send(());
            }
        }
    }
}
