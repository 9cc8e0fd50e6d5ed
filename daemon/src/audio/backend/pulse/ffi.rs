//! The part of libpulse's C API the `pulse` backend uses, loaded at run time.
//!
//! Why not link it: linking libpulse put 26 more shared libraries into every daemon and
//! 2.8 MiB on its idle RSS, also on devices that have no sound server at all
//! (`docs/benchmarks.md`). Here `libpulse.so.0` is opened with `dlopen` the first time the
//! pulse backend is used (or its devices listed), once per process, and stays loaded:
//! [`Lib::get`].
//!
//! Owns the symbol table and the `repr(C)` types, laid out as in libpulse's headers
//! (`pulse/stream.h`, `pulse/sample.h`, `pulse/def.h`, `pulse/introspect.h`,
//! `pulse/context.h`, `pulse/mainloop.h`). Of `pa_sink_info` and `pa_source_info` only the
//! stable prefix (name, index, description) is declared: the structs are only ever read
//! through pointers libpulse hands out, never allocated here, so the tail may grow.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use libloading::Library;
use thiserror::Error;

/// The soname loaded: what Debian's `libpulse0` ships.
pub const PULSE_SONAME: &str = "libpulse.so.0";

/// libpulse could not be loaded (not installed, or too old to have a symbol we need).
#[derive(Debug, Clone, Error)]
#[error("libpulse is not installed: cannot load {library}: {reason}")]
pub struct LoadError {
    pub library: String,
    pub reason: String,
}

/// `pa_sample_format_t`: signed 16-bit little endian.
pub const PA_SAMPLE_S16LE: c_int = 3;
/// `pa_stream_state_t`.
pub const PA_STREAM_READY: c_int = 2;
pub const PA_STREAM_FAILED: c_int = 3;
pub const PA_STREAM_TERMINATED: c_int = 4;
/// `pa_stream_flags_t`: let the server size its device latency from the buffer attributes.
pub const PA_STREAM_ADJUST_LATENCY: c_int = 0x2000;
/// `pa_seek_mode_t`: append to what was written.
pub const PA_SEEK_RELATIVE: c_int = 0;
/// `pa_context_flags_t`: never start a server of our own.
pub const PA_CONTEXT_NOAUTOSPAWN: c_int = 1;
/// `pa_context_state_t`.
pub const PA_CONTEXT_READY: c_int = 4;
pub const PA_CONTEXT_FAILED: c_int = 5;
pub const PA_CONTEXT_TERMINATED: c_int = 6;
/// `pa_operation_state_t`.
pub const PA_OPERATION_RUNNING: c_int = 0;
/// `PA_ERR_INVALID`: what we report for an argument libpulse never saw (a name with NUL).
pub const PA_ERR_INVALID: c_int = 3;
/// `PA_ERR_TIMEOUT`.
pub const PA_ERR_TIMEOUT: c_int = 12;
/// `PA_ERR_CONNECTIONREFUSED`.
pub const PA_ERR_CONNECTIONREFUSED: c_int = 6;

/// `pa_sample_spec`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    pub format: c_int,
    pub rate: u32,
    pub channels: u8,
}

/// `pa_buffer_attr`; `u32::MAX` is "server's choice".
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BufferAttr {
    pub maxlength: u32,
    pub tlength: u32,
    pub prebuf: u32,
    pub minreq: u32,
    pub fragsize: u32,
}

/// The common prefix of `pa_sink_info` and `pa_source_info`.
#[repr(C)]
pub struct DeviceInfoPrefix {
    pub name: *const c_char,
    pub index: u32,
    pub description: *const c_char,
}

/// The prefix of `pa_server_info` up to the default device names.
#[repr(C)]
pub struct ServerInfoPrefix {
    pub user_name: *const c_char,
    pub host_name: *const c_char,
    pub server_version: *const c_char,
    pub server_name: *const c_char,
    pub sample_spec: SampleSpec,
    pub default_sink_name: *const c_char,
    pub default_source_name: *const c_char,
}

/// Opaque libpulse objects.
#[repr(C)]
pub struct PaStream {
    _private: [u8; 0],
}
#[repr(C)]
pub struct PaMainloop {
    _private: [u8; 0],
}
#[repr(C)]
pub struct PaMainloopApi {
    _private: [u8; 0],
}
#[repr(C)]
pub struct PaContext {
    _private: [u8; 0],
}
#[repr(C)]
pub struct PaOperation {
    _private: [u8; 0],
}

/// `pa_sink_info_cb_t` / `pa_source_info_cb_t` with the prefix type.
pub type DeviceInfoCb =
    unsafe extern "C" fn(*mut PaContext, *const DeviceInfoPrefix, c_int, *mut c_void);
/// `pa_server_info_cb_t` with the prefix type.
pub type ServerInfoCb = unsafe extern "C" fn(*mut PaContext, *const ServerInfoPrefix, *mut c_void);

