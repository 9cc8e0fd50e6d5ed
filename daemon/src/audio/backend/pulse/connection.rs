//! One connection to the server: a `pa_context` on a plain `pa_mainloop` that the thread
//! owning it iterates itself — no libpulse thread of its own, no lock, no hand-over
//! between threads. Waits have a deadline where a frozen server must not hang the caller
//! (connecting, listing devices, opening a stream); a stream's blocking read or write
//! waits in the mainloop's `poll` on the server's socket, so the server paces the thread.
//! Owns the mainloop and context from creation to free.

use std::ffi::c_int;
use std::ptr::NonNull;
use std::time::Instant;

use super::CLIENT_NAME_C;
use super::ffi::{
    Lib, PA_CONTEXT_FAILED, PA_CONTEXT_NOAUTOSPAWN, PA_CONTEXT_READY, PA_CONTEXT_TERMINATED,
    PA_ERR_CONNECTIONREFUSED, PA_ERR_INVALID, PA_ERR_TIMEOUT, PaContext, PaError, PaMainloop,
};

pub struct Connection {
    pub lib: &'static Lib,
    mainloop: NonNull<PaMainloop>,
    context: NonNull<PaContext>,
}

// SAFETY: a plain pa_mainloop and its context have no thread affinity; they are used only
// through `&mut self` (iterating) or `&self` between iterations, by one thread at a time
// (`Connection` is not `Sync`).
unsafe impl Send for Connection {}

impl Connection {
    /// Connects to the server libpulse finds (`PULSE_SERVER`, else the user's socket),
    /// waiting until `deadline` at most.
    pub fn connect(lib: &'static Lib, deadline: Instant) -> Result<Connection, PaError> {
        // SAFETY: no arguments; returns NULL on failure.
        let mainloop = NonNull::new(unsafe { (lib.mainloop_new)() })
            .ok_or_else(|| PaError::new(lib, PA_ERR_INVALID))?;
        // SAFETY: `mainloop` is live; the api pointer it returns lives as long as it.
        let api = unsafe { (lib.mainloop_get_api)(mainloop.as_ptr()) };
        // SAFETY: `api` is live and the name a NUL-terminated static string.
        let context = unsafe { (lib.context_new)(api, CLIENT_NAME_C.as_ptr()) };
        let Some(context) = NonNull::new(context) else {
            // SAFETY: `mainloop` is live and nothing else refers to it.
            unsafe { (lib.mainloop_free)(mainloop.as_ptr()) };
            return Err(PaError::new(lib, PA_ERR_INVALID));
        };
        let mut me = Connection {
            lib,
            mainloop,
            context,
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
            return Err(me.error());
        }
        me.iterate_until(deadline, |me| match me.state() {
            PA_CONTEXT_READY => Ok(true),
            PA_CONTEXT_FAILED | PA_CONTEXT_TERMINATED => Err(me.error()),
            _ => Ok(false),
        })?;
        Ok(me)
    }

    pub fn context(&self) -> *mut PaContext {
        self.context.as_ptr()
    }

    fn state(&self) -> c_int {
        // SAFETY: `context` is live for as long as `self`.
        unsafe { (self.lib.context_get_state)(self.context.as_ptr()) }
    }

    /// Whether the connection still stands (the server did not go away).
    pub fn check(&self) -> Result<(), PaError> {
        match self.state() {
            PA_CONTEXT_READY => Ok(()),
            _ => Err(self.error()),
        }
    }

    /// The context's last error; a connection that failed without one was refused.
    pub fn error(&self) -> PaError {
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
    pub fn iterate_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> Result<bool, PaError>,
    ) -> Result<(), PaError> {
        loop {
            if done(self)? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PaError::new(self.lib, PA_ERR_TIMEOUT));
            }
            self.iterate(c_int::try_from(left.as_micros()).unwrap_or(c_int::MAX))?;
        }
    }

    /// One turn of the mainloop: waits for the server (at most `timeout_usec`, or for ever
    /// when negative) and runs the callbacks that are due.
    pub fn iterate(&mut self, timeout_usec: c_int) -> Result<(), PaError> {
        let m = self.mainloop.as_ptr();
        // SAFETY: `m` is live; prepare/poll/dispatch is one pa_mainloop_iterate with the
        // poll bounded by `timeout_usec`. Callbacks run on this thread, inside dispatch.
        let ok = unsafe {
            (self.lib.mainloop_prepare)(m, timeout_usec) >= 0
                && (self.lib.mainloop_poll)(m) >= 0
                && (self.lib.mainloop_dispatch)(m) >= 0
        };
        if ok { Ok(()) } else { Err(self.error()) }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: both are live and freed exactly once, here, the context first.
        unsafe {
            (self.lib.context_disconnect)(self.context.as_ptr());
            (self.lib.context_unref)(self.context.as_ptr());
            (self.lib.mainloop_free)(self.mainloop.as_ptr());
        }
    }
}
