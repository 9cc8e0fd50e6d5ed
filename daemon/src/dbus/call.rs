//! `org.phoned.Phone1.Call`: one object per call at `/org/phoned/Phone1/Call/<n>`.

use phoned_proto::call::{CallState, EndReason, check_dtmf};
use phoned_proto::dbus::PhoneError;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use super::error::property_error;
use super::{check_arg, no_arguments};
use crate::call::engine::{Call, Local};
use crate::core::{CallOp, Command};
use crate::driver::Handle;

pub struct CallIface {
    phone: Handle,
    local: Local,
}

/// The object path of call `local`.
pub fn path(local: Local) -> String {
    phoned_proto::dbus::call_path(local)
}

impl CallIface {
    pub fn new(phone: Handle, local: Local) -> Self {
        CallIface { phone, local }
    }

    fn snapshot(&self) -> Option<Call> {
        self.phone.snapshot().calls.get(&self.local).cloned()
    }

    async fn act(&self, op: CallOp) -> Result<(), PhoneError> {
        self.phone.command(Command::Call(self.local, op)).await?;
        Ok(())
    }
}

#[interface(name = "org.phoned.Phone1.Call")]
impl CallIface {
    async fn answer(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.act(CallOp::Answer).await
    }

    /// Declines a ringing call; `reason` "busy" declines as busy, anything else as rejected.
    async fn reject(&self, reason: &str) -> Result<(), PhoneError> {
        check_arg("reason", reason)?;
        let busy = reason == EndReason::Busy.as_str();
        self.act(CallOp::Reject { busy }).await
    }

    async fn hangup(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.act(CallOp::Hangup).await
    }

    async fn hold(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.act(CallOp::Hold(true)).await
    }

    async fn resume(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.act(CallOp::Hold(false)).await
    }

    /// Sends DTMF digits (0-9, *, #, A-D; at most 32).
    async fn send_dtmf(&self, digits: &str) -> Result<(), PhoneError> {
        if !check_dtmf(digits) {
            return Err(PhoneError::InvalidArgument(
                "DTMF digits are 0-9, *, #, A-D; at most 32".into(),
            ));
        }
        self.act(CallOp::Dtmf(digits.to_owned())).await
    }

    /// `dialing`, `ringing`, `incoming`, `active`, `held` or `ended`.
    #[zbus(property)]
    fn state(&self) -> String {
        // The object outlives its call by the moment it takes to remove it.
        self.snapshot()
            .map_or(CallState::Ended, |c| c.state)
            .as_str()
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
    async fn set_muted(&self, muted: bool) -> zbus::fdo::Result<()> {
        // zbus announces the change itself after a setter.
        self.phone
            .command(Command::Call(self.local, CallOp::Mute(muted)))
            .await
            .map_err(property_error)?;
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

    /// Why the call's audio does not fully work ("" when it does): a device that is
    /// missing or failed, in one line. The call goes on with what works (silence is sent
    /// for a missing microphone) and the device is tried again every second.
    #[zbus(property)]
    fn audio_error(&self) -> String {
        self.phone
            .snapshot()
            .audio
            .calls
            .get(&self.local)
            .cloned()
            .unwrap_or_default()
    }

    /// The far side sent DTMF digits.
    #[zbus(signal)]
    pub async fn dtmf_received(emitter: &SignalEmitter<'_>, digits: &str) -> zbus::Result<()>;
}
