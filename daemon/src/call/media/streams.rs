//! The far sources beyond the first, for conferences, sans-IO: the relay forwards a room's
//! [`MAX_STREAMS`] loudest speakers, so a pipeline may receive up to that many streams.
//! The first far source goes through the pipeline's own jitter buffer and decoder (and
//! steers its clock drift, reports and time-scaling, as in a two-party call); each other
//! one gets a jitter buffer and a decoder here ([`Extras`]), popped in step with the
//! first, and their frames are summed into its frame and passed through a soft limiter
//! ([`soft_clip`]) so that three loud speakers never clip.
//!
//! Speakers change: a frame from a source not received yet takes a free place, or the
//! place of the stream that has sent nothing for longest once that is [`STALE_US`] old;
//! otherwise it is dropped (the relay never forwards more than [`MAX_STREAMS`] at once,
//! but the switch from one speaker to another may overlap by a frame or two).
//! A new source's buffer and decoder are made when it first arrives (on the media
//! thread, never in a device callback).

use phoned_proto::media::Earlier;

use crate::audio::codec::{CodecError, FrameDuration, VoiceDecoder};
use crate::audio::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::audio::resample::FRAME;

pub use crate::call::quality::MAX_STREAMS;
/// A stream with no frame for this long may give its place to another source, µs.
pub const STALE_US: u64 = 300_000;
/// Where the soft limiter starts to bend the mix: below it, samples pass unchanged.
pub const LIMIT_KNEE: f32 = 0.7;

struct Stream {
    source: u32,
    jitter: JitterBuffer,
    decoder: VoiceDecoder,
    resyncs: u64,
    last_us: u64,
    /// Whether the latest pop played speech (a packet, FEC or concealment).
    sounding: bool,
    buf: [f32; FRAME],
}

impl Stream {
    /// `None` only if Opus cannot make a decoder (the pipeline itself made one already).
    fn new(source: u32, now_us: u64) -> Option<Stream> {
        Some(Stream {
            source,
            jitter: JitterBuffer::new(JitterConfig::default()).ok()?,
            decoder: VoiceDecoder::new(FrameDuration::Ms20).ok()?,
            resyncs: 0,
            last_us: now_us,
            sounding: false,
            buf: [0.0; FRAME],
        })
    }
}

/// What became of a frame offered to [`Extras::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Buffered in one of the extra streams.
    Buffered,
    /// No place for its source now.
    Dropped,
}

/// The far streams after the first; see the module docs.
#[derive(Default)]
pub struct Extras {
    streams: Vec<Stream>,
}

impl Extras {
    /// Offers a frame from `source` (not the pipeline's first far source).
    pub fn take(
        &mut self,
        now_us: u64,
        source: u32,
        seq: u32,
        timestamp: u32,
        payload: &[u8],
        earlier: &[Earlier],
    ) -> Taken {
        let i = match self.streams.iter().position(|s| s.source == source) {
            Some(i) => i,
            None if self.streams.len() < MAX_STREAMS - 1 => match Stream::new(source, now_us) {
                Some(s) => {
                    self.streams.push(s);
                    self.streams.len() - 1
                }
                None => return Taken::Dropped,
            },
            None => {
                let Some((i, _)) = self
                    .streams
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| now_us.saturating_sub(s.last_us) >= STALE_US)
                    .min_by_key(|(_, s)| s.last_us)
                else {
                    return Taken::Dropped;
                };
                match Stream::new(source, now_us) {
                    Some(s) => self.streams[i] = s,
                    None => return Taken::Dropped,
                }
                i
            }
        };
        let s = &mut self.streams[i];
        s.last_us = now_us;
        s.jitter.push(now_us, seq, timestamp, payload);
        for e in earlier {
            s.jitter.fill(
                now_us,
                seq.wrapping_sub(u32::from(e.seq_back)),
                timestamp.wrapping_sub(e.ts_back),
                &e.payload,
            );
        }
        Taken::Buffered
    }

    /// Whether a stream with place for `source` could be found without waiting: a free
    /// place, `source` already here, or a stale stream to replace.
    pub fn has_place(&self, now_us: u64, source: u32) -> bool {
        self.streams.len() < MAX_STREAMS - 1
            || self
                .streams
                .iter()
                .any(|s| s.source == source || now_us.saturating_sub(s.last_us) >= STALE_US)
    }

    /// Pops one frame of every extra stream, decodes it and adds it to `frame`. Returns
    /// whether any of them played speech (the caller then must not shorten the frame).
    pub fn mix_into(&mut self, now_us: u64, frame: &mut [f32; FRAME]) -> Result<bool, CodecError> {
        let mut sounding = false;
        let mut failed = None;
        for s in &mut self.streams {
            let result = match s.jitter.pop(now_us) {
                Playout::Packet(p) => s.decoder.decode(p, &mut s.buf),
                Playout::Fec(p) => s.decoder.decode_fec(p, &mut s.buf),
                Playout::Conceal => s.decoder.conceal(&mut s.buf),
                Playout::Silence => {
                    s.sounding = false;
                    continue;
                }
            };
            if let Err(e) = result {
                failed = Some(e);
                s.sounding = false;
                continue;
            }
            s.sounding = true;
            sounding = true;
            for (out, x) in frame.iter_mut().zip(s.buf.iter()) {
                *out += *x;
            }
            let resyncs = s.jitter.stats().resyncs;
            if resyncs != s.resyncs {
                s.resyncs = resyncs;
                let _ = s.decoder.reset();
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(sounding),
        }
    }

    /// The frame just mixed was played `delta_us` longer or shorter (the first stream's
    /// time-scaling): the other streams' next pops move with it.
    pub fn time_scaled(&mut self, delta_us: i64) {
        for s in &mut self.streams {
            s.jitter.time_scaled(delta_us);
        }
    }

    /// The sources of the extra streams now.
    pub fn sources(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().map(|s| s.source)
    }
}

