//! `org.phoned.Phone1.Call`: one object per call at `/org/phoned/Phone1/Call/<n>`.

use phoned_proto::call::{CallState, EndReason, check_dtmf};
use phoned_proto::dbus::PhoneError;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::wire::OwnedObjectPath;

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::announced::{self, Announced};
use super::error::property_error;
use super::{check_arg, no_arguments};
use crate::call::engine::{Call, Local};
use crate::call::media::Quality;
use crate::core::{CallOp, Command};
use crate::driver::Handle;

pub struct CallIface {
    phone: Handle,
    local: Local,
    /// What watchers were last told, so a change is announced once, with only what
    /// changed ([`CallIface::announce`]).
    announced: Mutex<Announced>,
    /// Why the call ended, once it has: the object outlives the call by the moment it
    /// takes to remove it, and `Reason` must still read right then.
    ended: Mutex<Option<EndReason>>,
}

/// A call's quality as the `Quality` property's `a{sv}`.
fn quality_dict(q: &Quality) -> BTreeMap<String, zbus::Variant<'static>> {
    use phoned_proto::dbus::quality as key;
    let entries: [(&str, zbus::Variant<'static>); 10] = [
        (key::LOSS_PERCENT, q.loss_percent.into()),
        (key::CALL_LOSS_PERCENT, q.call_loss_percent.into()),
        (key::UNRECOVERED_PERCENT, q.unrecovered_percent.into()),
        (key::JITTER_MS, q.jitter_ms.into()),
        (key::JITTER_BUFFER_MS, q.jitter_buffer_ms.into()),
        (key::MOUTH_TO_EAR_MS, q.mouth_to_ear_ms.into()),
        (key::SEND_KBPS, q.send_kbps.into()),
        (key::RECEIVE_KBPS, q.receive_kbps.into()),
        (key::R_FACTOR, q.r_factor.into()),
        (key::MOS, q.mos.into()),
    ];
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The object path of call `local`.
pub fn path(local: Local) -> String {
    phoned_proto::dbus::call_path(local)
}

impl CallIface {
    pub fn new(phone: Handle, local: Local) -> Self {
        let iface = CallIface {
            phone,
            local,
            announced: Mutex::default(),
            ended: Mutex::default(),
        };
        // Watchers learn the first values from `CallAdded` or by reading them.
        let now = iface.announceable();
        iface.announced().update(now);
        iface
    }

    fn snapshot(&self) -> Option<Call> {
        self.phone.snapshot().calls.get(&self.local).cloned()
    }

    fn announced(&self) -> std::sync::MutexGuard<'_, Announced> {
        self.announced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The properties that change during a call, as they read now. Once the call is gone
    /// only `State` and `Reason` have news: the others keep the values last announced.
    fn announceable(&self) -> Vec<(&'static str, zbus::Variant<'static>)> {
        if self.snapshot().is_none() {
            return vec![
                ("State", self.state().into()),
                ("Reason", self.reason().into()),
            ];
        }
        vec![
            ("State", self.state().into()),
            ("Reason", self.reason().into()),
            ("RemoteHeld", self.remote_held().into()),
            ("Muted", self.muted().into()),
            ("AnsweredAt", self.answered_at().into()),
            ("AudioError", self.audio_error().into()),
            ("Quality", self.quality().into()),
        ]
    }

    /// Tells watchers what changed since they were last told, in one `PropertiesChanged`
    /// (none if nothing did). `ended`: the call is over, for this reason.
    pub async fn announce(
        &self,
        emitter: &SignalEmitter<'_>,
        ended: Option<EndReason>,
    ) -> zbus::Result<()> {
        if let Some(reason) = ended {
            *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
        let now = self.announceable();
        announced::announce(emitter, "org.phoned.Phone1.Call", &self.announced, now).await
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

    /// Invites `number` into this answered (active or held) call, which becomes a
    /// conference hosted here: its devices ring, and the other party stays in. On a call
    /// that is a conference already, the same as its `Conference.Add`. Returns the
    /// conference's object, which exists when this returns.
    async fn add_party(&self, number: &str) -> Result<OwnedObjectPath, PhoneError> {
        check_arg("number", number)?;
        self.phone
            .command(Command::ConferenceAdd(self.local, number.to_owned()))
            .await?;
        self.phone.announced().await;
        OwnedObjectPath::try_from(super::conference::path(self.local))
            .map_err(|e| PhoneError::Failed(e.to_string()))
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

    /// `dialing`, `ringing`, `incoming`, `waiting`, `active`, `held` or `ended`.
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
            .or(*self.ended.lock().unwrap_or_else(PoisonError::into_inner))
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

    /// The other side holds the call (`State` stays `active` unless this side holds it
    /// too): no media flows, and only they can resume it.
    #[zbus(property)]
    fn remote_held(&self) -> bool {
        self.snapshot().is_some_and(|c| c.remote_held)
    }

    #[zbus(property)]
    fn muted(&self) -> bool {
        self.snapshot().is_some_and(|c| c.muted)
    }

    #[zbus(property)]
    async fn set_muted(&self, muted: bool) -> zbus::fdo::Result<()> {
        // zbus announces the change itself after a setter: record it as told before the
        // call engine's change reaches `announce`, which then has nothing to add.
        let before = self.muted();
        self.announced().set("Muted", muted.into());
        let result = self
            .phone
            .command(Command::Call(self.local, CallOp::Mute(muted)))
            .await;
        if let Err(e) = result {
            self.announced().set("Muted", before.into());
            return Err(property_error(e));
        }
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

    /// The call's live quality while it is active, updated at most once a second; empty
    /// while it is not (dialing, ringing, held, ended) and until its media has run a
    /// second. Keys (see `docs/dbus-api.md`): `LossPercent`, `CallLossPercent`,
    /// `UnrecoveredPercent`, `SendKbps`, `ReceiveKbps`, `RFactor`, `Mos` (doubles),
    /// `JitterMs`, `JitterBufferMs`, `MouthToEarMs` (uint32).
    #[zbus(property)]
    fn quality(&self) -> BTreeMap<String, zbus::Variant<'static>> {
        self.phone
            .snapshot()
            .quality
            .get(&self.local)
            .map(quality_dict)
            .unwrap_or_default()
    }

    /// The far side sent DTMF digits.
    #[zbus(signal)]
    pub async fn dtmf_received(emitter: &SignalEmitter<'_>, digits: &str) -> zbus::Result<()>;
}
