//! The store's contract, tested against both backends: each case below runs once on a
//! fresh LMDB environment and once on a fresh database of a real PostgreSQL
//! (`phoned_tests::postgres`, skipped only where PostgreSQL is not installed and not in
//! CI).

use std::path::PathBuf;

use phoned_proto::{FileKind, MessageId, Number, NumberRange, StoredFile, StoredMessage};

use super::heed::HeedStore;
use super::pg::PgStore;
use super::{Committer, Item, NewNumber, Store, StoreError, Stored};

/// A store to test and how to open it again (as a restarted relay would).
struct Fixture {
    store: Store,
    reopen: Box<dyn Fn() -> Store>,
    dir: tempfile::TempDir,
}

fn heed() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    Fixture {
        store: Store::Heed(HeedStore::open(&path, 16).unwrap()),
        reopen: Box::new(move || Store::Heed(HeedStore::open(&path, 16).unwrap())),
        dir,
    }
}

fn postgres() -> Option<Fixture> {
    let cluster = phoned_tests::postgres::shared()?;
    let url: super::pg::Url = cluster.database().parse().unwrap();
    let again = url.clone();
    Some(Fixture {
        store: Store::Postgres(PgStore::open(&url).unwrap()),
        reopen: Box::new(move || Store::Postgres(PgStore::open(&again).unwrap())),
        dir: tempfile::tempdir().unwrap(),
    })
}

/// Each case as two tests, `case::heed` and `case::postgres`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn heed() {
                    super::$case(super::heed());
                }

                #[test]
                fn postgres() {
                    if let Some(f) = super::postgres() {
                        super::$case(f);
                    }
                }
            }
        )*
    };
}

suite!(
    provisioning_fills_the_range_then_reports_exhaustion,
    numbers_are_unique_and_change_atomically,
    concurrent_changes_to_one_number_have_exactly_one_winner,
    every_account_change_bumps_the_revision,
    stored_until_delivered_then_a_receipt_waits,
    the_total_of_all_mailboxes_follows_stores_and_deliveries,
    pending_after_gives_the_inbox_above_a_cursor_in_id_order,
    the_mailbox_quota_counts_waiting_messages_only,
    committed_writes_answer_in_order_and_survive_a_reopen,
    a_refused_write_leaves_no_trace_and_its_batch_commits,
    blobs_are_kept_read_from_any_offset_and_released_when_unused,
    reopening_keeps_accounts_and_the_schema_is_migrated_once,
);

fn num(s: &str) -> Number {
    s.parse().unwrap()
}

fn msg(text: &str) -> StoredMessage {
    StoredMessage {
        id: 0,
        from_number: "1000".into(),
        from_name: "A".into(),
        text: text.into(),
        sent_ms: 1,
    }
}

fn texts(s: &Store, to: u64) -> Vec<String> {
    s.pending_messages(to)
        .unwrap()
        .into_iter()
        .map(|i| match i {
            Item::Text(m) => m.text,
            Item::File(f) => f.name,
        })
        .collect()
}

fn provisioning_fills_the_range_then_reports_exhaustion(f: Fixture) {
    let s = &f.store;
    let range: NumberRange = "10-19".parse().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..10 {
        let a = s
            .create_account(NewNumber::FromRange(range, i * 7919), "x", "h", 0)
            .unwrap();
        assert!(range.contains(&num(&a.number)));
        assert!(seen.insert(a.number));
    }
    assert!(matches!(
        s.create_account(NewNumber::FromRange(range, 3), "x", "h", 0),
        Err(StoreError::NumbersExhausted(_))
    ));
}

