//! A call's `Quality` property as `phonectl` shows it: one line for people, an object with
//! snake_case keys for `--json` (`calls --stats`), and the same object in `watch`'s lines.

use std::collections::HashMap;

use phoned_proto::dbus::quality as key;
use serde_json::{Map, Value};

use crate::watch::to_json;

/// The figures of one call, by D-Bus key; empty while the call is not active.
#[derive(Default)]
pub struct Figures(HashMap<String, Value>);

/// `LossPercent` → `loss_percent`, `RFactor` → `r_factor`.
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

impl Figures {
    pub fn from_property(property: HashMap<String, zbus::OwnedVariant>) -> Figures {
        Figures(
            property
                .into_iter()
                .map(|(k, v)| (k, to_json(&v)))
                .collect(),
        )
    }

    /// The figures as a JSON object with snake_case keys (a newer daemon's extra keys
    /// too).
    pub fn to_json(&self) -> Value {
        let object: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (snake_case(k), v.clone()))
            .collect();
        Value::Object(object)
    }

    fn get(&self, k: &str) -> String {
        match self.0.get(k) {
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => other.to_string(),
            None => "?".into(),
        }
    }

    /// One line: MOS first, then what explains it.
    pub fn human(&self) -> String {
        if self.0.is_empty() {
            return "none (measured once a second while the call is active)".into();
        }
        let g = |k| self.get(k);
        format!(
            "MOS {} (R {}), loss {} % (call {} %, unrecovered {} %), jitter {} ms, \
             buffer {} ms, mouth-to-ear ~{} ms, send {} kbit/s, receive {} kbit/s",
            g(key::MOS),
            g(key::R_FACTOR),
            g(key::LOSS_PERCENT),
            g(key::CALL_LOSS_PERCENT),
            g(key::UNRECOVERED_PERCENT),
            g(key::JITTER_MS),
            g(key::JITTER_BUFFER_MS),
            g(key::MOUTH_TO_EAR_MS),
            g(key::SEND_KBPS),
            g(key::RECEIVE_KBPS),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_become_snake_case() {
        assert_eq!(snake_case("LossPercent"), "loss_percent");
        assert_eq!(snake_case("RFactor"), "r_factor");
        assert_eq!(snake_case("MouthToEarMs"), "mouth_to_ear_ms");
        assert_eq!(snake_case("Mos"), "mos");
    }

    #[test]
    fn figures_print_in_one_line_and_as_an_object() {
        let mut f = Figures::default();
        assert!(f.human().starts_with("none"));
        assert_eq!(f.to_json(), json!({}));
        f.0.insert("Mos".into(), json!(4.38));
        f.0.insert("LossPercent".into(), json!(1.5));
        f.0.insert("JitterMs".into(), json!(3));
        f.0.insert("Future".into(), json!(true));
        let line = f.human();
        assert!(line.starts_with("MOS 4.38 (R ?), loss 1.5 %"), "{line}");
        assert!(line.contains("jitter 3 ms"), "{line}");
        assert_eq!(
            f.to_json(),
            json!({ "loss_percent": 1.5, "jitter_ms": 3, "mos": 4.38, "future": true })
        );
    }
}
