//! Calls between real daemons over the relay's UDP media plane: each side's tone reaches
//! the other over UDP; through a NAT that changes its source port mid-call the audio goes
//! on; with UDP blocked on the path the call falls back to QUIC datagrams and still
//! carries both tones. Which path media took is in each daemon's log (`path=Udp` on the
//! line that ends a call's media; "media over UDP" when the path came up).

mod common;

use std::time::Duration;

use common::{World, write_tone};
use phoned::audio::analysis::goertzel_power;
use phoned_tests::nat::NatProxy;
use phoned_tests::process::PhonedProcess;
use phoned_tests::{wait_for, wav};

/// A daemon named `name` playing a `freq` Hz tone, recording what it hears, with `extra`
/// config.
fn phone(w: &World, name: &str, freq: f32, extra: &str) -> PhonedProcess {
    let dir = w.dir.path().join(format!("{name}-audio"));
    std::fs::create_dir_all(&dir).unwrap();
    write_tone(&dir.join("in.wav"), freq, 30);
    w.phone_with(
        name,
        &format!(
            "relay_fingerprint = \"{}\"\n{extra}\n[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
            w.relay.fingerprint,
            dir.join("in.wav").display(),
            dir.join("out.wav").display()
        ),
    )
}

/// (440 Hz, 1000 Hz) power of what `name` heard, from the second second on, in windows
/// of `secs` (the whole call when `None`).
fn heard(w: &World, name: &str, from: f64, to: Option<f64>) -> (f64, f64) {
    let (samples, rate) = wav::read(&w.dir.path().join(format!("{name}-audio/out.wav")));
    let at = |s: f64| ((s * f64::from(rate)) as usize).min(samples.len());
    let s = &samples[at(from)..to.map_or(samples.len(), at)];
    (
        goertzel_power(s, rate as f32, 440.0),
        goertzel_power(s, rate as f32, 1000.0),
    )
}

/// A calls B (which answers everything), they talk for `talk`, `during` runs in the
/// middle, A hangs up; returns both daemons' "call media ended" lines.
fn talk(
    a: &PhonedProcess,
    b: &PhonedProcess,
    talk: Duration,
    during: impl FnOnce(),
) -> [String; 2] {
    common::call_answered(a, b);
    std::thread::sleep(talk / 2);
    during();
    std::thread::sleep(talk / 2);
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    [a, b].map(|p| {
        wait_for(Duration::from_secs(10), || {
            p.log()
                .lines()
                .rev()
                .find(|l| l.contains("call media ended"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no media stats; log:\n{}", p.log()))
    })
}

fn assert_tones(w: &World, from: f64, to: Option<f64>) {
    common::assert_heard_each_other(heard(w, "A", from, to), heard(w, "B", from, to));
}

#[test]
fn a_call_carries_both_tones_over_the_udp_media_plane() {
    let w = common::world();
    let a = phone(&w, "A", 440.0, "");
    let b = phone(&w, "B", 1000.0, "");
    a.wait_online(common::ONLINE);
    let ended = talk(&a, &b, Duration::from_secs(3), || {});
    for line in &ended {
        assert!(line.contains("path=Udp"), "{line}");
    }
    assert!(a.log().contains("media over UDP"), "{}", a.log());
    assert_tones(&w, 0.5, None);
}

#[test]
fn audio_goes_on_through_a_nat_rebinding() {
    let w = common::world();
    let media = w.relay.media.expect("the relay has a media plane");
    let nat = smol::block_on(NatProxy::start(media)).unwrap();
    let a = phone(&w, "A", 440.0, "");
    // B's media goes through the NAT.
    let b = phone(
        &w,
        "B",
        1000.0,
        &format!("relay_media_port = {}", nat.addr.port()),
    );
    a.wait_online(common::ONLINE);
    let ended = talk(&a, &b, Duration::from_secs(6), || {
        smol::block_on(nat.rebind()).unwrap();
    });
    for line in &ended {
        assert!(line.contains("path=Udp"), "{line}");
    }
    // The last two seconds, well after the rebinding: both tones, both ways.
    let (samples, rate) = wav::read(&w.dir.path().join("B-audio/out.wav"));
    let end = samples.len() as f64 / f64::from(rate);
    assert_tones(&w, end - 2.5, Some(end - 0.5));
    // B never fell back: the new port was taken at once.
    assert!(!b.log().contains("media over QUIC"), "{}", b.log());
}

#[test]
fn with_udp_blocked_the_call_falls_back_to_quic_datagrams() {
    let w = common::world();
    let media = w.relay.media.expect("the relay has a media plane");
    let nat = smol::block_on(NatProxy::start(media)).unwrap();
    nat.block();
    let a = phone(&w, "A", 440.0, "");
    let b = phone(
        &w,
        "B",
        1000.0,
        &format!("relay_media_port = {}", nat.addr.port()),
    );
    a.wait_online(common::ONLINE);
    // B's probe goes unanswered before the call starts.
    let fell_back = wait_for(Duration::from_secs(10), || {
        b.log()
            .contains("no answer on the UDP media port")
            .then_some(())
    });
    assert!(fell_back.is_some(), "{}", b.log());
    let [a_end, b_end] = talk(&a, &b, Duration::from_secs(3), || {});
    assert!(b_end.contains("path=Quic"), "{b_end}");
    assert!(a_end.contains("path=Udp"), "{a_end}");
    assert_tones(&w, 0.5, None);
}

#[test]
fn udp_blocked_mid_call_moves_the_call_to_quic_datagrams() {
    let w = common::world();
    let media = w.relay.media.expect("the relay has a media plane");
    let nat = smol::block_on(NatProxy::start(media)).unwrap();
    let a = phone(&w, "A", 440.0, "");
    let b = phone(
        &w,
        "B",
        1000.0,
        &format!("relay_media_port = {}", nat.addr.port()),
    );
    a.wait_online(common::ONLINE);
    let [_, b_end] = talk(&a, &b, Duration::from_secs(12), || nat.block());
    assert!(b_end.contains("path=Quic"), "{b_end}");
    assert!(
        b.log().contains("the UDP media path stopped answering"),
        "{}",
        b.log()
    );
    // The last seconds, after the fallback: both tones again.
    let (samples, rate) = wav::read(&w.dir.path().join("B-audio/out.wav"));
    let end = samples.len() as f64 / f64::from(rate);
    assert_tones(&w, end - 2.5, Some(end - 0.5));
}
