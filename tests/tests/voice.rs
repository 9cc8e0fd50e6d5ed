//! Voice messages: a WAV becomes a standard Ogg Opus file that arrives through the relay,
//! decodes to the original tone, and plays through the receiver's output device.

mod common;

use std::time::Duration;

use phoned::audio::analysis::goertzel_power;
use phoned_tests::{wait_for, wav};

fn tone_wav(path: &std::path::Path, freq: f32, rate: u32, seconds: f32) {
    let tone = (0..(rate as f32 * seconds) as u32)
        .map(|i| 0.3 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin());
    wav::write(path, rate, 2, tone);
}

#[test]
fn a_voice_message_from_a_wav_arrives_as_ogg_opus_and_plays() {
    let w = common::world();
    let a = w.phone("Alice");
    let out_wav = w.dir.path().join("bob-speaker.wav");
    let b = w.phone_with(
        "Bob",
        &format!(
            "relay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\noutput_wav = \"{}\"",
            w.relay.fingerprint,
            out_wav.display()
        ),
    );
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let wav = w.dir.path().join("hello.wav");
    tone_wav(&wav, 1000.0, 44_100, 2.0);
    let out = a.ctl(&[
        "--json",
        "voice",
        "send",
        &nb,
        "--file",
        wav.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");

    let got = wait_for(Duration::from_secs(20), || {
        let list = b.ctl(&["--json", "voice", "ls"]).json();
        list.as_array()?
            .iter()
            .find(|v| v["direction"] == "in" && v["status"] == "received")
            .cloned()
    })
    .unwrap_or_else(|| panic!("no voice message; {:?}", b.ctl(&["--json", "file", "ls"])));
    let ms = got["duration_ms"].as_u64().unwrap();
    assert!((1980..=2020).contains(&ms), "duration {ms} ms");
    let path = got["path"].as_str().unwrap();
    assert!(path.ends_with(".opus"), "{path}");
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"OggS");
    assert_eq!(&bytes[28..36], b"OpusHead");
    let (samples, _) = phoned::voice::ogg::decode(&bytes).unwrap();
    let p1000 = goertzel_power(&samples, 48_000.0, 1000.0);
    let p1500 = goertzel_power(&samples, 48_000.0, 1500.0);
    assert!(p1000 > 1000.0 * p1500, "tone lost: {p1000:e} vs {p1500:e}");

    // Play it through Bob's (file) speaker.
    let id = got["id"].as_str().unwrap();
    let played = b.ctl(&["voice", "play", id]);
    assert_eq!(played.code, 0, "{played:?}");
    let (heard, rate) = wav::read(&out_wav);
    assert!(
        goertzel_power(&heard, rate as f32, 1000.0) > 1e-3,
        "nothing played"
    );

    // phonectl opens the file itself (the daemon gets the open file): a missing one is
    // bad input found before asking the daemon, as for `contacts import` (exit 2).
    let bad = a.ctl(&["voice", "send", &nb, "--file", "/nonexistent.wav"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("/nonexistent.wav"), "{bad:?}");
    // What is not a WAV is the daemon's to refuse (exit 1).
    let not_wav = w.dir.path().join("not.wav");
    std::fs::write(&not_wav, "plain text").unwrap();
    let bad = a.ctl(&["voice", "send", &nb, "--file", not_wav.to_str().unwrap()]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("InvalidArgument"), "{bad:?}");
    let none = a.ctl(&["voice", "send", &nb]);
    assert_eq!(
        none.code, 2,
        "neither --file nor --seconds is a usage error"
    );
}

#[test]
fn a_voice_message_recorded_from_the_input_device_arrives() {
    let w = common::world();
    let mic = w.dir.path().join("mic.wav");
    tone_wav(&mic, 440.0, 48_000, 5.0);
    let a = w.phone_with(
        "Alice",
        &format!(
            "relay_fingerprint = \"{}\"\n[audio]\nbackend = \"file\"\ninput_wav = \"{}\"",
            w.relay.fingerprint,
            mic.display()
        ),
    );
    let b = w.phone("Bob");
    a.wait_online(common::ONLINE);
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = a.ctl(&["voice", "send", &nb, "--seconds", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    let got = common::received_voice_message(&b);
    let ms = got["duration_ms"].as_u64().unwrap();
    assert!((1980..=2020).contains(&ms), "duration {ms} ms");
    let (samples, _) =
        phoned::voice::ogg::decode(&std::fs::read(got["path"].as_str().unwrap()).unwrap()).unwrap();
    assert!(
        goertzel_power(&samples, 48_000.0, 440.0) > 1e-3,
        "the microphone's tone is missing"
    );
    assert_eq!(a.ctl(&["voice", "send", &nb, "--seconds", "0"]).code, 1);
}
