//! Group commit for PostgreSQL: one thread, on a connection of its own, runs the message
//! writes that queued up while the previous commit ran in one transaction, and answers
//! each only after its COMMIT returned (with `synchronous_commit` on, the default, that
//! is after the WAL reached the disk: a message acknowledged `Stored` survives a crash of
//! the relay and of PostgreSQL).
//!
//! Consecutive deliveries in a batch are one statement (arrays of ids), and so are
//! consecutive receipts to drop: a batch of N messages' acknowledgements is not N round
//! trips. A message store is a statement of its own (each depends on those before it:
//! the quota, a retry's id).
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

use super::leases::{INBOX, RECEIPTS, notify_in};
use super::messages::{
    deliver_message_in, deliver_messages_in, drop_receipt_in, drop_receipts_in, store_item_in,
};
use super::{Conn, PgStore, big};
use crate::cluster::notice::Notice;
use crate::store::{AccountId, Delivered, Item, Observer, Pending, StoreError, Stored};

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Writes waiting for the thread before submitters wait to queue theirs.
const QUEUE: usize = 4 * MAX_BATCH;

/// Where the run of writes of `batch[start]`'s kind that can share one statement ends
/// (deliveries, or receipts to drop; a store is always on its own), skipping excluded ones.
fn run_of(batch: &[Write], excluded: &[bool], start: usize) -> std::ops::Range<usize> {
    let kind = |w: &Write| match w {
        Write::Store { .. } => 0,
        Write::Deliver { .. } => 1,
        Write::DropReceipt { .. } => 2,
    };
    let k = kind(&batch[start]);
    if k == 0 {
        return start..start + 1;
    }
    let mut end = start + 1;
    while end < batch.len() && (excluded[end] || kind(&batch[end]) == k) {
        end += 1;
    }
    start..end
}

/// Runs the deliveries or receipt drops `ops` of `batch` (all of one kind) as one
/// statement; each gets the outcome it would have had on its own, in order (a second
/// delivery of one message finds it gone).
fn run_together(
    tx: &mut postgres::Transaction<'_>,
    cache: &mut super::messages::Cache,
    batch: &[Write],
    ops: &[usize],
) -> Result<Vec<Outcome>, StoreError> {
    let keys: Vec<(i64, i64)> = ops
        .iter()
        .map(|&j| match &batch[j] {
            Write::Deliver { to, id, .. } => (big(*to), big(*id)),
            Write::DropReceipt { sender, id, .. } => (big(*sender), big(*id)),
            Write::Store { .. } => (0, 0),
        })
        .collect();
    let (a, b): (Vec<i64>, Vec<i64>) = keys.iter().copied().unzip();
    if let Write::DropReceipt { .. } = &batch[ops[0]] {
        drop_receipts_in(tx, cache, &a, &b)?;
        return Ok(ops.iter().map(|_| Outcome::Dropped(Ok(()))).collect());
    }
    let mut found = deliver_messages_in(tx, cache, &a, &b)?;
    Ok(keys
        .iter()
        .map(|k| Outcome::Delivered(Ok(found.remove(k))))
        .collect())
}

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
        let (outcomes, committed) = commit_batch(c, &batch, store.relay_id());
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
    relay: &str,
) -> (Vec<Option<Outcome>>, Result<(), StoreError>) {
    let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
    let mut excluded = vec![false; batch.len()];
    let mut together = true;
    loop {
        let Conn { client, statements } = conn;
        let mut tx = match client.transaction() {
            Ok(tx) => tx,
            Err(e) => return (outcomes, Err(e.into())),
        };
        let mut aborted = None;
        let mut i = 0;
        while i < batch.len() {
            if excluded[i] {
                i += 1;
                continue;
            }
            // A run of deliveries, or of receipts to drop: one statement for all of it.
            let run = if together {
                run_of(batch, &excluded, i)
            } else {
                i + 1..i + 1
            };
            if run.len() > 1 {
                let ops: Vec<usize> = (i..run.end).filter(|&j| !excluded[j]).collect();
                match run_together(&mut tx, statements, batch, &ops) {
                    Ok(done) => {
                        for (j, o) in ops.into_iter().zip(done) {
                            outcomes[j] = Some(o);
                        }
                    }
                    Err(_) => {
                        // Which one failed is not known: the batch again, one by one.
                        together = false;
                        aborted = Some(None);
                        break;
                    }
                }
                i = run.end;
                continue;
            }
            let outcome = batch[i].run(&mut tx, statements);
            let failed = outcome.aborted();
            outcomes[i] = Some(outcome);
            if failed {
                aborted = Some(Some(i));
                break;
            }
            i += 1;
        }
        match aborted {
            None => {
                // Other relays push what was stored for, or delivered from, their devices.
                if let Err(e) = notify_in(&mut tx, statements, &notices(batch, &outcomes, relay)) {
                    return (outcomes, Err(e));
                }
                return (outcomes, tx.commit().map_err(StoreError::from));
            }
            Some(failed) => {
                drop(tx); // Rolls back.
                if client.is_closed() {
                    let e = StoreError::Unavailable("connection lost".into());
                    return (outcomes, Err(e));
                }
                // Its outcome (the error) stands; the others are run again.
                if let Some(i) = failed {
                    excluded[i] = true;
                }
                for (j, o) in outcomes.iter_mut().enumerate() {
                    if !excluded[j] {
                        *o = None;
                    }
                }
            }
        }
    }
}

