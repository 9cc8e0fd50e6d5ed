//! `phonectl watch`: every signal of the daemon as one JSON line, until interrupted.
//!
//! One match rule covers the daemon's whole object tree (the Manager and account objects
//! at the root, each call object under it), so nothing it signals is left out. Each line
//! has a stable `event` field (the table is in `docs/man` and `docs/dbus-api.md`); a
//! signal this version does not know yet still prints, as `"event": "signal"` with its
//! interface and member, so a script sees it rather than nothing.

use std::collections::HashMap;
use std::io::Write;

use phoned_proto::dbus::{BUS_NAME, ROOT_PATH, iface};
use serde_json::{Map, Value, json};
use smol::stream::StreamExt;
use zbus::Connection;
use zbus::wire::ObjectPath;

use crate::Failure;

const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const OBJECT_MANAGER: &str = "org.freedesktop.DBus.ObjectManager";

/// A D-Bus value as JSON, for the types the API uses.
pub fn to_json(v: &zbus::Variant<'_>) -> Value {
    use zbus::Variant as V;
    match v {
        V::Bool(b) => json!(b),
        V::U8(n) => json!(n),
        V::U16(n) => json!(n),
        V::I16(n) => json!(n),
        V::U32(n) => json!(n),
        V::U64(n) => json!(n),
        V::I32(n) => json!(n),
        V::I64(n) => json!(n),
        V::F64(n) => json!(n),
        V::Str(s) => json!(s.as_str()),
        V::ObjectPath(p) => json!(p.as_str()),
        V::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        V::Dict(d) => {
            let map: Option<HashMap<String, zbus::OwnedVariant>> =
                d.try_clone().ok().and_then(|d| HashMap::try_from(d).ok());
            match map {
                Some(map) => {
                    Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
                }
                None => json!(format!("{d:?}")),
            }
        }
        V::Structure(s) => Value::Array(s.fields().iter().map(to_json).collect()),
        V::Variant(inner) => to_json(inner),
        other => json!(format!("{other:?}")),
    }
}

/// Properties as a JSON object.
fn props_json(props: &HashMap<String, zbus::OwnedVariant>) -> Map<String, Value> {
    props.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// One signal of the daemon as a JSON event, or `None` for the ones that only repeat
/// another event (the ObjectManager's, which `call_added`/`call_removed` already say) or
/// whose body does not match the API's signature.
fn event(msg: &zbus::Message) -> Option<Value> {
    let header = msg.header();
    let interface = header.interface()?.as_str().to_owned();
    let member = header.member()?.as_str().to_owned();
    let path = header.path()?.as_str().to_owned();
    let body = msg.body();
    let value = match (interface.as_str(), member.as_str()) {
        (iface::MANAGER, "IncomingCall") => {
            let (call, number, name): (ObjectPath<'_>, String, String) = body.deserialize().ok()?;
            json!({ "event": "incoming_call", "path": call.as_str(), "number": number, "name": name })
        }
        (iface::MANAGER, "CallAdded") => {
            let (call, props): (ObjectPath<'_>, HashMap<String, zbus::OwnedVariant>) =
                body.deserialize().ok()?;
            json!({ "event": "call_added", "path": call.as_str(), "properties": props_json(&props) })
        }
        (iface::MANAGER, "CallRemoved") => {
            let (call, reason): (ObjectPath<'_>, String) = body.deserialize().ok()?;
            json!({ "event": "call_removed", "path": call.as_str(), "reason": reason })
        }
        (iface::CALL, "DtmfReceived") => {
            let digits: String = body.deserialize().ok()?;
            json!({ "event": "dtmf", "path": path, "digits": digits })
        }
        (iface::PRESENCE, "Changed") => {
            let (number, name, online): (String, String, bool) = body.deserialize().ok()?;
            json!({ "event": "presence", "number": number, "name": name, "online": online })
        }
        (iface::CONTACTS, "Changed") => json!({ "event": "contacts_changed" }),
        (iface::MESSAGES, "Received") => {
            let (id, from, text, at): (String, String, String, u64) = body.deserialize().ok()?;
            json!({ "event": "message_received", "id": id, "from": from, "text": text, "at": at })
        }
        (iface::MESSAGES, "StatusChanged") => {
            let (id, status): (String, String) = body.deserialize().ok()?;
            json!({ "event": "message_status", "id": id, "status": status })
        }
        (iface::FILES, "Received") => {
            let (id, from, name, file): (String, String, String, String) =
                body.deserialize().ok()?;
            json!({ "event": "file_received", "id": id, "from": from, "name": name, "path": file })
        }
        (iface::FILES, "Progress") => {
            let (id, done, size): (String, u64, u64) = body.deserialize().ok()?;
            json!({ "event": "file_progress", "id": id, "done": done, "size": size })
        }
        (iface::FILES, "StatusChanged") => {
            let (id, status): (String, String) = body.deserialize().ok()?;
            json!({ "event": "file_status", "id": id, "status": status })
        }
        (iface::VOICE, "Received") => {
            let (id, from, duration_ms): (String, String, u32) = body.deserialize().ok()?;
            json!({ "event": "voice_received", "id": id, "from": from, "duration_ms": duration_ms })
        }
        (PROPERTIES, "PropertiesChanged") => {
            let (of, changed, _invalidated): (
                String,
                HashMap<String, zbus::OwnedVariant>,
                Vec<String>,
            ) = body.deserialize().ok()?;
            if of == iface::CALL {
                json!({ "event": "call_changed", "path": path, "changed": props_json(&changed) })
            } else if of == iface::CONFERENCE {
                json!({ "event": "conference_changed", "path": path, "changed": props_json(&changed) })
            } else {
                json!({ "event": "properties", "interface": of, "changed": props_json(&changed) })
            }
        }
        (OBJECT_MANAGER, _) => return None,
        _ => json!({ "event": "signal", "interface": interface, "member": member, "path": path }),
    };
    Some(value)
}

pub async fn run(conn: &Connection) -> Result<(), Failure> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS_NAME)
        .path_namespace(ROOT_PATH)
        .build()?;
    let mut events =
        zbus::MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(256))
            .await?
            .filter_map(|m| event(&m.ok()?));
    // Fail now, with exit status 3, if nobody serves the API.
    zbus::fdo::IntrospectableProxy::builder(conn)
        .destination(BUS_NAME)
        .path(ROOT_PATH)
        .build()
        .await?
        .introspect()
        .await?;
    let mut out = std::io::stdout();
    while let Some(line) = events.next().await {
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}
