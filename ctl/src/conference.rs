//! Conference commands: `conference` (show), `conference create`, `merge`, `add`,
//! `remove` and `leave`. A conference is named by the call that is this device's place in
//! it (`/org/phoned/Phone1/Conference/<n>` beside `/org/phoned/Phone1/Call/<n>`).

use std::time::Duration;

use phoned_proto::call::CallState;
use phoned_proto::dbus::{
    CallProxy, ConferenceProxy, ManagerProxy, conference_path, parse_call_path,
};
use serde_json::{Value, json};
use zbus::Connection;
use zbus::proxy::CacheProperties;
use zbus::wire::OwnedObjectPath;

use crate::Failure;
use crate::cli::ConferenceAction;
use crate::commands::print;

async fn manager(conn: &Connection) -> Result<ManagerProxy<'static>, Failure> {
    Ok(ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?)
}

async fn proxy(conn: &Connection, path: String) -> Result<ConferenceProxy<'static>, Failure> {
    let path = OwnedObjectPath::try_from(path).map_err(|e| Failure::Daemon(e.to_string()))?;
    Ok(ConferenceProxy::builder(conn)
        .path(path)
        .cache_properties(CacheProperties::No)
        .build()
        .await?)
}

/// The conference's number: the number of the call that is this device's place in it.
fn id(path: &str) -> Option<u32> {
    path.strip_prefix(phoned_proto::dbus::ROOT_PATH)?
        .strip_prefix("/Conference/")?
        .parse()
        .ok()
}

/// This device's calls, the active first, then the held, then the rest (ringing,
/// being placed).
async fn ranked_calls(conn: &Connection) -> Result<Vec<(usize, u32)>, Failure> {
    let calls = manager(conn).await?.calls().await?;
    let mut found: Vec<(usize, u32)> = Vec::new();
    for path in calls {
        let Some(n) = parse_call_path(path.as_str()) else {
            continue;
        };
        let call = CallProxy::builder(conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        // A call that ended between the listing and now has no state to read.
        let Ok(state) = call.state().await else {
            continue;
        };
        let rank = [CallState::Active, CallState::Held]
            .iter()
            .position(|s| s.as_str() == state)
            .unwrap_or(2);
        found.push((rank, n));
    }
    found.sort();
    Ok(found)
}

/// The conference this device is in: the one of its active call, else of a held call,
/// else of a call that rings or is being placed.
async fn current(conn: &Connection) -> Result<ConferenceProxy<'static>, Failure> {
    for (_, n) in ranked_calls(conn).await? {
        let c = proxy(conn, conference_path(n)).await?;
        // Only calls that are conferences have the object.
        if c.host().await.is_ok() {
            return Ok(c);
        }
    }
    Err(Failure::Daemon(
        "not in a conference (see phonectl calls)".into(),
    ))
}

/// The active call, else a held one.
async fn answered_call(conn: &Connection) -> Result<Option<CallProxy<'static>>, Failure> {
    let Some((_, n)) = ranked_calls(conn)
        .await?
        .into_iter()
        .find(|(rank, _)| *rank < 2)
    else {
        return Ok(None);
    };
    let path = OwnedObjectPath::try_from(phoned_proto::dbus::call_path(n))
        .map_err(|e| Failure::Daemon(e.to_string()))?;
    Ok(Some(
        CallProxy::builder(conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await?,
    ))
}

/// The conference as `phonectl conference --json` prints it, and as text.
async fn describe(c: &ConferenceProxy<'_>) -> Result<(Value, String), Failure> {
    let path = c.inner().path().as_str().to_owned();
    let (host, call, parties) = (c.host().await?, c.call().await?, c.parties().await?);
    let n = id(&path).map_or_else(|| path.clone(), |n| n.to_string());
    let mut human = format!("conference {n}, host {host}\n");
    let rows: Vec<Value> = parties
        .iter()
        .map(|(number, name, state, speaking)| {
            human.push_str(&format!(
                "  {number:<16} {name:<20} {state:<8}{}\n",
                if *speaking { " speaking" } else { "" }
            ));
            json!({ "number": number, "name": name, "state": state, "speaking": speaking })
        })
        .collect();
    let value = json!({ "id": id(&path), "path": path, "host": host,
                        "call": call.as_str(), "parties": rows });
    Ok((value, human.trim_end().to_owned()))
}

/// The new conference at `path`, once the relay's first roster has reached the daemon
/// (its host is known), or as it is after a few seconds.
async fn settled(
    conn: &Connection,
    path: OwnedObjectPath,
) -> Result<ConferenceProxy<'static>, Failure> {
    let c = proxy(conn, path.as_str().to_owned()).await?;
    for _ in 0..50 {
        if c.host().await.is_ok_and(|h| !h.is_empty()) {
            break;
        }
        smol::Timer::after(Duration::from_millis(100)).await;
    }
    Ok(c)
}

pub async fn run(
    conn: &Connection,
    json: bool,
    action: Option<ConferenceAction>,
) -> Result<(), Failure> {
    let (c, done) = match action {
        None => (current(conn).await?, None),
        Some(ConferenceAction::Create { numbers }) => {
            let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
            let path = manager(conn).await?.create_conference(&numbers).await?;
            (settled(conn, path).await?, None)
        }
        Some(ConferenceAction::Merge) => {
            let path = manager(conn).await?.merge().await?;
            (settled(conn, path).await?, None)
        }
        Some(ConferenceAction::Add { number }) => {
            let c = match current(conn).await {
                Ok(c) => {
                    c.add(&number).await?;
                    c
                }
                // No conference: the answered call becomes one.
                Err(none) => {
                    let Some(call) = answered_call(conn).await? else {
                        return Err(none);
                    };
                    let path = call.add_party(&number).await?;
                    proxy(conn, path.as_str().to_owned()).await?
                }
            };
            (c, Some(("added", number)))
        }
        Some(ConferenceAction::Remove { number }) => {
            let c = current(conn).await?;
            c.remove(&number).await?;
            (c, Some(("removed", number)))
        }
        Some(ConferenceAction::Leave) => {
            let c = current(conn).await?;
            let path = c.inner().path().as_str().to_owned();
            c.leave().await?;
            return print(
                json,
                json!({ "path": path, "id": id(&path) }),
                "left the conference",
            );
        }
    };
    match done {
        None => {
            let (value, human) = describe(&c).await?;
            print(json, value, &human)
        }
        Some((what, number)) => {
            let path = c.inner().path().as_str().to_owned();
            print(
                json,
                json!({ "path": path, "id": id(&path), "number": number }),
                &format!("{what} {number}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::id;

    #[test]
    fn ids_come_from_conference_paths_only() {
        assert_eq!(id("/org/phoned/Phone1/Conference/3"), Some(3));
        assert_eq!(id("/org/phoned/Phone1/Call/3"), None);
        assert_eq!(id("/org/phoned/Phone1/Conference/x"), None);
    }
}