/// The notifications a committed batch sends: each new item to its recipient's relays,
/// each new receipt to its sender's.
fn notices(
    batch: &[Write],
    outcomes: &[Option<Outcome>],
    relay: &str,
) -> Vec<(&'static str, String)> {
    batch
        .iter()
        .zip(outcomes)
        .filter_map(|(w, o)| match (w, o) {
            (Write::Store { to, .. }, Some(Outcome::Stored(Ok(Stored::New(id))))) => {
                Some((INBOX, Notice::inbox_payload(*to, *id, relay)))
            }
            (
                Write::Deliver { id, .. },
                Some(Outcome::Delivered(Ok(Some((sender, client_id, _))))),
            ) => Some((
                RECEIPTS,
                Notice::receipt_payload(*sender, *id, relay, client_id),
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use phoned_proto::StoredMessage;

    use super::*;
    use crate::store::Store;

    fn text(body: &str) -> Item {
        Item::Text(StoredMessage {
            id: 0,
            from_number: "1000".into(),
            from_name: "A".into(),
            text: body.into(),
            sent_ms: 1,
        })
    }

    type Answer<T> = Receiver<Result<T, StoreError>>;

    fn deliver(to: AccountId, id: MessageId) -> (Write, Answer<Delivered>) {
        let (reply, answer) = smol::channel::bounded(1);
        (Write::Deliver { to, id, reply }, answer)
    }

    fn drop_receipt(sender: AccountId, id: MessageId) -> (Write, Answer<()>) {
        let (reply, answer) = smol::channel::bounded(1);
        (Write::DropReceipt { sender, id, reply }, answer)
    }

    fn store(client_id: &str, quota: u64) -> (Write, Answer<Stored>) {
        let (reply, answer) = smol::channel::bounded(1);
        let w = Write::Store {
            from: 1,
            client_id: client_id.into(),
            to: 2,
            item: text(client_id),
            quota,
            reply,
        };
        (w, answer)
    }

    /// Runs `writes` as one batch, as the thread does, and answers them.
    fn one_batch(pg: &PgStore, writes: Vec<Write>) {
        let mut conn = pg.connect().unwrap();
        let (outcomes, committed) = commit_batch(&mut conn, &writes, "test");
        assert!(committed.is_ok(), "{committed:?}");
        for (w, o) in writes.into_iter().zip(outcomes) {
            w.answer(o, None);
        }
    }

    /// Deliveries and receipt drops that share a batch run as one statement per run:
    /// each still gets the answer it would have had on its own, in order.
    #[test]
    fn runs_of_deliveries_and_drops_answer_as_if_one_by_one() {
        let Some(cluster) = phoned_tests::postgres::shared() else {
            return;
        };
        let pg = PgStore::open(&cluster.database().parse().unwrap()).unwrap();
        let s = Store::Postgres(pg.clone());
        let ids: Vec<MessageId> = (0..5)
            .map(|i| {
                s.store_item(1, &format!("c{i}"), 2, text(&format!("m{i}")), u64::MAX)
                    .unwrap()
                    .id()
            })
            .collect();
        let before = s.mailbox_bytes(2).unwrap();
        let (d0, a0) = deliver(2, ids[0]);
        let (d1, a1) = deliver(2, ids[1]);
        let (d1again, a1again) = deliver(2, ids[1]);
        let (dx, ax) = deliver(2, 9999);
        let (r0, ar0) = drop_receipt(1, ids[0]);
        let (r1, ar1) = drop_receipt(1, ids[1]);
        let (st, ast) = store("c0", u64::MAX);
        let (d2, a2) = deliver(2, ids[2]);
        one_batch(&pg, vec![d0, d1, d1again, dx, r0, r1, st, d2]);
        let got = |a: &Answer<Delivered>| a.try_recv().unwrap().unwrap();
        assert!(matches!(got(&a0), Some((1, c, Item::Text(m))) if c == "c0" && m.id == ids[0]));
        assert!(matches!(got(&a1), Some((1, c, _)) if c == "c1"));
        assert_eq!(got(&a1again), None, "the second delivery finds it gone");
        assert_eq!(got(&ax), None);
        ar0.try_recv().unwrap().unwrap();
        ar1.try_recv().unwrap().unwrap();
        assert_eq!(ast.try_recv().unwrap().unwrap(), Stored::Again(ids[0]));
        assert!(got(&a2).is_some());
        let left: Vec<MessageId> = s
            .pending_messages(2)
            .unwrap()
            .iter()
            .map(Item::id)
            .collect();
        assert_eq!(left, [ids[3], ids[4]]);
        assert_eq!(
            s.pending_receipts(1).unwrap(),
            [(ids[2], "c2".to_string())],
            "the dropped receipts are gone, the later one waits"
        );
        let each = (before) / 5;
        assert_eq!(s.mailbox_bytes(2).unwrap(), 2 * each);
    }

    /// A run whose statement fails is run again one write at a time, so that the
    /// failing write alone gets the error.
    #[test]
    fn a_failing_write_in_a_run_fails_alone() {
        let Some(cluster) = phoned_tests::postgres::shared() else {
            return;
        };
        let url = cluster.database();
        let db = url.rsplit('/').next().unwrap().to_owned();
        let pg = PgStore::open(&url.parse().unwrap()).unwrap();
        let s = Store::Postgres(pg.clone());
        let good_id = s
            .store_item(1, "good", 2, text("m"), u64::MAX)
            .unwrap()
            .id();
        let bad_id = s.store_item(1, "bad", 2, text("m"), u64::MAX).unwrap().id();
        // Deleting the bad one fails inside PostgreSQL.
        cluster.psql(
            &db,
            &format!(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN \
                 IF OLD.id = {bad_id} THEN RAISE EXCEPTION 'boom'; END IF; RETURN OLD; \
                 END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER boom BEFORE DELETE ON inbox FOR EACH ROW EXECUTE FUNCTION boom()"
            ),
        );
        let (good, a_good) = deliver(2, good_id);
        let (bad, a_bad) = deliver(2, bad_id);
        let (after, a_after) = drop_receipt(1, good_id);
        one_batch(&pg, vec![good, bad, after]);
        assert!(a_good.try_recv().unwrap().unwrap().is_some());
        assert!(matches!(
            a_bad.try_recv().unwrap(),
            Err(StoreError::Postgres(_))
        ));
        a_after.try_recv().unwrap().unwrap();
        let left: Vec<MessageId> = s
            .pending_messages(2)
            .unwrap()
            .iter()
            .map(Item::id)
            .collect();
        assert_eq!(left, [bad_id], "the failed delivery left its message");
        assert!(s.pending_receipts(1).unwrap().is_empty());
    }
}
