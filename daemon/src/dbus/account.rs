//! `org.phoned.Phone1.Account`: the device's number and name, and its link state.

use phoned_proto::Number;
use phoned_proto::dbus::PhoneError;
use phoned_proto::ident::{check_display_name, check_password};
use zbus::interface;
use zbus::message::Header;

use std::sync::Mutex;

use zbus::object_server::SignalEmitter;

use super::announced::{self, Announced};
use super::{check_arg, no_arguments};
use crate::core::{Command, Reply};
use crate::driver::Handle;

pub struct AccountIface {
    phone: Handle,
    /// What watchers were last told ([`AccountIface::announce`]).
    announced: Mutex<Announced>,
}

impl AccountIface {
    pub fn new(phone: Handle) -> Self {
        let iface = AccountIface {
            phone,
            announced: Mutex::default(),
        };
        let now = iface.announceable();
        iface
            .announced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .update(now);
        iface
    }

    /// The properties that change, as they read now (`Relay` is constant).
    fn announceable(&self) -> Vec<(&'static str, zbus::Variant<'static>)> {
        vec![
            ("Number", self.number().into()),
            ("DisplayName", self.display_name().into()),
            ("ConnectionState", self.connection_state().into()),
            ("LastError", self.last_error().into()),
            ("CreatedAt", self.created_at().into()),
            ("DevicesOnline", self.devices_online().into()),
        ]
    }

    /// Tells watchers what changed since they were last told, in one `PropertiesChanged`.
    pub async fn announce(&self, emitter: &SignalEmitter<'_>) -> zbus::Result<()> {
        let now = self.announceable();
        announced::announce(emitter, "org.phoned.Phone1.Account", &self.announced, now).await
    }
}

#[interface(name = "org.phoned.Phone1.Account")]
impl AccountIface {
    /// Moves this account to `number`; returns the new number.
    async fn change_number(&self, number: &str) -> Result<String, PhoneError> {
        check_arg("number", number)?;
        let n: Number = number
            .parse()
            .map_err(|e: phoned_proto::IdentError| PhoneError::InvalidNumber(e.to_string()))?;
        match self
            .phone
            .command(Command::ChangeNumber(n.to_string()))
            .await?
        {
            Reply::Number(new) => Ok(new),
            other => Err(PhoneError::Failed(format!("unexpected reply: {other:?}"))),
        }
    }

    async fn set_display_name(&self, name: &str) -> Result<(), PhoneError> {
        check_arg("name", name)?;
        check_display_name(name).map_err(|e| PhoneError::InvalidArgument(e.to_string()))?;
        self.phone
            .command(Command::SetDisplayName(name.to_owned()))
            .await?;
        Ok(())
    }

    /// The relay certificate fingerprint this device trusts, and where it comes from:
    /// `config` (relay_fingerprint), `learnt` (pinned on the first connection) or ""
    /// with an empty fingerprint (none yet: the next connection pins what it sees).
    async fn relay_trust(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, String), PhoneError> {
        no_arguments(&header)?;
        let config = self.phone.config();
        if let Some(fp) = &config.relay_fingerprint {
            return Ok((fp.clone(), "config".into()));
        }
        let learnt = self
            .phone
            .store
            .setting(&crate::link::pin_key(&config.relay))
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        Ok(match learnt {
            Some(fp) => (fp, "learnt".into()),
            None => (String::new(), String::new()),
        })
    }

    /// Forgets the fingerprint learnt on the first connection: the next connection pins
    /// the certificate the relay presents then (after a relay was reinstalled). A
    /// fingerprint from the config is the config's: `InvalidState`.
    async fn forget_relay(&self, #[zbus(header)] header: Header<'_>) -> Result<(), PhoneError> {
        no_arguments(&header)?;
        let config = self.phone.config();
        if config.relay_fingerprint.is_some() {
            return Err(PhoneError::InvalidState(
                "the relay's fingerprint is relay_fingerprint in the config: change it there"
                    .into(),
            ));
        }
        self.phone
            .store
            .remove_setting(&crate::link::pin_key(&config.relay))
            .map_err(|e| PhoneError::Failed(e.to_string()))?;
        tracing::info!(relay = %config.relay, "forgot the relay's learnt fingerprint");
        Ok(())
    }

    /// Sets the account's password, so the number can log in on another device.
    async fn set_password(&self, password: &str) -> Result<(), PhoneError> {
        check_arg("password", password)?;
        check_password(password).map_err(|e| PhoneError::InvalidArgument(e.to_string()))?;
        self.phone
            .command(Command::SetPassword(password.to_owned()))
            .await?;
        Ok(())
    }

    #[zbus(property)]
    fn number(&self) -> String {
        self.phone
            .snapshot()
            .status
            .account
            .as_ref()
            .map(|a| a.number.clone())
            .unwrap_or_default()
    }

    #[zbus(property)]
    fn display_name(&self) -> String {
        let snapshot = self.phone.snapshot();
        match &snapshot.status.account {
            Some(a) => a.display_name.clone(),
            None => snapshot.config.display_name.clone(),
        }
    }

    /// `offline`, `connecting` or `online`.
    #[zbus(property)]
    fn connection_state(&self) -> String {
        self.phone.snapshot().status.connection.as_str().to_owned()
    }

    /// Why the link is down, or "".
    #[zbus(property)]
    fn last_error(&self) -> String {
        self.phone.snapshot().status.last_error.clone()
    }

    /// Unix ms (0 until the first login).
    #[zbus(property)]
    fn created_at(&self) -> u64 {
        self.phone
            .snapshot()
            .status
            .account
            .as_ref()
            .map_or(0, |a| a.created_ms)
    }

    #[zbus(property(emits_changed_signal = "const"))]
    fn relay(&self) -> String {
        self.phone.config().relay.clone()
    }

    #[zbus(property)]
    fn devices_online(&self) -> u32 {
        self.phone
            .snapshot()
            .status
            .account
            .as_ref()
            .map_or(0, |a| a.devices_online)
    }
}
