//! Group commit: one thread runs the message writes (store, deliver, drop a receipt)
//! that arrive while the previous commit's fsync runs, in one LMDB write transaction
//! with one fsync, and only then answers each of them.
//!
//! Each write runs in a nested transaction of its own: one that fails (a full mailbox,
//! say) is aborted and leaves no trace, and the others of its batch carry on. No answer
//! goes out before the commit that holds its write returned; if that commit fails, every
//! write of the batch gets the error. The thread holds the LMDB write lock only while it
//! has a batch, and exits once the [`Committer`] is dropped and the queue drained.
//! Writes that fail for want of space are logged at debug level only and counted
//! ([`Committer::full_failures`]): the upkeep task turns the count into one log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use heed::RwTxn;
use smol::channel::{Receiver, Sender};

use super::HeedStore;
use crate::store::{AccountId, Delivered, Item, Observer, Pending, StoreError, Stored};
use phoned_proto::MessageId;

/// Most writes in one transaction: bounds the time a batch holds the write lock.
pub const MAX_BATCH: usize = 1024;
/// Writes waiting for the thread before submitters wait to queue theirs.
const QUEUE: usize = 4 * MAX_BATCH;

/// A queued write: run inside a nested transaction, answered after the batch commit.
trait Op: Send {
    /// Runs the write in `wtxn`; `true` if it succeeded and should be kept.
    fn run(&mut self, store: &HeedStore, wtxn: &mut RwTxn) -> bool;
    /// Replaces the outcome with an error (the nested transaction could not be used).
    fn fail(&mut self, error: StoreError);
    /// Whether the write failed for want of space (LMDB or the disk refused it).
    fn out_of_space(&self) -> bool;
    /// Sends the outcome, or `commit`'s error if the batch did not commit.
    fn answer(self: Box<Self>, commit: Option<&Arc<heed::Error>>);
}

struct Job<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: Sender<Result<T, StoreError>>,
}

impl<T, F> Op for Job<T, F>
where
    T: Send,
    F: FnOnce(&HeedStore, &mut RwTxn) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, store: &HeedStore, wtxn: &mut RwTxn) -> bool {
        let outcome = match self.work.take() {
            Some(work) => work(store, wtxn),
            None => Err(StoreError::CommitterStopped),
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
    }

    fn out_of_space(&self) -> bool {
        // A refusal by the reserve is not a failed write: the reserve did its job.
        matches!(&self.outcome, Some(Err(e)) if e.is_out_of_space() && !matches!(e, StoreError::OutOfSpace(_)))
    }

    fn answer(self: Box<Self>, commit: Option<&Arc<heed::Error>>) {
        let outcome = match (commit, self.outcome) {
            (Some(e), _) => Err(StoreError::BatchCommit(e.clone())),
            (None, Some(outcome)) => outcome,
            (None, None) => Err(StoreError::CommitterStopped),
        };
        // The submitter may have gone away (its connection closed): nothing to tell.
        let _ = self.reply.try_send(outcome);
    }
}

/// Handle to the group-commit thread. Dropping it closes the queue; the thread commits
/// what is queued, answers it and exits, and the drop waits for that.
pub struct Committer {
    queue: Sender<Box<dyn Op>>,
    thread: Option<JoinHandle<()>>,
    /// Writes that failed because LMDB or the disk was full, ever.
    full: Arc<AtomicU64>,
}

impl Committer {
    /// Starts the thread that commits `store`'s message writes.
    pub fn start(store: HeedStore) -> Result<Committer, StoreError> {
        Self::start_observed(store, Box::new(|_, _| {}))
    }

