//! `org.phoned.Phone1.Manager`: dialing, the list of calls and their signals,
//! do-not-disturb, auto-answer, reloading the config, and listing the audio devices. Each call's own object is
//! [`super::call`].

use std::collections::HashMap;

use phoned_proto::dbus::PhoneError;
use phoned_proto::state::AutoAnswer;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::wire::{ObjectPath, OwnedObjectPath, OwnedVariant};

use super::call::path;
use super::error::property_error;
use super::{check_arg, no_arguments, recipient};
use crate::audio::backend::{self as audio, Direction};
use crate::core::{Command, Reply};
use crate::driver::Handle;

pub struct ManagerIface {
    phone: Handle,
}

impl ManagerIface {
    pub fn new(phone: Handle) -> Self {
        ManagerIface { phone }
    }
}

/// An object path for a call (paths made by [`path`] are always valid).
pub fn call_path(local: u32) -> OwnedObjectPath {
    ObjectPath::try_from(path(local))
        .map(OwnedObjectPath::from)
        .unwrap_or_else(|_| OwnedObjectPath::from(ObjectPath::from_static_str_unchecked("/")))
}

/// An object path for a conference.
pub fn conference_path(local: u32) -> OwnedObjectPath {
    ObjectPath::try_from(super::conference::path(local))
        .map(OwnedObjectPath::from)
        .unwrap_or_else(|_| OwnedObjectPath::from(ObjectPath::from_static_str_unchecked("/")))
}

#[interface(name = "org.phoned.Phone1.Manager")]
impl ManagerIface {
    /// Calls `target`: a number, or a contact's name. Returns the new call's object; its
    /// `State` then follows the call (`dialing`, `ringing`, `active`, … `ended` with a
    /// `Reason`). `options` is reserved.
    async fn dial(
        &self,
        target: &str,
        options: HashMap<String, OwnedVariant>,
    ) -> Result<OwnedObjectPath, PhoneError> {
        let _ = options;
        check_arg("target", target)?;
        let (number, name) = recipient(&self.phone, target)?;
        match self.phone.command(Command::Dial { number, name }).await? {
            Reply::Call(local) => Ok(call_path(local)),
            other => Err(PhoneError::Failed(format!("unexpected reply: {other:?}"))),
        }
    }

    /// Opens a conference with `numbers` (1 to 15, not this account's own): every device
    /// of each rings. Returns the conference's object once the relay has opened it; this
    /// device is in it at once as its host, through the call its `Call` property names.
    async fn create_conference(&self, numbers: Vec<String>) -> Result<OwnedObjectPath, PhoneError> {
        if numbers.is_empty() || numbers.len() > phoned_proto::conference::MAX_INVITES {
            return Err(PhoneError::InvalidArgument(
                "a conference invites 1 to 15 numbers".into(),
            ));
        }
        let mut resolved = Vec::with_capacity(numbers.len());
        for target in &numbers {
            check_arg("number", target)?;
            resolved.push(recipient(&self.phone, target)?.0);
        }
        match self
            .phone
            .command(Command::CreateConference(resolved))
            .await?
        {
            Reply::Call(local) => {
                self.phone.announced().await;
                Ok(conference_path(local))
            }
            other => Err(PhoneError::Failed(format!("unexpected reply: {other:?}"))),
        }
    }

