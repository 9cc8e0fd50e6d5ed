//! A call's live quality, end to end: two daemons with the `file` audio backend talk
//! through a real relay on loopback. While the call is active each Call object's
//! `Quality` reads plausible figures for a clean path (no loss, a voice bitrate, a good
//! MOS), `phonectl calls --stats` (and `--json`) carries them, `phonectl watch` prints
//! their changes, a hold empties them, and the end-of-call log line sums them up.

mod common;

use common::phone_with_tone;

use std::collections::HashMap;
use std::time::Duration;

use phoned_proto::dbus::{CallProxy, ManagerProxy};
use phoned_tests::process::{PhonedProcess, Watch};
use phoned_tests::wait_for;
use zbus::proxy::CacheProperties;

/// The first call's `Quality`, read over D-Bus, as numbers by key.
fn quality(p: &PhonedProcess) -> HashMap<String, f64> {
    smol::block_on(async {
        let conn = zbus::connection::Builder::address(p.bus.address.as_str())
            .build()
            .await
            .expect("connect to the daemon's bus");
        let m = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("manager proxy");
        let Some(path) = m.calls().await.expect("calls").into_iter().next() else {
            return HashMap::new();
        };
        let c = CallProxy::builder(&conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("call proxy");
        c.quality()
            .await
            .expect("Call.Quality")
            .into_iter()
            .map(|(k, v)| {
                let n = match &*v {
                    zbus::Variant::F64(x) => *x,
                    zbus::Variant::U32(n) => f64::from(*n),
                    other => panic!("{k} is {other:?}, not a number"),
                };
                (k, n)
            })
            .collect()
    })
}

/// Checks that `q` is what a clean loopback call looks like.
fn assert_clean(who: &str, q: &HashMap<String, f64>, log: &str) {
    let get = |k: &str| *q.get(k).unwrap_or_else(|| panic!("{who}: no {k} in {q:?}"));
    // Nothing is lost on loopback. (A stall of the far side's media thread on a loaded
    // machine can make a packet late, which counts as lost: a margin of one in a
    // hundred, where a broken count would read 100 or garbage.)
    assert!(get("LossPercent") < 1.0, "{who}: {q:?}\n{log}");
    assert!(get("CallLossPercent") < 1.0, "{who}: {q:?}\n{log}");
    assert!(
        get("UnrecoveredPercent") <= get("LossPercent"),
        "{who}: {q:?}"
    );
    // Opus at 24 kbit/s on a tone plus the frames' headers, each way.
    for k in ["SendKbps", "ReceiveKbps"] {
        assert!((8.0..80.0).contains(&get(k)), "{who}: {k} in {q:?}");
    }
    assert!(get("JitterBufferMs") <= 200.0, "{who}: {q:?}");
    assert!(get("JitterMs") <= 200.0, "{who}: {q:?}");
    // Frame, look-ahead and the playback queue at least; not seconds.
    assert!((30.0..500.0).contains(&get("MouthToEarMs")), "{who}: {q:?}");
    assert!(get("Mos") > 3.5 && get("Mos") <= 4.5, "{who}: {q:?}\n{log}");
    assert!(get("RFactor") > 60.0, "{who}: {q:?}");
}

#[test]
fn a_clean_call_shows_its_quality_on_dbus_in_phonectl_and_in_the_log() {
    let w = common::world();
    let a = phone_with_tone(&w, "A", 440.0);
    let b = phone_with_tone(&w, "B", 1000.0);
    a.wait_online(common::ONLINE);
    let watch = Watch::start(&a.bus.address);
    common::call_answered(&a, &b);

    // The first report comes a second into the call; then talk a few seconds more, so
    // that the window holds a settled stream.
    let first = wait_for(Duration::from_secs(20), || {
        let q = quality(&a);
        q.get("ReceiveKbps").is_some_and(|k| *k > 0.0).then_some(q)
    });
    assert!(first.is_some(), "no quality on A's call:\n{}", a.log());
    std::thread::sleep(Duration::from_secs(3));
    assert_clean("A", &quality(&a), &a.log());
    assert_clean("B", &quality(&b), &b.log());

    // `watch` printed the changes of the call's `Quality`, with the call's path.
    let event = watch.wait(Duration::from_secs(10), |e| {
        e["event"] == "call_changed" && e["changed"]["Quality"]["Mos"].is_number()
    });
    let event = event.expect("watch printed no Quality change");
    assert_eq!(event["path"], "/org/phoned/Phone1/Call/1", "{event}");

    // `calls --stats --json` carries the same figures, snake_case.
    let calls = a.ctl(&["--json", "calls", "--stats"]).json();
    let q = &calls[0]["quality"];
    assert!(q["mos"].as_f64().is_some_and(|m| m > 3.5), "{calls}");
    assert!(
        q["loss_percent"].as_f64().is_some_and(|l| l < 1.0),
        "{calls}"
    );
    assert!(q["mouth_to_ear_ms"].as_u64().is_some(), "{calls}");
    assert!(q["send_kbps"].as_f64().is_some_and(|k| k > 8.0), "{calls}");
    // Without --stats the rows are as before; the human form has a quality line.
    let plain = a.ctl(&["--json", "calls"]).json();
    assert!(plain[0].get("quality").is_none(), "{plain}");
    let human = a.ctl(&["calls", "--stats"]).stdout;
    assert!(human.contains("quality: MOS "), "{human}");

    // On hold the figures go: stale ones would mislead.
    assert_eq!(a.ctl(&["hold"]).code, 0);
    let emptied = wait_for(Duration::from_secs(10), || {
        quality(&a).is_empty().then_some(())
    });
    assert!(emptied.is_some(), "A's Quality stayed: {:?}", quality(&a));
    let human = a.ctl(&["calls", "--stats"]).stdout;
    assert!(human.contains("quality: none"), "{human}");
    assert_eq!(
        a.ctl(&["--json", "calls", "--stats"]).json()[0]["quality"],
        serde_json::json!({})
    );
    // Back on: measured again.
    assert_eq!(a.ctl(&["resume"]).code, 0);
    let back = wait_for(Duration::from_secs(20), || {
        quality(&a).contains_key("Mos").then_some(())
    });
    assert!(back.is_some(), "no quality after resume:\n{}", a.log());

    // The end-of-call line keeps the summary.
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    for (name, p) in [("A", &a), ("B", &b)] {
        let line = wait_for(Duration::from_secs(10), || {
            let log = p.log();
            let line = log.lines().rev().find(|l| l.contains("call media ended"))?;
            Some(line.to_owned())
        });
        let line = line.unwrap_or_else(|| panic!("{name}: no end-of-call line\n{}", p.log()));
        eprintln!("{name}: {line}");
        for key in [
            "loss_percent=",
            "jitter_ms=",
            "mouth_to_ear_ms=",
            "send_kbps=",
            "receive_kbps=",
            "mos=",
        ] {
            assert!(line.contains(key), "{name}: no {key} in {line}");
        }
    }
}
