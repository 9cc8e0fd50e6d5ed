//! Lists the server's sinks and sources (name + description) and its defaults, on a
//! [`Connection`] iterated with a deadline on every wait: a frozen server makes a listing
//! fail after the timeout instead of hanging the caller.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::ffi::{
    DeviceInfoPrefix, Lib, PA_OPERATION_RUNNING, PaContext, PaError, PaOperation, ServerInfoPrefix,
    owned,
};

/// One sink or source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The server's name for it (`alsa_output.usb-…`, `speaker.monitor`).
    pub name: String,
    /// What people see (`USB Headset Analog Stereo`).
    pub description: String,
    /// The server's index for it, never reused while the server runs: a device unplugged
    /// and plugged back has the same name and a new index.
    pub index: u32,
}

/// What the server has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    pub sinks: Vec<DeviceInfo>,
    pub sources: Vec<DeviceInfo>,
    pub default_sink: Option<String>,
    pub default_source: Option<String>,
}

/// Where callbacks write; on the heap, behind a raw pointer (never a reference while the
/// mainloop runs), so that its address stays put for as long as the connection lives: a
/// cancelled operation's callback can then never write into freed memory. Freed after the
/// connection (field order of [`Introspector`]).
#[derive(Default)]
struct Collected {
    devices: Devices,
}

/// Owns the leaked `Collected` until drop.
struct CollectedBox(NonNull<Collected>);

impl Drop for CollectedBox {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` and is freed exactly once, here, after
        // the connection (declared before it) is gone, so no callback can still write.
        unsafe { drop(Box::from_raw(self.0.as_ptr())) }
    }
}

// SAFETY: the `Collected` is reached only through the owning `Introspector`, by one
// thread at a time.
unsafe impl Send for CollectedBox {}

/// A connection for listing devices.
pub struct Introspector {
    connection: Connection,
    collected: CollectedBox,
}

impl Introspector {
    /// Connects to the server libpulse finds (`PULSE_SERVER`, else the user's socket),
    /// waiting at most `timeout`.
    pub fn connect(lib: &'static Lib, timeout: Duration) -> Result<Introspector, PaError> {
        Ok(Introspector {
            connection: Connection::connect(lib, Instant::now() + timeout)?,
            collected: CollectedBox(NonNull::from(Box::leak(Box::<Collected>::default()))),
        })
    }

    /// The sinks, sources and defaults now, waiting at most `timeout` for the answers.
    pub fn list(&mut self, timeout: Duration) -> Result<Devices, PaError> {
        let deadline = Instant::now() + timeout;
        let lib = self.connection.lib;
        let collected = self.collected.0.as_ptr();
        let data = collected.cast::<c_void>();
        // SAFETY: `collected` is live and no callback runs outside `iterate_until`.
        unsafe { (*collected).devices = Devices::default() };
        let ctx = self.connection.context();
        // SAFETY: `ctx` is live; the callbacks match the prototypes and `data` points to
        // the boxed `Collected`, which outlives the connection (see `Collected`).
        let ops = unsafe {
            [
                (lib.context_get_sink_info_list)(ctx, device_cb::<true>, data),
                (lib.context_get_source_info_list)(ctx, device_cb::<false>, data),
                (lib.context_get_server_info)(ctx, server_cb, data),
            ]
        };
        let result = if ops.iter().any(|o| o.is_null()) {
            Err(self.connection.error())
        } else {
            self.connection.iterate_until(deadline, |_| {
                // SAFETY: every op is a live operation (unreffed only below).
                let running = ops
                    .iter()
                    .any(|&o| unsafe { (lib.operation_get_state)(o) == PA_OPERATION_RUNNING });
                Ok(!running)
            })
        };
        for op in ops.into_iter().filter(|o| !o.is_null()) {
            release(lib, op, result.is_err());
        }
        // SAFETY: as above; the mainloop is not running.
        result.map(|()| std::mem::take(unsafe { &mut (*collected).devices }))
    }
}

/// Drops our reference to `op`, cancelling it first if it may still call back.
fn release(lib: &Lib, op: *mut PaOperation, cancel: bool) {
    // SAFETY: `op` is a live operation we hold one reference to.
    unsafe {
        if cancel {
            (lib.operation_cancel)(op);
        }
        (lib.operation_unref)(op);
    }
}

/// Copies one device out of libpulse's struct.
///
/// # Safety
/// `info` is NULL or a pointer libpulse passed to an info callback.
unsafe fn device(info: *const DeviceInfoPrefix) -> Option<DeviceInfo> {
    // SAFETY: the caller's contract: NULL or valid for the callback's duration.
    let info = unsafe { info.as_ref() }?;
    // SAFETY: libpulse's strings in the struct are NULL or NUL-terminated for as long.
    let (name, description) = unsafe { (owned(info.name), owned(info.description)) };
    Some(DeviceInfo {
        name,
        description,
        index: info.index,
    })
}

/// One sink (`SINK`) or source of the list libpulse is reporting; `eol` ends the list.
unsafe extern "C" fn device_cb<const SINK: bool>(
    _: *mut PaContext,
    info: *const DeviceInfoPrefix,
    eol: c_int,
    data: *mut c_void,
) {
    if eol != 0 {
        return;
    }
    // SAFETY: `data` is the `Collected` given to the request, live (see there); the
    // mainloop runs callbacks on the thread that iterates it, and nothing else refers to
    // it meanwhile.
    let collected = unsafe { &mut *data.cast::<Collected>() };
    // SAFETY: `info` comes from libpulse for this callback.
    if let Some(d) = unsafe { device(info) } {
        match SINK {
            true => collected.devices.sinks.push(d),
            false => collected.devices.sources.push(d),
        }
    }
}

unsafe extern "C" fn server_cb(
    _: *mut PaContext,
    info: *const ServerInfoPrefix,
    data: *mut c_void,
) {
    // SAFETY: as in `device_cb`.
    let collected = unsafe { &mut *data.cast::<Collected>() };
    // SAFETY: `info` is NULL or valid for this callback.
    let Some(info) = (unsafe { info.as_ref() }) else {
        return;
    };
    let name = |p| {
        // SAFETY: libpulse's strings in the struct are NULL or NUL-terminated.
        let s = unsafe { owned(p) };
        (!s.is_empty()).then_some(s)
    };
    collected.devices.default_sink = name(info.default_sink_name);
    collected.devices.default_source = name(info.default_source_name);
}
