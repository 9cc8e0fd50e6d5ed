//! Tests against the real libopus: tone fidelity, FEC against PLC, DTX, levels, errors.

use super::*;
use crate::audio::analysis::{correlation, goertzel_power, snr_db};

const FRAME: usize = 960;

fn sine(freq: f32, amp: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
        .collect()
}

/// A voiced-speech stand-in: harmonics of a gliding 100–200 Hz pitch under a syllable-rate
/// envelope. Unlike a steady tone, it changes within a frame, so concealment cannot simply
/// repeat the last period and FEC has something to win.
fn speechlike(n: usize) -> Vec<f32> {
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / 48_000.0;
            let f0 = 150.0 + 50.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / 48_000.0;
            let env = 0.2 + 0.8 * (2.0 * std::f64::consts::PI * 4.0 * t).sin().abs();
            let voiced: f64 = (1..=12).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            (0.15 * env * voiced) as f32
        })
        .collect()
}

fn encode_all(enc: &mut VoiceEncoder, pcm: &[f32]) -> Vec<Option<Vec<u8>>> {
    let mut out = [0u8; MAX_PACKET_BYTES];
    pcm.chunks_exact(enc.frame_samples())
        .map(|frame| {
            enc.encode(frame, &mut out)
                .expect("encode")
                .map(|n| out[..n].to_vec())
        })
        .collect()
}

#[test]
fn a_1khz_tone_survives_encode_and_decode() {
    let mut enc = VoiceEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut dec = VoiceDecoder::new(FrameDuration::Ms20).expect("decoder");
    let input = sine(1000.0, 0.5, 50 * FRAME);
    let mut decoded = vec![0f32; input.len()];
    for (pkt, out) in encode_all(&mut enc, &input)
        .iter()
        .zip(decoded.chunks_exact_mut(FRAME))
    {
        let pkt = pkt.as_ref().expect("a tone is never DTX");
        assert!(
            pkt.len() < 200,
            "24 kbit/s frames are small, got {}",
            pkt.len()
        );
        dec.decode(pkt, out).expect("decode");
    }
    // Skip the start-up frames.
    let steady = &decoded[10 * FRAME..];
    let tone = goertzel_power(steady, 48_000.0, 1000.0);
    assert!(tone > 0.04, "1 kHz power {tone} (input 0.0625)");
    for other in [300.0, 500.0, 1500.0, 2000.0, 3000.0] {
        let p = goertzel_power(steady, 48_000.0, other);
        assert!(p * 1000.0 < tone, "{other} Hz power {p} vs tone {tone}");
    }
}

#[test]
fn i16_and_10ms_frames_work_too() {
    let config = EncoderConfig {
        frame: FrameDuration::Ms10,
        ..EncoderConfig::default()
    };
    let mut enc = VoiceEncoder::new(&config).expect("encoder");
    let mut dec = VoiceDecoder::new(FrameDuration::Ms10).expect("decoder");
    let input: Vec<i16> = sine(1000.0, 0.5, 100 * 480)
        .iter()
        .map(|v| (v * 32767.0) as i16)
        .collect();
    let mut pkt = [0u8; MAX_PACKET_BYTES];
    let mut out = [0i16; 480];
    let mut decoded = Vec::new();
    for frame in input.chunks_exact(480) {
        let n = enc
            .encode(frame, &mut pkt)
            .expect("encode")
            .expect("not DTX");
        dec.decode(&pkt[..n], &mut out).expect("decode");
        decoded.extend(out.iter().map(|&s| f32::from(s) / 32768.0));
    }
    let steady = &decoded[20 * 480..];
    let tone = goertzel_power(steady, 48_000.0, 1000.0);
    assert!(tone > 1000.0 * goertzel_power(steady, 48_000.0, 2000.0));
}

/// Decodes every packet into one signal: what the listener hears with no loss.
fn decode_all(packets: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = VoiceDecoder::new(FrameDuration::Ms20).expect("decoder");
    let mut out = vec![0f32; packets.len() * FRAME];
    for (pkt, frame) in packets.iter().zip(out.chunks_exact_mut(FRAME)) {
        dec.decode(pkt, frame).expect("decode");
    }
    out
}

/// How close loss recovery gets to the loss-free decode.
struct Recovery {
    /// SNR in dB over the lost frames only.
    lost_snr: f64,
    /// Correlation over the lost frames only.
    lost_corr: f64,
    /// SNR in dB over the whole signal (includes how fast the decoder settles afterwards).
    whole_snr: f64,
}

