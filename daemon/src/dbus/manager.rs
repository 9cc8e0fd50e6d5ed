//! `org.phoned.Phone1.Manager`: calls (none until calls land), do-not-disturb, auto-answer.

use std::sync::Arc;

use phoned_proto::state::AutoAnswer;
use zbus::interface;

use crate::phone::Phone;

pub struct ManagerIface {
    phone: Arc<Phone>,
}

const DND: &str = "do_not_disturb";
const AUTO_ANSWER: &str = "auto_answer";

impl ManagerIface {
    pub fn new(phone: Arc<Phone>) -> Self {
        ManagerIface { phone }
    }
}

#[interface(name = "org.phoned.Phone1.Manager")]
impl ManagerIface {
    #[zbus(property)]
    fn calls(&self) -> Vec<zbus::wire::OwnedObjectPath> {
        Vec::new()
    }

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
