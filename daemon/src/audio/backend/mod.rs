//! Audio devices behind one trait, [`Backend`]: `cpal` (sound cards through ALSA), `pulse`
//! (a PulseAudio or PipeWire server, natively), `file` (WAV in and out, paced in real
//! time) and `null` (paced silence in, output discarded).
//!
//! A started stream is a [`Capture`] or a [`Playback`]: mono `f32` samples at the device's
//! rate, in a lock-free single-producer single-consumer ring (`rtrb`) between the device's
//! real-time side and the daemon. The real-time side — cpal's callback, a paced thread
//! for file/null, a blocking I/O thread for pulse — only converts samples between the
//! device buffer and the ring: it never blocks (pulse: only on the server), locks or
//! allocates, and what does not fit is dropped and counted
//! ([`CounterSnapshot`]). Everything else (resampling to 48 kHz, Opus, jitter buffering)
//! runs on ordinary threads that read and write the rings. Dropping a stream stops it.
//!
//! ```no_run
//! use phoned::audio::backend::{self, Options};
//! use phoned::config::{Audio, AudioBackend, Ring};
//!
//! let config = Audio {
//!     backend: AudioBackend::Null,
//!     input: None,
//!     output: None,
//!     input_wav: None,
//!     output_wav: None,
//!     ring: Ring::default(),
//!     frame: Default::default(),
//! };
//! let mut backend = backend::open(&config, Options::default())?;
//! let mut mic = backend.start_capture()?;
//! let mut block = [0f32; 480];
//! let n = mic.read(&mut block); // whatever has arrived; 0 if nothing yet
//! # let _ = n;
//! # Ok::<(), backend::AudioError>(())
//! ```

mod convert;
mod counters;
mod cpal;
mod devices;
mod error;
mod file;
mod null;
mod paced;
mod pacer;
mod pulse;
mod wav;

use std::sync::Arc;
use std::time::Duration;

use rtrb::{Consumer, Producer};

pub use self::convert::{f32_to_i16, int_to_f32};
pub use self::counters::{CounterSnapshot, StreamCounters};
pub use self::cpal::{CpalBackend, choose_config};
pub use self::devices::{DeviceEntry, DeviceList, list as list_devices};
pub use self::error::{AudioError, Direction};
pub use self::file::FileBackend;
pub use self::null::NullBackend;
pub use self::paced::monotonic_ns;
pub use self::pacer::{Pacer, Tick};
pub use self::pulse::{LoadError, PulseBackend, server_reachable};
pub use self::wav::{WavSource, recording_spec};
use crate::config::{Audio, AudioBackend};

/// A source of capture streams and playback streams. The one trait with several real
/// implementations in the daemon: it is what lets the whole daemon run without a sound card.
pub trait Backend: Send {
    /// `"cpal"`, `"pulse"`, `"file"` or `"null"`, for logs.
    fn kind(&self) -> &'static str;

    /// Opens the input device and starts capturing into a new ring.
    fn start_capture(&mut self) -> Result<Capture, AudioError>;

    /// Opens the output device and starts playing from a new ring (silence until the
    /// daemon writes to it).
    fn start_playback(&mut self) -> Result<Playback, AudioError>;
}

/// Opens the backend the configuration names. A file backend checks its input WAV here, so
/// a bad path is reported at start-up rather than on the first call.
///
/// `cpal` with no device named goes to a PulseAudio-protocol server natively when one is
/// reachable ([`server_reachable`]) and libpulse loads: see [`resolve`].
pub fn open(config: &Audio, options: Options) -> Result<Box<dyn Backend>, AudioError> {
    Ok(match resolve(config, pulse_usable()) {
        AudioBackend::Pulse => Box::new(PulseBackend::new(
            config.input.clone(),
            config.output.clone(),
            options,
        )),
        AudioBackend::Cpal => Box::new(CpalBackend::new(
            config.input.clone(),
            config.output.clone(),
            options,
        )),
        AudioBackend::File => Box::new(FileBackend::new(
            config.input_wav.clone(),
            config.output_wav.clone(),
            options,
        )?),
        AudioBackend::Null => Box::new(NullBackend::new(options)),
    })
}

/// The backend actually used. The default `cpal` becomes `pulse` when a PulseAudio-protocol
/// server (PulseAudio, or PipeWire's pipewire-pulse) is reachable: cpal's ALSA host spins
/// on the pulse and pipewire ALSA plugins (see `docs/benchmarks.md`) — unless a device is
/// named the ALSA way ([`alsa_name`]): `hw:CARD=…`, `plughw:1,0` or `default` (ALSA's own)
/// mean nothing to the server, so they keep cpal. A sink or source name, or a description
/// such as `"USB Headset"` (what `phonectl audio devices` lists), goes to the server.
pub fn resolve(config: &Audio, server_reachable: bool) -> AudioBackend {
    let named_for_alsa = [&config.input, &config.output]
        .into_iter()
        .flatten()
        .any(|name| alsa_name(name));
    match config.backend {
        AudioBackend::Cpal if server_reachable && !named_for_alsa => AudioBackend::Pulse,
        other => other,
    }
}

