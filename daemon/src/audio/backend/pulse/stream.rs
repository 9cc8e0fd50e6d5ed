//! One `pa_stream` of 16-bit little-endian samples on a [`Connection`] of its own, read or
//! written by the device thread that owns it, blocking the way `pa_simple` does: a read
//! returns when the bytes asked for have come, a write when the server has room for them.
//!
//! Why not `pa_simple`: it drives its connection from a threaded mainloop, a libpulse
//! thread per stream, and hands every block over between that thread and ours with a lock
//! and a condition variable: two threads woken for each message of the server. Here the
//! device thread waits in the mainloop's `poll` on the server's socket itself and runs the
//! callbacks in between, so one thread wakes per message and nothing is handed over
//! (`docs/benchmarks.md`, "Calls through PulseAudio and PipeWire").

use std::ffi::{CString, c_void};
use std::ptr::{self, NonNull};
use std::time::Instant;

use super::connection::Connection;
use super::ffi::{
    BufferAttr, Lib, PA_ERR_INVALID, PA_SAMPLE_S16LE, PA_SEEK_RELATIVE, PA_STREAM_ADJUST_LATENCY,
    PA_STREAM_FAILED, PA_STREAM_READY, PA_STREAM_TERMINATED, PaError, PaStream, SampleSpec,
};

/// Which way the stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamDirection {
    Record,
    Playback,
}

/// What a stream is opened with.
pub struct Params<'a> {
    pub stream: &'a str,
    pub direction: StreamDirection,
    /// A sink or source name; `None`: the server's default.
    pub device: Option<&'a str>,
    pub rate: u32,
    pub channels: u8,
    pub attr: BufferAttr,
}

/// Captured bytes kept between reads: a fragment is dropped whole, and one can be larger
/// than a read. Allocated once, at this size (fragments are 20 ms, 1 920 bytes).
const LEFTOVER_CAPACITY: usize = 64 * 1024;

/// One connected stream. Field order is drop order: the stream is released in `Drop`,
/// then its connection.
pub struct Stream {
    stream: NonNull<PaStream>,
    connection: Connection,
    leftover: Vec<u8>,
    /// How much of `leftover` has been handed out.
    taken: usize,
}

// SAFETY: the stream and its connection are used by one thread at a time (`&mut self`),
// and have no thread affinity (a plain mainloop, iterated by whoever owns it).
unsafe impl Send for Stream {}

fn c_string(lib: &Lib, s: &str) -> Result<CString, PaError> {
    CString::new(s).map_err(|_| PaError {
        code: PA_ERR_INVALID,
        message: format!(
            "{} (a NUL byte in {s:?})",
            lib.error_message(PA_ERR_INVALID)
        ),
    })
}

impl Stream {
    /// Connects to the server libpulse finds (`PULSE_SERVER`, else the user's socket) and
    /// opens the stream, waiting until `deadline` at most.
    pub fn open(
        lib: &'static Lib,
        params: &Params<'_>,
        deadline: Instant,
    ) -> Result<Stream, PaError> {
        let name = c_string(lib, params.stream)?;
        let device = params.device.map(|d| c_string(lib, d)).transpose()?;
        let connection = Connection::connect(lib, deadline)?;
        let spec = SampleSpec {
            format: PA_SAMPLE_S16LE,
            rate: params.rate,
            channels: params.channels,
        };
        // SAFETY: the context is live; the name and spec are read during the call (NULL
        // channel map: the default for `channels`).
        let raw =
            unsafe { (lib.stream_new)(connection.context(), name.as_ptr(), &spec, ptr::null()) };
        let Some(stream) = NonNull::new(raw) else {
            return Err(connection.error());
        };
        let dev = device.as_ref().map_or(ptr::null(), |d| d.as_ptr());
        // SAFETY: `stream` is live and unconnected; `dev` is NULL or a live C string and
        // `attr` a live struct, both copied by libpulse; NULL volume and sync stream are
        // allowed.
        let r = unsafe {
            match params.direction {
                StreamDirection::Record => (lib.stream_connect_record)(
                    stream.as_ptr(),
                    dev,
                    &params.attr,
                    PA_STREAM_ADJUST_LATENCY,
                ),
                StreamDirection::Playback => (lib.stream_connect_playback)(
                    stream.as_ptr(),
                    dev,
                    &params.attr,
                    PA_STREAM_ADJUST_LATENCY,
                    ptr::null(),
                    ptr::null_mut(),
                ),
            }
        };
        // Owned from here on, so both are released on every error path.
        let mut me = Stream {
            stream,
            connection,
            leftover: Vec::with_capacity(LEFTOVER_CAPACITY),
            taken: 0,
        };
        if r < 0 {
            return Err(me.connection.error());
        }
        let s = me.stream.as_ptr();
        me.connection.iterate_until(deadline, |c| {
            // SAFETY: `s` is live for as long as `me`.
            match unsafe { (lib.stream_get_state)(s) } {
                PA_STREAM_READY => Ok(true),
                PA_STREAM_FAILED | PA_STREAM_TERMINATED => Err(c.error()),
                _ => Ok(false),
            }
        })?;
        Ok(me)
    }

