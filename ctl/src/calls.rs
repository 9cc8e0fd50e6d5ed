//! Call commands: dial, answer, reject, hangup, hold, resume, mute, dtmf, calls, history.
//! A call's quality figures are read and shown by [`quality`].

use std::collections::HashMap;
use std::time::Duration;

use phoned_proto::call::CallState;
use phoned_proto::dbus::{CallProxy, HistoryProxy, ManagerProxy, parse_call_path};
use serde_json::json;
use smol::stream::StreamExt;
use zbus::Connection;
use zbus::proxy::CacheProperties;
use zbus::wire::OwnedObjectPath;

use crate::Failure;
use crate::commands::print;
use crate::quality;

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
        // A call's number exactly as its path ends, or its whole path.
        let number = if w.starts_with('/') {
            parse_call_path(w)
        } else {
            w.parse::<u32>().ok().filter(|n| n.to_string() == w)
        };
        let found = number.and_then(|n| {
            calls
                .into_iter()
                .find(|p| parse_call_path(p.as_str()) == Some(n))
        });
        return match found {
            Some(p) => call(conn, p).await,
            None => Err(Failure::Daemon(format!("no call {w} (see phonectl calls)"))),
        };
    }
    use CallState::{Active, Dialing, Held, Incoming, Ringing, Waiting};
    let wanted: &[CallState] = match pick {
        Pick::Ringing => &[Incoming, Waiting],
        Pick::Active => &[Active],
        Pick::Held => &[Held],
        Pick::Any => &[Active, Held, Ringing, Dialing, Incoming, Waiting],
    };
    for state in wanted {
        for p in &calls {
            let c = call(conn, p.clone()).await?;
            match c.state().await {
                Ok(s) if s == state.as_str() => return Ok(c),
                Err(e) if !gone(&e) => return Err(e.into()),
                _ => {}
            }
        }
    }
    let names: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
    Err(Failure::Daemon(format!(
        "no {} call (see phonectl calls)",
        names.join(" or ")
    )))
}

/// The call's number, as `phonectl` shows it.
fn short(path: &str) -> String {
    parse_call_path(path).map_or_else(|| path.to_owned(), |n| n.to_string())
}

/// `dial TARGET [--wait]`. Without `--wait` it still follows the call until the relay
/// has placed it (it rings at the other end) or refused it (an unknown number, offline,
/// busy), so a call that cannot go through is an error (exit 1) and not "calling".
pub async fn dial(conn: &Connection, json: bool, target: &str, wait: bool) -> Result<(), Failure> {
    let m = manager(conn).await?;
    // Listen before dialing: a call that fails at once is gone before `Dial` returns.
    let mut removed = m.receive_call_removed().await?;
    let path = m.dial(target, HashMap::new()).await?;
    let c = call(conn, path.clone()).await?;
    let number = c.remote_number().await.unwrap_or_default();
    let (reached, limit): (&[CallState], _) = if wait {
        (&[CallState::Active], Duration::from_secs(120))
    } else {
        (
            &[CallState::Ringing, CallState::Active, CallState::Held],
            Duration::from_secs(15),
        )
    };
    let deadline = smol::Timer::after(limit);
    let watch = async {
        loop {
            match c.state().await {
                Ok(state) => {
                    if let Some(s) = reached.iter().find(|s| s.as_str() == state) {
                        return Waited::Reached(*s);
                    }
                }
                Err(e) => {
                    // The daemon left the bus: nothing will say how the call went. (Any
                    // other error: the call object is gone, and `CallRemoved` says why.)
                    if let Failure::NotRunning(_) = Failure::from(e) {
                        return Waited::Gone;
                    }
                }
            }
            // The next signal, or a moment: never a busy loop, even once the bus is gone
            // (then the signal stream ends and every call fails at once).
            let next = smol::future::or(
                async {
                    match removed.next().await {
                        None => Next::Gone,
                        Some(s) => match s.args() {
                            Ok(a) if a.call.as_str() == path.as_str() => {
                                Next::Removed(a.reason.clone())
                            }
                            _ => Next::Other,
                        },
                    }
                },
                async {
                    smol::Timer::after(Duration::from_millis(100)).await;
                    Next::Other
                },
            )
            .await;
            match next {
                Next::Removed(reason) => return Waited::Ended(reason),
                Next::Gone => return Waited::Gone,
                Next::Other => {}
            }
        }
    };
    let waited = smol::future::or(watch, async {
        deadline.await;
        Waited::TimedOut
    })
    .await;
    if let Waited::Gone = waited {
        return Err(Failure::NotRunning(
            "phoned went away while phonectl followed the call".into(),
        ));
    }
    let n = short(path.as_str());
    let (state, reason) = (waited.state(), waited.reason());
    let human = match &waited {
        Waited::Reached(CallState::Active) => format!("call {n} is active"),
        Waited::Reached(_) => format!("calling {number}: call {n} rings"),
        Waited::Ended(reason) => format!("call {n} ended: {reason}"),
        Waited::TimedOut if wait => format!("call {n}: still not answered"),
        Waited::TimedOut => format!("calling {number}: call {n} (the relay has not placed it yet)"),
        Waited::Gone => String::new(),
    };
    let ok = match waited {
        Waited::Reached(_) => true,
        Waited::TimedOut => !wait,
        Waited::Ended(_) | Waited::Gone => false,
    };
    if !ok {
        // The outcome on stdout (with --json) for scripts, the failure on stderr.
        if json {
            print(
                true,
                json!({ "path": path.as_str(), "state": state, "reason": reason }),
                "",
            )?;
        }
        return Err(Failure::Daemon(format!(
            "the call to {number} did not connect ({})",
            if reason.is_empty() { state } else { reason }
        )));
    }
    print(
        json,
        json!({ "path": path.as_str(), "state": state, "reason": reason }),
        &human,
    )
}

