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
//! thread, never in a device callback), and made anew if it changes its frame length.
//!
//! Each stream plays in its own frames (10 or 20 ms, read from the Opus header), whatever
//! the first stream's: it decodes into a queue of its own and a frame of the mix takes
//! as many samples from it as the first stream's frame has, popping its jitter buffer at
//! the time those samples will play. Its jitter buffer is the call's
//! ([`jitter_config`]: the target follows the measured jitter), with a floor of a frame,
//! so that in-band FEC is there in time (a conference is not the place to save the last
//! 10 ms), and while its sender adds copies two or more frames back the pipeline's own
//! floor for them (`copies_floor.rs`: as many frames as the farthest copy is back, and the
//! jitter).

use phoned_proto::media::Earlier;

use super::copies_floor::CopiesBack;
use super::pipeline::jitter_config;
use crate::audio::codec::{CodecError, FrameDuration, VoiceDecoder};
use crate::audio::jitter::{JitterBuffer, Playout};
use crate::audio::resample::{FRAME, NETWORK_RATE};

pub use crate::call::quality::MAX_STREAMS;
/// A stream with no frame for this long may give its place to another source, µs.
pub const STALE_US: u64 = 300_000;
/// Where the soft limiter starts to bend the mix: below it, samples pass unchanged.
pub const LIMIT_KNEE: f32 = 0.7;

struct Stream {
    source: u32,
    frame: FrameDuration,
    jitter: JitterBuffer,
    decoder: VoiceDecoder,
    resyncs: u64,
    last_us: u64,
    /// How far back its sender's copies came lately, for the floor.
    copies_back: CopiesBack,
    /// Whether the latest pop played speech (a packet, FEC or concealment).
    sounding: bool,
    /// Decoded samples not mixed yet: the first `queued` of `buf` (48 kHz).
    buf: [f32; 2 * FRAME],
    queued: usize,
}

impl Stream {
    /// `None` only if Opus cannot make a decoder (the pipeline itself made one already).
    fn new(source: u32, frame: FrameDuration, now_us: u64) -> Option<Stream> {
        let mut jitter = JitterBuffer::new(jitter_config(frame)).ok()?;
        jitter.set_min_delay_ms(frame.millis());
        Some(Stream {
            source,
            frame,
            jitter,
            decoder: VoiceDecoder::new(frame).ok()?,
            resyncs: 0,
            last_us: now_us,
            copies_back: CopiesBack::default(),
            sounding: false,
            buf: [0.0; 2 * FRAME],
            queued: 0,
        })
    }

    /// A frame at least (for in-band FEC), and the floor for copies while they come.
    fn set_floor(&mut self, now_us: u64) {
        let frame = self.frame.millis();
        let stats = self.jitter.stats();
        self.copies_back.lost_so_far(now_us, stats.lost);
        let copies = self.copies_back.floor_ms(now_us, frame, stats.jitter_ms);
        self.jitter
            .set_min_delay_ms(copies.unwrap_or(frame).max(frame));
    }

