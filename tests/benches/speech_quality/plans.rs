//! `--plans`: the codec alone under candidate settings, to choose among them before
//! building them into the call. Each plan is an encoder setting (bitrate, widest band,
//! in-band FEC's expected loss) and a redundancy plan (which earlier frames each datagram
//! carries again, as sent or re-encoded at a lower bitrate by a second encoder). The
//! condition's seeded loss pattern is applied per datagram; the receiver plays a frame from
//! its packet, else from a copy any later datagram carried (its jitter buffer deep enough
//! for the oldest copy), else from the next packet's in-band FEC, else concealment. Beside
//! the score, what the datagrams would cost (the call's header, the copies' bytes) in
//! kbit/s over the clip, so each plan's bitrate shows against the clean one.

use std::path::Path;

use phoned::audio::codec::{
    EncoderConfig, FrameDuration, MAX_PACKET_BYTES, MaxBandwidth, VoiceDecoder, VoiceEncoder,
};
use phoned::call::media::ENCODER_COMPLEXITY;
use phoned_tests::impair::Decider;
use phoned_tests::wav;

use super::{Condition, LEAD_S, RATE, read_wav, score, secs};

/// A frame's header on the wire (call id, source, seq, timestamp, level, length: the
/// daemon's own estimate), and what each copy and a redundant frame add beyond the copy's
/// packet (`adapt.rs`).
const HEADER_BYTES: usize = 15;
const REDUNDANT_BYTES: usize = 2;
const COPY_BYTES: usize = 6;

pub struct Plan {
    pub name: String,
    pub bitrate_bps: u32,
    pub max_bandwidth: MaxBandwidth,
    pub fec_percent: u8,
    /// How many frames back each copy a datagram carries is.
    pub backs: Vec<usize>,
    /// The copies' own encoder's bitrate; `None`: the packets as first sent.
    pub copy_bitrate_bps: Option<u32>,
    /// The copies' own encoder's complexity.
    pub copy_complexity: u8,
    /// Copies only of frames from this many seconds into the clip on (as in a call, where
    /// the far side's first reports must show the loss first).
    pub from_s: f64,
}

fn plan(name: &str, bitrate_kbps: u32, bw: MaxBandwidth, fec: u8, backs: &[usize]) -> Plan {
    Plan {
        name: name.to_owned(),
        bitrate_bps: bitrate_kbps * 1000,
        max_bandwidth: bw,
        fec_percent: fec,
        backs: backs.to_vec(),
        copy_bitrate_bps: None,
        copy_complexity: ENCODER_COMPLEXITY,
        from_s: 0.0,
    }
}

