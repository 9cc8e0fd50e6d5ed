//! Group commit for PostgreSQL: one thread, on a connection of its own, runs the message
//! writes that queued up while the previous commit ran in one transaction, and answers
//! each only after its COMMIT returned (with `synchronous_commit` on, the default, that
//! is after the WAL reached the disk: a message acknowledged `Stored` survives a crash of
//! the relay and of PostgreSQL).
//!
//! A write that fails on a database error (rather than a refusal such as a full
//! mailbox, which writes nothing) aborts PostgreSQL's transaction: the batch is rolled
//! back and run again without it, so the others of its batch still commit and the failed
//! one leaves no trace. If the connection is lost, every write of the batch gets
//! [`StoreError::Unavailable`] and the next batch connects afresh.

use std::thread::JoinHandle;
use std::time::Instant;

use phoned_proto::MessageId;
use smol::channel::{Receiver, Sender};

use super::messages::{deliver_message_in, drop_receipt_in, store_item_in};
use super::{Conn, PgStore};
use crate::store::{AccountId, Delivered, Item, Observer, Pending, StoreError, Stored};

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Writes waiting for the thread before submitters wait to queue theirs.
const QUEUE: usize = 4 * MAX_BATCH;

/// A queued write.
enum Write {
    Store {
        from: AccountId,
        client_id: String,
        to: AccountId,
        item: Item,
        quota: u64,
        reply: Sender<Result<Stored, StoreError>>,
    },
    Deliver {
        to: AccountId,
        id: MessageId,
        reply: Sender<Result<Delivered, StoreError>>,
    },
    DropReceipt {
        sender: AccountId,
        id: MessageId,
        reply: Sender<Result<(), StoreError>>,
    },
}

/// What one write came to inside the transaction, before the commit.
enum Outcome {
    Stored(Result<Stored, StoreError>),
    Delivered(Result<Delivered, StoreError>),
    Dropped(Result<(), StoreError>),
}

impl Outcome {
    /// Whether the write failed on the database (which aborted the transaction), as
    /// opposed to succeeding or being refused before it wrote anything.
    fn aborted(&self) -> bool {
        let failed =
            |e: &StoreError| matches!(e, StoreError::Postgres(_) | StoreError::Unavailable(_));
        match self {
            Outcome::Stored(Err(e)) => failed(e),
            Outcome::Delivered(Err(e)) => failed(e),
            Outcome::Dropped(Err(e)) => failed(e),
            _ => false,
        }
    }
}

impl Write {
    fn run(
        &self,
        tx: &mut postgres::Transaction<'_>,
        cache: &mut super::messages::Cache,
    ) -> Outcome {
        match self {
            Write::Store {
                from,
                client_id,
                to,
                item,
                quota,
                ..
            } => Outcome::Stored(store_item_in(
                tx, cache, *from, client_id, *to, item, *quota,
            )),
            Write::Deliver { to, id, .. } => {
                Outcome::Delivered(deliver_message_in(tx, cache, *to, *id))
            }
            Write::DropReceipt { sender, id, .. } => {
                Outcome::Dropped(drop_receipt_in(tx, cache, *sender, *id))
            }
        }
    }

    /// Sends `outcome`, or `error` instead when the batch did not commit.
    fn answer(self, outcome: Option<Outcome>, error: Option<&StoreError>) {
        let again = |e: &StoreError| match e {
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            other => StoreError::Unavailable(format!("group commit: {other}")),
        };
        // The submitter may have gone away: nothing to tell.
        match (self, outcome) {
            (Write::Store { reply, .. }, Some(Outcome::Stored(r))) if error.is_none() => {
                let _ = reply.try_send(r);
            }
            (Write::Deliver { reply, .. }, Some(Outcome::Delivered(r))) if error.is_none() => {
                let _ = reply.try_send(r);
            }
            (Write::DropReceipt { reply, .. }, Some(Outcome::Dropped(r))) if error.is_none() => {
                let _ = reply.try_send(r);
            }
            (w, _) => {
                let e = error.map_or(StoreError::CommitterStopped, again);
                match w {
                    Write::Store { reply, .. } => drop(reply.try_send(Err(e))),
                    Write::Deliver { reply, .. } => drop(reply.try_send(Err(e))),
                    Write::DropReceipt { reply, .. } => drop(reply.try_send(Err(e))),
                }
            }
        }
    }
}

