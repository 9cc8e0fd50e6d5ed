//! Files through a real relay on either store: stored before `Stored`, kept across a
//! `kill -9`, downloaded whole and from an offset, and gone once delivered.

mod common;

use phoned_proto::{BulkReply, BulkRequest, Event, Request, Response};

common::on_both_stores!(a_file_survives_kill9_downloads_from_any_offset_and_goes_once_delivered);

fn a_file_survives_kill9_downloads_from_any_offset_and_goes_once_delivered(store: common::Store) {
    let Some(mut relay) = common::relay_on(store, "") else {
        return;
    };
    // Several of PostgreSQL's 1 MiB chunks, and not a whole number of them.
    let data: Vec<u8> = (0..(3 << 20) + 4321).map(|i| (i % 253) as u8).collect();
    let (number, secret, id) = smol::block_on(async {
        let (alice, _, _) = relay.provisioned("Alice").await;
        let (_bob, number, secret) = relay.provisioned("Bob").await;
        let id = common::files::upload(&alice, &number, "big.bin", &data).await;
        (number, secret, id)
    });
    relay.process.kill();
    relay.process.restart();
    smol::block_on(async {
        let bob = relay.client().await;
        bob.login(&number, &secret).await.unwrap();
        let offer = match bob
            .wait_event(common::WAIT, |e| matches!(e, Event::File(_)))
            .await
        {
            Some(Event::File(f)) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!((offer.id, offer.size), (id, data.len() as u64));
        assert_eq!(common::files::download(&bob, id).await, data);

        // Resumed from an offset inside the second chunk.
        let offset = (1 << 20) + 17;
        let mut bulk = bob
            .open_bulk(&BulkRequest::Download { id, offset })
            .await
            .unwrap();
        bulk.send.finish().unwrap();
        match bulk.reply().await.unwrap() {
            BulkReply::Sending { size, offset: o } => {
                assert_eq!((size, o), (data.len() as u64, offset))
            }
            other => panic!("{other:?}"),
        }
        let mut rest = bulk.take_rest();
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(n) = bulk.recv.read(&mut buf).await.unwrap() {
            rest.extend_from_slice(&buf[..n]);
        }
        assert!(rest == data[offset as usize..], "the rest from the offset");

        assert!(matches!(
            bob.request(Request::Delivered { id }).await,
            Ok(Response::Done)
        ));
        let mut bulk = bob
            .open_bulk(&BulkRequest::Download { id, offset: 0 })
            .await
            .unwrap();
        bulk.send.finish().unwrap();
        assert!(
            matches!(bulk.reply().await.unwrap(), BulkReply::Error(_)),
            "a delivered file is gone"
        );
    });
}
