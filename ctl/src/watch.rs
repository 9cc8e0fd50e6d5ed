//! `phonectl watch`: every signal of the daemon as one JSON line, until interrupted: the
//! root object's, and each call object's (its property changes with their `path`, its
//! quality among them once a second while it is active).

use std::collections::HashMap;
use std::io::Write;

use phoned_proto::dbus::{BUS_NAME, ContactsProxy, PresenceProxy, ROOT_PATH};
use serde_json::{Value, json};
use smol::stream::StreamExt;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;

/// A D-Bus value as JSON, for the types the API uses.
pub fn to_json(v: &zbus::Variant<'_>) -> Value {
    use zbus::Variant as V;
    match v {
        V::Bool(b) => json!(b),
        V::U32(n) => json!(n),
        V::U64(n) => json!(n),
        V::I32(n) => json!(n),
        V::I64(n) => json!(n),
        V::F64(x) => json!(x),
        V::Str(s) => json!(s.as_str()),
        V::ObjectPath(p) => json!(p.as_str()),
        V::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        // `a{sv}` (a call's `Quality`): an object keyed by the keys' text.
        V::Dict(d) => Value::Object(
            d.iter()
                .map(|(k, v)| match k {
                    V::Str(s) => (s.as_str().to_owned(), to_json(v)),
                    other => (format!("{other}"), to_json(v)),
                })
                .collect(),
        ),
        V::Variant(inner) => to_json(inner),
        other => json!(format!("{other:?}")),
    }
}

/// A call signal as JSON, or `None` for signals reported elsewhere.
fn call_event(msg: &zbus::Message) -> Option<Value> {
    let header = msg.header();
    let member = header.member()?.as_str().to_owned();
    let path = header.path()?.as_str().to_owned();
    let body = msg.body();
    match member.as_str() {
        "IncomingCall" => {
            let (call, number, name): (zbus::wire::ObjectPath<'_>, String, String) =
                body.deserialize().ok()?;
            Some(
                json!({ "event": "incoming_call", "path": call.as_str(), "number": number, "name": name }),
            )
        }
        "CallRemoved" => {
            let (call, reason): (zbus::wire::ObjectPath<'_>, String) = body.deserialize().ok()?;
            Some(json!({ "event": "call_removed", "path": call.as_str(), "reason": reason }))
        }
        // A call object's properties (its state, its quality once a second); the root's
        // come through `prop_lines`.
        "PropertiesChanged" if path != ROOT_PATH => {
            let (interface, changed, _): (
                String,
                HashMap<String, zbus::OwnedVariant>,
                Vec<String>,
            ) = body.deserialize().ok()?;
            let changed: serde_json::Map<String, Value> = changed
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect();
            Some(
                json!({ "event": "properties", "path": path, "interface": interface, "changed": changed }),
            )
        }
        "DtmfReceived" => {
            let digits: String = body.deserialize().ok()?;
            Some(json!({ "event": "dtmf", "path": path, "digits": digits }))
        }
        _ => None,
    }
}

pub async fn run(conn: &Connection) -> Result<(), Failure> {
    let presence = PresenceProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let contacts = ContactsProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let props = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(BUS_NAME)
        .path(ROOT_PATH)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    // Fail now, with exit status 3, if nobody serves the API.
    presence.inner().introspect().await?;

    let presence_lines = presence.receive_changed().await?.filter_map(|s| {
        let a = s.args().ok()?;
        Some(json!({ "event": "presence", "number": a.number, "name": a.name, "online": a.online }))
    });
    let contact_lines = contacts
        .receive_changed()
        .await?
        .map(|_| json!({ "event": "contacts_changed" }));
    let prop_lines = props.receive_properties_changed().await?.filter_map(|s| {
        let a = s.args().ok()?;
        let changed: serde_json::Map<String, Value> = a
            .changed_properties()
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect();
        Some(json!({ "event": "properties", "interface": a.interface_name().as_str(), "changed": changed }))
    });
    // Call signals come from the root (Manager) and from each call object: one match rule
    // over the daemon's whole object tree.
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS_NAME)
        .path_namespace(ROOT_PATH)
        .build()?;
    let call_lines =
        zbus::MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(64))
            .await?
            .filter_map(|m| call_event(&m.ok()?));
    let mut all = presence_lines
        .or(contact_lines)
        .or(prop_lines)
        .or(call_lines);
    let mut out = std::io::stdout();
    while let Some(line) = all.next().await {
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}