/// The functions used, copied out of the library, which stays loaded for the life of the
/// process (the `Library` value lives in the same static).
pub struct Lib {
    _pulse: Library,
    pub stream_new: unsafe extern "C" fn(
        *mut PaContext,
        name: *const c_char,
        ss: *const SampleSpec,
        map: *const c_void,
    ) -> *mut PaStream,
    pub stream_connect_playback: unsafe extern "C" fn(
        *mut PaStream,
        dev: *const c_char,
        attr: *const BufferAttr,
        flags: c_int,
        volume: *const c_void,
        sync_stream: *mut PaStream,
    ) -> c_int,
    pub stream_connect_record: unsafe extern "C" fn(
        *mut PaStream,
        dev: *const c_char,
        attr: *const BufferAttr,
        flags: c_int,
    ) -> c_int,
    pub stream_get_state: unsafe extern "C" fn(*const PaStream) -> c_int,
    pub stream_peek:
        unsafe extern "C" fn(*mut PaStream, data: *mut *const c_void, bytes: *mut usize) -> c_int,
    pub stream_drop: unsafe extern "C" fn(*mut PaStream) -> c_int,
    pub stream_writable_size: unsafe extern "C" fn(*const PaStream) -> usize,
    pub stream_write: unsafe extern "C" fn(
        *mut PaStream,
        data: *const c_void,
        bytes: usize,
        free_cb: *const c_void,
        offset: i64,
        seek: c_int,
    ) -> c_int,
    pub stream_disconnect: unsafe extern "C" fn(*mut PaStream) -> c_int,
    pub stream_unref: unsafe extern "C" fn(*mut PaStream),
    pub strerror: unsafe extern "C" fn(c_int) -> *const c_char,
    pub mainloop_new: unsafe extern "C" fn() -> *mut PaMainloop,
    pub mainloop_free: unsafe extern "C" fn(*mut PaMainloop),
    pub mainloop_get_api: unsafe extern "C" fn(*mut PaMainloop) -> *mut PaMainloopApi,
    pub mainloop_prepare: unsafe extern "C" fn(*mut PaMainloop, timeout_usec: c_int) -> c_int,
    pub mainloop_poll: unsafe extern "C" fn(*mut PaMainloop) -> c_int,
    pub mainloop_dispatch: unsafe extern "C" fn(*mut PaMainloop) -> c_int,
    pub context_new:
        unsafe extern "C" fn(*mut PaMainloopApi, name: *const c_char) -> *mut PaContext,
    pub context_unref: unsafe extern "C" fn(*mut PaContext),
    pub context_connect: unsafe extern "C" fn(
        *mut PaContext,
        server: *const c_char,
        flags: c_int,
        api: *const c_void,
    ) -> c_int,
    pub context_disconnect: unsafe extern "C" fn(*mut PaContext),
    pub context_get_state: unsafe extern "C" fn(*const PaContext) -> c_int,
    pub context_errno: unsafe extern "C" fn(*const PaContext) -> c_int,
    pub context_get_sink_info_list:
        unsafe extern "C" fn(*mut PaContext, DeviceInfoCb, *mut c_void) -> *mut PaOperation,
    pub context_get_source_info_list:
        unsafe extern "C" fn(*mut PaContext, DeviceInfoCb, *mut c_void) -> *mut PaOperation,
    pub context_get_server_info:
        unsafe extern "C" fn(*mut PaContext, ServerInfoCb, *mut c_void) -> *mut PaOperation,
    pub operation_get_state: unsafe extern "C" fn(*const PaOperation) -> c_int,
    pub operation_cancel: unsafe extern "C" fn(*mut PaOperation),
    pub operation_unref: unsafe extern "C" fn(*mut PaOperation),
}

