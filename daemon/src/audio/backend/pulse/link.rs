//! One direction's link to the server: the stream a device thread reads or
//! writes, on which device, and what happens when that changes. Owned by the device
//! thread (after the first open, which the backend does so that errors reach the caller).
//!
//! - A named device that goes away (unplugged; `pactl unload-module`): the stream moves to
//!   the server's default device, and back to the named one when it reappears. The thread
//!   calls [`Link::follow`] about twice a second, which lists the server's devices (one
//!   round trip on a connection kept open, only when a device is named).
//! - A stream that fails (server gone, no device at all): [`Link::lost`] tries once at
//!   once (a device switch is over in a few milliseconds), else reports one problem line
//!   and leaves [`Link::retry`] to try again about once a second until audio moves again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ffi::{Lib, PaError};
use super::introspect::{Devices, Introspector};
use super::matching;
use super::stream::{Params, Stream, StreamDirection};
use super::{RATE, buffer_attr};
use crate::audio::backend::counters::StreamCounters;
use crate::audio::backend::error::{AudioError, Direction};

/// How long a device listing may take before it counts as failed (a frozen server).
pub const LIST_TIMEOUT: Duration = Duration::from_millis(300);
/// How long opening a stream may take (connecting included) before it counts as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a stream with no device tries again.
const RETRY: Duration = Duration::from_secs(1);
/// How finely a wait for the next try looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// `PA_ERR_NOENTITY`: the device (or any device) does not exist.
const PA_ERR_NOENTITY: i32 = 5;

pub struct Link {
    lib: &'static Lib,
    direction: Direction,
    /// The configured name or description; `None`: the server's default.
    wanted: Option<String>,
    stream: Option<Stream>,
    /// The device `stream` was opened on, by name and index; `None`: the default. The
    /// index tells a device that went and came back (the server moved the stream away
    /// meanwhile) from one that stayed.
    on: Option<(String, u32)>,
    introspector: Option<Introspector>,
    /// A problem is reported and not yet cleared.
    failing: bool,
    next_try: Instant,
}

impl Link {
    /// Opens the first stream. A `wanted` device that matches nothing is an error naming
    /// the devices that exist.
    pub fn open(
        lib: &'static Lib,
        direction: Direction,
        wanted: Option<&str>,
    ) -> Result<Link, AudioError> {
        let wanted = wanted.filter(|n| *n != "default").map(str::to_owned);
        let server_error = |source: PaError| AudioError::Pulse {
            direction,
            device: wanted.clone().unwrap_or_else(|| "default".into()),
            source,
        };
        let mut link = Link {
            lib,
            direction,
            wanted: wanted.clone(),
            stream: None,
            on: None,
            introspector: None,
            failing: false,
            next_try: Instant::now(),
        };
        if let Some(name) = &wanted {
            let mut introspector =
                Introspector::connect(lib, LIST_TIMEOUT * 10).map_err(server_error)?;
            let devices = introspector.list(LIST_TIMEOUT * 10).map_err(server_error)?;
            let list = of(direction, &devices);
            let found = matching::find(name, list).ok_or_else(|| AudioError::DeviceNotFound {
                direction,
                name: name.clone(),
                available: matching::available(list),
            })?;
            link.on = Some((found.name.clone(), found.index));
            link.introspector = Some(introspector);
        }
        link.stream = Some(open_stream(lib, direction, link.on_name()).map_err(server_error)?);
        Ok(link)
    }

    /// The device the stream is on, for logs.
    pub fn device(&self) -> &str {
        self.on_name().unwrap_or("default")
    }

    fn on_name(&self) -> Option<&str> {
        self.on.as_ref().map(|(name, _)| name.as_str())
    }

    /// The stream, while there is one.
    pub fn stream(&mut self) -> Option<&mut Stream> {
        self.stream.as_mut()
    }

    /// The stream failed: reopen at once where possible (a device switch), else report
    /// the problem once and leave the rest to [`Link::retry`].
    pub fn lost(&mut self, counters: &StreamCounters, error: PaError) {
        self.stream = None;
        counters.add_device_error();
        match self.reopen() {
            Ok(()) => tracing::info!(direction = %self.direction, device = self.device(),
                %error, "audio stream reopened"),
            Err(again) => {
                let problem = self.problem(&error, &again);
                counters.set_problem(problem.as_str());
                // Info, once: the stream's user (a call's device health, the ringer, a
                // recording) says what it means for the user, at warn level.
                if !self.failing {
                    tracing::info!("{problem}; retrying every second");
                }
                self.failing = true;
                self.next_try = Instant::now() + RETRY;
            }
        }
    }