fn numbers_are_unique_and_change_atomically(f: Fixture) {
    let s = &f.store;
    let a = s
        .create_account(NewNumber::Exact(&num("1042")), "a", "h", 7)
        .unwrap();
    assert_eq!((a.created_ms, a.last_seen_ms, a.epoch), (7, 7, 0));
    let b = s
        .create_account(NewNumber::Exact(&num("1043")), "b", "h", 0)
        .unwrap();
    assert_ne!(a.id, b.id);
    assert!(matches!(
        s.create_account(NewNumber::Exact(&num("1042")), "c", "h", 0),
        Err(StoreError::NumberTaken(_))
    ));
    assert!(matches!(
        s.change_number(b.id, &num("1042")),
        Err(StoreError::NumberTaken(_))
    ));
    let a2 = s.change_number(a.id, &num("2000")).unwrap();
    assert_eq!(a2.number, "2000");
    assert!(s.account_by_number("1042").unwrap().is_none());
    assert_eq!(s.account_by_number("2000").unwrap().unwrap().id, a.id);
    s.change_number(b.id, &num("1042")).unwrap();
    let numbers: Vec<_> = s
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.number)
        .collect();
    assert_eq!(numbers, ["1042", "2000"]);
    assert!(matches!(
        s.change_number(999, &num("3000")),
        Err(StoreError::NotFound(_))
    ));
}

/// N accounts, each on a thread of its own (with PostgreSQL, a connection of its own),
/// all move to one free number at once: exactly one gets it.
fn concurrent_changes_to_one_number_have_exactly_one_winner(f: Fixture) {
    const N: usize = 12;
    let s = &f.store;
    let ids: Vec<u64> = (0..N)
        .map(|i| {
            s.create_account(
                NewNumber::Exact(&num(&format!("{}", 3000 + i))),
                "x",
                "h",
                0,
            )
            .unwrap()
            .id
        })
        .collect();
    for round in 0..5 {
        let target = num(&format!("{}", 4000 + round));
        let start = std::sync::Barrier::new(N);
        let outcomes: Vec<Result<u64, StoreError>> = std::thread::scope(|scope| {
            let threads: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let (s, target, start) = (s.clone(), target.clone(), &start);
                    scope.spawn(move || {
                        start.wait();
                        s.change_number(id, &target).map(|a| a.id)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let winners: Vec<u64> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Ok(_) | Err(StoreError::NumberTaken(_)))),
            "{outcomes:?}"
        );
        assert_eq!(
            s.account_by_number(target.as_str()).unwrap().unwrap().id,
            winners[0]
        );
        // Every account still has exactly one number, and no number two accounts.
        let all = s.accounts().unwrap();
        assert_eq!(all.len(), N);
        let numbers: std::collections::BTreeSet<_> = all.iter().map(|a| &a.number).collect();
        assert_eq!(numbers.len(), N);
    }
}

fn every_account_change_bumps_the_revision(f: Fixture) {
    let s = &f.store;
    let r0 = s.revision().unwrap();
    let a = s
        .create_account(NewNumber::Exact(&num("1042")), "a", "h", 0)
        .unwrap();
    let r1 = s.revision().unwrap();
    assert!(r1 > r0);
    assert_eq!(s.set_display_name(a.id, "b").unwrap().display_name, "b");
    let r2 = s.revision().unwrap();
    assert!(r2 > r1);
    s.touch(a.id, 5).unwrap();
    assert_eq!(s.revision().unwrap(), r2, "touch does not bump");
    assert_eq!(s.account(a.id).unwrap().unwrap().last_seen_ms, 5);
    let d = s.set_disabled(a.id, true).unwrap();
    assert!(d.disabled);
    assert_eq!(d.epoch, 1);
    assert_eq!(
        s.set_disabled(a.id, true).unwrap().epoch,
        1,
        "already disabled"
    );
    let e = s.set_disabled(a.id, false).unwrap();
    assert!(!e.disabled);
    let p = s.set_password_hash(a.id, "h2", true).unwrap();
    assert_eq!((p.password_hash.as_str(), p.epoch), ("h2", 2));
    let p = s.set_password_hash(a.id, "h3", false).unwrap();
    assert_eq!(p.epoch, 2);
    let r3 = s.revision().unwrap();
    assert!(r3 > r2);
    assert_eq!(s.account(a.id).unwrap().unwrap(), p);
    s.delete_account("1042").unwrap();
    assert!(s.revision().unwrap() > r3);
    assert!(s.account(a.id).unwrap().is_none());
    assert!(matches!(
        s.delete_account("1042"),
        Err(StoreError::NotFound(_))
    ));
}

fn stored_until_delivered_then_a_receipt_waits(f: Fixture) {
    let s = &f.store;
    let first = s.store_message(1, "c1", 2, msg("hello"), 1 << 20).unwrap();
    assert!(matches!(first, Stored::New(_)));
    assert_eq!(
        s.store_message(1, "c1", 2, msg("hello"), 1 << 20).unwrap(),
        Stored::Again(first.id())
    );
    assert_eq!(s.stored_id(1, "c1").unwrap(), Some(first.id()));
    assert_eq!(s.stored_id(1, "nope").unwrap(), None);
    let second = s
        .store_message(1, "c2", 2, msg("again"), 1 << 20)
        .unwrap()
        .id();
    assert!(second > first.id());
    assert_eq!(texts(s, 2), ["hello", "again"]);
    match s.inbox_item(2, second).unwrap() {
        Some(Item::Text(m)) => assert_eq!((m.id, m.text.as_str()), (second, "again")),
        other => panic!("{other:?}"),
    }
    assert!(s.pending_messages(1).unwrap().is_empty());
    assert!(matches!(
        s.deliver_message(2, first.id()).unwrap(),
        Some((1, c, Item::Text(m))) if c == "c1" && m.id == first.id()
    ));
    assert_eq!(s.deliver_message(2, first.id()).unwrap(), None);
    assert_eq!(s.pending_messages(2).unwrap().len(), 1);
    assert_eq!(
        s.pending_receipts(1).unwrap(),
        [(first.id(), "c1".to_string())]
    );
    s.drop_receipt(1, first.id()).unwrap();
    assert!(s.pending_receipts(1).unwrap().is_empty());
    // A retry after delivery is still recognised.
    assert_eq!(
        s.store_message(1, "c1", 2, msg("hello"), 1 << 20).unwrap(),
        Stored::Again(first.id())
    );
}

fn the_total_of_all_mailboxes_follows_stores_and_deliveries(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.mailbox_bytes_total().unwrap(), 0);
    let a = s.store_message(1, "a", 2, msg("to two"), 1 << 20).unwrap();
    s.store_message(1, "b", 3, msg("to three"), 1 << 20)
        .unwrap();
    let both = s.mailbox_bytes(2).unwrap() + s.mailbox_bytes(3).unwrap();
    assert_eq!(s.mailbox_bytes(2).unwrap(), 64 + 6);
    assert_eq!(s.mailbox_bytes_total().unwrap(), both);
    s.deliver_message(2, a.id()).unwrap();
    assert_eq!(s.mailbox_bytes(2).unwrap(), 0);
    assert_eq!(
        s.mailbox_bytes_total().unwrap(),
        s.mailbox_bytes(3).unwrap()
    );
}

