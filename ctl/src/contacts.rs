//! `phonectl contacts`: add, rm, rename, ls, and import or export as vCard.

use std::io::{Read, Write};

use phoned_proto::dbus::ContactsProxy;
use serde_json::json;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;
use crate::cli::ContactsAction;
use crate::commands::print;

/// Whether a contact's number can be called on the relay: the daemon keeps phoned
/// numbers in their canonical form and external ones (`+44 …`, `0…`) as written.
fn dialable(number: &str) -> bool {
    number.parse::<phoned_proto::Number>().is_ok()
}

pub async fn run(conn: &Connection, json: bool, action: ContactsAction) -> Result<(), Failure> {
    let c = ContactsProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    match action {
        ContactsAction::Add { name, number } => {
            let id = c.add(&name, &number).await?;
            print(
                json,
                json!({ "id": id, "name": name, "number": number }),
                &format!("added {name} ({number}) as {id}"),
            )
        }
        ContactsAction::Rm { contact } => {
            let (id, name, _) = c.lookup(&contact).await?;
            c.remove(&id).await?;
            print(json, json!({ "id": id }), &format!("removed {name}"))
        }
        ContactsAction::Rename { contact, name } => {
            let (id, old, _) = c.lookup(&contact).await?;
            c.rename(&id, &name).await?;
            print(
                json,
                json!({ "id": id, "name": name }),
                &format!("renamed {old} to {name}"),
            )
        }
        ContactsAction::Ls => {
            let list = c.list().await?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|(id, name, number)| {
                        json!({ "id": id, "name": name, "number": number, "dialable": dialable(number) })
                    })
                    .collect();
                return print(true, json!(rows), "");
            }
            let mut human = String::new();
            for (id, name, number) in &list {
                let reach = if dialable(number) {
                    ""
                } else {
                    "  (not on this relay)"
                };
                human.push_str(&format!("{id:<6} {name:<32} {number}{reach}\n"));
            }
            if list.is_empty() {
                human.push_str("no contacts");
            }
            print(false, json!(null), human.trim_end())
        }
        ContactsAction::Import { file } => {
            let text = if file.as_os_str() == "-" {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .map_err(|e| Failure::Usage(format!("reading stdin: {e}")))?;
                t
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?
            };
            let (ids, skipped) = c.import_vcard_report(&text).await?;
            let mut human = format!("imported {} contacts", ids.len());
            if !skipped.is_empty() {
                human.push_str(&format!(", skipped {}:", skipped.len()));
                for why in &skipped {
                    human.push_str(&format!("\n  {why}"));
                }
            }
            print(json, json!({ "imported": ids, "skipped": skipped }), &human)
        }
        ContactsAction::Export { file } => {
            let text = c.export_vcard().await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .map_err(|e| Failure::Daemon(format!("{}: {e}", path.display())))?;
                    print(
                        json,
                        json!({ "file": path }),
                        &format!("exported to {}", path.display()),
                    )
                }
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| Failure::Daemon(format!("writing output: {e}"))),
            }
        }
    }
}
