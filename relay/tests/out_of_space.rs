//! The relay's disk and database running out: below the reserve new messages and uploads
//! are refused with `OutOfSpace` while acknowledgements go through; a full database and a
//! full disk still deliver and forget what they stored, with one log line, not a flood.

mod common;

use common::configured::{ConfiguredRelay, LOOPBACK};
use common::space::{SLOW, Tmpfs, abandon, error_lines, fill_disk, provisioned};
use phoned_proto::{ErrorCode, Event, Request, Response};

#[test]
fn below_the_reserve_new_messages_and_uploads_are_refused_but_acks_go_through() {
    let relay = ConfiguredRelay::start(LOOPBACK);
    let partial = relay.state_dir().join("partial");
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (b, nb) = provisioned(&relay, "B").await;
        let send = |client_id: &str| {
            a.request(Request::SendMessage {
                client_id: client_id.into(),
                to: nb.clone(),
                text: "hello".into(),
            })
        };
        let Ok(Response::Stored { id }) = send("before").await else {
            panic!("stored before the reserve changed");
        };
        // A reserve larger than any disk: the relay is out of space from now on.
        let line = relay.reload_with(&format!("{LOOPBACK}min_free_space_mib = 1073741824\n"));
        assert!(line.contains("min_free_space_mib"), "{line}");
        for i in 0..20 {
            let e = send(&format!("refused-{i}")).await.unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::OutOfSpace), "{e}");
        }
        let data = vec![2u8; 1000];
        let e = abandon(&a, &partial, "up", &nb, &data)
            .await
            .expect("upload refused");
        assert_eq!(e.code, ErrorCode::OutOfSpace, "{e}");
        // What was stored is still delivered, acknowledged and forgotten.
        b.wait_event(SLOW, |e| matches!(e, Event::Message(m) if m.id == id))
            .await
            .expect("the stored message arrives");
        assert!(matches!(
            b.request(Request::Delivered { id }).await,
            Ok(Response::Done)
        ));
        a.wait_event(
            SLOW,
            |e| matches!(e, Event::MessageDelivered { id: d, .. } if *d == id),
        )
        .await
        .expect("the sender hears of the delivery");
        phoned_tests::wait_for(SLOW, || relay.log().contains("out of space").then_some(()))
            .expect("the relay says it is out of space");
        relay.reload_with(LOOPBACK);
        phoned_tests::wait_for(SLOW, || {
            relay.log().contains("space available again").then_some(())
        })
        .expect("the relay says it has room again");
        assert!(matches!(send("after").await, Ok(Response::Stored { .. })));
    });
    let log = relay.log();
    let errors = error_lines(&log);
    assert_eq!(
        errors.len(),
        1,
        "one line, not one per refusal: {errors:#?}"
    );
    assert!(errors[0].contains("min_free_space_mib"), "{}", errors[0]);
}

#[test]
fn a_full_database_still_delivers_and_forgets_what_it_stored() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}map_size_mib = 16\nmailbox_quota_kib = 1048576\nmax_message_bytes = 61440\n"
    ));
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (b, nb) = provisioned(&relay, "B").await;
        let text = "m".repeat(60 * 1024);
        let mut stored = Vec::new();
        let refusal = loop {
            let sent = a
                .request(Request::SendMessage {
                    client_id: format!("m{}", stored.len()),
                    to: nb.clone(),
                    text: text.clone(),
                })
                .await;
            match sent {
                Ok(Response::Stored { id }) => stored.push(id),
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
            assert!(stored.len() < 1000, "16 MiB never filled up");
        };
        assert_eq!(refusal.code(), Some(ErrorCode::OutOfSpace), "{refusal}");
        assert!(stored.len() > 100, "stored only {}", stored.len());
        // Every stored message arrives, is acknowledged and forgotten.
        let mut got = Vec::new();
        while got.len() < stored.len() {
            match b.wait_event(SLOW, |e| matches!(e, Event::Message(_))).await {
                Some(Event::Message(m)) => got.push(m.id),
                _ => panic!("got {} of {} messages", got.len(), stored.len()),
            }
        }
        let acks = got.iter().map(|&id| b.request(Request::Delivered { id }));
        for answer in phoned_tests::join_all(acks).await {
            assert!(matches!(answer, Ok(Response::Done)), "{answer:?}");
        }
        let mut receipts = 0;
        while receipts < stored.len() {
            a.wait_event(SLOW, |e| matches!(e, Event::MessageDelivered { .. }))
                .await
                .unwrap_or_else(|| panic!("{receipts} of {} receipts", stored.len()));
            receipts += 1;
        }
        // The room is back: a new message is taken.
        let again = a
            .request(Request::SendMessage {
                client_id: "after".into(),
                to: nb.clone(),
                text: text.clone(),
            })
            .await;
        assert!(matches!(again, Ok(Response::Stored { .. })), "{again:?}");
    });
    let log = relay.log();
    let errors = error_lines(&log);
    assert!(errors.len() <= 1, "no flood: {errors:#?}");
}

