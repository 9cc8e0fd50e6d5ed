//! A call's media thread: whenever a device moves a block (the microphone delivered one,
//! the speaker took one) or a datagram comes from the relay, and at least every [`TICK`],
//! it moves what the microphone captured, the datagrams and the playback device's fill
//! level into the [`MediaPipeline`], sends the datagrams it returns and queues its samples
//! for playback, with the call-waiting tone mixed in while another call waits. Being woken
//! by the events rather than polling on a timer, a captured frame goes out, a datagram goes
//! into the jitter buffer and the speaker is topped up as soon as they can.
//! All media decisions are the pipeline's; the device decisions (which direction works,
//! when to open one again, what to tell the user) are [`DeviceHealth`]'s. This file owns
//! the clock, the devices and the connection: devices are opened and closed on the
//! opener thread (`opener.rs`), and a direction without a working device runs on its
//! stand-in (`standin.rs`), so the call goes on with what exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use bytes::Bytes;
use phoned_proto::call::CallId;
use smol::channel::{Receiver, Sender};

use super::health::{DeviceHealth, HealthAction};
use super::opener::{Opened, Opener, Stream};
use super::pipeline::{Device, Flags, MediaEvent, MediaPipeline, PipelineError};
use super::quality::{PathNow, Quality, QualityMeter};
use super::routes::Inlet;
use super::standin::{Discard, Silence};
use super::{TICK, playback_queue};
use crate::audio::backend::{Capture, Direction, Playback, monotonic_ns};
use crate::config::Audio;
use crate::link::media::MediaLink;
use crate::ring::tone::{self, ToneGen};

/// The rate a direction runs at until its device opens: the network rate, which the
/// pulse backend and most cards use, so a device usually opens without a new resampler.
const STAND_IN_RATE: u32 = 48_000;

/// Told the call's audio problem each time it changes (`None`: all works), from the
/// media thread.
pub type Reporter = Box<dyn FnMut(Option<String>) + Send>;

/// Told the call's quality once a [`REPORT_EVERY`](super::quality::REPORT_EVERY) while
/// it is not on hold, from the media thread; it must not block.
pub type QualityReporter = Box<dyn FnMut(Quality) + Send>;

/// Datagrams waiting for the media thread; beyond this they are dropped (stale anyway).
const INBOX: usize = 256;

/// Why a call's media could not start (audio devices that do not open are not a reason:
/// the call runs without them).
#[derive(Debug, thiserror::Error)]
enum StartError {
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
    /// Another call rings: mix the call-waiting tone into what is played.
    waiting_tone: AtomicBool,
}

/// One call's running media; dropping it stops the thread and closes the devices.
pub struct MediaSession {
    switches: Arc<Switches>,
    inbox: Sender<Bytes>,
    /// The media thread, woken for each datagram delivered.
    media: Thread,
    thread: Option<JoinHandle<()>>,
}

impl MediaSession {
    /// Starts the media thread for `call`, sending as `source`; it opens the audio devices
    /// itself, tells `report` whenever the call's audio problem changes and `quality` the
    /// call's quality once a second.
    pub fn start(
        audio: &Audio,
        link: Arc<MediaLink>,
        call: CallId,
        source: u32,
        muted: bool,
        (report, quality): (Reporter, QualityReporter),
    ) -> Result<MediaSession, String> {
        Self::try_start(audio, link, call, source, muted, (report, quality))
            .map_err(|e| e.to_string())
    }

