//! Devices without hardware: a thread per stream that, paced by a [`Pacer`], moves one
//! block per period between a source or sink (a WAV file, silence, nothing) and the ring —
//! exactly what a sound card's callback would do, at the same average rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer};

use super::counters::StreamCounters;
use super::error::AudioError;
use super::pacer::Pacer;
use super::wav::{WavSink, WavSource};

/// The largest block a worker converts at once; longer ticks are done in pieces so the
/// scratch buffer is allocated once, at start.
const SCRATCH: usize = 4096;

/// Where paced capture audio comes from.
pub enum Source {
    Wav(WavSource),
    Silence,
}

/// Where paced playback audio goes.
pub enum Sink {
    Wav(WavSink),
    Discard,
}

/// What one paced stream does each period.
pub trait Paced: Send + 'static {
    /// Moves `frames` frames.
    fn run(&mut self, frames: usize);
    /// `frames` fell due while the thread was stalled and are skipped.
    fn lost(&mut self, frames: usize);
    /// The stream is stopping.
    fn finish(&mut self);
}

/// Capture side: reads the source and pushes into the ring, counting overruns.
pub struct CaptureWork {
    source: Source,
    ring: Producer<f32>,
    counters: Arc<StreamCounters>,
    scratch: Vec<f32>,
}

impl CaptureWork {
    pub fn new(source: Source, ring: Producer<f32>, counters: Arc<StreamCounters>) -> Self {
        CaptureWork {
            source,
            ring,
            counters,
            scratch: vec![0.0; SCRATCH],
        }
    }
}

impl Paced for CaptureWork {
    fn run(&mut self, frames: usize) {
        let mut left = frames;
        while left > 0 {
            let n = left.min(SCRATCH);
            let block = &mut self.scratch[..n];
            match &mut self.source {
                Source::Wav(wav) => wav.fill(block),
                Source::Silence => block.fill(0.0),
            }
            let (_, dropped) = self.ring.push_partial_slice(block);
            if !dropped.is_empty() {
                self.counters.add_xrun(dropped.len());
            }
            left -= n;
        }
        self.counters.add_frames(frames);
    }

    fn lost(&mut self, frames: usize) {
        self.counters.add_xrun(frames);
    }

    fn finish(&mut self) {}
}

/// Playback side: pops from the ring into the sink, playing silence (and, once audio has
/// started, counting an underrun) when the ring runs dry.
pub struct PlaybackWork {
    sink: Sink,
    ring: Consumer<f32>,
    counters: Arc<StreamCounters>,
    scratch: Vec<f32>,
    primed: bool,
}

impl PlaybackWork {
    pub fn new(sink: Sink, ring: Consumer<f32>, counters: Arc<StreamCounters>) -> Self {
        PlaybackWork {
            sink,
            ring,
            counters,
            scratch: vec![0.0; SCRATCH],
            primed: false,
        }
    }
}

impl Paced for PlaybackWork {
    fn run(&mut self, frames: usize) {
        let mut left = frames;
        while left > 0 {
            let n = left.min(SCRATCH);
            let block = &mut self.scratch[..n];
            let (got, missing) = self.ring.pop_partial_slice(block);
            let got = got.len();
            missing.fill(0.0);
            self.primed |= got > 0;
            if self.primed && got < n {
                self.counters.add_xrun(n - got);
            }
            if let Sink::Wav(wav) = &mut self.sink {
                wav.write(block);
            }
            left -= n;
        }
        self.counters.add_frames(frames);
    }

    fn lost(&mut self, frames: usize) {
        // The stall is cut from the recording, as a real device would skip it.
        self.counters.add_xrun(frames);
    }

