//! Small shared value types whose string forms are public interface (D-Bus, JSON).

use std::str::FromStr;

use crate::names::string_enum;

string_enum! {
    /// The daemon's link to its relay (D-Bus `Account.ConnectionState`).
    pub enum ConnectionState as "connection state" {
        Offline = "offline",
        Connecting = "connecting",
        Online = "online",
    }
}

/// Who gets answered automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AutoAnswer {
    #[default]
    Off,
    All,
    Contacts,
}

impl AutoAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoAnswer::Off => "off",
            AutoAnswer::All => "all",
            AutoAnswer::Contacts => "contacts",
        }
    }
}

impl FromStr for AutoAnswer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(AutoAnswer::Off),
            "all" => Ok(AutoAnswer::All),
            "contacts" => Ok(AutoAnswer::Contacts),
            _ => Err(format!(
                "auto-answer mode must be off, all or contacts, not {:?}",
                s.chars().take(32).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_answer_round_trips() {
        for m in [AutoAnswer::Off, AutoAnswer::All, AutoAnswer::Contacts] {
            assert_eq!(m.as_str().parse::<AutoAnswer>(), Ok(m));
        }
        assert!("sometimes".parse::<AutoAnswer>().is_err());
    }

    #[test]
    fn connection_states_round_trip() {
        crate::names::assert_round_trips!(ConnectionState);
    }
}