    /// Pops and decodes frames until at least `n` samples are queued; the pop for samples
    /// that will play `d` µs after `now_us` is made at `now_us + d`.
    fn fill(&mut self, now_us: u64, n: usize) -> Result<(), CodecError> {
        let mut failed = None;
        self.set_floor(now_us);
        let m = self.frame.samples();
        while self.queued < n && self.queued + m <= self.buf.len() {
            let at = now_us + (self.queued as u64 * 1_000_000) / u64::from(NETWORK_RATE);
            let out = &mut self.buf[self.queued..self.queued + m];
            let result = match self.jitter.pop(at) {
                Playout::Packet(p) => self.decoder.decode(p, out),
                Playout::Fec(p) => self.decoder.decode_fec(p, out),
                Playout::Conceal => self.decoder.conceal(out),
                Playout::Silence => {
                    out.fill(0.0);
                    self.sounding = false;
                    self.queued += m;
                    continue;
                }
            };
            self.sounding = result.is_ok();
            if let Err(e) = result {
                out.fill(0.0);
                failed = Some(e);
            }
            self.queued += m;
            let resyncs = self.jitter.stats().resyncs;
            if resyncs != self.resyncs {
                self.resyncs = resyncs;
                let _ = self.decoder.reset();
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
        let here = self.streams.iter().position(|s| s.source == source);
        let frame = FrameDuration::of_packet(payload)
            .or_else(|| here.map(|i| self.streams[i].frame))
            .unwrap_or(FrameDuration::Ms20);
        let i = match here {
            // A new frame length: a new stream, as for a restarted source.
            Some(i) if self.streams[i].frame != frame => match Stream::new(source, frame, now_us) {
                Some(s) => {
                    self.streams[i] = s;
                    i
                }
                None => return Taken::Dropped,
            },
            Some(i) => i,
            None if self.streams.len() < MAX_STREAMS - 1 => {
                match Stream::new(source, frame, now_us) {
                    Some(s) => {
                        self.streams.push(s);
                        self.streams.len() - 1
                    }
                    None => return Taken::Dropped,
                }
            }
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
                match Stream::new(source, frame, now_us) {
                    Some(s) => self.streams[i] = s,
                    None => return Taken::Dropped,
                }
                i
            }
        };
        let s = &mut self.streams[i];
        s.last_us = now_us;
        s.jitter.push(now_us, seq, timestamp, payload);
        s.copies_back.frame_arrived(now_us, seq);
        for e in earlier {
            s.jitter.fill(
                now_us,
                seq.wrapping_sub(u32::from(e.seq_back)),
                timestamp.wrapping_sub(e.ts_back),
                &e.payload,
            );
            s.copies_back.arrived(now_us, e.seq_back);
        }
        s.set_floor(now_us);
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

    /// Adds the next `frame.len()` samples (48 kHz, at most [`FRAME`]) of every extra
    /// stream to `frame`, popping and decoding their frames as needed. Returns whether any
    /// of them played speech (the caller then must not shorten the frame).
    pub fn mix_into(&mut self, now_us: u64, frame: &mut [f32]) -> Result<bool, CodecError> {
        let n = frame.len().min(FRAME);
        let mut sounding = false;
        let mut failed = None;
        for s in &mut self.streams {
            if let Err(e) = s.fill(now_us, n) {
                failed = Some(e);
            }
            let take = n.min(s.queued);
            for (out, x) in frame.iter_mut().zip(&s.buf[..take]) {
                *out += *x;
            }
            s.buf.copy_within(take..s.queued, 0);
            s.queued -= take;
            sounding |= s.sounding;
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

    /// The pops come in steps of the playback device's block, `us` while the clocks
    /// drift (see [`JitterBuffer::set_pop_quantum_us`]), as for the first stream.
    pub fn set_pop_quantum_us(&mut self, us: u64) {
        for s in &mut self.streams {
            s.jitter.set_pop_quantum_us(us);
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

    /// A conference speaker (source 5) whose sender adds one copy of each frame four frames
    /// back (deep copies against bursts): 1 s of a tone, a DTX pause of half a second, 2 s
    /// more, of which the frames numbered `lost` never arrive (their copies do). What the
    /// stream's jitter buffer counted.
    fn an_extra_stream_with_copies_four_back(lost: &[u32]) -> crate::audio::jitter::JitterStats {
        const BACK: u32 = 4;
        let talk = packets(&tone(440.0, FRAME * 150, 0.5));
        let mut extras = Extras::default();
        let mut frame = [0.0f32; FRAME];
        // Frame k is sent at 20k ms (after the pause, half a second later) and arrives
        // 30 ms later; its timestamp counts the pause as DTX.
        let sent_ms = |k: u32| 20 * k + if k >= 50 { 500 } else { 0 };
        let mut next = 0u32;
        for ms in 0..3_700u64 {
            let now = ms * 1_000;
            while next < 150 && u64::from(sent_ms(next) + 30) <= ms {
                let k = next;
                next += 1;
                if lost.contains(&k) {
                    continue;
                }
                let ts = |k: u32| sent_ms(k) * 48;
                let earlier: Vec<Earlier> = k
                    .checked_sub(BACK)
                    .map(|j| Earlier {
                        seq_back: BACK as u8,
                        ts_back: ts(k) - ts(j),
                        payload: talk[j as usize].clone(),
                    })
                    .into_iter()
                    .collect();
                // Copies only of frames sent one after the other (not across the pause).
                let earlier = if (50..50 + BACK).contains(&k) {
                    &[][..]
                } else {
                    &earlier[..]
                };
                let taken = extras.take(now, 5, k, ts(k), &talk[k as usize], earlier);
                assert_eq!(taken, Taken::Buffered);
            }
            if ms % 20 == 0 {
                frame.fill(0.0);
                extras.mix_into(now, &mut frame).unwrap();
            }
        }
        extras.streams[0].jitter.stats()
    }

    #[test]
    fn an_extra_streams_loss_run_as_long_as_its_copies_reach_is_played_from_them() {
        // One frame lost early: the reference. Its copy comes too late (the buffer holds
        // for copies only once frames were lost), but from then on it holds for them.
        let one = an_extra_stream_with_copies_four_back(&[20]);
        assert_eq!(one.lost, 1, "{one:?}");
        // The buffer held four frames and a margin for the copies (the pipeline's rule:
        // `copies_floor.rs`), so four more frames lost in a row were all played from them.
        let run = an_extra_stream_with_copies_four_back(&[20, 100, 101, 102, 103]);
        assert!(run.target_ms >= 4 * 20, "{run:?}");
        assert_eq!(
            (run.lost, run.concealed, run.fec, run.played),
            (one.lost, one.concealed, one.fec, one.played),
            "{run:?} {one:?}"
        );
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
