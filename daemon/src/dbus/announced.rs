//! What a D-Bus object last told its watchers, so that each change is announced by one
//! `PropertiesChanged` signal carrying only the properties whose value changed. zbus's
//! generated `<prop>_changed` helpers send one signal per property and re-send values
//! that did not change; a shell redrawing on every signal saw three for one hang-up.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use zbus::Variant as Value;
use zbus::object_server::SignalEmitter;

/// Announces on `emitter`, in one `PropertiesChanged` of `interface`, what of `now`
/// differs from what `announced` holds (nothing if nothing does), and records it.
pub async fn announce(
    emitter: &SignalEmitter<'_>,
    interface: &'static str,
    announced: &Mutex<Announced>,
    now: Vec<(&'static str, Value<'static>)>,
) -> zbus::Result<()> {
    let changed = announced
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .update(now);
    if changed.is_empty() {
        return Ok(());
    }
    let interface = zbus::names::InterfaceName::from_static_str_unchecked(interface);
    zbus::fdo::Properties::properties_changed(emitter, interface, changed, (&[][..]).into()).await
}

/// Property values as last announced, by D-Bus property name.
#[derive(Debug, Default)]
pub struct Announced {
    values: HashMap<&'static str, Value<'static>>,
}

impl Announced {
    /// Records `now` and returns the entries that differ from what was announced before
    /// (all of them the first time).
    pub fn update(
        &mut self,
        now: Vec<(&'static str, Value<'static>)>,
    ) -> HashMap<&'static str, Value<'static>> {
        let mut changed = HashMap::new();
        for (name, value) in now {
            if self.values.get(name) != Some(&value) {
                self.values.insert(name, value.clone());
                changed.insert(name, value);
            }
        }
        changed
    }

    /// Records one value without announcing it (zbus announces a property after its
    /// setter runs).
    pub fn set(&mut self, name: &'static str, value: Value<'static>) {
        self.values.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_changed_is_returned() {
        let mut a = Announced::default();
        let first = a.update(vec![("State", "active".into()), ("Muted", false.into())]);
        assert_eq!(first.len(), 2);
        let none = a.update(vec![("State", "active".into()), ("Muted", false.into())]);
        assert!(none.is_empty());
        let some = a.update(vec![("State", "ended".into()), ("Muted", false.into())]);
        assert_eq!(some.len(), 1);
        assert_eq!(some.get("State"), Some(&Value::from("ended")));
    }

    #[test]
    fn a_value_set_by_a_setter_is_not_announced_again() {
        let mut a = Announced::default();
        a.update(vec![("Muted", false.into())]);
        a.set("Muted", true.into());
        assert!(a.update(vec![("Muted", true.into())]).is_empty());
    }
}