/// Decodes `packets` losing every 10th one (10 % loss, from frame 10 on), recovering each
/// loss with FEC from the next packet or with PLC, and compares with the loss-free decode.
/// The reference is the decoded signal, not the input: at 24 kbit/s Opus shapes its noise
/// for the ear, so even a loss-free decode is only ~2 dB SNR against the input waveform.
fn recover_10pct_loss(packets: &[Vec<u8>], use_fec: bool) -> Recovery {
    let clean = decode_all(packets);
    let mut dec = VoiceDecoder::new(FrameDuration::Ms20).expect("decoder");
    let mut out = vec![0f32; clean.len()];
    let (mut reference, mut recovered) = (Vec::new(), Vec::new());
    for (k, frame) in out.chunks_exact_mut(FRAME).enumerate() {
        let lost = k >= 10 && k % 10 == 0 && k + 1 < packets.len();
        if !lost {
            dec.decode(&packets[k], frame).expect("decode");
        } else {
            if use_fec {
                dec.decode_fec(&packets[k + 1], frame).expect("fec");
            } else {
                dec.conceal(frame).expect("plc");
            }
            reference.extend_from_slice(&clean[k * FRAME..(k + 1) * FRAME]);
            recovered.extend_from_slice(frame);
        }
    }
    Recovery {
        lost_snr: snr_db(&reference, &recovered),
        lost_corr: correlation(&reference, &recovered),
        whole_snr: snr_db(&clean, &out),
    }
}

fn speech_packets(expected_loss_percent: u8) -> Vec<Vec<u8>> {
    let config = EncoderConfig {
        expected_loss_percent,
        ..EncoderConfig::default()
    };
    let mut enc = VoiceEncoder::new(&config).expect("encoder");
    encode_all(&mut enc, &speechlike(250 * FRAME))
        .into_iter()
        .map(|p| p.expect("speech is never DTX"))
        .collect()
}

#[test]
fn fec_recovers_a_lost_frame_better_than_concealment() {
    let packets = speech_packets(10);
    let fec = recover_10pct_loss(&packets, true);
    let plc = recover_10pct_loss(&packets, false);
    eprintln!(
        "10 % loss, lost frames vs loss-free decode: FEC {:.1} dB SNR (corr {:.2}), \
         PLC {:.1} dB (corr {:.2}); whole signal: FEC {:.1} dB, PLC {:.1} dB",
        fec.lost_snr, fec.lost_corr, plc.lost_snr, plc.lost_corr, fec.whole_snr, plc.whole_snr
    );
    assert!(
        fec.lost_snr > plc.lost_snr + 5.0,
        "FEC {:.1} dB vs PLC {:.1} dB",
        fec.lost_snr,
        plc.lost_snr
    );
    assert!(fec.lost_corr > 0.8, "FEC correlation {:.2}", fec.lost_corr);
    assert!(fec.whole_snr > plc.whole_snr + 5.0);
}

#[test]
fn fec_needs_the_encoder_to_expect_loss() {
    // With an expected loss of 0 the encoder puts no LBRR in its packets, so "FEC" decoding
    // falls back to concealment: the call engine must keep `set_expected_loss` above 0.
    let packets = speech_packets(0);
    let fec = recover_10pct_loss(&packets, true);
    let plc = recover_10pct_loss(&packets, false);
    assert!(
        (fec.lost_snr - plc.lost_snr).abs() < 0.5,
        "{:.1} vs {:.1}",
        fec.lost_snr,
        plc.lost_snr
    );
}

#[test]
fn dtx_stops_sending_during_silence() {
    let mut enc = VoiceEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut out = [0u8; MAX_PACKET_BYTES];
    let silence = [0f32; FRAME];
    let sent: Vec<bool> = (0..50)
        .map(|_| enc.encode(&silence, &mut out).expect("encode").is_some())
        .collect();
    let first_quiet = sent.iter().position(|s| !s).expect("DTX never kicked in");
    assert!(first_quiet <= 20, "DTX after {first_quiet} frames");
    // Opus still sends an occasional refresh during DTX; nearly all frames stay unsent.
    let sent_after = sent[first_quiet..].iter().filter(|s| **s).count();
    assert!(sent_after <= 3, "{sent_after} packets sent during DTX");

    let without = EncoderConfig {
        dtx: false,
        ..EncoderConfig::default()
    };
    let mut enc = VoiceEncoder::new(&without).expect("encoder");
    assert!((0..50).all(|_| enc.encode(&silence, &mut out).expect("encode").is_some()));
}

#[test]
fn concealment_and_fec_without_history_give_a_frame_of_quiet() {
    let mut dec = VoiceDecoder::new(FrameDuration::Ms20).expect("decoder");
    let mut out = [1f32; FRAME];
    dec.conceal(&mut out).expect("conceal");
    assert!(out.iter().all(|s| s.abs() < 1e-3));
    let mut enc = VoiceEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut pkt = [0u8; MAX_PACKET_BYTES];
    let n = enc
        .encode(&sine(440.0, 0.3, FRAME), &mut pkt)
        .expect("encode")
        .expect("not DTX");
    let mut out = [0i16; FRAME];
    dec.decode_fec(&pkt[..n], &mut out).expect("fec");
    dec.decode(&pkt[..n], &mut out).expect("decode after fec");
    dec.reset().expect("reset");
}

#[test]
fn speech_level_follows_rfc6464() {
    assert_eq!(speech_level::<f32>(&[]), 127);
    assert_eq!(speech_level(&[0i16; FRAME]), 127);
    assert_eq!(speech_level(&[1f32; FRAME]), 0);
    let square: Vec<i16> = (0..FRAME)
        .map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })
        .collect();
    assert_eq!(speech_level(&square), 0);
    assert_eq!(speech_level(&sine(1000.0, 1.0, FRAME)), 3);
    assert_eq!(speech_level(&sine(1000.0, 0.1, FRAME)), 23);
    assert_eq!(speech_level(&[1i16; FRAME]), 90, "one LSB is −90 dBov");
}

