//! Call commands: dial, answer, reject, hangup, hold, resume, mute, dtmf, calls, history.

use std::collections::HashMap;
use std::time::Duration;

use phoned_proto::dbus::{CallProxy, HistoryProxy, ManagerProxy, ROOT_PATH};
use serde_json::json;
use smol::stream::StreamExt;
use zbus::Connection;
use zbus::proxy::CacheProperties;
use zbus::wire::OwnedObjectPath;

use crate::Failure;
use crate::commands::print;

/// What a call command acts on when no call is named.
#[derive(Clone, Copy)]
pub enum Pick {
    Ringing,
    Active,
    Held,
    Any,
}

async fn manager(conn: &Connection) -> Result<ManagerProxy<'static>, Failure> {
    Ok(ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?)
}

async fn call(conn: &Connection, path: OwnedObjectPath) -> Result<CallProxy<'static>, Failure> {
    Ok(CallProxy::builder(conn)
        .path(path)
        .cache_properties(CacheProperties::No)
        .build()
        .await?)
}

/// The call named by `which` (its number or object path), or the one `pick` finds.
pub async fn resolve(
    conn: &Connection,
    which: Option<&str>,
    pick: Pick,
) -> Result<CallProxy<'static>, Failure> {
    let calls = manager(conn).await?.calls().await?;
    if let Some(w) = which {
        let path = if w.starts_with('/') {
            w.to_owned()
        } else {
            format!("{ROOT_PATH}/Call/{w}")
        };
        return match calls.into_iter().find(|p| p.as_str() == path) {
            Some(p) => call(conn, p).await,
            None => Err(Failure::Daemon(format!("no call {w} (see phonectl calls)"))),
        };
    }
    let wanted: &[&str] = match pick {
        Pick::Ringing => &["incoming"],
        Pick::Active => &["active"],
        Pick::Held => &["held"],
        Pick::Any => &["active", "held", "ringing", "dialing", "incoming"],
    };
    for state in wanted {
        for p in &calls {
            let c = call(conn, p.clone()).await?;
            if c.state().await? == *state {
                return Ok(c);
            }
        }
    }
    Err(Failure::Daemon(format!(
        "no {} call (see phonectl calls)",
        wanted.join(" or ")
    )))
}

fn short(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `dial TARGET [--wait]`.
pub async fn dial(conn: &Connection, json: bool, target: &str, wait: bool) -> Result<(), Failure> {
    let m = manager(conn).await?;
    // Listen before dialing: a call that fails at once is gone before `Dial` returns.
    let mut removed = m.receive_call_removed().await?;
    let path = m.dial(target, HashMap::new()).await?;
    let c = call(conn, path.clone()).await?;
    if !wait {
        let number = c.remote_number().await.unwrap_or_default();
        return print(
            json,
            json!({ "path": path.as_str() }),
            &format!("calling {number}: call {}", short(path.as_str())),
        );
    }
    // Follow the call until it is answered or over.
    let deadline = smol::Timer::after(Duration::from_secs(120));
    let watch = async {
        loop {
            if let Ok(state) = c.state().await
                && state == "active"
            {
                return ("active".to_owned(), String::new());
            }
            let next = smol::future::or(
                async {
                    let s = removed.next().await?;
                    let a = s.args().ok()?;
                    (a.call.as_str() == path.as_str()).then(|| a.reason.clone())
                },
                async {
                    smol::Timer::after(Duration::from_millis(100)).await;
                    None
                },
            )
            .await;
            if let Some(reason) = next {
                return ("ended".to_owned(), reason);
            }
        }
    };
    let (state, reason) = smol::future::or(watch, async {
        deadline.await;
        ("timeout".to_owned(), String::new())
    })
    .await;
    let human = match state.as_str() {
        "active" => format!("call {} is active", short(path.as_str())),
        "ended" => format!("call {} ended: {reason}", short(path.as_str())),
        _ => format!("call {}: still not answered", short(path.as_str())),
    };
    print(
        json,
        json!({ "path": path.as_str(), "state": state, "reason": reason }),
        &human,
    )?;
    match state.as_str() {
        "active" => Ok(()),
        _ => Err(Failure::Daemon(format!(
            "the call did not connect ({})",
            if reason.is_empty() { &state } else { &reason }
        ))),
    }
}

pub async fn list(conn: &Connection, json: bool) -> Result<(), Failure> {
    let paths = manager(conn).await?.calls().await?;
    let mut rows = Vec::new();
    let mut human = String::new();
    for p in paths {
        let c = call(conn, p.clone()).await?;
        let (state, direction, number, name, reason) = (
            c.state().await?,
            c.direction().await?,
            c.remote_number().await?,
            c.remote_name().await?,
            c.reason().await?,
        );
        human.push_str(&format!(
            "{:<4} {state:<9} {direction:<9} {number:<16} {name}\n",
            short(p.as_str())
        ));
        rows.push(
            json!({ "path": p.as_str(), "state": state, "direction": direction,
                          "remote_number": number, "remote_name": name, "reason": reason }),
        );
    }
    if rows.is_empty() {
        human.push_str("no calls");
    }
    print(json, json!(rows), human.trim_end())
}

pub async fn history(conn: &Connection, json: bool, limit: u32) -> Result<(), Failure> {
    let h = HistoryProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let entries = h.list(limit).await?;
    let missed = h.missed_count().await?;
    if json {
        let rows: Vec<_> = entries
            .iter()
            .map(|(number, name, direction, result, start, duration, missed)| {
                json!({ "number": number, "name": name, "direction": direction, "result": result,
                        "start": start, "duration_ms": duration, "missed": missed })
            })
            .collect();
        return print(true, json!(rows), "");
    }
    let mut human = format!("{missed} missed\n");
    for (number, name, direction, result, start, duration, _) in &entries {
        human.push_str(&format!(
            "{}  {direction:<9} {number:<16} {name:<20} {result:<15} {}s\n",
            crate::commands::date(*start),
            duration / 1000
        ));
    }
    print(false, json!(null), human.trim_end())
}