    /// There is no stream: waits for the next try (returning early when `stop` is set)
    /// and tries to open one.
    pub fn retry(&mut self, counters: &StreamCounters, stop: &AtomicBool) {
        while Instant::now() < self.next_try {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(STOP_POLL.min(self.next_try - Instant::now()));
        }
        self.next_try = Instant::now() + RETRY;
        match self.reopen() {
            Ok(()) => {
                counters.clear_problem();
                self.failing = false;
                tracing::info!(direction = %self.direction, device = self.device(),
                    "audio moving again");
            }
            // Reported when the stream was lost; the text may change (server back, still
            // no device), the log line does not repeat.
            Err(e) => counters.set_problem(self.problem(&e, &e)),
        }
    }

    /// Moves the stream to the named device when it has come (back), or to the default
    /// when it has gone. Does nothing when no device is named.
    pub fn follow(&mut self) {
        if self.wanted.is_none() {
            return;
        }
        let target = match self.target() {
            Ok(target) => target,
            Err(e) => {
                // Cannot tell (server busy or gone): the stream itself will say if it fails.
                tracing::debug!(direction = %self.direction, error = %e,
                    "cannot list the audio devices");
                return;
            }
        };
        if target == self.on {
            return;
        }
        let name = target.as_ref().map(|(name, _)| name.as_str());
        match open_stream(self.lib, self.direction, name) {
            Ok(stream) => {
                self.stream = Some(stream);
                let from = std::mem::replace(&mut self.on, target);
                // With the index: a device that came back has the same name.
                let label = |on: &Option<(String, u32)>| {
                    on.as_ref().map_or("default".to_owned(), |(name, index)| {
                        format!("{name}#{index}")
                    })
                };
                tracing::info!(direction = %self.direction, from = label(&from),
                    to = label(&self.on), "audio device changed");
            }
            Err(e) => tracing::debug!(direction = %self.direction, error = %e,
                "cannot move the audio stream yet"),
        }
    }

    /// Where the stream should be now: the named device if it exists, else the default.
    fn target(&mut self) -> Result<Option<(String, u32)>, PaError> {
        let Some(wanted) = &self.wanted else {
            return Ok(None);
        };
        let introspector = match &mut self.introspector {
            Some(i) => i,
            slot => slot.insert(Introspector::connect(self.lib, LIST_TIMEOUT)?),
        };
        match introspector.list(LIST_TIMEOUT) {
            Ok(devices) => {
                let found = matching::find(wanted, of(self.direction, &devices));
                Ok(found.map(|d| (d.name.clone(), d.index)))
            }
            Err(e) => {
                // A new connection next time: this one may be dead.
                self.introspector = None;
                Err(e)
            }
        }
    }

    fn reopen(&mut self) -> Result<(), PaError> {
        // When the devices cannot be listed, the default is the best guess.
        let target = self.target().unwrap_or(None);
        let name = target.as_ref().map(|(name, _)| name.as_str());
        self.stream = Some(open_stream(self.lib, self.direction, name)?);
        self.on = target;
        Ok(())
    }

    /// One line for users: why this direction moves no audio.
    fn problem(&self, lost: &PaError, now: &PaError) -> String {
        if now.code == PA_ERR_NOENTITY {
            format!(
                "no audio {} device on the audio server: {now}",
                self.direction
            )
        } else {
            format!("audio server connection lost ({}): {lost}", self.direction)
        }
    }
}

/// The devices of `direction`: sources for capture, sinks for playback.
pub fn of(direction: Direction, devices: &Devices) -> &[super::introspect::DeviceInfo] {
    match direction {
        Direction::Capture => &devices.sources,
        Direction::Playback => &devices.sinks,
    }
}

fn open_stream(
    lib: &'static Lib,
    direction: Direction,
    device: Option<&str>,
) -> Result<Stream, PaError> {
    let (stream_direction, stream) = match direction {
        Direction::Capture => (StreamDirection::Record, "call microphone"),
        Direction::Playback => (StreamDirection::Playback, "call speaker"),
    };
    Stream::open(
        lib,
        &Params {
            stream,
            direction: stream_direction,
            device,
            rate: RATE,
            channels: 1,
            attr: buffer_attr(direction),
        },
        Instant::now() + OPEN_TIMEOUT,
    )
}