    fn try_start(
        audio: &Audio,
        link: Arc<MediaLink>,
        call: CallId,
        source: u32,
        muted: bool,
        (report, quality): (Reporter, QualityReporter),
    ) -> Result<MediaSession, StartError> {
        let pipeline =
            MediaPipeline::with_frame(call, source, STAND_IN_RATE, STAND_IN_RATE, audio.frame)?;
        let opener = Opener::start(audio.clone(), call).map_err(StartError::Thread)?;
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
                let io = Io {
                    capture: None,
                    playback: None,
                    silence: Silence::new(STAND_IN_RATE, Duration::ZERO),
                    discard: Discard::new(STAND_IN_RATE, Duration::ZERO),
                    opener,
                    health: DeviceHealth::new(),
                    report,
                    meter: QualityMeter::default(),
                    quality,
                    queued: 0,
                    link,
                    inbox: rx,
                    captured,
                    waiting_tone: ToneGen::new(&tone::WAITING, STAND_IN_RATE, 1.0),
                };
                io.run(pipeline, &shared, call);
            })
            .map_err(StartError::Thread)?;
        Ok(MediaSession {
            switches,
            inbox,
            media: thread.thread().clone(),
            thread: Some(thread),
        })
    }

    /// Where datagrams from the relay go in (see [`MediaRoutes`](super::MediaRoutes)).
    pub fn inlet(&self) -> Inlet {
        Inlet {
            inbox: self.inbox.clone(),
            thread: self.media.clone(),
        }
    }

    pub fn set_muted(&self, muted: bool) {
        self.switches.muted.store(muted, Ordering::Relaxed);
    }

    /// On hold: nothing is sent and silence is played, with the devices kept open.
    pub fn set_paused(&self, paused: bool) {
        self.switches.paused.store(paused, Ordering::Relaxed);
    }

    /// Another call waits: the call-waiting tone is mixed into what this call plays.
    pub fn set_waiting_tone(&self, on: bool) {
        self.switches.waiting_tone.store(on, Ordering::Relaxed);
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.switches.stop.store(true, Ordering::Relaxed);
        self.media.unpark();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the media thread reads and writes around the pipeline.
struct Io {
    /// The microphone, while it works; else `silence` stands in.
    capture: Option<Capture>,
    /// The speaker, while it works; else `discard` stands in.
    playback: Option<Playback>,
    silence: Silence,
    discard: Discard,
    opener: Opener,
    health: DeviceHealth,
    report: Reporter,
    /// The call's quality, reported once a second through `quality`.
    meter: QualityMeter,
    quality: QualityReporter,
    /// Samples queued for playback when the latest tick began: what a decoded frame
    /// waits behind (after the tick's write the queue also holds that frame, whose
    /// length the far side's framing already counts).
    queued: usize,
    link: Arc<MediaLink>,
    inbox: Receiver<Bytes>,
    captured: Vec<f32>,
    /// At the pipeline's playback rate; made again when a device at another rate opens.
    waiting_tone: ToneGen,
}

impl Io {
    /// The media thread: a pipeline tick whenever a device moved a block or a datagram
    /// came, and at least every [`TICK`], on the real clock, until stopped.
    fn run(mut self, mut pipeline: MediaPipeline, switches: &Switches, call: CallId) {
        let started = Instant::now();
        // The same instant on the clock every process shares, for the onset trace.
        let started_ns = monotonic_ns();
        while !switches.stop.load(Ordering::Relaxed) {
            let now = started.elapsed();
            self.devices(now, &mut pipeline);
            let n = match &mut self.capture {
                Some(c) => c.read(&mut self.captured),
                None => self.silence.read(now, &mut self.captured),
            };
            let flags = Flags {
                muted: switches.muted.load(Ordering::Relaxed),
                paused: switches.paused.load(Ordering::Relaxed),
            };
            let device = match &self.playback {
                Some(p) => {
                    let counters = p.counters();
                    Device {
                        queued: p.pending(),
                        last_block: counters.last_block,
                        played: counters.frames,
                    }
                }
                None => Device {
                    queued: self.discard.queued(now),
                    last_block: self.discard.last_block(),
                    played: self.discard.played(now),
                },
            };
            self.queued = device.queued;
            let received = std::iter::from_fn(|| self.inbox.try_recv().ok());
            let out = pipeline.tick(now, &self.captured[..n], received, device, flags);
            for datagram in out.datagrams.drain(..) {
                // A full send buffer drops the frame: late audio is worthless.
                self.link.send(datagram);
            }
            // Mixed in place: the tone allocates nothing. Off, it rewinds, so the next
            // waiting call's first beep comes at once.
            if switches.waiting_tone.load(Ordering::Relaxed) {
                self.waiting_tone.mix(&mut out.playback);
            } else {
                self.waiting_tone.rewind();
            }
            match &mut self.playback {
                Some(p) => {
                    p.write(&out.playback);
                }
                None => self.discard.write(&out.playback),
            }
            let at_ns = started_ns + u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
            out.events.drain(..).for_each(|e| log(call, at_ns, e));
            self.measure(now, &pipeline, flags.paused);
            // Until a device moves a block or a datagram comes (each unparks this thread;
            // one that came during the tick makes this return at once), or a tick's time.
            std::thread::park_timeout(TICK);
        }
        self.log_end(&pipeline, call, started.elapsed());
    }

    /// Takes in the streams the opener has opened, tells [`DeviceHealth`] how the running
    /// ones do, and carries out what it decides. Bounded work: a few atomic loads per
    /// tick, more only when something changes.
    fn devices(&mut self, now: Duration, pipeline: &mut MediaPipeline) {
        while let Some(Opened { direction, result }) = self.opener.try_opened() {
            let result = match result {
                Ok(stream) => self.swap_in(stream, pipeline),
                Err(e) => Err(e.to_string()),
            };
            self.health.opened(now, direction, result);
        }
        if let Some(c) = &self.capture {
            let frames = c.counters().frames;
            self.health
                .observe(now, Direction::Capture, frames, c.problem());
        }
        if let Some(p) = &self.playback {
            let frames = p.counters().frames;
            self.health
                .observe(now, Direction::Playback, frames, p.problem());
        }
        while let Some(action) = self.health.poll(now) {
            match action {
                HealthAction::Open(direction) => self.opener.open(direction),
                HealthAction::Close(Direction::Capture) => {
                    if let Some(c) = self.capture.take() {
                        self.silence.restart(c.rate(), now);
                        self.opener.close(Stream::Capture(c));
                    }
                }
                HealthAction::Close(Direction::Playback) => {
                    if let Some(p) = self.playback.take() {
                        self.discard.restart(p.rate(), now);
                        self.opener.close(Stream::Playback(p));
                    }
                }
                HealthAction::Report(problem) => (self.report)(problem),
            }
        }
    }

    /// Puts a newly opened stream in place of its stand-in, with the pipeline's resampler
    /// set to its rate.
    fn swap_in(&mut self, stream: Stream, pipeline: &mut MediaPipeline) -> Result<(), String> {
        let (rate, current) = match &stream {
            Stream::Capture(c) => (c.rate(), self.capture_rate()),
            Stream::Playback(p) => (p.rate(), pipeline.playback_rate()),
        };
        if rate != current {
            let set = match &stream {
                Stream::Capture(_) => pipeline.set_capture_rate(rate),
                Stream::Playback(_) => pipeline.set_playback_rate(rate),
            };
            if let Err(e) = set {
                self.opener.close(stream);
                return Err(e.to_string());
            }
            if let Stream::Playback(_) = stream {
                // Not per tick: only when a device at a new rate comes in.
                self.waiting_tone = ToneGen::new(&tone::WAITING, rate, 1.0);
            }
        }
        match stream {
            Stream::Capture(c) => {
                c.set_waker(std::thread::current());
                self.capture = Some(c);
            }
            Stream::Playback(p) => {
                p.set_waker(std::thread::current());
                self.playback = Some(p);
            }
        }
        Ok(())
    }

    /// Reports the call's quality when a report is due; on hold, the window starts anew.
    /// Between reports, two counter copies and a comparison.
    fn measure(&mut self, now: Duration, pipeline: &MediaPipeline, paused: bool) {
        if paused {
            self.meter.pause();
            return;
        }
        let (media, jitter) = (pipeline.stats(), pipeline.jitter_stats());
        let Io {
            meter,
            capture,
            queued,
            link,
            quality,
            ..
        } = self;
        let sources = PathSources {
            capture: capture.as_ref(),
            queued: *queued,
            link,
        };
        let path = || path_now(pipeline, sources);
        if let Some(mut q) = meter.poll(now, &media, &jitter, path) {
            q.speaking = pipeline.speaking(now);
            quality(q);
        }
    }

    /// The rate the pipeline's capture side runs at now: the stand-in's while no device
    /// works.
    fn capture_rate(&self) -> u32 {
        self.silence.rate()
    }

    fn log_end(&self, pipeline: &MediaPipeline, call: CallId, ended: Duration) {
        let s = pipeline.jitter_stats();
        let m = pipeline.stats();
        // The call's quality summed up, as `Call.Quality` showed it live.
        let sources = PathSources {
            capture: self.capture.as_ref(),
            queued: self.queued,
            link: &self.link,
        };
        let path = path_now(pipeline, sources);
        let q = self.meter.summary(ended, &m, &s, path);
        // Counters of the streams open at the end (zero for a direction that was not).
        let capture = self
            .capture
            .as_ref()
            .map(Capture::counters)
            .unwrap_or_default();
        let playback = self
            .playback
            .as_ref()
            .map(Playback::counters)
            .unwrap_or_default();
        let rate = pipeline.playback_rate();
        tracing::info!(
            call,
            path = ?self.link.path(),
            sent = m.sent,
            datagrams = m.datagrams,
            foreign = m.foreign,
            received = s.received,
            played = s.played,
            fec = s.fec,
            concealed = s.concealed,
            dtx = s.dtx,
            expanded = s.expanded,
            accelerated = s.accelerated,
            skipped = s.skipped,
            lost = s.lost,
            late = s.late,
            duplicates = s.duplicates,
            delay_ms = s.delay_ms,
            max_delay_ms = m.max_delay_ms,
            max_allowed_ms = pipeline.jitter_config().max_delay_ms,
            playout_jitter_ms = s.playout_jitter_ms,
            playback_drift_ppm = m.playback_drift_ppm,
            sent_bytes = m.sent_bytes,
            repaired = m.repaired,
            reports_sent = m.reports_sent,
            reports_received = m.reports_received,
            far_loss_permille = m.far_loss_permille,
            bitrate_bps = m.bitrate_bps,
            expected_loss_percent = m.expected_loss_percent,
            redundancy = m.redundancy,
            first_copy_back = m.first_copy_back,
            copy_step = m.copy_step,
            copy_bitrate_bps = m.copy_bitrate_bps,
            capture_overruns = capture.xruns,
            playback_underruns = playback.xruns,
            playback_queue_ms =
                playback_queue(rate, playback.last_block) as u64 * 1000 / u64::from(rate.max(1)),
            loss_percent = q.loss_percent,
            unrecovered_percent = q.unrecovered_percent,
            jitter_ms = q.jitter_ms,
            mouth_to_ear_ms = q.mouth_to_ear_ms,
            send_kbps = q.send_kbps,
            receive_kbps = q.receive_kbps,
            mos = q.mos,
            "call media ended"
        );
    }
}

/// What [`path_now`] reads.
struct PathSources<'a> {
    capture: Option<&'a Capture>,
    /// Samples queued for playback when the tick began (see [`Io::queued`]).
    queued: usize,
    link: &'a MediaLink,
}