    /// Fills `data` with captured bytes; blocks until it is full.
    pub fn read(&mut self, data: &mut [u8]) -> Result<(), PaError> {
        let lib = self.connection.lib;
        let s = self.stream.as_ptr();
        let mut filled = 0;
        while filled < data.len() {
            if self.taken < self.leftover.len() {
                let n = (self.leftover.len() - self.taken).min(data.len() - filled);
                data[filled..filled + n]
                    .copy_from_slice(&self.leftover[self.taken..self.taken + n]);
                self.taken += n;
                filled += n;
                continue;
            }
            let mut fragment: *const c_void = ptr::null();
            let mut len = 0usize;
            // SAFETY: `s` is a live record stream; both out-pointers are valid.
            if unsafe { (lib.stream_peek)(s, &mut fragment, &mut len) } < 0 {
                return Err(self.connection.error());
            }
            if len == 0 {
                self.wait()?;
                continue;
            }
            let n = len.min(data.len() - filled);
            self.leftover.clear();
            self.taken = 0;
            if fragment.is_null() {
                // A hole in the recording (the server lost data): silence.
                data[filled..filled + n].fill(0);
                self.leftover.resize(len - n, 0);
            } else {
                // SAFETY: libpulse hands out `len` readable bytes at `fragment`, valid
                // until `stream_drop` below.
                let bytes = unsafe { std::slice::from_raw_parts(fragment.cast::<u8>(), len) };
                data[filled..filled + n].copy_from_slice(&bytes[..n]);
                self.leftover.extend_from_slice(&bytes[n..]);
            }
            filled += n;
            // SAFETY: a fragment was peeked (non-zero length) and not yet dropped.
            if unsafe { (lib.stream_drop)(s) } < 0 {
                return Err(self.connection.error());
            }
        }
        Ok(())
    }

    /// Writes `data`; blocks until the server has room for all of it.
    pub fn write(&mut self, data: &[u8]) -> Result<(), PaError> {
        let lib = self.connection.lib;
        let s = self.stream.as_ptr();
        let mut at = 0;
        while at < data.len() {
            // SAFETY: `s` is a live playback stream.
            let room = unsafe { (lib.stream_writable_size)(s) };
            if room == usize::MAX {
                return Err(self.connection.error());
            }
            if room == 0 {
                self.wait()?;
                continue;
            }
            let n = room.min(data.len() - at);
            // SAFETY: `data[at..at + n]` is readable; with no free callback libpulse
            // copies it before returning.
            let r = unsafe {
                (lib.stream_write)(
                    s,
                    data[at..].as_ptr().cast::<c_void>(),
                    n,
                    ptr::null(),
                    0,
                    PA_SEEK_RELATIVE,
                )
            };
            if r < 0 {
                return Err(self.connection.error());
            }
            at += n;
        }
        // Sends it now rather than at the next wait: libpulse queues what is written
        // until the mainloop runs.
        self.connection.iterate(0)?;
        self.check()
    }

    /// Waits for the server's next message and runs what it brings.
    fn wait(&mut self) -> Result<(), PaError> {
        self.connection.iterate(-1)?;
        self.check()
    }

    /// Whether the stream still stands (not killed with its device, not disconnected).
    fn check(&self) -> Result<(), PaError> {
        self.connection.check()?;
        // SAFETY: the stream is live for as long as `self`.
        match unsafe { (self.connection.lib.stream_get_state)(self.stream.as_ptr()) } {
            PA_STREAM_READY => Ok(()),
            _ => Err(self.connection.error()),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream is live and released exactly once, here, before its
        // connection (dropped after this, as the next field).
        unsafe {
            (self.connection.lib.stream_disconnect)(self.stream.as_ptr());
            (self.connection.lib.stream_unref)(self.stream.as_ptr());
        }
    }
}
