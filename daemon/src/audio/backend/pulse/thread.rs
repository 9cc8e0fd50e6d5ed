//! The device threads: one per direction, blocking in their stream's read or write so
//! that the server paces them, moving 16-bit blocks between the stream and the ring.
//! The ring is the thread's for its whole life: when the [`Link`] changes device or
//! reconnects, the daemon's side of the ring notices nothing.
//!
//! [`PulseThread`] owns the thread's life: dropping it stops the thread, and does not wait
//! for long — a read blocked on a frozen server (SIGSTOP) never returns, so after
//! [`STOP_WAIT`] the thread is left to end on its own once the server answers or the
//! process exits. It holds only its own `Arc`s and ring end, so that is safe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rtrb::{Consumer, Producer};

use super::link::Link;
use super::{BLOCK, PLAY_BLOCK, RATE};
use crate::audio::backend::convert::{pop_upmixed, push_downmixed};
use crate::audio::backend::counters::StreamCounters;
use crate::audio::backend::error::AudioError;

/// How long dropping a stream waits for its thread: longer than a block, a device listing
/// and a stream open on a live server take.
const STOP_WAIT: Duration = Duration::from_millis(500);
/// How long a write waits for the media thread to top up a ring that ran short before it
/// pads the block with silence. The server still holds the previous write (its buffer is
/// `tlength`, 60 ms, less the device's 20 ms), so waiting this long costs nothing audible,
/// and a media thread that is a few milliseconds late (woken by the block just taken, on a
/// loaded machine) still fills the gap with audio instead of digital silence.
const TOP_UP_WAIT: Duration = Duration::from_millis(8);
/// How often the ring is looked at while waiting for the top-up.
const TOP_UP_POLL: Duration = Duration::from_millis(1);
/// How often a thread with a named device checks where its device is.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Blocks between two [`Link::follow`] calls for blocks of `block` samples.
const fn follow_blocks(block: usize) -> u32 {
    (FOLLOW_EVERY.as_millis() as usize * RATE as usize / 1000 / block) as u32
}

/// Reads 10 ms blocks (blocking) and pushes them into the ring, counting what does not fit.
pub fn capture_loop(
    mut link: Link,
    mut ring: Producer<f32>,
    counters: &StreamCounters,
    stop: &AtomicBool,
) {
    let mut bytes = [0u8; BLOCK * 2];
    let mut samples = [0i16; BLOCK];
    let mut blocks = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = link.stream() else {
            link.retry(counters, stop);
            continue;
        };
        if let Err(e) = stream.read(&mut bytes) {
            link.lost(counters, e);
            continue;
        }
        for (s, b) in samples.iter_mut().zip(bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        let pushed = push_downmixed(&mut ring, &samples, 1);
        counters.add_frames(BLOCK);
        if pushed < BLOCK {
            counters.add_xrun(BLOCK - pushed);
        }
        blocks += 1;
        if blocks >= follow_blocks(BLOCK) {
            blocks = 0;
            link.follow();
        }
    }
}

/// Takes 20 ms from the ring (waiting a little for a short ring to be topped up, then
/// silence where it still runs short) and writes it, blocking until
/// the server has room: the server's clock paces the loop.
pub fn playback_loop(
    mut link: Link,
    mut ring: Consumer<f32>,
    counters: &StreamCounters,
    stop: &AtomicBool,
) {
    let mut samples = [0i16; PLAY_BLOCK];
    let mut bytes = [0u8; PLAY_BLOCK * 2];
    // Underruns count only once audio has started, as in the cpal backend.
    let mut primed = false;
    let mut blocks = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Some(stream) = link.stream() else {
            link.retry(counters, stop);
            continue;
        };
        let mut taken = pop_upmixed(&mut ring, &mut samples, 1);
        // Wakes the media thread, which tops the ring up for the next block.
        counters.add_frames(PLAY_BLOCK);
        if primed && taken < PLAY_BLOCK {
            let polls = (TOP_UP_WAIT.as_millis() / TOP_UP_POLL.as_millis()) as u32;
            taken += top_up(&mut ring, &mut samples[taken..], polls, || {
                thread::sleep(TOP_UP_POLL);
                !stop.load(Ordering::Relaxed)
            });
        }
        primed |= taken > 0;
        if primed && taken < PLAY_BLOCK {
            counters.add_xrun(PLAY_BLOCK - taken);
        }
        for (b, s) in bytes.chunks_exact_mut(2).zip(samples) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        if let Err(e) = stream.write(&bytes) {
            link.lost(counters, e);
            continue;
        }
        blocks += 1;
        if blocks >= follow_blocks(PLAY_BLOCK) {
            blocks = 0;
            link.follow();
        }
    }
}