impl Lib {
    /// The process's libpulse, loaded on first use. A failure is remembered too: the
    /// libraries do not appear while the daemon runs.
    pub fn get() -> Result<&'static Lib, LoadError> {
        static LIB: OnceLock<Result<Lib, LoadError>> = OnceLock::new();
        LIB.get_or_init(|| Lib::load(PULSE_SONAME))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads the library by this name (tests use names that do not exist).
    pub fn load(pulse_soname: &str) -> Result<Lib, LoadError> {
        let open = |name: &str| {
            // SAFETY: loading libpulse runs its ELF initialisers, which only set up
            // libpulse's own state; it has no initialiser that conflicts with ours.
            unsafe { Library::new(name) }.map_err(|e| LoadError {
                library: name.to_owned(),
                reason: e.to_string(),
            })
        };
        let pulse = open(pulse_soname)?;
        macro_rules! sym {
            ($lib:expr, $libname:expr, $name:literal) => {
                symbol(&$lib, $libname, concat!($name, "\0"))?
            };
        }
        Ok(Lib {
            stream_new: sym!(pulse, pulse_soname, "pa_stream_new"),
            stream_connect_playback: sym!(pulse, pulse_soname, "pa_stream_connect_playback"),
            stream_connect_record: sym!(pulse, pulse_soname, "pa_stream_connect_record"),
            stream_get_state: sym!(pulse, pulse_soname, "pa_stream_get_state"),
            stream_peek: sym!(pulse, pulse_soname, "pa_stream_peek"),
            stream_drop: sym!(pulse, pulse_soname, "pa_stream_drop"),
            stream_writable_size: sym!(pulse, pulse_soname, "pa_stream_writable_size"),
            stream_write: sym!(pulse, pulse_soname, "pa_stream_write"),
            stream_disconnect: sym!(pulse, pulse_soname, "pa_stream_disconnect"),
            stream_unref: sym!(pulse, pulse_soname, "pa_stream_unref"),
            strerror: sym!(pulse, pulse_soname, "pa_strerror"),
            mainloop_new: sym!(pulse, pulse_soname, "pa_mainloop_new"),
            mainloop_free: sym!(pulse, pulse_soname, "pa_mainloop_free"),
            mainloop_get_api: sym!(pulse, pulse_soname, "pa_mainloop_get_api"),
            mainloop_prepare: sym!(pulse, pulse_soname, "pa_mainloop_prepare"),
            mainloop_poll: sym!(pulse, pulse_soname, "pa_mainloop_poll"),
            mainloop_dispatch: sym!(pulse, pulse_soname, "pa_mainloop_dispatch"),
            context_new: sym!(pulse, pulse_soname, "pa_context_new"),
            context_unref: sym!(pulse, pulse_soname, "pa_context_unref"),
            context_connect: sym!(pulse, pulse_soname, "pa_context_connect"),
            context_disconnect: sym!(pulse, pulse_soname, "pa_context_disconnect"),
            context_get_state: sym!(pulse, pulse_soname, "pa_context_get_state"),
            context_errno: sym!(pulse, pulse_soname, "pa_context_errno"),
            context_get_sink_info_list: sym!(pulse, pulse_soname, "pa_context_get_sink_info_list"),
            context_get_source_info_list: sym!(
                pulse,
                pulse_soname,
                "pa_context_get_source_info_list"
            ),
            context_get_server_info: sym!(pulse, pulse_soname, "pa_context_get_server_info"),
            operation_get_state: sym!(pulse, pulse_soname, "pa_operation_get_state"),
            operation_cancel: sym!(pulse, pulse_soname, "pa_operation_cancel"),
            operation_unref: sym!(pulse, pulse_soname, "pa_operation_unref"),
            _pulse: pulse,
        })
    }

    /// libpulse's message for an error code (`pa_strerror`).
    pub fn error_message(&self, code: c_int) -> String {
        // SAFETY: pa_strerror accepts any int and returns NULL or a pointer to a static,
        // NUL-terminated string.
        let text = unsafe { (self.strerror)(code) };
        if text.is_null() {
            return format!("error {code}");
        }
        // SAFETY: non-NULL, static and NUL-terminated (above).
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Copies one function pointer out of `lib`; `name` ends in NUL.
fn symbol<T: Copy>(lib: &Library, library: &str, name: &str) -> Result<T, LoadError> {
    // SAFETY: every caller asks for a `T` that is the C prototype of `name` in libpulse's
    // headers (the field types of `Lib`); the copied pointer is only used while the
    // library stays loaded, which is as long as the `Lib` holding both.
    let found = unsafe { lib.get::<T>(name.as_bytes()) };
    found.map(|s| *s).map_err(|e| LoadError {
        library: library.to_owned(),
        reason: format!("{}: {e}", name.trim_end_matches('\0')),
    })
}

/// A libpulse error: its code and `pa_strerror`'s text.
#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct PaError {
    pub code: c_int,
    pub message: String,
}

impl PaError {
    pub fn new(lib: &Lib, code: c_int) -> PaError {
        PaError {
            code,
            message: lib.error_message(code),
        }
    }
}

/// Copies a C string libpulse handed out; NULL becomes empty.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for this call.
pub unsafe fn owned(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_typed_error_naming_it() {
        let err = Lib::load("libphoned-no-such-pulse.so.0")
            .err()
            .expect("these libraries do not exist");
        assert_eq!(err.library, "libphoned-no-such-pulse.so.0");
        let text = err.to_string();
        assert!(
            text.starts_with("libpulse is not installed: cannot load libphoned-no-such-pulse"),
            "{text}"
        );
    }

    #[test]
    fn a_library_without_the_symbols_names_the_missing_symbol() {
        // libc is always there and has none of libpulse's functions.
        let err = Lib::load("libc.so.6").err().expect("libc is not libpulse");
        assert!(err.reason.contains("pa_"), "{err}");
    }
}