/// Whether `name` is an ALSA device name rather than a sound server's: `default`, a name
/// with arguments (`hw:CARD=Headset,DEV=0`, `plughw:1,0`, `sysdefault:CARD=PCH`), or one of
/// ALSA's plain plugin names.
pub fn alsa_name(name: &str) -> bool {
    const PLAIN: [&str; 8] = [
        "default",
        "sysdefault",
        "pulse",
        "pipewire",
        "null",
        "dmix",
        "dsnoop",
        "jack",
    ];
    name.contains(':') || PLAIN.contains(&name)
}

/// Whether the default `cpal` config may go to a sound server natively: one is reachable
/// and libpulse loads (it is only loaded then; without it, cpal/ALSA is used as before).
fn pulse_usable() -> bool {
    usable(server_reachable(), pulse::library)
}

fn usable(server_reachable: bool, library: impl FnOnce() -> Result<(), LoadError>) -> bool {
    if !server_reachable {
        return false;
    }
    match library() {
        Ok(()) => true,
        Err(e) => {
            tracing::info!("a sound server runs but {e}; using cpal (ALSA)");
            false
        }
    }
}

/// Tuning shared by all backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Ring size in milliseconds of audio at the device rate. Capture overruns when the
    /// daemon falls this far behind; on playback it bounds latency (the daemon keeps the
    /// fill level low itself). Must cover a few device periods: PulseAudio's ALSA plugin
    /// uses ~43 ms ones.
    pub ring_ms: u32,
    /// How much audio the paced backends (file, null) move per wake-up.
    pub period: Period,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            ring_ms: 250,
            period: Period::Ms10,
        }
    }
}

impl Options {
    /// Ring capacity in samples at `rate`.
    pub fn ring_capacity(&self, rate: u32) -> usize {
        ((u64::from(rate) * u64::from(self.ring_ms) / 1000) as usize).max(1)
    }
}

/// Block period of a paced device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Ms10,
    Ms20,
}

impl Period {
    pub fn duration(self) -> Duration {
        Duration::from_millis(match self {
            Period::Ms10 => 10,
            Period::Ms20 => 20,
        })
    }
}

/// What keeps a stream's device side running; dropping it stops the device.
enum Running {
    Cpal { _stream: ::cpal::Stream },
    Pulse { _thread: pulse::PulseThread },
    Paced { _thread: paced::PacedThread },
}

/// A running capture stream: mono `f32` samples at [`Capture::rate`] arrive in its ring.
pub struct Capture {
    // Declared first so it is dropped first: the device stops before the ring goes.
    _running: Running,
    rate: u32,
    ring: Consumer<f32>,
    counters: Arc<StreamCounters>,
}

impl Capture {
    fn new(
        running: Running,
        rate: u32,
        ring: Consumer<f32>,
        counters: Arc<StreamCounters>,
    ) -> Capture {
        Capture {
            _running: running,
            rate,
            ring,
            counters,
        }
    }

    /// The device's sample rate, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Moves up to `out.len()` captured samples into `out`; returns how many. Never blocks.
    pub fn read(&mut self, out: &mut [f32]) -> usize {
        self.ring.pop_partial_slice(out).0.len()
    }

    /// Samples waiting to be read.
    pub fn available(&self) -> usize {
        self.ring.slots()
    }

