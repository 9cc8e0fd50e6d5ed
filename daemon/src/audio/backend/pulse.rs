//! The `pulse` backend: a PulseAudio-protocol server (PulseAudio itself, or PipeWire's
//! `pipewire-pulse`) through libpulse's simple API.
//!
//! Why it exists beside `cpal`: cpal's ALSA host through the pulse ALSA plugin busy-loops
//! (the plugin's poll descriptor reports ready while less than a period is available, cpal
//! polls again at once), burning half a core per daemon and starving the stream. Here each
//! direction is one thread that blocks in `pa_simple_read`/`pa_simple_write` for 10 ms
//! (capture) or 20 ms (playback) blocks, so the server paces it: 100 and 50 wake-ups a
//! second. The threads only
//! convert between 16-bit blocks and the same lock-free mono `f32` rings the other backends
//! use; blocking is fine there because the rings, not the threads, face the daemon.
//!
//! [`server_reachable`] tells whether a server is there to use: `open` picks this backend
//! for the default `cpal` configuration when it is.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};

use libpulse_binding::def::BufferAttr;
use libpulse_binding::error::PAErr;
use libpulse_binding::sample::{Format, Spec};
use libpulse_binding::stream::Direction as PaDirection;
use libpulse_simple_binding::Simple;
use rtrb::{Consumer, Producer};

use super::convert::{pop_upmixed, push_downmixed};
use super::counters::StreamCounters;
use super::error::{AudioError, Direction};
use super::{Backend, Capture, Options, Playback, Running};

/// The rate asked of the server; it resamples if its devices run at another one.
const RATE: u32 = 48_000;
/// Samples per blocking read: 10 ms.
const BLOCK: usize = RATE as usize / 100;
/// Bytes in one 10 ms block of 16-bit mono.
const BLOCK_BYTES: u32 = (BLOCK * 2) as u32;
/// Samples per blocking write: 20 ms. The server hands out room a quantum or `minreq` at a
/// time; each write takes its 20 ms from the ring in one go, which the counters report as
/// the device's block: the daemon then keeps that much queued. With 10 ms writes, two came
/// back to back for one 20 ms request and the ring ran dry (seen with pipewire-pulse).
const PLAY_BLOCK: usize = 2 * BLOCK;
/// What this client is called in the server's stream lists (`pactl list sink-inputs`).
const CLIENT_NAME: &str = "phoned";

/// Whether a PulseAudio-protocol server is there for this process: `PULSE_SERVER` is set,
/// or the per-user socket `$XDG_RUNTIME_DIR/pulse/native` exists (PulseAudio's and
/// pipewire-pulse's default).
pub fn server_reachable() -> bool {
    reachable(
        std::env::var_os("PULSE_SERVER").as_deref(),
        std::env::var_os("XDG_RUNTIME_DIR")
            .as_deref()
            .map(Path::new),
    )
}

fn reachable(pulse_server: Option<&std::ffi::OsStr>, runtime_dir: Option<&Path>) -> bool {
    pulse_server.is_some_and(|s| !s.is_empty())
        || runtime_dir.is_some_and(|d| d.join("pulse/native").exists())
}

/// Streams on the PulseAudio-protocol server libpulse finds (`PULSE_SERVER`, else the
/// per-user socket). `input`/`output` name a source/sink (`pactl list short sources`);
/// `None` or `"default"` is the server's default.
pub struct PulseBackend {
    input: Option<String>,
    output: Option<String>,
    options: Options,
}

impl PulseBackend {
    /// Connects to nothing yet: each stream opens its own connection when started.
    pub fn new(input: Option<String>, output: Option<String>, options: Options) -> PulseBackend {
        PulseBackend {
            input,
            output,
            options,
        }
    }

    fn open(&self, direction: Direction) -> Result<(Simple, String), AudioError> {
        let name = match direction {
            Direction::Capture => self.input.as_deref(),
            Direction::Playback => self.output.as_deref(),
        }
        .filter(|n| *n != "default");
        let spec = Spec {
            format: Format::S16le,
            channels: 1,
            rate: RATE,
        };
        // Small server-side buffers: a 20 ms capture fragment, and 60 ms of playback
        // latency in total (libpulse's simple API adjusts the device latency to these).
        // Not smaller: timer-driven devices (null sinks, their monitors) woken every 10 ms
        // on a loaded machine were seen to fall behind real time and drop the lost time.
        //
        // Playback asks for 10 ms requests (`minreq`), not 20: the server splits the 60 ms
        // into `tlength − latency` of stream buffer and `latency = (tlength − 2·minreq)/2`
        // at the device, so this is 40 ms buffered and a 20 ms device latency (PulseAudio
        // wakes its sink half as often as with 10 ms). pipewire-pulse turns that latency
        // into the node's quantum request (960 samples: the graph runs at 512 unless
        // something asks for less) and asks the client for audio whenever `minreq` is
        // missing, which now is every quantum: a 20 ms write returns after two 10.7 ms
        // requests and every 8th after one, rather than after 21.3 ms and then at once
        // every 16th (measured on PipeWire 0.3.65): the media thread's pops are irregular
        // by half a frame instead of a whole one. The jitter buffer copes with either
        // (`audio/jitter/pops.rs`); this keeps the delay it adds for it down.
        let attr = match direction {
            Direction::Capture => BufferAttr {
                maxlength: u32::MAX,
                tlength: u32::MAX,
                prebuf: u32::MAX,
                minreq: u32::MAX,
                fragsize: 2 * BLOCK_BYTES,
            },
            Direction::Playback => BufferAttr {
                maxlength: u32::MAX,
                tlength: 6 * BLOCK_BYTES,
                prebuf: u32::MAX,
                minreq: BLOCK_BYTES,
                fragsize: u32::MAX,
            },
        };
        let (pa_direction, stream_name) = match direction {
            Direction::Capture => (PaDirection::Record, "call microphone"),
            Direction::Playback => (PaDirection::Playback, "call speaker"),
        };
        let label = name.unwrap_or("default").to_owned();
        let simple = Simple::new(
            None,
            CLIENT_NAME,
            pa_direction,
            name,
            stream_name,
            &spec,
            None,
            Some(&attr),
        )
        .map_err(|source| AudioError::Pulse {
            direction,
            device: label.clone(),
            source,
        })?;
        Ok((simple, label))
    }
}