fn pending_after_gives_the_inbox_above_a_cursor_in_id_order(f: Fixture) {
    let s = &f.store;
    let ids: Vec<_> = (0..4)
        .map(|i| {
            s.store_message(1, &format!("c{i}"), 2, msg(&format!("m{i}")), 1 << 20)
                .unwrap()
                .id()
        })
        .collect();
    s.store_message(1, "x", 3, msg("other"), 1 << 20).unwrap();
    s.deliver_message(2, ids[2]).unwrap();
    let after = |cursor| -> Vec<MessageId> {
        s.pending_after(2, cursor, usize::MAX)
            .unwrap()
            .iter()
            .map(Item::id)
            .collect()
    };
    assert_eq!(after(0), [ids[0], ids[1], ids[3]]);
    assert_eq!(after(ids[1]), [ids[3]]);
    assert!(after(ids[3]).is_empty());
    assert!(after(u64::MAX).is_empty());
    assert_eq!(s.pending_after(2, 0, 2).unwrap().len(), 2, "a limited read");
    s.deliver_message(2, ids[0]).unwrap();
    s.deliver_message(2, ids[1]).unwrap();
    let receipts = s.pending_receipts_after(1, ids[0], usize::MAX).unwrap();
    let rids: Vec<_> = receipts.iter().map(|r| r.0).collect();
    assert_eq!(rids, [ids[1], ids[2]]);
    assert_eq!(s.pending_receipts_after(1, 0, 1).unwrap().len(), 1);
}