#[test]
fn bad_input_is_a_typed_error_not_a_panic() {
    let mut enc = VoiceEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut dec = VoiceDecoder::new(FrameDuration::Ms20).expect("decoder");
    let mut pkt = [0u8; MAX_PACKET_BYTES];
    let mut out = [0f32; FRAME];
    assert!(matches!(
        enc.encode(&[0f32; 100], &mut pkt),
        Err(CodecError::FrameLength {
            expected: 960,
            got: 100
        })
    ));
    assert!(matches!(
        dec.decode(&[], &mut out),
        Err(CodecError::EmptyPacket)
    ));
    assert!(matches!(
        dec.decode_fec(&[], &mut out),
        Err(CodecError::EmptyPacket)
    ));
    assert!(matches!(
        dec.conceal(&mut [0f32; 10]),
        Err(CodecError::FrameLength { .. })
    ));
    // A 10 ms packet to a 20 ms decoder.
    let ten = EncoderConfig {
        frame: FrameDuration::Ms10,
        ..EncoderConfig::default()
    };
    let mut enc10 = VoiceEncoder::new(&ten).expect("encoder");
    let n = enc10
        .encode(&sine(440.0, 0.3, 480), &mut pkt)
        .expect("encode")
        .expect("not DTX");
    assert!(matches!(
        dec.decode(&pkt[..n], &mut out),
        Err(CodecError::PacketDuration {
            got: 480,
            expected: 960,
            ..
        })
    ));
    // Garbage from the network: an error or some frame, never a panic.
    for garbage in [&[0xffu8; 3][..], &[0x0b, 0xff], &[0xfc; 40]] {
        let _ = dec.decode(garbage, &mut out);
        let _ = dec.decode_fec(garbage, &mut out);
    }
    dec.conceal(&mut out).expect("still usable");
    let bad = EncoderConfig {
        complexity: 11,
        ..EncoderConfig::default()
    };
    assert!(matches!(
        VoiceEncoder::new(&bad),
        Err(CodecError::Setting {
            what: "complexity",
            value: 11,
            ..
        })
    ));
    assert!(enc.set_expected_loss(101).is_err());
    assert!(enc.set_bitrate(1_000).is_err());
    enc.set_bitrate(32_000).expect("32 kbit/s");
    assert_eq!(enc.config().bitrate_bps, 32_000);
}

/// The receive path end to end: a 1 kHz tone through 10 % loss (one packet in ten, plus
/// pairs) and reordering, the jitter buffer and the decoder, as the call engine will wire it.
#[test]
fn a_tone_survives_loss_through_the_jitter_buffer_and_decoder() {
    use crate::audio::jitter::{JitterBuffer, JitterConfig, Playout};
    let mut enc = VoiceEncoder::new(&EncoderConfig::default()).expect("encoder");
    let mut dec = VoiceDecoder::new(FrameDuration::Ms20).expect("decoder");
    let mut jb = JitterBuffer::new(JitterConfig::default()).expect("jitter buffer");
    let packets = encode_all(&mut enc, &sine(1000.0, 0.5, 150 * FRAME));
    // Frame k is sent at k·20 ms; every 7th arrives 25 ms late (overtaken by the next one).
    let mut arrivals: Vec<(u64, u32)> = (0..150u32)
        .filter(|k| k % 10 != 5 && k % 50 != 21 && k % 50 != 22)
        .map(|k| {
            (
                u64::from(k) * 20_000 + 3_000 + if k % 7 == 0 { 25_000 } else { 0 },
                k,
            )
        })
        .collect();
    arrivals.sort_unstable();
    let mut pending = arrivals.into_iter().peekable();
    let mut heard = Vec::new();
    let mut out = [0f32; FRAME];
    for tick in 0..160u64 {
        let now = 11_000 + tick * 20_000;
        while let Some((at, k)) = pending.next_if(|a| a.0 <= now) {
            let pkt = packets[k as usize].as_ref().expect("a tone is never DTX");
            jb.push(at, k, k * FRAME as u32, pkt);
        }
        match jb.pop(now) {
            Playout::Packet(p) => dec.decode(p, &mut out).expect("decode"),
            Playout::Fec(next) => dec.decode_fec(next, &mut out).expect("fec"),
            Playout::Conceal => dec.conceal(&mut out).expect("conceal"),
            Playout::Silence => out.fill(0.0),
        }
        heard.extend_from_slice(&out);
    }
    let stats = jb.stats();
    assert!(stats.fec >= 10, "{stats:?}");
    let steady = &heard[20 * FRAME..140 * FRAME];
    let tone = goertzel_power(steady, 48_000.0, 1000.0);
    assert!(tone > 0.03, "1 kHz power {tone}: {stats:?}");
    assert!(tone > 100.0 * goertzel_power(steady, 48_000.0, 2000.0));
}