impl Backend for PulseBackend {
    fn kind(&self) -> &'static str {
        "pulse"
    }

    fn start_capture(&mut self) -> Result<Capture, AudioError> {
        let (simple, device) = self.open(Direction::Capture)?;
        let (producer, consumer) = rtrb::RingBuffer::new(self.options.ring_capacity(RATE));
        let counters = Arc::new(StreamCounters::default());
        let work = counters.clone();
        let thread = PulseThread::spawn("pulse-in", move |stop| {
            capture_loop(&simple, producer, &work, stop)
        })?;
        tracing::info!(backend = "pulse", %device, rate = RATE, "audio capture started");
        Ok(Capture::new(
            Running::Pulse { _thread: thread },
            RATE,
            consumer,
            counters,
        ))
    }

    fn start_playback(&mut self) -> Result<Playback, AudioError> {
        let (simple, device) = self.open(Direction::Playback)?;
        let (producer, consumer) = rtrb::RingBuffer::new(self.options.ring_capacity(RATE));
        let counters = Arc::new(StreamCounters::default());
        let work = counters.clone();
        let thread = PulseThread::spawn("pulse-out", move |stop| {
            playback_loop(&simple, consumer, &work, stop)
        })?;
        tracing::info!(backend = "pulse", %device, rate = RATE, "audio playback started");
        Ok(Playback::new(
            Running::Pulse { _thread: thread },
            RATE,
            producer,
            counters,
        ))
    }
}

/// Reads 10 ms blocks (blocking) and pushes them into the ring, counting what does not fit.
fn capture_loop(
    simple: &Simple,
    mut ring: Producer<f32>,
    counters: &StreamCounters,
    stop: &AtomicBool,
) {
    let mut bytes = [0u8; BLOCK * 2];
    let mut samples = [0i16; BLOCK];
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = simple.read(&mut bytes) {
            lost(counters, Direction::Capture, e);
            return;
        }
        for (s, b) in samples.iter_mut().zip(bytes.chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        let pushed = push_downmixed(&mut ring, &samples, 1);
        counters.add_frames(BLOCK);
        if pushed < BLOCK {
            counters.add_xrun(BLOCK - pushed);
        }
    }
}

/// Takes 20 ms from the ring (silence where it runs short) and writes it, blocking until
/// the server has room: the server's clock paces the loop.
fn playback_loop(
    simple: &Simple,
    mut ring: Consumer<f32>,
    counters: &StreamCounters,
    stop: &AtomicBool,
) {
    let mut samples = [0i16; PLAY_BLOCK];
    let mut bytes = [0u8; PLAY_BLOCK * 2];
    // Underruns count only once audio has started, as in the cpal backend.
    let mut primed = false;
    while !stop.load(Ordering::Relaxed) {
        let taken = pop_upmixed(&mut ring, &mut samples, 1);
        counters.add_frames(PLAY_BLOCK);
        primed |= taken > 0;
        if primed && taken < PLAY_BLOCK {
            counters.add_xrun(PLAY_BLOCK - taken);
        }
        for (b, s) in bytes.chunks_exact_mut(2).zip(samples) {
            b.copy_from_slice(&s.to_le_bytes());
        }
        if let Err(e) = simple.write(&bytes) {
            lost(counters, Direction::Playback, e);
            return;
        }
    }
}

/// The connection failed mid-stream (the server went away): counted and logged once; the
/// thread then ends, and the ring simply stops moving.
fn lost(counters: &StreamCounters, direction: Direction, e: PAErr) {
    counters.add_device_error();
    counters.set_problem(format!("audio server connection lost ({direction}): {e}"));
    tracing::warn!(%direction, error = %e, "audio server connection lost");
}

/// One direction's blocking I/O thread; dropping it stops and joins the thread (within one
/// block while the server is alive).
pub struct PulseThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PulseThread {
    fn spawn(
        name: &'static str,
        work: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<PulseThread, AudioError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || work(&flag))
            .map_err(|source| AudioError::Thread { what: name, source })?;
        Ok(PulseThread {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for PulseThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_reachable_through_pulse_server_or_the_user_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!reachable(None, None));
        assert!(!reachable(Some("".as_ref()), Some(dir.path())));
        assert!(reachable(Some("unix:/x/native".as_ref()), None));
        std::fs::create_dir(dir.path().join("pulse")).expect("pulse dir");
        std::fs::write(dir.path().join("pulse/native"), b"").expect("socket stand-in");
        assert!(reachable(None, Some(dir.path())));
    }
}