/// Keeps a mix of several streams within ±1.0 without hard clipping: samples up to
/// [`LIMIT_KNEE`] pass unchanged, louder ones are bent smoothly towards 1.0 (tanh above
/// the knee), so the sum of three loud speakers distorts gently instead of clipping.
pub fn soft_clip(samples: &mut [f32]) {
    let room = 1.0 - LIMIT_KNEE;
    for s in samples {
        let a = s.abs();
        if a > LIMIT_KNEE {
            let bent = LIMIT_KNEE + room * ((a - LIMIT_KNEE) / room).tanh();
            *s = bent.copysign(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::codec::{EncoderConfig, VoiceEncoder};

    #[test]
    fn the_limiter_never_clips_and_leaves_quiet_samples_alone() {
        let mut xs: Vec<f32> = (-400..=400).map(|i| i as f32 / 100.0).collect();
        let before = xs.clone();
        soft_clip(&mut xs);
        for (x, y) in before.iter().zip(&xs) {
            assert!(y.abs() <= 1.0, "{x} -> {y}");
            if x.abs() <= LIMIT_KNEE {
                assert_eq!(x, y);
            }
            assert_eq!(x.signum(), y.signum());
        }
        // Monotonic: louder in, louder (or as loud) out.
        assert!(xs.windows(2).all(|w| w[1] >= w[0]));
    }

    fn tone(freq: f32, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
            .collect()
    }

    /// Encodes `samples` into 20 ms packets.
    fn packets(samples: &[f32]) -> Vec<Vec<u8>> {
        let mut enc = VoiceEncoder::new(&EncoderConfig {
            complexity: 10,
            ..EncoderConfig::default()
        })
        .unwrap();
        let mut out = [0u8; 1500];
        samples
            .chunks(FRAME)
            .filter_map(|f| enc.encode(f, &mut out).unwrap().map(|n| out[..n].to_vec()))
            .collect()
    }

    #[test]
    fn two_extra_streams_are_mixed_and_a_third_waits_for_a_stale_place() {
        let a = packets(&tone(440.0, FRAME * 50, 0.5));
        let b = packets(&tone(700.0, FRAME * 50, 0.5));
        let mut extras = Extras::default();
        let mut frame = [0.0f32; FRAME];
        let mut energy = 0.0f32;
        for k in 0..50u32 {
            let now = u64::from(k) * 20_000;
            assert_eq!(
                extras.take(now, 5, k, k * 960, &a[k as usize], &[]),
                Taken::Buffered
            );
            assert_eq!(
                extras.take(now, 6, k, k * 960, &b[k as usize], &[]),
                Taken::Buffered
            );
            // A third source while both play: no place.
            assert_eq!(extras.take(now, 7, k, k * 960, &a[0], &[]), Taken::Dropped);
            frame.fill(0.0);
            extras.mix_into(now, &mut frame).unwrap();
            soft_clip(&mut frame);
            energy += frame.iter().map(|x| x * x).sum::<f32>();
            assert!(frame.iter().all(|x| x.abs() <= 1.0));
        }
        assert!(energy > 100.0, "the streams were mixed: energy {energy}");
        assert_eq!(extras.sources().collect::<Vec<_>>(), [5, 6]);
        // Source 5 falls silent; after STALE_US source 7 takes its place.
        let later = 50 * 20_000 + STALE_US;
        assert!(extras.has_place(later, 7));
        extras.take(later - STALE_US + 1, 6, 50, 50 * 960, &b[0], &[]);
        assert_eq!(extras.take(later, 7, 0, 0, &a[0], &[]), Taken::Buffered);
        assert_eq!(extras.sources().collect::<Vec<_>>(), [7, 6]);
    }
}
