//! Presence across several real clients: comings, goings, and a device that vanishes.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use phoned_proto::liveness::SILENT_AFTER;
use phoned_proto::{Event, Request, Response};
use phoned_tests::client::{self, Client, KeepAlive, Trust};
use phoned_tests::proxy::UdpProxy;

fn presence(e: &Event, number: &str, online: bool) -> bool {
    matches!(e, Event::Presence { number: n, online: o, .. } if n == number && *o == online)
}

#[test]
fn presence_events_reach_every_other_client() {
    let relay = common::relay("");
    smol::block_on(async {
        let (a, na, _) = relay.provisioned("A").await;
        let (b, nb, _) = relay.provisioned("B").await;
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nb, true))
                .await
                .is_some()
        );
        let (c, nc, sc) = relay.provisioned("C").await;
        assert!(
            a.wait_event(common::WAIT, |e| presence(e, &nc, true))
                .await
                .is_some()
        );
        assert!(
            b.wait_event(common::WAIT, |e| presence(e, &nc, true))
                .await
                .is_some()
        );
        let mut online: Vec<String> = c
            .online()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        online.sort();
        let mut expect = vec![na.clone(), nb.clone(), nc.clone()];
        expect.sort();
        assert_eq!(online, expect);

        // A second device of C comes and goes: no presence change for the others.
        let c2 = relay.client().await;
        c2.login(&nc, &sc).await.unwrap();
        c2.conn.close(0u32.into(), b"bye");
        drop(c2);
        // C closes cleanly: offline for A and B at once, and not before.
        c.conn.close(0u32.into(), b"bye");
        let ev = a
            .wait_event(common::WAIT, |e| matches!(e, Event::Presence { .. }))
            .await
            .unwrap();
        assert!(
            presence(&ev, &nc, false),
            "first presence event after the second device: {ev:?}"
        );
        assert!(
            b.wait_event(common::WAIT, |e| presence(e, &nc, false))
                .await
                .is_some()
        );
        let online: Vec<String> = a
            .online()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(!online.contains(&nc));
    });
}

/// Devices logging in at once (their presence goes out in batches): each one's online
/// list, as a daemon keeps it (`ListOnline` after its login, then the events in order),
/// ends with everyone else.
#[test]
fn a_burst_of_logins_leaves_every_device_with_the_whole_list() {
    const DEVICES: usize = 24;
    let relay = common::relay("provision_burst = 100\nmax_connections_per_address = 100");
    let relay = &relay;
    smol::block_on(async {
        let joined = (0..DEVICES).map(|i| async move {
            let c = relay.client().await;
            let (account, _) = c.provision(&format!("D{i}")).await.expect("provision");
            let view: BTreeSet<String> = c
                .online()
                .await
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| *n != account.number)
                .collect();
            (c, account.number, view)
        });
        let mut devices = phoned_tests::join_all(joined).await;
        let all: BTreeSet<String> = devices.iter().map(|(_, n, _)| n.clone()).collect();
        for (c, own, view) in &mut devices {
            let mut want = all.clone();
            want.remove(own.as_str());
            while *view != want {
                match c
                    .wait_event(common::WAIT, |e| matches!(e, Event::Presence { .. }))
                    .await
                {
                    Some(Event::Presence { number, online, .. }) => {
                        assert_ne!(&number, own, "a device heard of its own account");
                        if online {
                            view.insert(number);
                        } else {
                            view.remove(&number);
                        }
                    }
                    _ => panic!("{own} sees {view:?}, not {want:?}"),
                }
            }
        }
    });
}

#[test]
fn a_device_that_vanishes_goes_offline_within_the_idle_timeout() {
    let relay = common::relay("idle_timeout_ms = 1500\nkeep_alive_ms = 500");
    smol::block_on(async {
        let (watcher, _, _) = relay.provisioned("Watcher").await;
        let proxy = UdpProxy::start(relay.process.addr).await.unwrap();
        let ghost = Client::connect(
            &client::endpoint(),
            proxy.addr,
            Some(&relay.process.fingerprint),
        )
        .await
        .unwrap();
        let (account, _) = ghost.provision("Ghost").await.unwrap();
        assert!(
            watcher
                .wait_event(common::WAIT, |e| presence(e, &account.number, true))
                .await
                .is_some()
        );
        let cut_at = std::time::Instant::now();
        proxy.cut();
        let gone = watcher
            .wait_event(Duration::from_secs(10), |e| {
                presence(e, &account.number, false)
            })
            .await;
        assert!(gone.is_some(), "vanished device still online after 10 s");
        // Generous bound: the idle timeout is 1.5 s; this only guards against "never".
        assert!(cut_at.elapsed() < Duration::from_secs(10));
        drop(ghost);
    });
}

fn listed(list: &[(String, String)], number: &str) -> bool {
    list.iter().any(|(n, _)| n == number)
}

/// A client connected with `KeepAlive::Beat`.
async fn beating(relay: &common::Relay) -> Client {
    let trust = Trust::Pinned {
        fingerprint: relay.process.fingerprint.clone(),
        learnt: false,
    };
    Client::connect_keeping(
        &client::endpoint(),
        relay.process.addr,
        "phone-relay",
        trust,
        KeepAlive::Beat,
    )
    .await
    .unwrap()
}

/// Compatibility (issue 17): a session that did not ask to be watched (older daemons,
/// tools, other clients) is not closed for a silence the watch would not allow, whatever
/// it sends: here a `Ping`, then nothing for 6 s on a connection that keeps alive every
/// 10 s. The QUIC idle timeout (15 s here) is what judges it.
#[test]
fn a_session_that_did_not_ask_to_be_watched_is_left_to_the_idle_timeout() {
    let relay = common::relay("");
    smol::block_on(async {
        let (watcher, _, _) = relay.provisioned("Watcher").await;
        let quiet = beating(&relay).await;
        let (account, _) = quiet.provision("Quiet").await.unwrap();
        assert!(matches!(
            quiet.request(Request::Ping { nonce: 7 }).await,
            Ok(Response::Pong { nonce: 7 })
        ));
        smol::Timer::after(SILENT_AFTER + Duration::from_secs(2)).await;
        assert!(listed(&watcher.online().await.unwrap(), &account.number));
        assert!(quiet.online().await.is_ok(), "the session was closed");
    });
}

/// A device that asked to be watched (`Watch`, with QUIC keep-alives every 10 s) and then
/// sends nothing is closed by the relay's watch and shown offline, well before the QUIC
/// idle timeout (15 s by default) would have closed it.
#[test]
fn a_watched_device_that_stops_beating_goes_offline_before_the_idle_timeout() {
    let relay = common::relay("");
    smol::block_on(async {
        let (watcher, _, _) = relay.provisioned("Watcher").await;
        let device = beating(&relay).await;
        let (account, _) = device.provision("Quiet").await.unwrap();
        assert!(
            watcher
                .wait_event(common::WAIT, |e| presence(e, &account.number, true))
                .await
                .is_some()
        );
        assert!(device.ask_watch(SILENT_AFTER).await.unwrap(), "not watched");
        let asked = std::time::Instant::now();
        let gone = watcher
            .wait_event(Duration::from_secs(30), |e| {
                presence(e, &account.number, false)
            })
            .await;
        assert!(
            gone.is_some(),
            "a device that stopped beating is still online"
        );
        // The QUIC idle timeout is 15 s here; the watch takes 4–4.5 s (bound for a loaded
        // machine).
        assert!(
            asked.elapsed() < Duration::from_secs(12),
            "offline only after {:?}",
            asked.elapsed()
        );
    });
}