/// Fills `rest` from the ring as the media thread tops it up: up to `polls` times, `pause`
/// (a [`TOP_UP_POLL`] sleep), then what came; what is still missing stays silence. Returns
/// the samples taken.
fn top_up(
    ring: &mut Consumer<f32>,
    rest: &mut [i16],
    polls: u32,
    mut pause: impl FnMut() -> bool,
) -> usize {
    let mut taken = 0;
    for _ in 0..polls {
        if taken == rest.len() || !pause() {
            break;
        }
        taken += pop_upmixed(ring, &mut rest[taken..], 1);
    }
    taken
}

/// One direction's blocking I/O thread; dropping it stops the thread (see the module
/// comment for a server that does not answer).
pub struct PulseThread {
    name: &'static str,
    stop: Arc<AtomicBool>,
    /// Disconnected when the thread ends (its sender is dropped, also on a panic).
    ended: mpsc::Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl PulseThread {
    pub fn spawn(
        name: &'static str,
        work: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<PulseThread, AudioError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ending, ended) = mpsc::channel::<()>();
        let handle = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _ending = ending;
                work(&flag);
            })
            .map_err(|source| AudioError::Thread { what: name, source })?;
        Ok(PulseThread {
            name,
            stop,
            ended,
            handle: Some(handle),
        })
    }
}

impl Drop for PulseThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        match self.ended.recv_timeout(STOP_WAIT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    thread = self.name,
                    "the audio server does not answer; its thread will end on its own"
                );
                // Dropping the handle detaches the thread.
                self.handle = None;
            }
            _ => {
                if let Some(handle) = self.handle.take() {
                    let _ = handle.join();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_stuck_in_the_server_does_not_hold_up_its_drop() {
        let (release, stuck) = mpsc::channel::<()>();
        let thread = PulseThread::spawn("test-stuck", move |_| {
            // Stands in for a read on a frozen server: ignores the stop flag.
            let _ = stuck.recv();
        })
        .expect("spawn");
        let started = std::time::Instant::now();
        drop(thread);
        assert!(started.elapsed() < Duration::from_secs(30));
        let _ = release.send(());
    }

    #[test]
    fn a_thread_that_stops_is_joined() {
        let (done, finished) = mpsc::channel::<()>();
        let thread = PulseThread::spawn("test-stops", move |stop| {
            while !stop.load(Ordering::Relaxed) {
                thread::yield_now();
            }
            let _ = done.send(());
        })
        .expect("spawn");
        drop(thread);
        // Joined: the thread has finished by the time drop returns.
        assert!(finished.try_recv().is_ok());
    }

    #[test]
    fn named_devices_are_checked_twice_a_second() {
        assert_eq!(follow_blocks(BLOCK), 50);
        assert_eq!(follow_blocks(PLAY_BLOCK), 25);
    }

    #[test]
    fn a_short_block_takes_what_the_media_thread_adds_before_the_deadline() {
        let (mut media, mut ring) = rtrb::RingBuffer::<f32>::new(64);
        let mut rest = [7i16; 10];
        // The media thread tops up 4 samples on the first pause and 4 on the second.
        let mut pauses = 0;
        let taken = top_up(&mut ring, &mut rest, 8, || {
            pauses += 1;
            if pauses <= 2 {
                for _ in 0..4 {
                    media.push(0.5).expect("room");
                }
            }
            true
        });
        assert_eq!(taken, 8);
        assert_eq!(pauses, 8, "waits out its polls while short");
        assert!(rest[..8].iter().all(|&s| s > 16_000), "{rest:?}");
        assert_eq!(rest[8..], [0, 0], "what never came is silence");
    }

    #[test]
    fn a_full_block_or_a_stop_ends_the_wait_at_once() {
        let (mut media, mut ring) = rtrb::RingBuffer::<f32>::new(64);
        let mut rest = [0i16; 4];
        let mut pauses = 0;
        let taken = top_up(&mut ring, &mut rest, 8, || {
            pauses += 1;
            for _ in 0..4 {
                let _ = media.push(0.25);
            }
            true
        });
        assert_eq!((taken, pauses), (4, 1));
        let taken = top_up(&mut ring, &mut rest, 8, || false);
        assert_eq!(taken, 0, "stopping: no wait");
    }
}
