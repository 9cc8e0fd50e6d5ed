//! The order in which the relay hands out an inbox, and how long it keeps receipts:
//! a recipient's devices get messages in the order they were stored, also a device that
//! logs in mid-burst; a receipt stays until a protocol 2 sender says `ReceiptSeen`, and a
//! protocol 1 sender (which never says it) gets it once, as before.

mod common;

common::on_both_stores!(
    an_inbox_reaches_every_device_in_the_order_it_was_stored,
    a_receipt_waits_for_receipt_seen_from_a_protocol_2_sender_only,
);

use std::time::Duration;

use phoned_proto::{Event, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Request, Response};
use phoned_tests::client::{self, Client, Trust};
use phoned_tests::join_all;

const BURST: usize = 400;

/// Collects `count` message ids pushed to `c`, in arrival order.
async fn message_ids(c: &Client, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    while ids.len() < count {
        match c
            .wait_event(common::WAIT, |e| matches!(e, Event::Message(_)))
            .await
        {
            Some(Event::Message(m)) => ids.push(m.id),
            _ => panic!("only {} of {count} messages arrived: {ids:?}", ids.len()),
        }
    }
    ids
}

fn an_inbox_reaches_every_device_in_the_order_it_was_stored(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let (sender, _, _) = relay.provisioned("Sender").await;
        let (first, number, secret) = relay.provisioned("Receiver").await;
        let sends = (0..BURST).map(|i| {
            sender.request(Request::SendMessage {
                client_id: format!("m{i}"),
                to: number.clone(),
                text: format!("message {i}"),
            })
        });
        // A second device logs in while the burst is being stored: it gets the backlog
        // and the rest, in one order, with nothing twice.
        let second = async {
            let c = relay.client().await;
            c.login(&number, &secret).await.expect("login");
            c
        };
        let (answers, second) = smol::future::zip(join_all(sends), second).await;
        let stored: Vec<u64> = answers
            .into_iter()
            .map(|a| match a {
                Ok(Response::Stored { id }) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        for device in [&first, &second] {
            let got = message_ids(device, BURST).await;
            assert_eq!(got, stored, "in the order stored, each once");
        }
    });
}

async fn receipt(c: &Client, within: Duration) -> Option<u64> {
    match c
        .wait_event(within, |e| matches!(e, Event::MessageDelivered { .. }))
        .await
    {
        Some(Event::MessageDelivered { id, .. }) => Some(id),
        _ => None,
    }
}

fn a_receipt_waits_for_receipt_seen_from_a_protocol_2_sender_only(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let (receiver, to, _) = relay.provisioned("Receiver").await;
        for version in [PROTOCOL_VERSION, MIN_PROTOCOL_VERSION] {
            let (number, secret) = {
                let c = relay.client_speaking(version).await;
                let (account, secret) = c.provision("Sender").await.expect("provision");
                (account.number, secret)
            };
            let sender = relay.client_speaking(version).await;
            sender.login(&number, &secret).await.expect("login");
            let id = match sender
                .request(Request::SendMessage {
                    client_id: "c1".into(),
                    to: to.clone(),
                    text: "hi".into(),
                })
                .await
            {
                Ok(Response::Stored { id }) => id,
                other => panic!("{other:?}"),
            };
            assert!(matches!(
                receiver.request(Request::Delivered { id }).await,
                Ok(Response::Done)
            ));
            assert_eq!(receipt(&sender, common::WAIT).await, Some(id));
            drop(sender);

            // Not acknowledged: a protocol 2 device gets it again at its next login.
            let again = relay.client_speaking(version).await;
            again.login(&number, &secret).await.expect("login");
            let repeated = receipt(&again, Duration::from_secs(1)).await;
            if version == MIN_PROTOCOL_VERSION {
                assert_eq!(repeated, None, "protocol 1: forgotten once pushed");
                continue;
            }
            assert_eq!(repeated, Some(id), "kept until acknowledged");
            assert!(matches!(
                again.request(Request::ReceiptSeen { id }).await,
                Ok(Response::Done)
            ));
            let after = relay.client_speaking(version).await;
            after.login(&number, &secret).await.expect("login");
            assert_eq!(receipt(&after, Duration::from_secs(1)).await, None);
        }
    });
}

