//! The adapter to phoned: its public D-Bus API (`org.phoned.Phone1`), nothing else. Its
//! signals become [`Event`]s of the model, read in the order the bus delivers them;
//! oFono's requests become its method calls.

use std::collections::HashMap;

use phoned_proto::call::EndReason;
use phoned_proto::dbus::{BUS_NAME, PhoneError, ROOT_PATH, call_path, iface, parse_call_path};
use zbus::message::Type;
use zbus::{Connection, MatchRule, Message, MessageStream, OwnedVariant, Variant};

use crate::bridge::{Event, PhoneCall};
use crate::state::PhoneOp;

const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// What one of phoned's signals means for the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    Event(Event),
    /// phoned's name changed hands (it started, stopped or restarted): read everything
    /// again.
    Resync,
}

/// phoned, on its bus.
#[derive(Clone)]
pub struct Phone {
    conn: Connection,
}

/// A string property.
fn text(v: &Variant<'_>) -> Option<String> {
    match v {
        Variant::Str(s) => Some(s.as_str().to_owned()),
        Variant::Variant(inner) => text(inner),
        _ => None,
    }
}

fn number(v: &Variant<'_>) -> Option<u64> {
    match v {
        Variant::U64(n) => Some(*n),
        Variant::Variant(inner) => number(inner),
        _ => None,
    }
}

