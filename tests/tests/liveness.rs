//! Liveness (issue 17, docs/protocol.md §16.6): daemons beat each second on the cheapest
//! path (the UDP plane's keep-alive while the relay echoes it, else a `Ping` on QUIC) and
//! keep their QUIC connection alive only every 10 s; each side watches what comes from the
//! other and takes 4 s of silence as death. A hung relay (SIGSTOP) is still noticed by the
//! daemon within seconds, and a hung daemon is still shown offline by the relay within
//! seconds, whether the daemon's UDP path works or is blocked. With QUIC keep-alives every
//! 10 s and no watch, the QUIC idle timeout (15 s, the relay's default) would decide.
//!
//! The relay runs with its default keep-alive (5 s) and idle timeout (15 s) here.

mod common;

use std::time::{Duration, Instant};

use common::World;
use phoned_tests::client::{self, Client};
use phoned_tests::nat::NatProxy;
use phoned_tests::process::PhonedProcess;
use phoned_tests::wait_for;

/// Generous bounds for a loaded machine (about 4–5 s on a quiet one); the QUIC idle
/// timeout alone would take 15 s.
const NOTICED: Duration = Duration::from_secs(10);

/// A daemon named `name` whose UDP media path works (`blocked`: is blocked by a proxy
/// between it and the relay's media port), online, and its path settled (up or down).
fn daemon(w: &World, name: &str, blocked: bool) -> (PhonedProcess, Option<NatProxy>) {
    let media = w.relay.media.expect("the relay has a media plane");
    let nat = blocked.then(|| {
        let nat = smol::block_on(NatProxy::start(media)).unwrap();
        nat.block();
        nat
    });
    let extra = match &nat {
        Some(n) => format!("relay_media_port = {}", n.addr.port()),
        None => String::new(),
    };
    let p = w.phone_with(
        name,
        &format!("relay_fingerprint = \"{}\"\n{extra}", w.relay.fingerprint),
    );
    p.wait_online(common::ONLINE);
    let settled = if blocked {
        "no answer on the UDP media port"
    } else {
        "media over UDP"
    };
    wait_for(Duration::from_secs(10), || {
        p.log().contains(settled).then_some(())
    })
    .unwrap_or_else(|| panic!("no \"{settled}\" in the log:\n{}", p.log()));
    (p, nat)
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a child of this test.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// SIGSTOPs the relay and returns how long `p` took to leave "online".
fn relay_hung(w: &World, p: &PhonedProcess) -> Option<Duration> {
    let pid = w.relay.child.id();
    signal(pid, libc::SIGSTOP);
    let stopped = Instant::now();
    let noticed = wait_for(Duration::from_secs(30), || {
        p.status()
            .filter(|s| s["connection_state"] != "online")
            .map(|_| stopped.elapsed())
    });
    signal(pid, libc::SIGCONT);
    noticed
}

#[test]
fn a_hung_relay_is_noticed_by_a_daemon_on_the_udp_plane() {
    a_hung_relay_is_noticed(false);
}

#[test]
fn a_hung_relay_is_noticed_by_a_daemon_whose_udp_is_blocked() {
    a_hung_relay_is_noticed(true);
}

/// A daemon (its UDP media blocked or not) notices a SIGSTOPped relay by its own watch.
fn a_hung_relay_is_noticed(udp_blocked: bool) {
    let w = common::world_with("");
    let (a, _nat) = daemon(&w, "A", udp_blocked);
    let noticed = relay_hung(&w, &a).unwrap_or_else(|| panic!("A still online:\n{}", a.log()));
    assert!(
        noticed <= NOTICED,
        "noticed after {noticed:?}:\n{}",
        a.log()
    );
    assert!(a.log().contains("nothing from the relay"), "{}", a.log());
}

/// SIGSTOPs `p` and returns how long the relay took to show it offline to another
/// account.
fn daemon_hung(w: &World, p: &mut PhonedProcess) -> Option<Duration> {
    let number = p.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    smol::block_on(async {
        let watcher = Client::connect(
            &client::endpoint(),
            w.relay.addr,
            Some(&w.relay.fingerprint),
        )
        .await
        .unwrap();
        watcher.provision("Watcher").await.unwrap();
        let listed = |list: Vec<(String, String)>| list.iter().any(|(n, _)| *n == number);
        assert!(
            listed(watcher.online().await.unwrap()),
            "not online at first"
        );
        let pid = p.child.id();
        signal(pid, libc::SIGSTOP);
        let stopped = Instant::now();
        let mut gone = None;
        while stopped.elapsed() < Duration::from_secs(30) {
            if !listed(watcher.online().await.unwrap()) {
                gone = Some(stopped.elapsed());
                break;
            }
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        signal(pid, libc::SIGCONT);
        gone
    })
}

#[test]
fn a_hung_daemon_on_the_udp_plane_goes_offline_within_seconds() {
    let w = common::world_with("");
    let (mut a, _) = daemon(&w, "A", false);
    let gone = daemon_hung(&w, &mut a).expect("A still online after 30 s");
    assert!(gone <= NOTICED, "offline after {gone:?}");
}

#[test]
fn a_hung_daemon_whose_udp_is_blocked_goes_offline_within_seconds() {
    let w = common::world_with("");
    let (mut a, _nat) = daemon(&w, "A", true);
    let gone = daemon_hung(&w, &mut a).expect("A still online after 30 s");
    assert!(gone <= NOTICED, "offline after {gone:?}");
}