/// The full disk, for real: a small tmpfs as the state dir, no reserve (as if
/// another process had filled the disk), messages until the disk is full, then the
/// recipient takes and acknowledges them all. Every acknowledgement is answered `Done`;
/// the deletes the disk refused are retried by the relay itself once room appears, without
/// the recipient reconnecting; the log says "out of space" once instead of once per
/// failure. Needs root for the mount: skipped otherwise.
#[test]
fn a_full_disk_still_takes_acknowledgements_and_retries_the_deletes() {
    let mut mounted = None;
    let mut why_not = None;
    let relay = ConfiguredRelay::start_with(
        &format!(
            "{LOOPBACK}min_free_space_mib = 0\nmailbox_quota_kib = 1048576\n\
             max_message_bytes = 61440\n"
        ),
        |state| match Tmpfs::mount(state, 8) {
            Ok(m) => mounted = Some(m),
            Err(e) => why_not = Some(e),
        },
    );
    if let Some(e) = why_not {
        eprintln!("skipped: cannot mount a tmpfs for the state dir ({e}); needs root");
        return;
    }
    let state = relay.state_dir();
    // Taken before the relay fills the disk, given back at the end.
    let spare = state.join("spare");
    std::fs::write(&spare, vec![0u8; 1 << 20]).expect("spare");
    smol::block_on(async {
        let (a, _) = provisioned(&relay, "A").await;
        let (b, nb) = provisioned(&relay, "B").await;
        // Small messages: a delete frees little and dirties much, so deleting needs
        // new pages, which a full disk refuses.
        let text = "d".repeat(200);
        let mut stored = Vec::new();
        let refusal = 'fill: loop {
            let sends = (0..256).map(|i| {
                a.request(Request::SendMessage {
                    client_id: format!("m{}-{i}", stored.len()),
                    to: nb.clone(),
                    text: text.clone(),
                })
            });
            let mut refused = None;
            for sent in phoned_tests::join_all(sends).await {
                match sent {
                    Ok(Response::Stored { id }) => stored.push(id),
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => refused = Some(e),
                }
            }
            if let Some(e) = refused {
                break 'fill e;
            }
            assert!(stored.len() < 200_000, "the tmpfs never filled up");
        };
        assert_eq!(refusal.code(), Some(ErrorCode::OutOfSpace), "{refusal}");
        // Whatever the relay left free, something else takes.
        let ballast = fill_disk(&state);
        assert!(spare.exists());
        let mut got = Vec::new();
        while got.len() < stored.len() {
            match b.wait_event(SLOW, |e| matches!(e, Event::Message(_))).await {
                Some(Event::Message(m)) => got.push(m.id),
                _ => panic!("got {} of {} messages", got.len(), stored.len()),
            }
        }
        for chunk in got.chunks(512) {
            let acks = chunk.iter().map(|&id| b.request(Request::Delivered { id }));
            for answer in phoned_tests::join_all(acks).await {
                assert!(matches!(answer, Ok(Response::Done)), "{answer:?}");
            }
        }
        // Room again (an operator cleans up): the deletes that failed are applied now,
        // and the sender hears of each delivery, while the recipient stays connected.
        std::fs::remove_file(ballast).expect("ballast");
        std::fs::remove_file(&spare).expect("spare");
        let mut receipts = 0;
        while receipts < stored.len() {
            a.wait_event(SLOW, |e| matches!(e, Event::MessageDelivered { .. }))
                .await
                .unwrap_or_else(|| panic!("{receipts} of {} receipts", stored.len()));
            receipts += 1;
        }
    });
    let log = relay.log();
    // Whether a delete needed pages the full disk refused depends on what LMDB had
    // free at that moment; when one did, it was retried without the recipient.
    let retried = log.contains("applied acknowledgements that waited for room");
    eprintln!("deletes retried after the disk had room again: {retried}");
    let errors = error_lines(&log);
    assert!(errors.len() <= 1, "no flood: {errors:#?}");
    drop(relay);
    drop(mounted);
}
