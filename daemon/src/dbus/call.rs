//! `org.phoned.Phone1.Call`: one object per call at `/org/phoned/Phone1/Call/<n>`.

use std::sync::Arc;

use phoned_proto::call::check_dtmf;
use phoned_proto::dbus::PhoneError;
use zbus::interface;
use zbus::object_server::SignalEmitter;

use super::check_arg;
use crate::call::engine::{Call, EngineError, Local, Output};
use crate::phone::{Phone, lock, unix_ms};

pub struct CallIface {
    phone: Arc<Phone>,
    local: Local,
}

/// The object path of call `local`.
pub fn path(local: Local) -> String {
    phoned_proto::dbus::call_path(local)
}

pub(crate) fn engine_err(e: EngineError) -> PhoneError {
    match e {
        EngineError::NoSuchCall => PhoneError::NotFound("the call has ended".into()),
        EngineError::InvalidState(s) => {
            PhoneError::InvalidState(format!("not possible while the call is {}", s.as_str()))
        }
    }
}

impl CallIface {
    pub fn new(phone: Arc<Phone>, local: Local) -> Self {
        CallIface { phone, local }
    }

    fn snapshot(&self) -> Option<Call> {
        lock(&self.phone.engine).get(self.local).cloned()
    }

    fn act(
        &self,
        op: impl FnOnce(&mut crate::call::engine::Engine) -> Result<Vec<Output>, EngineError>,
    ) -> Result<(), PhoneError> {
        let out = op(&mut lock(&self.phone.engine)).map_err(engine_err)?;
        self.phone.run_calls(out);
        Ok(())
    }
}

#[interface(name = "org.phoned.Phone1.Call")]
impl CallIface {
    fn answer(&self) -> Result<(), PhoneError> {
        let l = self.local;
        self.act(|e| e.answer(l))
    }

    /// Declines a ringing call; `reason` "busy" declines as busy, anything else as rejected.
    fn reject(&self, reason: &str) -> Result<(), PhoneError> {
        check_arg("reason", reason)?;
        let l = self.local;
        self.act(|e| e.reject(l, reason == "busy"))
    }

    fn hangup(&self) -> Result<(), PhoneError> {
        let l = self.local;
        self.act(|e| e.hangup(l, unix_ms()))
    }

    fn hold(&self) -> Result<(), PhoneError> {
        let l = self.local;
        self.act(|e| e.hold(l, true))
    }

    fn resume(&self) -> Result<(), PhoneError> {
        let l = self.local;
        self.act(|e| e.hold(l, false))
    }

    /// Sends DTMF digits (0-9, *, #, A-D; at most 32).
    fn send_dtmf(&self, digits: &str) -> Result<(), PhoneError> {
        if !check_dtmf(digits) {
            return Err(PhoneError::InvalidArgument(
                "DTMF digits are 0-9, *, #, A-D; at most 32".into(),
            ));
        }
        let (l, d) = (self.local, digits.to_owned());
        self.act(|e| e.send_dtmf(l, d))
    }

    /// `dialing`, `ringing`, `incoming`, `active`, `held` or `ended`.
    #[zbus(property)]
    fn state(&self) -> String {
        self.snapshot()
            .map_or("ended", |c| c.state.as_str())
            .to_owned()
    }

    /// Why the call ended, or "".
    #[zbus(property)]
    fn reason(&self) -> String {
        self.snapshot()
            .and_then(|c| c.reason)
            .map_or("", |r| r.as_str())
            .to_owned()
    }

    /// `incoming` or `outgoing`.
    #[zbus(property)]
    fn direction(&self) -> String {
        self.snapshot()
            .map_or("", |c| c.direction.as_str())
            .to_owned()
    }

    #[zbus(property)]
    fn remote_number(&self) -> String {
        self.snapshot().map(|c| c.remote_number).unwrap_or_default()
    }

    #[zbus(property)]
    fn remote_name(&self) -> String {
        self.snapshot().map(|c| c.remote_name).unwrap_or_default()
    }

    #[zbus(property)]
    fn muted(&self) -> bool {
        self.snapshot().is_some_and(|c| c.muted)
    }

    #[zbus(property)]
    fn set_muted(&self, muted: bool) -> zbus::fdo::Result<()> {
        // zbus announces the change itself after a setter.
        lock(&self.phone.engine)
            .set_muted(self.local, muted)
            .map_err(|e| zbus::fdo::Error::Failed(engine_err(e).message()))?;
        self.phone.set_media_muted(self.local, muted);
        Ok(())
    }

    /// When the call was placed or started ringing here (Unix ms).
    #[zbus(property)]
    fn started_at(&self) -> u64 {
        self.snapshot().map_or(0, |c| c.created_ms)
    }

    /// When it was answered (Unix ms), 0 if not yet.
    #[zbus(property)]
    fn answered_at(&self) -> u64 {
        self.snapshot().and_then(|c| c.answered_ms).unwrap_or(0)
    }

    /// The far side sent DTMF digits.
    #[zbus(signal)]
    pub async fn dtmf_received(emitter: &SignalEmitter<'_>, digits: &str) -> zbus::Result<()>;
}