#[test]
fn a_protocol_newer_than_the_relays_is_refused_and_the_client_says_what_it_speaks() {
    let relay = common::relay("");
    smol::block_on(async {
        let c = relay.client().await;
        assert_eq!(c.version(), PROTOCOL_VERSION);
        // One past ours is refused (the client then tries the next older version).
        let trust = Trust::Pinned {
            fingerprint: relay.process.fingerprint.clone(),
            learnt: false,
        };
        let refused = Client::connect_speaking(
            &client::endpoint(),
            relay.process.addr,
            "phone-relay",
            trust,
            PROTOCOL_VERSION + 1,
        )
        .await;
        assert!(
            matches!(&refused, Err(e) if e.code() == Some(phoned_proto::ErrorCode::UnsupportedVersion)),
            "{:?}",
            refused.err()
        );
    });
}

#[test]
fn a_backlog_larger_than_a_sessions_queue_arrives_whole() {
    const BACKLOG: usize = 2500;
    let relay = common::relay("");
    smol::block_on(async {
        let (sender, _, _) = relay.provisioned("Sender").await;
        let (number, secret) = {
            let (_c, number, secret) = relay.provisioned("Receiver").await;
            (number, secret)
        };
        for chunk in (0..BACKLOG).collect::<Vec<_>>().chunks(500) {
            let sends = chunk.iter().map(|i| {
                sender.request(Request::SendMessage {
                    client_id: format!("m{i}"),
                    to: number.clone(),
                    text: format!("message {i}"),
                })
            });
            for a in join_all(sends).await {
                assert!(matches!(a, Ok(Response::Stored { .. })), "{a:?}");
            }
        }
        let receiver = relay.client().await;
        receiver.login(&number, &secret).await.expect("login");
        let mut got = Vec::new();
        while got.len() < BACKLOG {
            match receiver
                .wait_event(common::WAIT, |e| matches!(e, Event::Message(_)))
                .await
            {
                Some(Event::Message(m)) => {
                    got.push(m.id);
                    let r = receiver.request(Request::Delivered { id: m.id }).await;
                    assert!(matches!(r, Ok(Response::Done)), "{r:?}");
                }
                _ => panic!("only {} of {BACKLOG} arrived", got.len()),
            }
        }
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(got, sorted);
    });
}

#[test]
fn receipts_larger_than_a_sessions_queue_arrive_whole() {
    const BACKLOG: usize = 2500;
    let relay = common::relay("");
    smol::block_on(async {
        let (receiver, to, _) = relay.provisioned("Receiver").await;
        let (number, secret) = {
            let (sender, number, secret) = relay.provisioned("Sender").await;
            for chunk in (0..BACKLOG).collect::<Vec<_>>().chunks(500) {
                let sends = chunk.iter().map(|i| {
                    sender.request(Request::SendMessage {
                        client_id: format!("m{i}"),
                        to: to.clone(),
                        text: format!("message {i}"),
                    })
                });
                for a in join_all(sends).await {
                    assert!(matches!(a, Ok(Response::Stored { .. })), "{a:?}");
                }
            }
            (number, secret)
        };
        // The sender is gone; every message is acknowledged meanwhile.
        for id in message_ids(&receiver, BACKLOG).await {
            let r = receiver.request(Request::Delivered { id }).await;
            assert!(matches!(r, Ok(Response::Done)), "{r:?}");
        }
        let sender = relay.client().await;
        sender.login(&number, &secret).await.expect("login");
        let mut got = 0;
        while got < BACKLOG {
            let Some(id) = receipt(&sender, common::WAIT).await else {
                panic!("only {got} of {BACKLOG} receipts arrived");
            };
            got += 1;
            let r = sender.request(Request::ReceiptSeen { id }).await;
            assert!(matches!(r, Ok(Response::Done)), "{r:?}");
        }
    });
}
