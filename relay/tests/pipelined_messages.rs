//! Messages a client sends without waiting are committed together (group commit) and
//! each is answered only once durable: a `kill -9` right after the answers loses none.

mod common;

common::on_both_stores!(pipelined_messages_are_answered_in_full_and_survive_kill9,);

use phoned_proto::{ErrorCode, Event, Request, Response};
use phoned_tests::join_all;

const COUNT: usize = 64;

fn pipelined_messages_are_answered_in_full_and_survive_kill9(store: common::Store) {
    let Some(mut relay) = common::relay_on(store, "max_message_bytes = 100") else {
        return;
    };
    let (receiver_number, receiver_secret) = smol::block_on(async {
        let (sender, _, _) = relay.provisioned("Sender").await;
        let (_receiver, number, secret) = relay.provisioned("Receiver").await;
        let sends = (0..COUNT + 2).map(|i| {
            let (client_id, text) = match i {
                // A retry of message 3 in the same burst.
                i if i == COUNT => ("m3".to_string(), "message 3".to_string()),
                // Refused before anything is written.
                i if i == COUNT + 1 => ("big".to_string(), "x".repeat(101)),
                i => (format!("m{i}"), format!("message {i}")),
            };
            sender.request(Request::SendMessage {
                client_id,
                to: number.clone(),
                text,
            })
        });
        let answers = join_all(sends).await;
        let mut ids = Vec::new();
        for answer in &answers[..COUNT] {
            match answer {
                Ok(Response::Stored { id }) => ids.push(*id),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            matches!(answers[COUNT], Ok(Response::Stored { id }) if id == ids[3]),
            "a retry gets the first id: {:?}",
            answers[COUNT]
        );
        assert_eq!(
            answers[COUNT + 1].as_ref().unwrap_err().code(),
            Some(ErrorCode::TooLarge)
        );
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), COUNT, "one id per message");
        (number, secret)
    });
    // Everything answered `Stored` is on disk.
    relay.process.kill();
    relay.process.restart();
    smol::block_on(async {
        let receiver = relay.client().await;
        receiver
            .login(&receiver_number, &receiver_secret)
            .await
            .unwrap();
        let mut ids = Vec::new();
        while ids.len() < COUNT {
            match receiver
                .wait_event(common::WAIT, |e| matches!(e, Event::Message(_)))
                .await
            {
                Some(Event::Message(m)) => ids.push(m.id),
                _ => panic!("only {} of {COUNT} messages survived", ids.len()),
            }
        }
        // Acked all at once: every ack is answered, and nothing waits any more.
        let acks = ids
            .iter()
            .map(|&id| receiver.request(Request::Delivered { id }));
        for r in join_all(acks).await {
            assert!(matches!(r, Ok(Response::Done)), "{r:?}");
        }
        // A login's waiting messages come before its answer on the same stream.
        let again = relay.client().await;
        again
            .login(&receiver_number, &receiver_secret)
            .await
            .unwrap();
        assert!(
            again
                .wait_event(std::time::Duration::ZERO, |e| matches!(
                    e,
                    Event::Message(_)
                ))
                .await
                .is_none(),
            "delivered messages are gone"
        );
    });
}
