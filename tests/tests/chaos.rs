//! Chaos: the relay is killed (SIGKILL) and started again several times while three
//! daemons exchange a few hundred messages, and one receiving daemon is killed too. Afterwards nothing may be lost, nothing
//! duplicated, nothing stuck short of `delivered`, and every conversation (sender →
//! recipient) must read in the order it was written.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use phoned_tests::process::{PhonedProcess, phonectl};
use phoned_tests::wait_for;

/// Messages written per conversation; four conversations.
const PER_CONVERSATION: usize = 80;
/// Relay kills spread over the run.
const KILLS: usize = 6;
/// Sender → recipient, as indexes into the daemons. The third daemon only receives, so
/// that it can be killed as well without a writer noticing.
const CONVERSATIONS: [(usize, usize); 4] = [(0, 1), (0, 2), (1, 0), (1, 2)];
/// The daemon killed (SIGKILL) and restarted along with every other relay kill.
const RECEIVER: usize = 2;

fn history(p: &PhonedProcess, peer: Option<&str>) -> Vec<serde_json::Value> {
    let mut args = vec!["--json", "msg", "history", "--limit", "100000"];
    args.extend(peer);
    let out = p.ctl(&args);
    assert_eq!(out.code, 0, "{out:?}");
    out.json().as_array().cloned().unwrap_or_default()
}

/// The message number `i` of a text `"<tag> #<i>"` of conversation `tag`.
fn index_in(tag: &str, text: &str) -> Option<usize> {
    text.strip_prefix(tag)?.strip_prefix(" #")?.parse().ok()
}

#[test]
fn relay_kills_under_message_load_lose_duplicate_strand_and_reorder_nothing() {
    let started = Instant::now();
    let mut w = common::world();
    let mut phones: Vec<PhonedProcess> = ["A", "B", "C"].iter().map(|n| w.phone(n)).collect();
    let numbers: Vec<String> = phones
        .iter()
        .map(|p| {
            p.wait_online(common::ONLINE)["number"]
                .as_str()
                .expect("a number")
                .to_owned()
        })
        .collect();
    let tag = |from: usize, to: usize| format!("{from}>{to}");

    // One writer per conversation, each message after the previous one was accepted
    // (queued or stored), as a person or a script would write them.
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = CONVERSATIONS
        .iter()
        .map(|&(from, to)| {
            let (bus, number, tag) = (
                phones[from].bus.address.clone(),
                numbers[to].clone(),
                tag(from, to),
            );
            let written = written.clone();
            std::thread::spawn(move || {
                (0..PER_CONVERSATION)
                    .map(|i| {
                        let text = format!("{tag} #{i}");
                        let out = phonectl(&bus, &["--json", "msg", "send", &number, &text], "");
                        assert_eq!(out.code, 0, "{text}: {out:?}");
                        written.fetch_add(1, Ordering::Relaxed);
                        out.json()["id"].as_str().expect("an id").to_owned()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();

    let total = CONVERSATIONS.len() * PER_CONVERSATION;
    for k in 1..=KILLS {
        let due = total * k / (KILLS + 1);
        let reached = wait_for(Duration::from_secs(60), || {
            (written.load(Ordering::Relaxed) >= due).then_some(())
        });
        assert!(reached.is_some(), "the writers stalled before kill {k}");
        w.relay.kill();
        // Let a few messages be written while the relay is gone (they wait in the
        // daemons' outboxes), then bring it back on the same address and state.
        let before = written.load(Ordering::Relaxed);
        let _ = wait_for(Duration::from_secs(3), || {
            (written.load(Ordering::Relaxed) >= before + 4).then_some(())
        });
        w.relay.restart();
        if k % 2 == 0 {
            // A receiver dies with messages stored but not yet acknowledged.
            phones[RECEIVER].restart();
        }
    }
    let sent: Vec<Vec<String>> = writers
        .into_iter()
        .map(|t| t.join().expect("writer"))
        .collect();

    // 0 stuck: every message reaches `delivered` at its sender.
    let stuck = |p: usize| -> Vec<(String, String)> {
        let statuses: std::collections::HashMap<String, String> = history(&phones[p], None)
            .into_iter()
            .filter_map(|m| {
                Some((
                    m["id"].as_str()?.to_owned(),
                    m["status"].as_str()?.to_owned(),
                ))
            })
            .collect();
        CONVERSATIONS
            .iter()
            .zip(&sent)
            .filter(|((from, _), _)| *from == p)
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|id| {
                let status = statuses
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| "missing".into());
                (status != "delivered").then(|| (id.clone(), status))
            })
            .collect()
    };
    let settled = wait_for(Duration::from_secs(60), || {
        (0..phones.len()).all(|p| stuck(p).is_empty()).then_some(())
    });
    assert!(
        settled.is_some(),
        "stuck: {:?}",
        (0..phones.len()).map(stuck).collect::<Vec<_>>()
    );

    // 0 lost, 0 duplicated, in order: each recipient has each message once, in the
    // order it was written.
    for &(from, to) in &CONVERSATIONS {
        let tag = tag(from, to);
        let got: Vec<usize> = history(&phones[to], Some(&numbers[from]))
            .iter()
            .filter(|m| m["direction"] == "in")
            .filter_map(|m| index_in(&tag, m["text"].as_str()?))
            .collect();
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique,
            (0..PER_CONVERSATION).collect::<Vec<_>>(),
            "{tag}: lost messages (got {} of {PER_CONVERSATION})",
            unique.len()
        );
        assert_eq!(got.len(), PER_CONVERSATION, "{tag}: duplicates: {got:?}");
        let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
        assert_eq!(inversions, 0, "{tag}: out of order: {got:?}");
    }
    eprintln!(
        "chaos: {total} messages, {KILLS} relay kills, {} receiver kills, settled in {:.1} s",
        KILLS / 2,
        started.elapsed().as_secs_f64()
    );
}
