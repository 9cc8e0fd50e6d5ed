//! `org.phoned.Phone1.Manager`: calls (none until calls land), do-not-disturb, auto-answer.

use std::sync::Arc;

use std::collections::HashMap;

use phoned_proto::Number;
use phoned_proto::dbus::PhoneError;
use phoned_proto::state::{AutoAnswer, ConnectionState};
use zbus::interface;
use zbus::object_server::SignalEmitter;
use zbus::wire::{ObjectPath, OwnedObjectPath, OwnedVariant};

use super::call::{engine_err, path};
use super::check_arg;
use crate::phone::{Phone, lock, unix_ms};

pub struct ManagerIface {
    phone: Arc<Phone>,
}

/// Settings keys.
pub const DND: &str = "do_not_disturb";
pub const AUTO_ANSWER: &str = "auto_answer";

impl ManagerIface {
    pub fn new(phone: Arc<Phone>) -> Self {
        ManagerIface { phone }
    }
}

/// An object path for a call (paths made by [`path`] are always valid).
pub fn call_path(local: u32) -> OwnedObjectPath {
    ObjectPath::try_from(path(local))
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
        let target = target.trim();
        let (number, name) = match target.parse::<Number>() {
            Ok(n) => {
                let name = self
                    .phone
                    .store
                    .lookup_contact(n.as_str())
                    .ok()
                    .filter(|c| c.number == n.as_str())
                    .map(|c| c.name)
                    .unwrap_or_default();
                (n.to_string(), name)
            }
            Err(_) => match self.phone.store.lookup_contact(target) {
                Ok(c) => (c.number, c.name),
                Err(_) => {
                    return Err(PhoneError::NotFound(format!(
                        "{:?} is neither a number nor a contact",
                        target.chars().take(64).collect::<String>()
                    )));
                }
            },
        };
        if self.phone.status().connection != ConnectionState::Online {
            return Err(PhoneError::Offline("not connected to the relay".into()));
        }
        let (local, out) = lock(&self.phone.engine).dial(number, name, unix_ms());
        self.phone.run_calls(out);
        Ok(call_path(local))
    }

    /// Hangs up every call.
    fn hangup_all(&self) -> Result<(), PhoneError> {
        let locals: Vec<u32> = lock(&self.phone.engine).calls().map(|c| c.local).collect();
        for l in locals {
            let out = lock(&self.phone.engine)
                .hangup(l, unix_ms())
                .map_err(engine_err);
            if let Ok(out) = out {
                self.phone.run_calls(out);
            }
        }
        Ok(())
    }

    /// Re-reads the config file (as SIGHUP does) and applies what changed. Returns each
    /// changed key and when it takes effect: `now`; `next-call` (audio: calls in progress
    /// keep their devices); `reconnect` (relay, pin, credentials: the link reconnects as
    /// soon as no call is in progress). A config that does not load changes nothing and
    /// fails with `InvalidConfig` naming the problem.
    fn reload(&self) -> Result<HashMap<String, String>, PhoneError> {
        let changes = self
            .phone
            .reload_logged()
            .map_err(|e| PhoneError::InvalidConfig(e.to_string()))?;
        Ok(changes
            .into_iter()
            .map(|(k, e)| (k.to_owned(), e.as_str().to_owned()))
            .collect())
    }

    #[zbus(property)]
    fn calls(&self) -> Vec<OwnedObjectPath> {
        lock(&self.phone.engine)
            .calls()
            .map(|c| call_path(c.local))
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
        self.phone.store.setting(DND).ok().flatten().as_deref() == Some("true")
    }

    #[zbus(property)]
    fn set_do_not_disturb(&self, on: bool) -> zbus::fdo::Result<()> {
        self.phone
            .store
            .set_setting(DND, if on { "true" } else { "false" })
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
    }

    /// `off`, `all` or `contacts`.
    #[zbus(property)]
    fn auto_answer(&self) -> String {
        self.phone
            .store
            .setting(AUTO_ANSWER)
            .ok()
            .flatten()
            .and_then(|v| v.parse::<AutoAnswer>().ok())
            .unwrap_or_default()
            .as_str()
            .to_owned()
    }

    #[zbus(property)]
    fn set_auto_answer(&self, mode: &str) -> zbus::fdo::Result<()> {
        let mode: AutoAnswer = mode.parse().map_err(zbus::fdo::Error::InvalidArgs)?;
        self.phone
            .store
            .set_setting(AUTO_ANSWER, mode.as_str())
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
    }

    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }
}
