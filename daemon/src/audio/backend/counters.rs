//! Per-stream statistics kept in atomics, so the real-time side can count without locking
//! and any thread can read them; and the stream's health ([`StreamCounters::problem`]): why
//! its device is not moving audio right now, set and cleared by the backend's own
//! (non-real-time) device thread or error callback, read by the media thread. A stream
//! also wakes the thread that reads or fills its ring after each block it moves
//! ([`StreamCounters::set_waker`]), so that thread need not poll on a timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;

/// Counters a stream's device side updates. All use relaxed ordering: they are statistics
/// and progress indicators, never used to synchronise data (the ring does that).
#[derive(Debug, Default)]
pub struct StreamCounters {
    frames: AtomicU64,
    xruns: AtomicU64,
    xrun_samples: AtomicU64,
    device_errors: AtomicU64,
    last_block: AtomicU64,
    /// Fast path for [`StreamCounters::problem`]: readers lock only when it is set.
    has_problem: AtomicBool,
    problem: Mutex<Option<String>>,
    /// Unparked after every block the device moves (see [`StreamCounters::set_waker`]).
    waker: OnceLock<Thread>,
}

/// A copy of a stream's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Device frames the stream has moved (captured, or played including silence).
    pub frames: u64,
    /// Times the ring could not keep up: an *overrun* on capture (the ring was full, so the
    /// newest samples were dropped), an *underrun* on playback (the ring ran dry, so silence
    /// was played). Playback counts underruns only once the first sample has arrived.
    pub xruns: u64,
    /// Mono samples lost to those xruns (dropped on capture, replaced by silence on playback).
    pub xrun_samples: u64,
    /// Errors the device itself reported (cpal's error callback: device xruns, disconnects),
    /// or write errors of a file backend.
    pub device_errors: u64,
    /// Frames the device moved in its latest callback or period: how much audio it takes
    /// from the ring in one go. (The latest, not the largest: a paced stream's catch-up
    /// after one stall must not raise the playback queue for the rest of a call.)
    pub last_block: u64,
}

impl StreamCounters {
    /// Records `n` device frames moved in one go (one callback or period), and wakes the
    /// thread set with [`StreamCounters::set_waker`]: it finds the block in the ring, or
    /// the room the block left. Real-time safe: an atomic load, and `unpark` (an atomic
    /// swap, and a futex wake only when that thread sleeps) never blocks or allocates.
    #[inline]
    pub fn add_frames(&self, n: usize) {
        self.frames.fetch_add(n as u64, Ordering::Relaxed);
        self.last_block.store(n as u64, Ordering::Release);
        if let Some(thread) = self.waker.get() {
            thread.unpark();
        }
    }

    /// Has `thread` unparked after every block from now on (the media thread, for the
    /// stream it reads or fills). The first thread set stays: a stream serves one call.
    pub fn set_waker(&self, thread: Thread) {
        let _ = self.waker.set(thread);
    }

    /// Records one ring over- or underrun that lost `samples` samples.
    #[inline]
    pub fn add_xrun(&self, samples: usize) {
        self.xruns.fetch_add(1, Ordering::Relaxed);
        self.xrun_samples
            .fetch_add(samples as u64, Ordering::Relaxed);
    }

    /// Records an error reported by the device.
    #[inline]
    pub fn add_device_error(&self) {
        self.device_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records why the device is not moving audio (server gone, device unplugged, none at
    /// all), in one line for users. Called from a backend's device thread or error callback,
    /// never from a real-time audio callback: it locks and allocates.
    pub fn set_problem(&self, problem: impl Into<String>) {
        let mut slot = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(problem.into());
        self.has_problem.store(true, Ordering::Release);
    }

    /// The device moves audio again.
    pub fn clear_problem(&self) {
        if self.has_problem.swap(false, Ordering::AcqRel) {
            *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Why the device is not moving audio, if it is not. Cheap when all is well (one
    /// atomic load); the media thread polls it a few times a second.
    pub fn problem(&self) -> Option<String> {
        if !self.has_problem.load(Ordering::Acquire) {
            return None;
        }
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Device frames moved so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            frames: self.frames.load(Ordering::Relaxed),
            xruns: self.xruns.load(Ordering::Relaxed),
            xrun_samples: self.xrun_samples.load(Ordering::Relaxed),
            device_errors: self.device_errors.load(Ordering::Relaxed),
            last_block: self.last_block.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_every_counter() {
        let c = StreamCounters::default();
        c.add_frames(480);
        c.add_frames(240);
        c.add_frames(240);
        c.add_frames(480);
        c.add_xrun(100);
        c.add_device_error();
        assert_eq!(
            c.snapshot(),
            CounterSnapshot {
                frames: 1440,
                xruns: 1,
                xrun_samples: 100,
                device_errors: 1,
                last_block: 480,
            }
        );
    }

    #[test]
    fn every_block_wakes_the_thread_set_as_waker() {
        let c = std::sync::Arc::new(StreamCounters::default());
        c.add_frames(480); // nobody to wake yet
        c.set_waker(std::thread::current());
        let device = std::thread::spawn({
            let c = c.clone();
            move || c.add_frames(480)
        });
        device.join().expect("device thread");
        // The unpark came before this park: it returns at once rather than after an hour.
        let t = std::time::Instant::now();
        std::thread::park_timeout(std::time::Duration::from_secs(3600));
        assert!(t.elapsed() < std::time::Duration::from_secs(3000));
    }

    #[test]
    fn a_problem_is_reported_until_cleared() {
        let c = StreamCounters::default();
        assert_eq!(c.problem(), None);
        c.set_problem("audio server gone");
        assert_eq!(c.problem().as_deref(), Some("audio server gone"));
        c.set_problem("no output device");
        assert_eq!(c.problem().as_deref(), Some("no output device"));
        c.clear_problem();
        assert_eq!(c.problem(), None);
    }
}
