//! Lists the server's sinks and sources (name + description) and its defaults, through a
//! `pa_context` on a plain `pa_mainloop` that this module iterates itself, with a deadline
//! on every wait: a frozen server makes a listing fail after the timeout instead of
//! hanging the caller. Owns the mainloop and context from creation to free.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::ffi::{
    DeviceInfoPrefix, Lib, PA_CONTEXT_FAILED, PA_CONTEXT_NOAUTOSPAWN, PA_CONTEXT_READY,
    PA_CONTEXT_TERMINATED, PA_ERR_CONNECTIONREFUSED, PA_ERR_INVALID, PA_ERR_TIMEOUT,
    PA_OPERATION_RUNNING, PaContext, PaError, PaMainloop, PaOperation, ServerInfoPrefix, owned,
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
/// cancelled operation's callback can then never write into freed memory.
#[derive(Default)]
struct Collected {
    devices: Devices,
}

/// A connection for listing devices.
pub struct Introspector {
    lib: &'static Lib,
    mainloop: NonNull<PaMainloop>,
    context: NonNull<PaContext>,
    collected: NonNull<Collected>,
}

// SAFETY: a plain pa_mainloop and its context have no thread affinity; they are used only
// through `&mut self`, so by one thread at a time.
unsafe impl Send for Introspector {}

impl Introspector {
    /// Connects to the server libpulse finds (`PULSE_SERVER`, else the user's socket),
    /// waiting at most `timeout`.
    pub fn connect(lib: &'static Lib, timeout: Duration) -> Result<Introspector, PaError> {
        let deadline = Instant::now() + timeout;
        // SAFETY: no arguments; returns NULL on failure.
        let mainloop = NonNull::new(unsafe { (lib.mainloop_new)() })
            .ok_or_else(|| PaError::new(lib, PA_ERR_INVALID))?;
        // SAFETY: `mainloop` is live; the api pointer it returns lives as long as it.
        let api = unsafe { (lib.mainloop_get_api)(mainloop.as_ptr()) };
        // SAFETY: `api` is live and the name a NUL-terminated static string.
        let context = unsafe { (lib.context_new)(api, c"phoned".as_ptr()) };
        let Some(context) = NonNull::new(context) else {
            // SAFETY: `mainloop` is live and nothing else refers to it.
            unsafe { (lib.mainloop_free)(mainloop.as_ptr()) };
            return Err(PaError::new(lib, PA_ERR_INVALID));
        };
        let mut me = Introspector {
            lib,
            mainloop,
            context,
            collected: NonNull::from(Box::leak(Box::<Collected>::default())),
        };
        // SAFETY: `context` is live; NULL server and spawn api are allowed.
        let r = unsafe {
            (lib.context_connect)(
                context.as_ptr(),
                std::ptr::null(),
                PA_CONTEXT_NOAUTOSPAWN,
                std::ptr::null(),
            )
        };
        if r < 0 {
            return Err(me.context_error());
        }
        me.iterate_until(deadline, |me| {
            // SAFETY: `context` is live for as long as `me`.
            match unsafe { (me.lib.context_get_state)(me.context.as_ptr()) } {
                PA_CONTEXT_READY => Ok(true),
                PA_CONTEXT_FAILED | PA_CONTEXT_TERMINATED => Err(me.context_error()),
                _ => Ok(false),
            }
        })?;
        Ok(me)
    }

    /// The sinks, sources and defaults now, waiting at most `timeout` for the answers.
    pub fn list(&mut self, timeout: Duration) -> Result<Devices, PaError> {
        let deadline = Instant::now() + timeout;
        let data = self.collected.as_ptr().cast::<c_void>();
        // SAFETY: `collected` is live and no callback runs outside `iterate_until`.
        unsafe { (*self.collected.as_ptr()).devices = Devices::default() };
        let ctx = self.context.as_ptr();
        // SAFETY: `ctx` is live; the callbacks match the prototypes and `data` points to
        // the boxed `Collected`, which outlives the connection (see `Collected`).
        let ops = unsafe {
            [
                (self.lib.context_get_sink_info_list)(ctx, device_cb::<true>, data),
                (self.lib.context_get_source_info_list)(ctx, device_cb::<false>, data),
                (self.lib.context_get_server_info)(ctx, server_cb, data),
            ]
        };
        let result = if ops.iter().any(|o| o.is_null()) {
            Err(self.context_error())
        } else {
            self.iterate_until(deadline, |me| {
                // SAFETY: every op is a live operation (unreffed only below).
                let running = ops
                    .iter()
                    .any(|&o| unsafe { (me.lib.operation_get_state)(o) == PA_OPERATION_RUNNING });
                Ok(!running)
            })
        };
        for op in ops.into_iter().filter(|o| !o.is_null()) {
            release(self.lib, op, result.is_err());
        }
        // SAFETY: as above; the mainloop is not running.
        result.map(|()| std::mem::take(unsafe { &mut (*self.collected.as_ptr()).devices }))
    }

    fn context_error(&self) -> PaError {
        // SAFETY: `context` is live.
        let code = unsafe { (self.lib.context_errno)(self.context.as_ptr()) };
        PaError::new(
            self.lib,
            if code == 0 {
                PA_ERR_CONNECTIONREFUSED
            } else {
                code
            },
        )
    }

    /// Runs the mainloop until `done` says so, an error, or `deadline`.
    fn iterate_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> Result<bool, PaError>,
    ) -> Result<(), PaError> {
        let m = self.mainloop.as_ptr();
        loop {
            if done(self)? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PaError::new(self.lib, PA_ERR_TIMEOUT));
            }
            let usec = c_int::try_from(left.as_micros()).unwrap_or(c_int::MAX);
            // SAFETY: `m` is live; prepare/poll/dispatch is one pa_mainloop_iterate with
            // the poll bounded by `usec`.
            let ok = unsafe {
                (self.lib.mainloop_prepare)(m, usec) >= 0
                    && (self.lib.mainloop_poll)(m) >= 0
                    && (self.lib.mainloop_dispatch)(m) >= 0
            };
            if !ok {
                return Err(self.context_error());
            }
        }
    }
}

impl Drop for Introspector {
    fn drop(&mut self) {
        // SAFETY: all three are live and freed exactly once, here; the context first, so
        // that no callback can run once `collected` is gone.
        unsafe {
            (self.lib.context_disconnect)(self.context.as_ptr());
            (self.lib.context_unref)(self.context.as_ptr());
            (self.lib.mainloop_free)(self.mainloop.as_ptr());
            drop(Box::from_raw(self.collected.as_ptr()));
        }
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