    /// The ring itself, for zero-copy reads with [`Consumer::read_chunk`].
    pub fn ring(&mut self) -> &mut Consumer<f32> {
        &mut self.ring
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Why the device is not moving audio right now, if it is not (see
    /// [`StreamCounters::problem`]).
    pub fn problem(&self) -> Option<String> {
        self.counters.problem()
    }

    /// Has `thread` woken after every block the device moves (see
    /// [`StreamCounters::set_waker`]).
    pub fn set_waker(&self, thread: std::thread::Thread) {
        self.counters.set_waker(thread);
    }
}

/// A running playback stream: mono `f32` samples written at [`Playback::rate`] are played.
pub struct Playback {
    _running: Running,
    rate: u32,
    ring: Producer<f32>,
    counters: Arc<StreamCounters>,
}

impl Playback {
    fn new(
        running: Running,
        rate: u32,
        ring: Producer<f32>,
        counters: Arc<StreamCounters>,
    ) -> Playback {
        Playback {
            _running: running,
            rate,
            ring,
            counters,
        }
    }

    /// The device's sample rate, in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Queues as many of `samples` as fit; returns how many. Never blocks.
    pub fn write(&mut self, samples: &[f32]) -> usize {
        self.ring.push_partial_slice(samples).0.len()
    }

    /// Samples that can be written now.
    pub fn free(&self) -> usize {
        self.ring.slots()
    }

    /// Samples queued but not yet played: the playback latency the daemon controls.
    pub fn pending(&self) -> usize {
        self.ring.buffer().capacity() - self.ring.slots()
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Why the device is not moving audio right now, if it is not (see
    /// [`StreamCounters::problem`]).
    pub fn problem(&self) -> Option<String> {
        self.counters.problem()
    }

    /// Has `thread` woken after every block the device moves (see
    /// [`StreamCounters::set_waker`]).
    pub fn set_waker(&self, thread: std::thread::Thread) {
        self.counters.set_waker(thread);
    }
}

/// Starts a paced capture (file or null backend) reading from `source` at `rate`.
fn start_paced_capture(
    name: &str,
    source: paced::Source,
    rate: u32,
    options: Options,
) -> Result<Capture, AudioError> {
    let capacity = options.ring_capacity(rate);
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    let counters = Arc::new(StreamCounters::default());
    let work = paced::CaptureWork::new(source, producer, counters.clone());
    let thread = paced::PacedThread::spawn(name, rate, options.period.duration(), capacity, work)?;
    Ok(Capture::new(
        Running::Paced { _thread: thread },
        rate,
        consumer,
        counters,
    ))
}

/// Starts a paced playback (file or null backend) into `sink` at `rate`.
fn start_paced_playback(
    name: &str,
    sink: paced::Sink,
    rate: u32,
    options: Options,
    counters: Arc<StreamCounters>,
) -> Result<Playback, AudioError> {
    let capacity = options.ring_capacity(rate);
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    let work = paced::PlaybackWork::new(sink, consumer, counters.clone());
    let thread = paced::PacedThread::spawn(name, rate, options.period.duration(), capacity, work)?;
    Ok(Playback::new(
        Running::Paced { _thread: thread },
        rate,
        producer,
        counters,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(backend: AudioBackend) -> Audio {
        Audio {
            backend,
            input: None,
            output: None,
            input_wav: None,
            output_wav: None,
            ring: crate::config::Ring::default(),
            frame: Default::default(),
        }
    }

    #[test]
    fn streams_and_backends_can_move_to_the_threads_that_drive_them() {
        fn send<T: Send>() {}
        send::<Capture>();
        send::<Playback>();
        send::<Box<dyn Backend>>();
    }

    #[test]
    fn open_builds_the_configured_backend() {
        let options = Options::default();
        assert_eq!(
            open(&audio(AudioBackend::Null), options)
                .map(|b| b.kind())
                .ok(),
            Some("null")
        );
        // Opening the cpal backend touches no device yet. (A named device keeps cpal even
        // where a sound server runs.)
        let mut cpal = audio(AudioBackend::Cpal);
        cpal.input = Some("default".into());
        assert_eq!(open(&cpal, options).map(|b| b.kind()).ok(), Some("cpal"));
        let mut file = audio(AudioBackend::File);
        file.input_wav = Some("/nonexistent/phoned-test.wav".into());
        assert!(matches!(
            open(&file, options).err(),
            Some(AudioError::WavOpen { .. })
        ));
    }

    #[test]
    fn the_default_cpal_goes_to_a_running_sound_server_unless_an_alsa_device_is_named() {
        let cpal = audio(AudioBackend::Cpal);
        assert_eq!(resolve(&cpal, true), AudioBackend::Pulse);
        assert_eq!(resolve(&cpal, false), AudioBackend::Cpal);
        let mut named = cpal.clone();
        named.output = Some("hw:CARD=Headset,DEV=0".into());
        assert_eq!(resolve(&named, true), AudioBackend::Cpal);
        named.output = None;
        named.input = Some("default".into());
        assert_eq!(resolve(&named, true), AudioBackend::Cpal);
        // A server's device name or description goes to the server.
        let mut server_named = cpal.clone();
        server_named.output = Some("USB Headset".into());
        server_named.input = Some("alsa_input.usb-Logitech_H390-00.analog-mono".into());
        assert_eq!(resolve(&server_named, true), AudioBackend::Pulse);
        assert_eq!(resolve(&server_named, false), AudioBackend::Cpal);
        // Explicit choices stay as they are.
        for b in [AudioBackend::Pulse, AudioBackend::File, AudioBackend::Null] {
            assert_eq!(resolve(&audio(b), true), b);
            assert_eq!(resolve(&audio(b), false), b);
        }
    }

    #[test]
    fn without_libpulse_the_default_config_stays_on_cpal() {
        let missing = || {
            Err(LoadError {
                library: "libpulse.so.0".into(),
                reason: "not found".into(),
            })
        };
        let cpal = audio(AudioBackend::Cpal);
        assert_eq!(resolve(&cpal, usable(true, missing)), AudioBackend::Cpal);
        assert_eq!(resolve(&cpal, usable(true, || Ok(()))), AudioBackend::Pulse);
        // No server: libpulse is not even loaded.
        assert!(!usable(false, || panic!(
            "loaded libpulse without a server"
        )));
    }

    #[test]
    fn ring_capacity_is_the_configured_duration_at_the_device_rate() {
        let options = Options {
            ring_ms: 250,
            period: Period::Ms20,
        };
        assert_eq!(options.ring_capacity(48_000), 12_000);
        assert_eq!(options.ring_capacity(44_100), 11_025);
        assert_eq!(options.ring_capacity(0), 1);
        assert_eq!(Period::Ms20.duration(), Duration::from_millis(20));
    }
}