fn the_mailbox_quota_counts_waiting_messages_only(f: Fixture) {
    let s = &f.store;
    let quota = 200;
    let id = s
        .store_message(1, "a", 2, msg(&"x".repeat(100)), quota)
        .unwrap()
        .id();
    assert!(matches!(
        s.store_message(1, "b", 2, msg(&"x".repeat(100)), quota),
        Err(StoreError::QuotaExceeded)
    ));
    assert_eq!(
        s.stored_id(1, "b").unwrap(),
        None,
        "a refusal leaves no trace"
    );
    s.deliver_message(2, id).unwrap();
    assert!(
        s.store_message(1, "b", 2, msg(&"x".repeat(100)), quota)
            .is_ok()
    );
}

/// Many submitters through the group committer: each hears back with an id of its own,
/// ids come in the order each submitter stored, and everything is there after a reopen.
fn committed_writes_answer_in_order_and_survive_a_reopen(f: Fixture) {
    let (submitters, each) = (8u64, 25u64);
    {
        let committer = Committer::start(f.store.clone()).unwrap();
        let all: Vec<Vec<MessageId>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..submitters)
                .map(|s| {
                    let committer = &committer;
                    scope.spawn(move || {
                        // Queued without waiting, then waited for: they share batches.
                        let pending: Vec<_> = (0..each)
                            .map(|i| {
                                let item = Item::Text(msg(&format!("{s}/{i}")));
                                smol::block_on(committer.queue_store_item(
                                    100 + s,
                                    format!("m{i}"),
                                    2,
                                    item,
                                    u64::MAX,
                                ))
                                .unwrap()
                            })
                            .collect();
                        pending
                            .into_iter()
                            .map(|p| smol::block_on(p.wait()).unwrap().id())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for ids in &all {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
        }
        let mut ids: Vec<_> = all.concat();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len() as u64, submitters * each, "each got its own id");
        // Deliveries and receipts through the committer too.
        let first = ids[0];
        let delivered = smol::block_on(async {
            committer
                .queue_deliver_message(2, first)
                .await
                .unwrap()
                .wait()
                .await
        })
        .unwrap();
        assert!(delivered.is_some());
        let again = smol::block_on(async {
            committer
                .queue_deliver_message(2, first)
                .await
                .unwrap()
                .wait()
                .await
        })
        .unwrap();
        assert!(again.is_none());
    }
    let Fixture { store, reopen, dir } = f;
    drop(store);
    let s = reopen();
    assert_eq!(texts(&s, 2).len() as u64, submitters * each - 1);
    assert!(s.stored_id(107, "m24").unwrap().is_some());
    let receipts: usize = (100..100 + submitters)
        .map(|a| s.pending_receipts(a).unwrap().len())
        .sum();
    assert_eq!(receipts, 1);
    drop(dir);
}

/// Writes queued together: one refused for the quota, one a retry of an earlier one in
/// the same batch. The refused one leaves no trace; the others commit.
fn a_refused_write_leaves_no_trace_and_its_batch_commits(f: Fixture) {
    let quota = 64 + 100 + 64 + 10;
    let committer = Committer::start(f.store.clone()).unwrap();
    let results = smol::block_on(async {
        let a = committer
            .queue_store_item(1, "a".into(), 2, Item::Text(msg(&"x".repeat(100))), quota)
            .await
            .unwrap();
        let big = committer
            .queue_store_item(1, "big".into(), 2, Item::Text(msg(&"y".repeat(20))), quota)
            .await
            .unwrap();
        let again = committer
            .queue_store_item(1, "a".into(), 2, Item::Text(msg(&"x".repeat(100))), quota)
            .await
            .unwrap();
        let b = committer
            .queue_store_item(1, "b".into(), 2, Item::Text(msg(&"w".repeat(10))), quota)
            .await
            .unwrap();
        (
            a.wait().await,
            big.wait().await,
            again.wait().await,
            b.wait().await,
        )
    });
    let a = results.0.unwrap();
    assert!(matches!(a, Stored::New(_)));
    assert!(matches!(results.1, Err(StoreError::QuotaExceeded)));
    assert_eq!(results.2.unwrap(), Stored::Again(a.id()));
    assert_eq!(
        results.3.unwrap(),
        Stored::New(a.id() + 1),
        "no id was used up"
    );
    assert_eq!(texts(&f.store, 2), ["x".repeat(100), "w".repeat(10)]);
    assert_eq!(f.store.mailbox_bytes(2).unwrap(), quota);
    assert_eq!(f.store.stored_id(1, "big").unwrap(), None);
}

fn file(sha256: [u8; 32], size: u64) -> Item {
    Item::File(StoredFile {
        id: 0,
        from_number: "1000".into(),
        from_name: "A".into(),
        name: "f.bin".into(),
        size,
        sha256,
        kind: FileKind::File,
        sent_ms: 1,
    })
}

fn blobs_are_kept_read_from_any_offset_and_released_when_unused(f: Fixture) {
    let s = &f.store;
    let state = f.dir.path().join("state");
    std::fs::create_dir_all(state.join("partial")).unwrap();
    // More than two PostgreSQL chunks, not a multiple of one.
    let data: Vec<u8> = (0..(2 * super::pg::BLOB_CHUNK + 12_345))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let sha: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest(&data).into()
    };
    let partial: PathBuf = state.join("partial").join("upload");
    std::fs::write(&partial, &data).unwrap();
    s.keep_blob(&state, &sha, &partial).unwrap();
    assert!(!partial.exists(), "the upload's file is gone");
    let read_all = |piece: usize| {
        let mut out = Vec::new();
        loop {
            let got = s
                .read_blob(&state, &sha, out.len() as u64, piece)
                .unwrap()
                .unwrap();
            if got.is_empty() {
                return out;
            }
            assert!(got.len() <= piece);
            out.extend_from_slice(&got);
        }
    };
    assert_eq!(read_all(256 * 1024), data);
    assert_eq!(read_all(1_000_003), data);
    let off = super::pg::BLOB_CHUNK as u64 - 3;
    assert_eq!(
        s.read_blob(&state, &sha, off, 10).unwrap().unwrap(),
        data[off as usize..off as usize + 10]
    );
    assert_eq!(s.read_blob(&state, &[9; 32], 0, 10).unwrap(), None);
    // In an inbox: kept on release. Delivered: released.
    let id = s
        .store_item(1, "f", 2, file(sha, data.len() as u64), u64::MAX)
        .unwrap()
        .id();
    assert!(s.blob_in_use(&sha).unwrap());
    s.release_blob(&state, &sha).unwrap();
    assert!(s.read_blob(&state, &sha, 0, 1).unwrap().is_some());
    assert!(matches!(
        s.deliver_message(2, id).unwrap(),
        Some((1, _, Item::File(_)))
    ));
    assert!(!s.blob_in_use(&sha).unwrap());
    s.release_blob(&state, &sha).unwrap();
    assert_eq!(s.read_blob(&state, &sha, 0, 1).unwrap(), None);
    // An empty file is a blob too.
    let empty: [u8; 32] = {
        use sha2::Digest;
        sha2::Sha256::digest([]).into()
    };
    std::fs::write(&partial, []).unwrap();
    s.keep_blob(&state, &empty, &partial).unwrap();
    assert_eq!(
        s.read_blob(&state, &empty, 0, 10).unwrap(),
        Some(Vec::new())
    );
}

fn reopening_keeps_accounts_and_the_schema_is_migrated_once(f: Fixture) {
    let a = f
        .store
        .create_account(NewNumber::Exact(&num("1042")), "a", "h", 0)
        .unwrap();
    let Fixture {
        store,
        reopen,
        dir: _dir,
    } = f;
    drop(store);
    let again = reopen();
    assert_eq!(again.account(a.id).unwrap().unwrap(), a);
    let b = again
        .create_account(NewNumber::Exact(&num("1043")), "b", "h", 0)
        .unwrap();
    assert!(b.id > a.id, "ids go on from where they were");
    if let Store::Postgres(pg) = &again {
        assert_eq!(
            super::pg::schema::migrate(&mut pg.conn().unwrap().client).unwrap(),
            super::pg::schema::latest()
        );
    }
}