/// The plans tried on `condition` (by its name: clean, or a lossy one).
pub fn plans(condition: &str) -> Vec<Plan> {
    use MaxBandwidth::{Fullband as Fb, Superwideband as Swb, Wideband as Wb};
    if condition == "clean" {
        return vec![
            plan("32k FB FEC 10", 32, Fb, 10, &[]),
            plan("32k FB FEC 0", 32, Fb, 0, &[]),
            plan("32k SWB FEC 0", 32, Swb, 0, &[]),
            plan("32k WB FEC 0", 32, Wb, 0, &[]),
            plan("32k SWB FEC 10", 32, Swb, 10, &[]),
            plan("32k WB FEC 10", 32, Wb, 10, &[]),
            plan("36k FB FEC 0", 36, Fb, 0, &[]),
            plan("36k SWB FEC 0", 36, Swb, 0, &[]),
            plan("36k WB FEC 0", 36, Wb, 0, &[]),
            plan("40k FB FEC 0", 40, Fb, 0, &[]),
            plan("40k WB FEC 0", 40, Wb, 0, &[]),
        ];
    }
    if condition.contains("% loss") {
        return vec![
            plan("32k FEC 10 (codec alone)", 32, Fb, 10, &[]),
            plan("24k FEC 1, copy 1 back (the call's)", 24, Fb, 1, &[1]),
            plan("32k FEC 1, copy 1 back (over the budget)", 32, Fb, 1, &[1]),
            plan(
                "24k FEC 0, copies 1 and 2 back (over the budget)",
                24,
                Fb,
                0,
                &[1, 2],
            ),
        ];
    }
    let lowrate = |name: &str, main: u32, fec: u8, backs: &[usize], copy_kbps: u32| Plan {
        copy_bitrate_bps: Some(copy_kbps * 1000),
        ..plan(name, main, Fb, fec, backs)
    };
    vec![
        plan("24k FEC 4, copy 2 back (before)", 24, Fb, 4, &[2]),
        plan("24k FEC 2, copy 3 back", 24, Fb, 2, &[3]),
        plan("24k FEC 2, copy 4 back (now)", 24, Fb, 2, &[4]),
        plan("24k FEC 0, copy 5 back", 24, Fb, 0, &[5]),
        plan("24k FEC 0, copy 6 back", 24, Fb, 0, &[6]),
        plan("15k FEC 5, copies 2, 4 back", 15, Fb, 5, &[2, 4]),
        plan("15k FEC 0, copies 3, 6 back", 15, Fb, 0, &[3, 6]),
        lowrate("32k FEC 0 + 12k copy 4 back", 32, 0, &[4], 12),
        lowrate("32k FEC 0 + 12k copy 6 back", 32, 0, &[6], 12),
        lowrate("28k FEC 2 + 12k copies 2, 4 back", 28, 2, &[2, 4], 12),
        lowrate("26k FEC 0 + 10k copies 3, 6 back", 26, 0, &[3, 6], 10),
        // The copies' encoder at a lower complexity (half the CPU at 5: `media_cpu`).
        Plan {
            copy_complexity: 7,
            ..lowrate(
                "26k FEC 0 + 10k copies 3, 6 back, at complexity 7",
                26,
                0,
                &[3, 6],
                10,
            )
        },
        Plan {
            copy_complexity: 5,
            ..lowrate(
                "26k FEC 0 + 10k copies 3, 6 back, at complexity 5",
                26,
                0,
                &[3, 6],
                10,
            )
        },
        lowrate("26k FEC 0 + 10k copies 1, 6 back", 26, 0, &[1, 6], 10),
        Plan {
            copy_complexity: 5,
            ..lowrate(
                "26k FEC 0 + 10k copies 1, 6 back, at complexity 5",
                26,
                0,
                &[1, 6],
                10,
            )
        },
        // Re-encoded copies within the depth of today's copy four back (the same delay).
        lowrate("26k FEC 0 + 10k copies 2, 4 back", 26, 0, &[2, 4], 10),
        lowrate("26k FEC 0 + 10k copies 3, 4 back", 26, 0, &[3, 4], 10),
        lowrate("28k FEC 0 + 14k copy 4 back", 28, 0, &[4], 14),
        lowrate("20k FEC 0 + 8k copies 2, 3, 4 back", 20, 0, &[2, 3, 4], 8),
        // Deeper: five or six back.
        lowrate("26k FEC 0 + 10k copies 3, 5 back", 26, 0, &[3, 5], 10),
        lowrate("26k FEC 0 + 10k copies 4, 6 back", 26, 0, &[4, 6], 10),
        lowrate("26k FEC 0 + 10k copies 2, 6 back", 26, 0, &[2, 6], 10),
        lowrate("20k FEC 0 + 8k copies 2, 4, 6 back", 20, 0, &[2, 4, 6], 8),
        lowrate("22k FEC 0 + 12k copies 3, 6 back", 22, 0, &[3, 6], 12),
        lowrate("30k FEC 0 + 8k copies 3, 6 back", 30, 0, &[3, 6], 8),
        // As in a call: the copies only after the first reports.
        Plan {
            from_s: 2.0,
            ..plan("24k FEC 2, copy 4 back (now), from 2 s", 24, Fb, 2, &[4])
        },
        Plan {
            from_s: 2.0,
            ..lowrate(
                "26k FEC 0 + 10k copies 3, 6 back, from 2 s",
                26,
                0,
                &[3, 6],
                10,
            )
        },
        Plan {
            from_s: 4.0,
            ..lowrate(
                "26k FEC 0 + 10k copies 3, 6 back, from 4 s",
                26,
                0,
                &[3, 6],
                10,
            )
        },
    ]
}

fn encoder(
    (bitrate_bps, complexity): (u32, u8),
    bw: MaxBandwidth,
    fec: u8,
    frame: FrameDuration,
) -> VoiceEncoder {
    VoiceEncoder::new(&EncoderConfig {
        complexity,
        bitrate_bps,
        frame,
        expected_loss_percent: fec,
        fec: fec > 0,
        max_bandwidth: bw,
        ..EncoderConfig::default()
    })
    .expect("encoder")
}