/// The capture device's block, the round trip to the relay and what the playback queue
/// held before the tick's audio went in, now.
fn path_now(pipeline: &MediaPipeline, io: PathSources<'_>) -> PathNow {
    let ms = |samples: u64, rate: u32| {
        u32::try_from(samples * 1000 / u64::from(rate.max(1))).unwrap_or(u32::MAX)
    };
    // A frame is sent once its last sample is in: that sample waits, on average, half a
    // device block (blocks and frames need not line up), as the block wakes the thread. A
    // stand-in microphone hands out silence at the thread's own pace.
    let capture_ms = io.capture.map_or(TICK.as_millis() as u32 / 2, |c| {
        ms(c.counters().last_block, c.rate()) / 2
    });
    PathNow {
        frame: pipeline.receive_frame(),
        capture_ms,
        rtt_ms: u32::try_from(io.link.rtt().as_millis()).unwrap_or(u32::MAX),
        playback_queue_ms: ms(io.queued as u64, pipeline.playback_rate()),
    }
}

/// Logs a tick's event; `at_ns` is the tick's time on the machine's monotonic clock.
fn log(call: CallId, at_ns: u64, event: MediaEvent) {
    match event {
        MediaEvent::Onset(o) => tracing::debug!(
            target: "phoned::media::onset",
            call,
            stage = ?o.stage,
            timestamp = o.timestamp,
            queued = o.queued,
            monotonic_ns = at_ns,
            "onset"
        ),
        MediaEvent::DecoderReset => tracing::debug!(call, "far side restarted its stream"),
        MediaEvent::EncodeFailed(e) => tracing::warn!(call, "encoding: {e}"),
        MediaEvent::DecodeFailed(e) => tracing::debug!(call, "decoding: {e}"),
        MediaEvent::ResampleFailed(e) => tracing::warn!(call, "resampling: {e}"),
    }
}