    /// Merges the active call and the call held here into one conference hosted by this
    /// device (three-way calling). Returns the conference's object.
    async fn merge(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<OwnedObjectPath, PhoneError> {
        no_arguments(&header)?;
        match self.phone.command(Command::Merge).await? {
            // Once its `Conference` object is there.
            Reply::Call(local) => {
                self.phone.announced().await;
                Ok(conference_path(local))
            }
            other => Err(PhoneError::Failed(format!("unexpected reply: {other:?}"))),
        }
    }

    /// Hangs up every call.
    async fn hangup_all(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        self.phone.command(Command::HangupAll).await?;
        Ok(())
    }

    /// Re-reads the config file (as SIGHUP does) and applies what changed. Returns each
    /// changed key and when it takes effect: `now`; `next-call` (audio: calls in progress
    /// keep their devices); `reconnect` (relay, pin, credentials: the link reconnects as
    /// soon as no call is in progress). A config that does not load changes nothing and
    /// fails with `InvalidConfig` naming the problem.
    async fn reload(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<HashMap<String, String>, PhoneError> {
        no_arguments(&header)?;
        let changes = self.phone.reload().await?;
        Ok(changes
            .into_iter()
            .map(|(k, e)| (k.to_owned(), e.as_str().to_owned()))
            .collect())
    }

    /// The input and output devices of the audio backend a call would use now: the
    /// backend (`pulse`, `cpal`, `file`, `null`) and, per device, its direction (`input`,
    /// `output`), its name (what `[audio] input`/`output` accept), its description (may be
    /// empty) and whether it is the default. Fails with `Failed` naming the problem when
    /// the devices cannot be listed (sound server not answering, libpulse missing).
    async fn audio_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, Vec<(String, String, String, bool)>), PhoneError> {
        no_arguments(&header)?;
        let audio = self.phone.config().audio.clone();
        // On the bounded work queue: a sound server that does not answer holds a
        // thread until it does, and callers can ask again and again.
        let list = self
            .phone
            .work
            .run(move || audio::list_devices(&audio))
            .await?
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        let devices = list
            .devices
            .into_iter()
            .map(|d| {
                let direction = match d.direction {
                    Direction::Capture => "input",
                    Direction::Playback => "output",
                };
                (direction.to_owned(), d.name, d.description, d.is_default)
            })
            .collect();
        Ok((list.backend.to_owned(), devices))
    }

    #[zbus(property)]
    fn calls(&self) -> Vec<OwnedObjectPath> {
        self.phone
            .snapshot()
            .calls
            .keys()
            .map(|l| call_path(*l))
            .collect()
    }

    /// An incoming call rings: (object, number, name).
    #[zbus(signal)]
    pub async fn incoming_call(
        emitter: &SignalEmitter<'_>,
        call: ObjectPath<'_>,
        number: &str,
        name: &str,
    ) -> zbus::Result<()>;

    /// A call object appeared, with its properties.
    #[zbus(signal)]
    pub async fn call_added(
        emitter: &SignalEmitter<'_>,
        call: ObjectPath<'_>,
        properties: HashMap<&str, zbus::Variant<'_>>,
    ) -> zbus::Result<()>;

    /// A call ended and its object is gone, with the reason.
    #[zbus(signal)]
    pub async fn call_removed(
        emitter: &SignalEmitter<'_>,
        call: ObjectPath<'_>,
        reason: &str,
    ) -> zbus::Result<()>;

    #[zbus(property)]
    fn do_not_disturb(&self) -> bool {
        self.phone.snapshot().settings.do_not_disturb
    }

    #[zbus(property)]
    async fn set_do_not_disturb(&self, on: bool) -> zbus::fdo::Result<()> {
        self.phone
            .command(Command::SetDnd(on))
            .await
            .map_err(property_error)?;
        Ok(())
    }

    /// `off`, `all` or `contacts`.
    #[zbus(property)]
    fn auto_answer(&self) -> String {
        self.phone
            .snapshot()
            .settings
            .auto_answer
            .as_str()
            .to_owned()
    }

    #[zbus(property)]
    async fn set_auto_answer(&self, mode: &str) -> zbus::fdo::Result<()> {
        let mode: AutoAnswer = mode.parse().map_err(zbus::fdo::Error::InvalidArgs)?;
        self.phone
            .command(Command::SetAutoAnswer(mode))
            .await
            .map_err(property_error)?;
        Ok(())
    }

    /// The latest audio problem of any call or voice message recording ("" when none
    /// stands): set when a device is missing or fails, cleared when a call's or a
    /// recording's devices are reported working again.
    #[zbus(property)]
    fn audio_error(&self) -> String {
        self.phone.snapshot().audio.latest.clone()
    }

    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }
}