    /// [`Committer::start`], telling `observe` of every batch committed.
    pub fn start_observed(
        store: HeedStore,
        mut observe: Observer,
    ) -> Result<Committer, StoreError> {
        let (queue, rx) = smol::channel::bounded(QUEUE);
        let full = Arc::new(AtomicU64::new(0));
        let counter = full.clone();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(&store, &rx, &counter, &mut observe))
            .map_err(StoreError::Thread)?;
        Ok(Committer {
            queue,
            thread: Some(thread),
            full,
        })
    }

    /// How many writes so far failed because the map or the disk was full (not counting
    /// refusals by the reserve): the upkeep task reports out of space when it grows.
    pub fn full_failures(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }

    /// Queues `work`; the returned [`Pending`] answers once the transaction that holds
    /// it is committed. Writes queued one after the other commit in that order.
    async fn queue<T, F>(&self, work: F) -> Result<Pending<T>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&HeedStore, &mut RwTxn) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, answer) = job(work);
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::CommitterStopped)?;
        Ok(Pending(answer))
    }

    /// [`HeedStore::store_item`], group-committed.
    pub async fn store_item(
        &self,
        from: AccountId,
        client_id: String,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Stored, StoreError> {
        self.queue_store_item(from, client_id, to, item, quota)
            .await?
            .wait()
            .await
    }

    /// Queues [`HeedStore::store_item`].
    pub async fn queue_store_item(
        &self,
        from: AccountId,
        client_id: String,
        to: AccountId,
        item: Item,
        quota: u64,
    ) -> Result<Pending<Stored>, StoreError> {
        self.queue(move |store, wtxn| store.store_item_in(wtxn, from, &client_id, to, item, quota))
            .await
    }

    /// Queues [`HeedStore::deliver_message`].
    pub async fn queue_deliver_message(
        &self,
        to: AccountId,
        id: MessageId,
    ) -> Result<Pending<Delivered>, StoreError> {
        self.queue(move |store, wtxn| store.deliver_message_in(wtxn, to, id))
            .await
    }

    /// Queues [`HeedStore::drop_receipt`].
    pub async fn queue_drop_receipt(
        &self,
        sender: AccountId,
        id: MessageId,
    ) -> Result<Pending<()>, StoreError> {
        self.queue(move |store, wtxn| store.drop_receipt_in(wtxn, sender, id))
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
fn run(store: &HeedStore, rx: &Receiver<Box<dyn Op>>, full: &AtomicU64, observe: &mut Observer) {
    while let Ok(first) = rx.recv_blocking() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let committed = commit_batch(store, &mut batch);
        observe(started.elapsed(), batch.len());
        tracing::trace!(writes = batch.len(), "group commit");
        let failed = batch.iter().filter(|op| op.out_of_space()).count();
        match &committed {
            // Out of space: the upkeep task says so once; every write hears of it.
            Err(e) if StoreError::BatchCommit(e.clone()).is_out_of_space() => {
                tracing::debug!(writes = batch.len(), "group commit failed: {e}");
                full.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Ok(()) if failed > 0 => {
                full.fetch_add(failed as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(writes = batch.len(), "group commit failed: {e}"),
            Ok(()) => {}
        }
        for op in batch {
            op.answer(committed.as_ref().err());
        }
    }
}

/// Runs every op of `batch` in its own nested transaction of one write transaction, and
/// commits that.
fn commit_batch(store: &HeedStore, batch: &mut [Box<dyn Op>]) -> Result<(), Arc<heed::Error>> {
    let mut parent = store.env.write_txn().map_err(Arc::new)?;
    for op in batch.iter_mut() {
        match store.env.nested_write_txn(&mut parent) {
            Ok(mut child) => {
                if op.run(store, &mut child) {
                    if let Err(e) = child.commit() {
                        op.fail(StoreError::Db(e));
                    }
                } else {
                    child.abort();
                }
            }
            Err(e) => op.fail(StoreError::Db(e)),
        }
    }
    parent.commit().map_err(Arc::new)
}

/// A queued write and the receiver its outcome is sent to once committed.
fn job<T, F>(work: F) -> (Box<dyn Op>, Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&HeedStore, &mut RwTxn) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, answer) = smol::channel::bounded(1);
    let job = Job {
        work: Some(work),
        outcome: None,
        reply,
    };
    (Box::new(job), answer)
}

#[cfg(test)]
mod tests {
    use phoned_proto::StoredMessage;

    use super::*;

    fn text(body: &str) -> Item {
        Item::Text(StoredMessage {
            id: 0,
            from_number: "1000".into(),
            from_name: "A".into(),
            text: body.into(),
            sent_ms: 1,
        })
    }

    fn store_job(
        from: AccountId,
        client_id: &str,
        body: &str,
        quota: u64,
    ) -> (Box<dyn Op>, Receiver<Result<Stored, StoreError>>) {
        let client_id = client_id.to_owned();
        let item = text(body);
        job(move |s: &HeedStore, w: &mut RwTxn| {
            s.store_item_in(w, from, &client_id, 2, item, quota)
        })
    }

    /// Runs `ops` as one batch, as the thread does.
    fn one_batch(store: &HeedStore, mut ops: Vec<Box<dyn Op>>) {
        let committed = commit_batch(store, &mut ops);
        assert!(committed.is_ok());
        for op in ops {
            op.answer(committed.as_ref().err());
        }
    }

    fn texts(store: &HeedStore) -> Vec<String> {
        store
            .pending_messages(2)
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                Item::Text(m) => Some(m.text),
                Item::File(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_failed_write_leaves_no_trace_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path(), 16).unwrap();
        let quota = 64 + 100 + 64 + 10;
        let (a, a_answer) = store_job(1, "a", &"x".repeat(100), quota);
        // Over quota once "a" is in: refused before it writes anything.
        let (big, big_answer) = store_job(1, "big", &"y".repeat(20), quota);
        // Writes a whole message, then fails: its nested transaction must be undone.
        let (broken, broken_answer) = job(|s: &HeedStore, w: &mut RwTxn| {
            s.store_item_in(w, 1, "broken", 2, text("z"), u64::MAX)?;
            Err::<Stored, _>(StoreError::Encode)
        });
        let (b, b_answer) = store_job(1, "b", &"w".repeat(10), quota);
        one_batch(&store, vec![a, big, broken, b]);

        let a_id = a_answer.try_recv().unwrap().unwrap();
        assert!(matches!(a_id, Stored::New(_)));
        assert!(matches!(
            big_answer.try_recv().unwrap(),
            Err(StoreError::QuotaExceeded)
        ));
        assert!(matches!(
            broken_answer.try_recv().unwrap(),
            Err(StoreError::Encode)
        ));
        let b_id = b_answer.try_recv().unwrap().unwrap();
        assert_eq!(b_id, Stored::New(a_id.id() + 1), "no id was used up");
        assert_eq!(texts(&store), ["x".repeat(100), "w".repeat(10)]);
        assert_eq!(store.mailbox_bytes(2).unwrap(), 64 + 100 + 64 + 10);
        assert_eq!(store.stored_id(1, "big").unwrap(), None);
        assert_eq!(store.stored_id(1, "broken").unwrap(), None);
    }

    #[test]
    fn a_retry_in_the_same_batch_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path(), 16).unwrap();
        let (first, first_answer) = store_job(1, "same", "hello", u64::MAX);
        let (again, again_answer) = store_job(1, "same", "hello", u64::MAX);
        one_batch(&store, vec![first, again]);
        let first = first_answer.try_recv().unwrap().unwrap();
        assert!(matches!(first, Stored::New(_)));
        assert_eq!(
            again_answer.try_recv().unwrap().unwrap(),
            Stored::Again(first.id())
        );
        assert_eq!(texts(&store), ["hello"]);
    }

    #[test]
    fn delivery_and_receipt_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path(), 16).unwrap();
        let id = store
            .store_item(1, "c", 2, text("hi"), u64::MAX)
            .unwrap()
            .id();
        let (deliver, delivered) =
            job(move |s: &HeedStore, w: &mut RwTxn| s.deliver_message_in(w, 2, id));
        let (again, delivered_again) =
            job(move |s: &HeedStore, w: &mut RwTxn| s.deliver_message_in(w, 2, id));
        let (drop_it, dropped) =
            job(move |s: &HeedStore, w: &mut RwTxn| s.drop_receipt_in(w, 1, id));
        one_batch(&store, vec![deliver, again, drop_it]);
        assert!(matches!(
            delivered.try_recv().unwrap().unwrap(),
            Some((1, c, Item::Text(_))) if c == "c"
        ));
        assert_eq!(delivered_again.try_recv().unwrap().unwrap(), None);
        dropped.try_recv().unwrap().unwrap();
        assert!(texts(&store).is_empty());
        assert!(store.pending_receipts(1).unwrap().is_empty());
        assert_eq!(store.mailbox_bytes(2).unwrap(), 0);
    }

    #[test]
    fn concurrent_submitters_all_hear_back_and_the_writes_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (submitters, each) = (16u64, 25u64);
        {
            let store = HeedStore::open(dir.path(), 16).unwrap();
            let committer = Committer::start(store).unwrap();
            let mut ids: Vec<MessageId> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..submitters)
                    .map(|s| {
                        let committer = &committer;
                        scope.spawn(move || {
                            (0..each)
                                .map(|i| {
                                    let item = text(&format!("{s}/{i}"));
                                    let store = committer.store_item(
                                        100 + s,
                                        format!("m{i}"),
                                        2,
                                        item,
                                        u64::MAX,
                                    );
                                    smol::block_on(store).unwrap().id()
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .flat_map(|t| t.join().unwrap())
                    .collect()
            });
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len() as u64, submitters * each, "each got its own id");
        }
        // The committer and every handle on the environment are gone: open it afresh.
        let store = HeedStore::open(dir.path(), 16).unwrap();
        assert_eq!(texts(&store).len() as u64, submitters * each);
        assert!(store.stored_id(115, "m24").unwrap().is_some());
    }

    /// A map filled up to its reserve: every delivered message can still be deleted,
    /// in the committer's big batches (without the reserve, all of them failed with
    /// `MapFull`). Small and large messages: small ones dirty the most pages per delete.
    #[test]
    fn deletes_fit_in_the_map_reserve() {
        for size in [50_000, 2_000, 300] {
            let dir = tempfile::tempdir().unwrap();
            let store = HeedStore::open(dir.path(), 16).unwrap();
            let committer = Committer::start(store.clone()).unwrap();
            let body = "x".repeat(size);
            let mut ids = Vec::new();
            // Stored in the committer's batches (one fsync each) until the map is full.
            let refusal = 'fill: loop {
                let pending: Vec<_> = (0..MAX_BATCH)
                    .map(|i| {
                        let item = text(&body);
                        let queued = committer.queue_store_item(
                            1,
                            format!("c{}-{i}", ids.len()),
                            2,
                            item,
                            u64::MAX,
                        );
                        smol::block_on(queued).unwrap()
                    })
                    .collect();
                let mut refused = None;
                for p in pending {
                    match smol::block_on(p.wait()) {
                        Ok(s) => ids.push(s.id()),
                        Err(e) => refused = Some(e),
                    }
                }
                if let Some(e) = refused {
                    break 'fill e;
                }
            };
            assert!(refusal.is_out_of_space(), "{size}: {refusal:?}");
            assert!(store.map_shortage().unwrap().is_some());
            let pending: Vec<_> = ids
                .iter()
                .map(|&id| smol::block_on(committer.queue_deliver_message(2, id)).unwrap())
                .collect();
            let failed: Vec<StoreError> = pending
                .into_iter()
                .filter_map(|p| smol::block_on(p.wait()).err())
                .collect();
            assert!(
                failed.is_empty(),
                "{size}: {} of {}: {:?}",
                failed.len(),
                ids.len(),
                failed.first()
            );
            assert!(texts(&store).is_empty());
            assert_eq!(store.pending_receipts(1).unwrap().len(), ids.len());
            // Refused by the reserve, not by LMDB: the map was never full.
            assert!(matches!(refusal, StoreError::OutOfSpace(_)), "{refusal:?}");
            assert!(store.map_shortage().unwrap().is_none());
        }
    }
}