/// `plan` on `clip` under `condition`: the WB-PESQ score and the kbit/s sent.
pub fn run(
    python: &Path,
    clip: &Path,
    out: &Path,
    condition: &Condition,
    seed: u64,
    plan: &Plan,
) -> (f64, f64) {
    let frame_len = FrameDuration::Ms20;
    let samples = read_wav(clip);
    let mut input = vec![0.0f32; secs(LEAD_S)];
    input.extend_from_slice(&samples);
    let n = frame_len.samples();
    input.resize(input.len().div_ceil(n) * n + n, 0.0);
    let mut enc = encoder(
        (plan.bitrate_bps, ENCODER_COMPLEXITY),
        plan.max_bandwidth,
        plan.fec_percent,
        frame_len,
    );
    let mut copy_enc = plan
        .copy_bitrate_bps
        .map(|b| encoder((b, plan.copy_complexity), plan.max_bandwidth, 0, frame_len));
    let mut buf = [0u8; MAX_PACKET_BYTES];
    // Per frame: its packet (None: DTX), its copy's packet, whether its datagram arrives.
    let mut packets: Vec<Option<Vec<u8>>> = Vec::new();
    let mut copies: Vec<Option<Vec<u8>>> = Vec::new();
    let mut arrives: Vec<bool> = Vec::new();
    let mut decider = Decider::new(condition.impairment, seed);
    let mut bytes = 0usize;
    for frame in input.chunks_exact(n) {
        let packet = enc
            .encode(frame, &mut buf)
            .expect("encode")
            .map(|n| buf[..n].to_vec());
        let copy = match copy_enc.as_mut() {
            Some(c) => c
                .encode(frame, &mut buf)
                .expect("encode")
                .map(|n| buf[..n].to_vec()),
            None => packet.clone(),
        };
        let i = packets.len();
        if let Some(p) = &packet {
            bytes += HEADER_BYTES + p.len();
            let carried: Vec<usize> = plan
                .backs
                .iter()
                .filter_map(|&b| i.checked_sub(b))
                .filter(|&j| packets[j].is_some() && copies[j].is_some())
                .filter(|&j| j as f64 * frame_len.millis() as f64 / 1000.0 >= plan.from_s + LEAD_S)
                .collect();
            if !carried.is_empty() {
                bytes += REDUNDANT_BYTES;
            }
            for j in carried {
                bytes += COPY_BYTES + copies[j].as_ref().map_or(0, Vec::len);
            }
        }
        packets.push(packet);
        copies.push(copy);
        arrives.push(!decider.decide().is_empty());
    }
    let got = |i: usize| arrives[i] && packets[i].is_some();
    let mut dec = VoiceDecoder::new(frame_len).expect("decoder");
    let mut decoded = Vec::with_capacity(input.len());
    let mut frame = vec![0.0f32; n];
    for i in 0..packets.len() {
        let copy = plan
            .backs
            .iter()
            .map(|b| i + b)
            .filter(|&j| j < packets.len())
            .filter(|_| i as f64 * frame_len.millis() as f64 / 1000.0 >= plan.from_s + LEAD_S)
            .find(|&j| got(j))
            .and(copies[i].as_ref());
        match (&packets[i], got(i)) {
            (Some(p), true) => dec.decode(p, &mut frame).expect("decode"),
            (Some(_), false) if copy.is_some() => dec
                .decode(copy.expect("copy"), &mut frame)
                .expect("decode copy"),
            _ => match packets
                .get(i + 1)
                .filter(|_| got(i + 1))
                .and_then(Option::as_ref)
            {
                Some(next) if packets[i].is_some() => {
                    dec.decode_fec(next, &mut frame).expect("fec")
                }
                _ => dec.conceal(&mut frame).expect("conceal"),
            },
        }
        decoded.extend_from_slice(&frame);
    }
    wav::write(out, RATE, 1, decoded);
    let pesq = score(python, clip, out, &[secs(LEAD_S) as i64]).pesq[0].unwrap_or(1.0);
    let kbps = bytes as f64 * 8.0 / (input.len() as f64 / f64::from(RATE)) / 1000.0;
    (pesq, kbps)
}