    fn finish(&mut self) {
        if let Sink::Wav(wav) = &mut self.sink {
            wav.finish();
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `Instant` reads, as a number every process
/// on the machine shares.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// A running paced stream. Dropping it stops the thread promptly (it is unparked, not left
/// to finish its sleep) and waits for it, so an output WAV is final once this is gone.
pub struct PacedThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PacedThread {
    /// Starts `work` on a thread named `name`, `rate` frames per second in blocks of
    /// `period`, catching up at most `max_burst` frames after a stall.
    pub fn spawn(
        name: &str,
        rate: u32,
        period: Duration,
        max_burst: usize,
        mut work: impl Paced,
    ) -> Result<PacedThread, AudioError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let start = Instant::now();
                // The start on the system-wide monotonic clock, so that a recording can be
                // lined up with another process's (the mouth-to-ear benchmark does).
                tracing::debug!(
                    stream = thread::current().name().unwrap_or_default(),
                    rate,
                    period_us = period.as_micros() as u64,
                    monotonic_ns = monotonic_ns(),
                    "paced audio stream started"
                );
                let mut pacer = Pacer::new(start, rate, period, max_burst);
                while !stopping.load(Ordering::Acquire) {
                    let tick = pacer.poll(Instant::now());
                    if tick.lost > 0 {
                        work.lost(tick.lost);
                    }
                    if tick.frames > 0 {
                        work.run(tick.frames);
                    }
                    let wait = pacer
                        .next_deadline()
                        .saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        // Wakes early on unpark (stop) or spuriously; the pacer copes.
                        thread::park_timeout(wait);
                    }
                }
                work.finish();
            })
            .map_err(|source| AudioError::Thread {
                what: "paced audio",
                source,
            })?;
        Ok(PacedThread {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for PacedThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            if handle.join().is_err() {
                tracing::error!("paced audio thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_work_pushes_silence_and_counts_overruns() {
        let (p, mut c) = rtrb::RingBuffer::new(100);
        let counters = Arc::new(StreamCounters::default());
        let mut w = CaptureWork::new(Source::Silence, p, counters.clone());
        w.run(60);
        w.run(60);
        let s = counters.snapshot();
        assert_eq!((s.frames, s.xruns, s.xrun_samples), (120, 1, 20));
        assert_eq!(c.slots(), 100);
        assert_eq!(c.pop(), Ok(0.0));
    }

    #[test]
    fn playback_work_counts_underruns_only_after_audio_started() {
        let (mut p, c) = rtrb::RingBuffer::new(100);
        let counters = Arc::new(StreamCounters::default());
        let mut w = PlaybackWork::new(Sink::Discard, c, counters.clone());
        w.run(50);
        assert_eq!(counters.snapshot().xruns, 0, "nothing was ever played");
        for _ in 0..30 {
            p.push(0.1).expect("room");
        }
        w.run(50);
        let s = counters.snapshot();
        assert_eq!((s.frames, s.xruns, s.xrun_samples), (100, 1, 20));
    }

    #[test]
    fn blocks_larger_than_the_scratch_buffer_are_split() {
        let (p, mut c) = rtrb::RingBuffer::new(3 * SCRATCH);
        let counters = Arc::new(StreamCounters::default());
        let mut w = CaptureWork::new(Source::Silence, p, counters.clone());
        w.run(2 * SCRATCH + 5);
        assert_eq!(c.slots(), 2 * SCRATCH + 5);
        assert_eq!(counters.frames(), (2 * SCRATCH + 5) as u64);
        assert!(c.pop().is_ok());
    }

    #[test]
    fn dropping_a_paced_thread_stops_it_without_waiting_out_the_period() {
        struct Flag(Arc<AtomicBool>);
        impl Paced for Flag {
            fn run(&mut self, _: usize) {}
            fn lost(&mut self, _: usize) {}
            fn finish(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let finished = Arc::new(AtomicBool::new(false));
        // A one-hour period: dropping must unpark the thread, not wait for the deadline.
        let t = PacedThread::spawn(
            "test-paced",
            1,
            Duration::from_secs(3600),
            10,
            Flag(finished.clone()),
        )
        .expect("spawn");
        drop(t);
        assert!(finished.load(Ordering::Acquire));
    }
}
