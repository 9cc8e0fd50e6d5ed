//! Sample conversion between device formats and the mono `f32` rings.
//!
//! The ring functions run inside device callbacks, so they never allocate, lock or block:
//! they convert sample by sample straight into (or out of) the ring's own storage and drop
//! what does not fit.

use cpal::{FromSample, Sample};
use rtrb::{Consumer, Producer};

/// The mean of one interleaved frame's channels, as `f32` in [-1, 1]. The mean rather than
/// the sum keeps a full-scale stereo signal from clipping.
#[inline]
pub fn mix_frame<T>(frame: &[T]) -> f32
where
    T: Sample,
    f32: FromSample<T>,
{
    let sum: f32 = frame.iter().map(|&s| s.to_sample::<f32>()).sum();
    sum / frame.len().max(1) as f32
}

/// Downmixes interleaved `channels`-channel device samples into the mono ring. Returns how
/// many frames went in; the rest did not fit (an overrun the caller counts). A trailing
/// partial frame is ignored.
#[inline]
pub fn push_downmixed<T>(ring: &mut Producer<f32>, data: &[T], channels: usize) -> usize
where
    T: Sample,
    f32: FromSample<T>,
{
    let channels = channels.max(1);
    let frames = data.len() / channels;
    let n = frames.min(ring.slots());
    match ring.write_chunk_uninit(n) {
        Ok(chunk) => chunk.fill_from_iter(data.chunks_exact(channels).map(mix_frame)),
        // Unreachable: `n` never exceeds the free slots just read.
        Err(_) => 0,
    }
}

/// Fills an interleaved `channels`-channel device buffer from the mono ring, copying each
/// sample to every channel. Frames the ring cannot supply become silence. Returns how many
/// frames came from the ring (fewer than the buffer holds is an underrun).
#[inline]
pub fn pop_upmixed<T>(ring: &mut Consumer<f32>, out: &mut [T], channels: usize) -> usize
where
    T: Sample + FromSample<f32>,
{
    let channels = channels.max(1);
    let frames = out.len() / channels;
    let n = frames.min(ring.slots());
    let mut dest = out.chunks_mut(channels);
    let mut taken = 0;
    if let Ok(chunk) = ring.read_chunk(n) {
        let (a, b) = chunk.as_slices();
        for (&s, frame) in a.iter().chain(b).zip(&mut dest) {
            frame.fill(T::from_sample(s.clamp(-1.0, 1.0)));
        }
        taken = chunk.len();
        chunk.commit_all();
    }
    for frame in dest {
        frame.fill(T::EQUILIBRIUM);
    }
    taken
}

/// An integer WAV sample of `bits` significant bits (as hound returns it, already signed)
/// as `f32` in [-1, 1).
#[inline]
pub fn int_to_f32(v: i32, bits: u16) -> f32 {
    let scale = (1u64 << (bits.clamp(1, 32) - 1)) as f32;
    v as f32 / scale
}

/// `f32` to 16-bit PCM, the inverse of [`int_to_f32`] with `bits = 16` (exact for values it
/// produced), saturating outside [-1, 1).
#[inline]
pub fn f32_to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_i16_is_averaged_into_mono_f32() {
        let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(8);
        let data: [i16; 6] = [16384, 0, -16384, -16384, 32767, 32767];
        assert_eq!(push_downmixed(&mut p, &data, 2), 3);
        assert_eq!(c.pop(), Ok(0.25));
        assert_eq!(c.pop(), Ok(-0.5));
        assert!((c.pop().unwrap_or(0.0) - 32767.0 / 32768.0).abs() < 1e-6);
    }

    #[test]
    fn downmix_drops_what_does_not_fit() {
        let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(2);
        let data = [0.1f32, 0.2, 0.3, 0.4];
        assert_eq!(push_downmixed(&mut p, &data, 1), 2);
        assert_eq!(c.pop(), Ok(0.1));
        assert_eq!(c.pop(), Ok(0.2));
        assert!(c.pop().is_err());
    }

    #[test]
    fn unsigned_formats_are_centred() {
        let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(4);
        assert_eq!(push_downmixed(&mut p, &[128u8, 0u8], 1), 2);
        assert_eq!(c.pop(), Ok(0.0));
        assert_eq!(c.pop(), Ok(-1.0));
    }

    #[test]
    fn upmix_copies_each_sample_to_every_channel_and_pads_with_silence() {
        let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(4);
        for s in [0.5f32, -0.25] {
            p.push(s).expect("ring has room");
        }
        let mut out = [7i16; 9]; // three 3-channel frames, only two available
        assert_eq!(pop_upmixed(&mut c, &mut out, 3), 2);
        assert_eq!(out, [16384, 16384, 16384, -8192, -8192, -8192, 0, 0, 0]);
    }

    #[test]
    fn upmix_clamps_and_handles_a_wrapped_ring() {
        let (mut p, mut c) = rtrb::RingBuffer::<f32>::new(3);
        for s in [0.0f32, 0.0, 0.0] {
            p.push(s).expect("room");
        }
        let mut sink = [0f32; 2];
        assert_eq!(pop_upmixed(&mut c, &mut sink, 1), 2);
        // Now the ring's storage wraps around.
        for s in [2.0f32, -2.0] {
            p.push(s).expect("room");
        }
        let mut out = [9f32; 4];
        assert_eq!(pop_upmixed(&mut c, &mut out, 1), 3);
        assert_eq!(out, [0.0, 1.0, -1.0, 0.0]);
    }

    #[test]
    fn i16_round_trips_through_f32() {
        for v in [i16::MIN, -1, 0, 1, 12345, i16::MAX] {
            assert_eq!(f32_to_i16(int_to_f32(v.into(), 16)), v);
        }
        assert_eq!(f32_to_i16(1.5), i16::MAX);
        assert_eq!(f32_to_i16(-1.5), i16::MIN);
        assert_eq!(int_to_f32(-(1 << 23), 24), -1.0);
    }
}
