//! Real relay + real phoned daemons (each on its own dbus-daemon) + the real phonectl.

mod common;

use std::time::{Duration, Instant};

use phoned_proto::liveness::{BEAT, SILENT_AFTER};
use phoned_tests::wait_for;

#[test]
fn first_start_provisions_a_number_and_who_follows_the_others() {
    let w = common::world();
    let a = w.phone("Alice");
    let b = w.phone("Bob");
    let c = w.phone("Carol");
    let sa = a.wait_online(common::ONLINE);
    let sb = b.wait_online(common::ONLINE);
    let sc = c.wait_online(common::ONLINE);
    let account = a.ctl(&["--json", "account"]).json();
    for key in [
        "number",
        "display_name",
        "connection_state",
        "relay",
        "created_at",
    ] {
        assert!(
            account.get(key).is_some(),
            "account --json lacks {key}: {account}"
        );
    }
    assert_eq!(account["display_name"], "Alice");
    let number: u32 = account["number"].as_str().unwrap().parse().unwrap();
    assert!((1000..=9999).contains(&number));
    assert!(account["created_at"].as_u64().unwrap() > 1_700_000_000_000);
    // Provisioned credentials are kept privately.
    let creds = a.dir.join("state/account.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&creds).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let (nb, nc) = (
        sb["number"].as_str().unwrap().to_owned(),
        sc["number"].as_str().unwrap().to_owned(),
    );
    let who = wait_for(Duration::from_secs(10), || {
        let list = a.ctl(&["--json", "who"]).json();
        let numbers: Vec<String> = list
            .as_array()?
            .iter()
            .map(|u| u["number"].as_str().unwrap_or("").to_owned())
            .collect();
        (numbers.contains(&nb) && numbers.contains(&nc)).then_some(list)
    })
    .expect("who lists both others");
    assert!(
        who.as_array()
            .unwrap()
            .iter()
            .any(|u| u["number"] == nb.as_str() && u["name"] == "Bob")
    );
    assert!(
        !who.as_array()
            .unwrap()
            .iter()
            .any(|u| u["number"] == sa["number"]),
        "who excludes oneself"
    );

    // watch on A reports C leaving when C's daemon stops.
    let watch = phoned_tests::process::Watch::start(&a.bus.address);
    let mut c = c;
    assert!(c.stop().success(), "phoned exits cleanly on SIGTERM");
    let seen = watch.wait(Duration::from_secs(10), |v| {
        v["event"] == "presence" && v["number"] == nc.as_str() && v["online"] == false
    });
    assert!(seen.is_some(), "watch did not report Carol going offline");
    let who: Vec<String> = a
        .ctl(&["--json", "who"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["number"].as_str().unwrap().to_owned())
        .collect();
    assert!(!who.contains(&nc) && who.contains(&nb));
}

#[test]
fn number_change_and_the_same_number_race() {
    let w = common::world();
    let mut a = w.phone("A");
    let b = w.phone("B");
    a.wait_online(common::ONLINE);
    b.wait_online(common::ONLINE);
    let out = a.ctl(&["--json", "number", "change", "7777"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["number"], "7777");
    let out = b.ctl(&["number", "change", "7777"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("NumberTaken"), "{out:?}");
    let out = b.ctl(&["number", "change", "07"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("InvalidNumber"), "{out:?}");
    // A valid number, but not one of this relay's (1000-9999): refused, naming the range.
    let out = b.ctl(&["number", "change", "99999"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("InvalidNumber") && out.stderr.contains("1000-9999"),
        "{out:?}"
    );

    // Both ask for 8888 at once: exactly one wins.
    let (ba, bb) = (a.bus.address.clone(), b.bus.address.clone());
    let ta = std::thread::spawn(move || {
        phoned_tests::process::phonectl(&ba, &["number", "change", "8888"], "")
    });
    let tb = std::thread::spawn(move || {
        phoned_tests::process::phonectl(&bb, &["number", "change", "8888"], "")
    });
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    let codes = [ra.code, rb.code];
    assert!(codes.contains(&0) && codes.contains(&1), "{ra:?} {rb:?}");
    let loser = if ra.code == 1 { &ra } else { &rb };
    assert!(loser.stderr.contains("NumberTaken"), "{loser:?}");

    // The daemon remembers its new number across a restart.
    let a_number = a.ctl(&["--json", "account"]).json()["number"]
        .as_str()
        .unwrap()
        .to_owned();
    a.restart();
    let s = a.wait_online(common::ONLINE);
    assert_eq!(s["number"], a_number.as_str());
}

#[test]
fn name_and_password_reach_a_second_device_on_the_same_number() {
    let w = common::world();
    let a = w.phone("Desk");
    let s = a.wait_online(common::ONLINE);
    let number = s["number"].as_str().unwrap().to_owned();
    let out = a.ctl(&["name", "set", "Study"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = phoned_tests::process::phonectl(
        &a.bus.address,
        &["password", "set"],
        "a shared password\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = phoned_tests::process::phonectl(&a.bus.address, &["password", "set"], "short\n");
    assert_eq!(out.code, 1, "{out:?}");
    // A second device logs in with the same number and the new password.
    let second = w.phone_with(
        "Laptop",
        &format!(
            "relay_fingerprint = \"{}\"\nnumber = \"{number}\"\npassword = \"a shared password\"",
            w.relay.fingerprint
        ),
    );
    let s2 = second.wait_online(common::ONLINE);
    assert_eq!(s2["number"], number.as_str());
    assert_eq!(s2["display_name"], "Study");
    // Its own display_name is not silently dropped: the log says which name stands.
    assert!(
        second.log().contains(&format!(
            "display_name \"Laptop\" in the config is not used: number {number} is named \"Study\""
        )),
        "{}",
        second.log()
    );
    let devices = wait_for(Duration::from_secs(5), || {
        let d = a.ctl(&["--json", "account"]).json()["devices_online"].as_u64()?;
        (d == 2).then_some(d)
    });
    assert_eq!(devices, Some(2));
    // The first device restarts with its stored (updated) password.
    let mut a = a;
    a.restart();
    a.wait_online(common::ONLINE);
}

/// The numbers `p`'s `who` lists now.
fn who(p: &phoned_tests::process::PhonedProcess) -> Vec<String> {
    p.ctl(&["--json", "who"])
        .json()
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|u| u["number"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// How long after `since` `p`'s `who` stops listing `number` (polled; `None`: not within
/// `within`).
fn gone_from_who(
    p: &phoned_tests::process::PhonedProcess,
    number: &str,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    wait_for(within, || {
        (!who(p).iter().any(|n| n == number)).then(|| since.elapsed())
    })
}

#[test]
fn a_stopped_phone_leaves_who_at_once_and_a_vanished_one_within_the_idle_timeout() {
    // The relay's default idle timeout (15 s): what bounds a vanished phone is the relay's
    // liveness watch (4 s of silence from a device that beats, docs/protocol.md §16.7),
    // and a clean stop must not wait for either.
    let w = common::world_with("");
    let a = w.phone("Alice");
    let mut b = w.phone("Bob");
    let mut c = w.phone("Carol");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("number")
        .to_owned();
    let nc = c.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("number")
        .to_owned();
    wait_for(Duration::from_secs(10), || {
        let listed = who(&a);
        (listed.contains(&nb) && listed.contains(&nc)).then_some(())
    })
    .expect("who lists Bob and Carol");

    // SIGTERM: the daemon closes its connection before it exits, and the relay tells the
    // others at once. Before, they saw it only when the relay timed the connection out.
    let stopped = Instant::now();
    assert!(b.stop().success(), "phoned exits cleanly on SIGTERM");
    let took =
        gone_from_who(&a, &nb, stopped, Duration::from_secs(30)).expect("a stopped phone left who");
    assert!(
        took <= Duration::from_secs(3),
        "a stopped phone stayed in who for {took:?} (the watch's bound is {:?})",
        SILENT_AFTER
    );
    assert!(who(&a).contains(&nc), "Carol is still online");

    // kill -9: nothing is said, so the relay's watch is what it takes (4 s of silence,
    // looked at every 0.5 s, plus up to a beat); 3 s of margin for a loaded machine.
    let killed = Instant::now();
    let _ = c.child.kill();
    let _ = c.child.wait();
    let bound = SILENT_AFTER + BEAT + Duration::from_secs(3);
    let took =
        gone_from_who(&a, &nc, killed, Duration::from_secs(30)).expect("a killed phone left who");
    assert!(
        took <= bound,
        "a killed phone stayed in who for {took:?} (bound {bound:?})"
    );
}