fn get<T>(
    props: &HashMap<String, OwnedVariant>,
    key: &str,
    f: impl Fn(&Variant<'_>) -> Option<T>,
) -> Option<T> {
    props.get(key).and_then(|v| f(v))
}

/// A call from its properties (`CallAdded`'s dict, or `GetAll`); `None` when they lack
/// what the bridge needs or hold values it does not know.
pub fn call_of(local: u32, props: &HashMap<String, OwnedVariant>) -> Option<PhoneCall> {
    Some(PhoneCall {
        local,
        state: get(props, "State", text)?.parse().ok()?,
        direction: get(props, "Direction", text)?.parse().ok()?,
        number: get(props, "RemoteNumber", text).unwrap_or_default(),
        name: get(props, "RemoteName", text).unwrap_or_default(),
        answered_ms: get(props, "AnsweredAt", number).unwrap_or(0),
    })
}

/// What a message from phoned's bus means, if anything.
pub fn heard(msg: &Message) -> Option<Heard> {
    let header = msg.header();
    if header.message_type() != Type::Signal {
        return None;
    }
    let path = header.path()?.as_str().to_owned();
    let interface = header.interface()?.as_str().to_owned();
    let member = header.member()?.as_str().to_owned();
    let body = msg.body();
    let event = match (interface.as_str(), member.as_str()) {
        ("org.freedesktop.DBus", "NameOwnerChanged") => {
            let (name, _, _): (String, String, String) = body.deserialize().ok()?;
            return (name == BUS_NAME).then_some(Heard::Resync);
        }
        (iface::MANAGER, "CallAdded") => {
            let (call, props): (zbus::wire::ObjectPath<'_>, HashMap<String, OwnedVariant>) =
                body.deserialize().ok()?;
            Event::Added(call_of(parse_call_path(call.as_str())?, &props)?)
        }
        (iface::MANAGER, "CallRemoved") => {
            let (call, reason): (zbus::wire::ObjectPath<'_>, String) = body.deserialize().ok()?;
            Event::Removed {
                local: parse_call_path(call.as_str())?,
                // A reason this version does not know: the call ended all the same.
                reason: reason.parse().unwrap_or(EndReason::Hangup),
            }
        }
        (PROPERTIES, "PropertiesChanged") => {
            let (of, changed, _): (String, HashMap<String, OwnedVariant>, Vec<String>) =
                body.deserialize().ok()?;
            if of == iface::CALL {
                let local = parse_call_path(&path)?;
                Event::Changed {
                    local,
                    state: get(&changed, "State", text).and_then(|s| s.parse().ok()),
                    reason: get(&changed, "Reason", text).and_then(|s| s.parse().ok()),
                    answered_ms: get(&changed, "AnsweredAt", number),
                }
            } else if of == iface::ACCOUNT && path == ROOT_PATH {
                if let Some(state) = get(&changed, "ConnectionState", text) {
                    Event::Online(state == "online")
                } else {
                    Event::Number(get(&changed, "Number", text)?)
                }
            } else {
                return None;
            }
        }
        _ => return None,
    };
    Some(Heard::Event(event))
}

impl Phone {
    pub fn new(conn: Connection) -> Phone {
        Phone { conn }
    }

    /// Starts listening to phoned's signals and to its name changing hands. Listen before
    /// reading the state ([`Phone::snapshot`]), so nothing falls between the two.
    pub async fn listen(&self) -> zbus::Result<MessageStream> {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        // Every signal under phoned's root (its Manager, Account and call objects); phoned
        // alone serves that path.
        let phoned = MatchRule::builder()
            .msg_type(Type::Signal)
            .path_namespace(ROOT_PATH)
            .build()?;
        let owner = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender("org.freedesktop.DBus")
            .interface("org.freedesktop.DBus")
            .member("NameOwnerChanged")
            .arg(0, BUS_NAME)
            .build()?;
        dbus.add_match_rule(phoned).await?;
        dbus.add_match_rule(owner).await?;
        Ok(MessageStream::from(&self.conn))
    }

    fn proxy(
        &self,
        path: String,
        interface: &'static str,
    ) -> zbus::proxy::Builder<'_, zbus::Proxy<'_>> {
        zbus::proxy::Builder::new(&self.conn)
            .destination(BUS_NAME)
            .path(path)
            .interface(interface)
            .cache_properties(zbus::proxy::CacheProperties::No)
    }

    /// Everything the bridge shows of phoned, read now; `Gone` when phoned is not there
    /// (or leaves while it is read).
    pub async fn snapshot(&self) -> Event {
        match self.read().await {
            Ok(synced) => synced,
            Err(e) => {
                tracing::info!("phoned is not on its bus ({e}): the modem has no calls");
                Event::Gone
            }
        }
    }

    async fn read(&self) -> zbus::Result<Event> {
        let manager = self.proxy(ROOT_PATH.into(), iface::MANAGER).build().await?;
        let account = self.proxy(ROOT_PATH.into(), iface::ACCOUNT).build().await?;
        let paths: Vec<zbus::wire::OwnedObjectPath> = manager.get_property("Calls").await?;
        let state: String = account.get_property("ConnectionState").await?;
        let number: String = account.get_property("Number").await?;
        let mut calls = Vec::new();
        for path in paths {
            let Some(local) = parse_call_path(path.as_str()) else {
                continue;
            };
            let props = zbus::fdo::PropertiesProxy::builder(&self.conn)
                .destination(BUS_NAME)
                .path(path.as_str())
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let iface = zbus::names::InterfaceName::try_from(iface::CALL)?;
            // A call that ended in the meantime is simply not there.
            if let Ok(all) = props.get_all(iface).await {
                let all: HashMap<String, OwnedVariant> = all.into_iter().collect();
                calls.extend(call_of(local, &all));
            }
        }
        Ok(Event::Synced {
            calls,
            online: state == "online",
            number,
        })
    }

    /// `Manager.Dial`: the new call's number.
    pub async fn dial(&self, number: &str) -> Result<u32, PhoneError> {
        let manager = phoned_proto::dbus::manager::ManagerProxy::new(&self.conn).await?;
        let path = manager.dial(number, HashMap::new()).await?;
        parse_call_path(path.as_str())
            .ok_or_else(|| PhoneError::Failed(format!("phoned returned no call object: {path}")))
    }

    pub async fn hangup_all(&self) -> Result<(), PhoneError> {
        let manager = phoned_proto::dbus::manager::ManagerProxy::new(&self.conn).await?;
        manager.hangup_all().await
    }

    /// Asks phoned to do `op` to call `local`.
    pub async fn act(&self, local: u32, op: &PhoneOp) -> Result<(), PhoneError> {
        let call = phoned_proto::dbus::call::CallProxy::builder(&self.conn)
            .path(call_path(local))
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        match op {
            PhoneOp::Answer => call.answer().await,
            PhoneOp::Reject => call.reject(EndReason::Rejected.as_str()).await,
            PhoneOp::Hangup => call.hangup().await,
            PhoneOp::Hold => call.hold().await,
            PhoneOp::Resume => call.resume().await,
            PhoneOp::SendDtmf(digits) => call.send_dtmf(digits).await,
        }
    }
}

/// phoned's direction and state names the bridge reads (checked here so a rename in
/// `phoned_proto` breaks this crate's tests, not GNOME Calls).
#[cfg(test)]
mod tests {
    use super::*;
    use phoned_proto::call::{CallDirection, CallState};

    fn dict(pairs: &[(&str, Variant<'static>)]) -> HashMap<String, OwnedVariant> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OwnedVariant::try_from(v.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn a_call_from_its_properties() {
        let props = dict(&[
            ("State", Variant::from("incoming")),
            ("Direction", Variant::from("incoming")),
            ("RemoteNumber", Variant::from("4711")),
            ("RemoteName", Variant::from("Bob")),
        ]);
        assert_eq!(
            call_of(7, &props),
            Some(PhoneCall {
                local: 7,
                state: CallState::Incoming,
                direction: CallDirection::Incoming,
                number: "4711".into(),
                name: "Bob".into(),
                answered_ms: 0,
            })
        );
        let no_state = dict(&[("Direction", Variant::from("incoming"))]);
        assert_eq!(call_of(7, &no_state), None);
        let odd = dict(&[
            ("State", Variant::from("exploding")),
            ("Direction", Variant::from("incoming")),
        ]);
        assert_eq!(call_of(7, &odd), None);
    }

    #[test]
    fn phoned_signals_as_events() {
        let removed = Message::signal(call_path(0).as_str(), iface::MANAGER, "CallRemoved")
            .build(&(
                zbus::wire::ObjectPath::try_from(call_path(4).as_str()).unwrap(),
                "busy",
            ))
            .unwrap();
        assert_eq!(
            heard(&removed),
            Some(Heard::Event(Event::Removed {
                local: 4,
                reason: EndReason::Busy
            }))
        );
        let changed: HashMap<&str, Variant<'_>> = [
            ("State", Variant::from("active")),
            ("AnsweredAt", Variant::from(5u64)),
        ]
        .into();
        let msg = Message::signal(call_path(4).as_str(), PROPERTIES, "PropertiesChanged")
            .build(&(iface::CALL, changed, Vec::<String>::new()))
            .unwrap();
        assert_eq!(
            heard(&msg),
            Some(Heard::Event(Event::Changed {
                local: 4,
                state: Some(CallState::Active),
                reason: None,
                answered_ms: Some(5)
            }))
        );
        let owner = Message::signal(
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameOwnerChanged",
        )
        .build(&(BUS_NAME, ":1.4", ""))
        .unwrap();
        assert_eq!(heard(&owner), Some(Heard::Resync));
        let other = Message::signal(
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameOwnerChanged",
        )
        .build(&("org.example", ":1.4", ""))
        .unwrap();
        assert_eq!(heard(&other), None);
    }
}