/// What following a dialled call saw next.
enum Next {
    /// `CallRemoved` for it, with the reason.
    Removed(String),
    /// The daemon's signals ended: the bus or the daemon is gone.
    Gone,
    /// Another signal, or nothing for a moment.
    Other,
}

/// How following a dialled call ends.
enum Waited {
    /// It reached this state.
    Reached(CallState),
    /// With the reason of `CallRemoved`.
    Ended(String),
    TimedOut,
    /// The daemon went away.
    Gone,
}

impl Waited {
    /// The `state` it prints: the call's state, or `timeout` (`phonectl`'s own word).
    fn state(&self) -> &'static str {
        match self {
            Waited::Reached(state) => state.as_str(),
            Waited::Ended(_) => CallState::Ended.as_str(),
            Waited::TimedOut => "timeout",
            Waited::Gone => "unknown",
        }
    }

    fn reason(&self) -> &str {
        match self {
            Waited::Ended(reason) => reason,
            _ => "",
        }
    }
}

pub async fn list(conn: &Connection, json: bool, stats: bool) -> Result<(), Failure> {
    let paths = manager(conn).await?.calls().await?;
    let mut rows = Vec::new();
    let mut human = String::new();
    for p in paths {
        let c = call(conn, p.clone()).await?;
        // A call that ended between the listing and now has no object left to read.
        let read = async {
            Ok::<_, zbus::Error>((
                c.state().await?,
                c.remote_held().await?,
                c.direction().await?,
                c.remote_number().await?,
                c.remote_name().await?,
                c.reason().await?,
                c.audio_error().await?,
            ))
        };
        let (state, remote_held, direction, number, name, reason, audio) = match read.await {
            Err(e) if gone(&e) => continue,
            read => read?,
        };
        let quality = match stats {
            false => None,
            true => match c.quality().await {
                Err(e) if gone(&e) => continue,
                read => Some(quality::Figures::from_property(read?)),
            },
        };
        human.push_str(&format!(
            "{:<4} {:<9} {direction:<9} {number:<16} {name}\n",
            short(p.as_str()),
            shown_state(&state, remote_held)
        ));
        if !audio.is_empty() {
            human.push_str(&format!("     audio: {audio}\n"));
        }
        let mut row = json!({ "path": p.as_str(), "state": state, "remote_held": remote_held,
                "direction": direction, "remote_number": number, "remote_name": name,
                "reason": reason, "audio_error": audio });
        if let Some(quality) = quality {
            human.push_str(&format!("     quality: {}\n", quality.human()));
            row["quality"] = quality.to_json();
        }
        rows.push(row);
    }
    if rows.is_empty() {
        human.push_str("no calls");
    }
    print(json, json!(rows), human.trim_end())
}

/// Whether `e` says the object is not (or no longer) there. While a call object is being
/// removed, a read can find its path with the interface already gone.
fn gone(e: &zbus::Error) -> bool {
    const GONE: [&str; 2] = [
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownInterface",
    ];
    match e {
        zbus::Error::MethodError(name, _, _) => GONE.contains(&name.as_str()),
        zbus::Error::FDO(e) => matches!(
            **e,
            zbus::fdo::Error::UnknownObject(_) | zbus::fdo::Error::UnknownInterface(_)
        ),
        _ => false,
    }
}

/// A call's state as `phonectl calls` shows it: the other side's hold is said in words.
fn shown_state(state: &str, remote_held: bool) -> String {
    match (state, remote_held) {
        ("active", true) => "active (held by the other side)".to_owned(),
        ("held", true) => "held (by both sides)".to_owned(),
        _ => state.to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use super::{gone, shown_state};

    #[test]
    fn a_call_removed_mid_read_counts_as_gone_and_other_errors_do_not() {
        let fdo = |e: zbus::fdo::Error| zbus::Error::FDO(Box::new(e));
        assert!(gone(&fdo(zbus::fdo::Error::UnknownObject("x".into()))));
        assert!(gone(&fdo(zbus::fdo::Error::UnknownInterface("x".into()))));
        assert!(!gone(&fdo(zbus::fdo::Error::AccessDenied("x".into()))));
        assert!(!gone(&zbus::Error::InvalidReply));
    }

    #[test]
    fn the_other_sides_hold_is_said_in_words() {
        assert_eq!(
            shown_state("active", true),
            "active (held by the other side)"
        );
        assert_eq!(shown_state("held", true), "held (by both sides)");
        assert_eq!(shown_state("held", false), "held");
        assert_eq!(shown_state("waiting", false), "waiting");
    }
}
