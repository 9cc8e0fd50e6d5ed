//! `org.phoned.Phone1.Account`: the device's number and name, and its link state.

use std::sync::Arc;

use phoned_proto::dbus::PhoneError;
use phoned_proto::ident::{check_display_name, check_password};
use phoned_proto::{Number, Request, Response};
use zbus::interface;

use super::check_arg;
use crate::phone::Phone;

pub struct AccountIface {
    phone: Arc<Phone>,
}

impl AccountIface {
    pub fn new(phone: Arc<Phone>) -> Self {
        AccountIface { phone }
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
            .request(Request::ChangeNumber {
                number: n.to_string(),
            })
            .await?
        {
            Response::Account(info) => {
                let new = info.number.clone();
                self.phone.set_account(info);
                Ok(new)
            }
            other => Err(PhoneError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    async fn set_display_name(&self, name: &str) -> Result<(), PhoneError> {
        check_arg("name", name)?;
        check_display_name(name).map_err(|e| PhoneError::InvalidArgument(e.to_string()))?;
        match self
            .phone
            .request(Request::SetDisplayName {
                name: name.to_owned(),
            })
            .await?
        {
            Response::Account(info) => {
                self.phone.set_account(info);
                Ok(())
            }
            other => Err(PhoneError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    /// Sets the account's password, so the number can log in on another device.
    async fn set_password(&self, password: &str) -> Result<(), PhoneError> {
        check_arg("password", password)?;
        check_password(password).map_err(|e| PhoneError::InvalidArgument(e.to_string()))?;
        match self
            .phone
            .request(Request::SetPassword {
                password: password.to_owned(),
            })
            .await?
        {
            Response::Done => {
                let p = password.to_owned();
                self.phone.remember(|c| c.password = p);
                Ok(())
            }
            other => Err(PhoneError::Failed(format!("unexpected answer: {other:?}"))),
        }
    }

    #[zbus(property)]
    fn number(&self) -> String {
        self.phone
            .status()
            .account
            .map(|a| a.number)
            .unwrap_or_default()
    }

    #[zbus(property)]
    fn display_name(&self) -> String {
        match self.phone.status().account {
            Some(a) => a.display_name,
            None => self.phone.config().display_name.clone(),
        }
    }

    /// `offline`, `connecting` or `online`.
    #[zbus(property)]
    fn connection_state(&self) -> String {
        self.phone.status().connection.as_str().to_owned()
    }

    /// Why the link is down, or "".
    #[zbus(property)]
    fn last_error(&self) -> String {
        self.phone.status().last_error
    }

    /// Unix ms (0 until the first login).
    #[zbus(property)]
    fn created_at(&self) -> u64 {
        self.phone.status().account.map_or(0, |a| a.created_ms)
    }

    #[zbus(property(emits_changed_signal = "const"))]
    fn relay(&self) -> String {
        self.phone.config().relay.clone()
    }

    #[zbus(property)]
    fn devices_online(&self) -> u32 {
        self.phone.status().account.map_or(0, |a| a.devices_online)
    }
}
