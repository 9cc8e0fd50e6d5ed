//! A call's media thread: opens the devices, then every [`TICK`] moves what the microphone
//! captured, the datagrams from the relay and the playback device's fill level into the
//! [`MediaPipeline`], sends the datagrams it returns and queues its samples for playback.
//! All decisions are the pipeline's; this file only owns the clock, the devices and the
//! connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use phoned_proto::call::CallId;
use smol::channel::{Receiver, Sender};

use super::pipeline::{Device, Flags, MediaEvent, MediaPipeline, PipelineError};
use super::{TICK, playback_queue};
use crate::audio::backend::{self, AudioError, Capture, Options, Playback};
use crate::config::Audio;

/// Datagrams waiting for the media thread; beyond this they are dropped (stale anyway).
const INBOX: usize = 256;

/// Why a call's media could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot start the media thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The switches the call engine flips while the media thread runs.
#[derive(Default)]
struct Switches {
    stop: AtomicBool,
    muted: AtomicBool,
    paused: AtomicBool,
}

/// One call's running media; dropping it stops the thread and closes the devices.
pub struct MediaSession {
    switches: Arc<Switches>,
    inbox: Sender<Bytes>,
    thread: Option<JoinHandle<()>>,
}

impl MediaSession {
    /// Opens the audio devices and starts the media thread for `call`, sending as `source`.
    pub fn start(
        audio: &Audio,
        conn: quinn::Connection,
        call: CallId,
        source: u32,
        muted: bool,
    ) -> Result<MediaSession, String> {
        Self::try_start(audio, conn, call, source, muted).map_err(|e| e.to_string())
    }

    fn try_start(
        audio: &Audio,
        conn: quinn::Connection,
        call: CallId,
        source: u32,
        muted: bool,
    ) -> Result<MediaSession, StartError> {
        let mut backend = backend::open(audio, Options::default())?;
        let capture = backend.start_capture()?;
        let playback = backend.start_playback()?;
        let pipeline = MediaPipeline::new(call, source, capture.rate(), playback.rate())?;
        let switches = Arc::new(Switches::default());
        switches.muted.store(muted, Ordering::Relaxed);
        let (inbox, rx) = smol::channel::bounded(INBOX);
        let shared = switches.clone();
        // 100 ms at 48 kHz per read: a tick normally finds 5 ms; the backlog after a stall
        // (the ring holds 250 ms) is taken over the next ticks.
        let captured = vec![0f32; 4800];
        // The caller's span (the driver's `call` span) names the call in the thread's logs.
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name(format!("media-{call}"))
            .spawn(move || {
                let _in_call = span.enter();
                // Keep the backend (device streams, file threads) alive with the pipeline.
                let _backend = backend;
                let io = Io {
                    capture,
                    playback,
                    conn,
                    inbox: rx,
                    captured,
                };
                io.run(pipeline, &shared, call);
            })
            .map_err(StartError::Thread)?;
        Ok(MediaSession {
            switches,
            inbox,
            thread: Some(thread),
        })
    }

    /// Hands a datagram from the relay to the media thread (dropped if it is behind).
    pub fn deliver(&self, datagram: Bytes) {
        let _ = self.inbox.try_send(datagram);
    }

    pub fn set_muted(&self, muted: bool) {
        self.switches.muted.store(muted, Ordering::Relaxed);
    }

    /// On hold: nothing is sent and silence is played, with the devices kept open.
    pub fn set_paused(&self, paused: bool) {
        self.switches.paused.store(paused, Ordering::Relaxed);
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.switches.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the media thread reads and writes around the pipeline.
struct Io {
    capture: Capture,
    playback: Playback,
    conn: quinn::Connection,
    inbox: Receiver<Bytes>,
    captured: Vec<f32>,
}

impl Io {
    /// The media thread: one pipeline tick per [`TICK`] on the real clock, until stopped.
    fn run(mut self, mut pipeline: MediaPipeline, switches: &Switches, call: CallId) {
        let started = Instant::now();
        let mut next = started;
        while !switches.stop.load(Ordering::Relaxed) {
            let n = self.capture.read(&mut self.captured);
            let flags = Flags {
                muted: switches.muted.load(Ordering::Relaxed),
                paused: switches.paused.load(Ordering::Relaxed),
            };
            let device = Device {
                queued: self.playback.pending(),
                last_block: self.playback.counters().last_block,
            };
            let received = std::iter::from_fn(|| self.inbox.try_recv().ok());
            let out = pipeline.tick(
                started.elapsed(),
                &self.captured[..n],
                received,
                device,
                flags,
            );
            for datagram in out.datagrams.drain(..) {
                // A full send buffer drops the frame: late audio is worthless.
                let _ = self.conn.send_datagram(datagram);
            }
            self.playback.write(&out.playback);
            out.events.drain(..).for_each(|e| log(call, e));
            next += TICK;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        self.log_end(&pipeline, call);
    }

    fn log_end(&self, pipeline: &MediaPipeline, call: CallId) {
        let s = pipeline.jitter_stats();
        let m = pipeline.stats();
        let (capture, playback) = (self.capture.counters(), self.playback.counters());
        let rate = self.playback.rate();
        tracing::info!(
            call,
            sent = m.sent,
            datagrams = m.datagrams,
            foreign = m.foreign,
            received = s.received,
            played = s.played,
            fec = s.fec,
            concealed = s.concealed,
            lost = s.lost,
            late = s.late,
            duplicates = s.duplicates,
            delay_ms = s.delay_ms,
            max_delay_ms = m.max_delay_ms,
            max_allowed_ms = pipeline.jitter_config().max_delay_ms,
            playback_drift_ppm = m.playback_drift_ppm,
            capture_overruns = capture.xruns,
            playback_underruns = playback.xruns,
            playback_queue_ms =
                playback_queue(rate, playback.last_block) as u64 * 1000 / u64::from(rate.max(1)),
            "call media ended"
        );
    }
}

fn log(call: CallId, event: MediaEvent) {
    match event {
        MediaEvent::DecoderReset => tracing::debug!(call, "far side restarted its stream"),
        MediaEvent::EncodeFailed(e) => tracing::warn!(call, "encoding: {e}"),
        MediaEvent::DecodeFailed(e) => tracing::debug!(call, "decoding: {e}"),
        MediaEvent::ResampleFailed(e) => tracing::warn!(call, "resampling: {e}"),
    }
}