/// Handle to the group-commit thread. Dropping it closes the queue; the thread commits
/// what is queued, answers it and exits, and the drop waits for that.
pub struct Committer {
    queue: Sender<Write>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the thread that commits `store`'s message writes, telling `observe` of
    /// every batch.
    pub fn start_observed(store: PgStore, mut observe: Observer) -> Result<Committer, StoreError> {
        let (queue, rx) = smol::channel::bounded(QUEUE);
        let thread = std::thread::Builder::new()
            .name("pg-commit".into())
            .spawn(move || run(&store, &rx, &mut observe))
            .map_err(StoreError::Thread)?;
        Ok(Committer {
            queue,
            thread: Some(thread),
        })
    }

    async fn queue<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<Pending<T>, StoreError> {
        let (reply, answer) = smol::channel::bounded(1);
        self.queue
            .send(make(reply))
            .await
            .map_err(|_| StoreError::CommitterStopped)?;
        Ok(Pending(answer))
    }

    pub async fn queue_store_item(
        &self,
        from: AccountId,
        client_id: String,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Pending<Stored>, StoreError> {
        self.queue(|reply| Write::Store {
            from,
            client_id,
            to,
            item,
            quota,
            reply,
        })
        .await
    }

    pub async fn queue_deliver_message(
        &self,
        to: AccountId,
        id: MessageId,
    ) -> Result<Pending<Delivered>, StoreError> {
        self.queue(|reply| Write::Deliver { to, id, reply }).await
    }

    pub async fn queue_drop_receipt(
        &self,
        sender: AccountId,
        id: MessageId,
    ) -> Result<Pending<()>, StoreError> {
        self.queue(|reply| Write::DropReceipt { sender, id, reply })
            .await
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the group-commit thread panicked");
        }
    }
}

/// The thread: a batch is whatever is queued when the previous commit returns.
fn run(store: &PgStore, rx: &Receiver<Write>, observe: &mut Observer) {
    let mut conn: Option<Conn> = None;
    while let Ok(first) = rx.recv_blocking() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = match store.connect() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(writes = batch.len(), "group commit: {e}");
                    for w in batch {
                        w.answer(None, Some(&e));
                    }
                    continue;
                }
            };
        }
        let Some(c) = conn.as_mut() else { continue };
        let (outcomes, committed) = commit_batch(c, &batch);
        observe(started.elapsed(), batch.len());
        if let Err(e) = &committed {
            tracing::error!(writes = batch.len(), "group commit failed: {e}");
        }
        for (w, o) in batch.into_iter().zip(outcomes) {
            w.answer(o, committed.as_ref().err());
        }
    }
}

/// Runs `batch` in one transaction and commits it; a write that aborts the transaction
/// is taken out and the rest run again. Returns each write's outcome (`None` for those
/// not run) and whether the commit succeeded.
fn commit_batch(
    conn: &mut Conn,
    batch: &[Write],
) -> (Vec<Option<Outcome>>, Result<(), StoreError>) {
    let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
    let mut excluded = vec![false; batch.len()];
    loop {
        let Conn { client, statements } = conn;
        let mut tx = match client.transaction() {
            Ok(tx) => tx,
            Err(e) => return (outcomes, Err(e.into())),
        };
        let mut aborted = None;
        for (i, w) in batch.iter().enumerate() {
            if excluded[i] {
                continue;
            }
            let outcome = w.run(&mut tx, statements);
            let failed = outcome.aborted();
            outcomes[i] = Some(outcome);
            if failed {
                aborted = Some(i);
                break;
            }
        }
        match aborted {
            None => return (outcomes, tx.commit().map_err(StoreError::from)),
            Some(i) => {
                drop(tx); // Rolls back.
                if client.is_closed() {
                    let e = StoreError::Unavailable("connection lost".into());
                    return (outcomes, Err(e));
                }
                // Its outcome (the error) stands; the others are run again.
                excluded[i] = true;
                for (j, o) in outcomes.iter_mut().enumerate() {
                    if !excluded[j] {
                        *o = None;
                    }
                }
            }
        }
    }
}
