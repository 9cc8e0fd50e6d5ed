//! `phonectl watch`: every signal of the daemon as one JSON line, until interrupted.

use std::io::Write;

use phoned_proto::dbus::{BUS_NAME, ContactsProxy, PresenceProxy, ROOT_PATH};
use serde_json::{Value, json};
use smol::stream::StreamExt;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;

/// A D-Bus value as JSON, for the types the API uses.
fn to_json(v: &zbus::Variant<'_>) -> Value {
    use zbus::Variant as V;
    match v {
        V::Bool(b) => json!(b),
        V::U32(n) => json!(n),
        V::U64(n) => json!(n),
        V::I32(n) => json!(n),
        V::I64(n) => json!(n),
        V::Str(s) => json!(s.as_str()),
        V::ObjectPath(p) => json!(p.as_str()),
        V::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        V::Variant(inner) => to_json(inner),
        other => json!(format!("{other:?}")),
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
    let mut all = presence_lines.or(contact_lines).or(prop_lines);
    let mut out = std::io::stdout();
    while let Some(line) = all.next().await {
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}
