//! A safe owner of one `pa_simple` stream: libpulse's blocking API (its own connection and
//! internal thread per stream). Owns the pointer from `pa_simple_new` to `pa_simple_free`.

use std::ffi::{CString, c_int, c_void};
use std::ptr::{self, NonNull};

use super::ffi::{
    BufferAttr, Lib, PA_ERR_INVALID, PA_SAMPLE_S16LE, PA_STREAM_PLAYBACK, PA_STREAM_RECORD,
    PaError, PaSimple, SampleSpec,
};

/// Which way the stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamDirection {
    Record,
    Playback,
}

/// One connected stream of 16-bit little-endian samples.
pub struct Simple {
    lib: &'static Lib,
    ptr: NonNull<PaSimple>,
}

// SAFETY: a pa_simple has no thread affinity (it drives its own threaded mainloop and
// locks it around each call); `Simple` is used by one thread at a time (`&mut`-free
// methods are still only called from the thread that owns it, and it is not `Sync`).
unsafe impl Send for Simple {}

/// What a stream is opened with.
pub struct Params<'a> {
    pub client: &'a str,
    pub stream: &'a str,
    pub direction: StreamDirection,
    /// A sink or source name; `None`: the server's default.
    pub device: Option<&'a str>,
    pub rate: u32,
    pub channels: u8,
    pub attr: BufferAttr,
}

fn c_string(lib: &Lib, s: &str) -> Result<CString, PaError> {
    CString::new(s).map_err(|_| PaError {
        code: PA_ERR_INVALID,
        message: format!(
            "{} (a NUL byte in {s:?})",
            lib.error_message(PA_ERR_INVALID)
        ),
    })
}

impl Simple {
    /// Connects to the server libpulse finds (`PULSE_SERVER`, else the user's socket) and
    /// opens the stream. Blocks until the server answers.
    pub fn new(lib: &'static Lib, params: &Params<'_>) -> Result<Simple, PaError> {
        let client = c_string(lib, params.client)?;
        let stream = c_string(lib, params.stream)?;
        let device = params.device.map(|d| c_string(lib, d)).transpose()?;
        let spec = SampleSpec {
            format: PA_SAMPLE_S16LE,
            rate: params.rate,
            channels: params.channels,
        };
        let dir = match params.direction {
            StreamDirection::Record => PA_STREAM_RECORD,
            StreamDirection::Playback => PA_STREAM_PLAYBACK,
        };
        let mut error: c_int = 0;
        // SAFETY: every pointer is NULL (allowed for server, dev and map) or points to a
        // live value of the type the prototype names; libpulse copies what it keeps.
        let raw = unsafe {
            (lib.simple_new)(
                ptr::null(),
                client.as_ptr(),
                dir,
                device.as_ref().map_or(ptr::null(), |d| d.as_ptr()),
                stream.as_ptr(),
                &spec,
                ptr::null(),
                &params.attr,
                &mut error,
            )
        };
        NonNull::new(raw)
            .map(|ptr| Simple { lib, ptr })
            .ok_or_else(|| PaError::new(lib, error))
    }

    /// Fills `data` with captured bytes; blocks until it is full.
    pub fn read(&self, data: &mut [u8]) -> Result<(), PaError> {
        let mut error: c_int = 0;
        // SAFETY: `ptr` is a live stream (freed only in Drop); `data` is writable for
        // `data.len()` bytes.
        let r = unsafe {
            (self.lib.simple_read)(
                self.ptr.as_ptr(),
                data.as_mut_ptr().cast::<c_void>(),
                data.len(),
                &mut error,
            )
        };
        self.check(r, error)
    }

    /// Writes `data`; blocks until the server has taken it.
    pub fn write(&self, data: &[u8]) -> Result<(), PaError> {
        let mut error: c_int = 0;
        // SAFETY: `ptr` is a live stream; `data` is readable for `data.len()` bytes.
        let r = unsafe {
            (self.lib.simple_write)(
                self.ptr.as_ptr(),
                data.as_ptr().cast::<c_void>(),
                data.len(),
                &mut error,
            )
        };
        self.check(r, error)
    }

    fn check(&self, r: c_int, error: c_int) -> Result<(), PaError> {
        if r < 0 {
            Err(PaError::new(self.lib, error))
        } else {
            Ok(())
        }
    }
}

impl Drop for Simple {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from pa_simple_new and is freed exactly once, here.
        unsafe { (self.lib.simple_free)(self.ptr.as_ptr()) }
    }
}
