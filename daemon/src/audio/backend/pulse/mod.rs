//! The `pulse` backend: a PulseAudio-protocol server (PulseAudio itself, or PipeWire's
//! `pipewire-pulse`) through libpulse, each stream on a connection its device thread
//! drives itself.
//!
//! Why it exists beside `cpal`: cpal's ALSA host through the pulse ALSA plugin busy-loops
//! (the plugin's poll descriptor reports ready while less than a period is available, cpal
//! polls again at once), burning half a core per daemon and starving the stream. Here each
//! direction is one thread that blocks in its own connection's `poll` until the server
//! brings a 20 ms capture fragment or asks for 10 ms of playback, so the server paces it. The threads only convert between 16-bit blocks and the same lock-free mono
//! `f32` rings the other backends use; blocking is fine there because the rings, not the
//! threads, face the daemon.
//!
//! libpulse is not linked: [`ffi`] loads it the first time this backend is used, so a
//! daemon on a device without a sound server never maps it. The parts:
//! - [`ffi`]: the symbol table and C types; [`connection`]: a context on a mainloop its
//!   owner iterates; [`stream`]: one stream on a connection of its own, read or written
//!   blocking;
//! - [`introspect`]: the server's sinks, sources and defaults; [`matching`]: which of
//!   them the config names (server name, else description);
//! - [`link`]: a direction's stream and the device it is on, following a named device
//!   that goes and comes back, and reconnecting to a server that went away;
//! - [`thread`]: the device threads and their rings.
//!
//! [`server_reachable`] tells whether a server is there to use: `open` picks this backend
//! for the default `cpal` configuration when it is and libpulse loads.

mod connection;
mod ffi;
mod introspect;
mod link;
mod matching;
mod stream;
mod thread;

use std::path::Path;
use std::sync::Arc;

use self::ffi::{BufferAttr, Lib};
pub use self::ffi::{LoadError, PaError};
pub use self::introspect::Devices;
use self::introspect::Introspector;
use self::link::Link;
pub use self::thread::PulseThread;
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
/// What this client is called in the server's client and stream lists (`pactl list
/// clients`).
const CLIENT_NAME_C: &std::ffi::CStr = c"phoned";

/// Small server-side buffers: a 20 ms capture fragment, and 60 ms of playback latency in
/// total (with `PA_STREAM_ADJUST_LATENCY` the server sizes the device latency from
/// these). Not smaller: timer-driven devices (null sinks, their monitors) woken every
/// 10 ms on a loaded machine were seen to fall behind real time and drop the lost time.
///
/// Playback asks for 10 ms requests (`minreq`), not 20: the server splits the 60 ms into
/// `tlength − latency` of stream buffer and `latency = (tlength − 2·minreq)/2` at the
/// device, so this is 40 ms buffered and a 20 ms device latency (PulseAudio wakes its sink
/// half as often as with 10 ms). pipewire-pulse turns that latency into the node's quantum
/// request (960 samples: the graph runs at 512 unless something asks for less) and asks the
/// client for audio whenever `minreq` is missing, which now is every quantum: a 20 ms write
/// returns after two 10.7 ms requests and every 8th after one, rather than after 21.3 ms
/// and then at once every 16th (measured on PipeWire 0.3.65): the media thread's pops are
/// irregular by half a frame instead of a whole one. The jitter buffer copes with either
/// (`audio/jitter/pops.rs`); this keeps the delay it adds for it down.
fn buffer_attr(direction: Direction) -> BufferAttr {
    match direction {
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
    }
}

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

/// Loads libpulse (once per process): whether the `pulse` backend can be used at all.
pub fn library() -> Result<(), LoadError> {
    Lib::get().map(|_| ())
}

/// The server's sinks, sources and defaults (`phonectl audio devices`).
pub fn devices() -> Result<Devices, AudioError> {
    let lib = Lib::get()?;
    let timeout = link::LIST_TIMEOUT * 10;
    let listing = |source| AudioError::PulseList { source };
    Introspector::connect(lib, timeout)
        .and_then(|mut i| i.list(timeout))
        .map_err(listing)
}

/// Streams on the PulseAudio-protocol server libpulse finds (`PULSE_SERVER`, else the
/// per-user socket). `input`/`output` name a source/sink by its server name (`pactl list
/// short sources`) or its description (`"USB Headset"`, any case); `None` or `"default"`
/// is the server's default.
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

    fn open(&self, direction: Direction) -> Result<Link, AudioError> {
        let wanted = match direction {
            Direction::Capture => self.input.as_deref(),
            Direction::Playback => self.output.as_deref(),
        };
        Link::open(Lib::get()?, direction, wanted)
    }
}

impl Backend for PulseBackend {
    fn kind(&self) -> &'static str {
        "pulse"
    }

    fn start_capture(&mut self) -> Result<Capture, AudioError> {
        let link = self.open(Direction::Capture)?;
        let device = link.device().to_owned();
        let (producer, consumer) = rtrb::RingBuffer::new(self.options.ring_capacity(RATE));
        let counters = Arc::new(StreamCounters::default());
        let work = counters.clone();
        let thread = PulseThread::spawn("pulse-in", move |stop| {
            thread::capture_loop(link, producer, &work, stop)
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
        let link = self.open(Direction::Playback)?;
        let device = link.device().to_owned();
        let (producer, consumer) = rtrb::RingBuffer::new(self.options.ring_capacity(RATE));
        let counters = Arc::new(StreamCounters::default());
        let work = counters.clone();
        let thread = PulseThread::spawn("pulse-out", move |stop| {
            thread::playback_loop(link, consumer, &work, stop)
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
