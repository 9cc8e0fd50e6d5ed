//! Following a transfer the daemon took (`file send`, `voice send`) until the relay has
//! accepted it, or with `--wait` until it is stored, so that a refusal (an unknown number, a
//! full mailbox, a file too large) is this command's failure, not a later surprise.
//!
//! The daemon's `Files.Progress` says the relay took the transfer (its first one comes as
//! soon as the relay accepted the upload, with where it resumes) and how far it got;
//! `Files.StatusChanged` says `stored`, `delivered` or `failed` (the reason from
//! `Files.Reasons`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use phoned_proto::dbus::files::{Progress, ProgressStream, StatusChanged, StatusChangedStream};
use phoned_proto::dbus::{AccountProxy, FilesProxy};
use phoned_proto::state::ConnectionState;
use phoned_proto::transfer::FileStatus;
use serde_json::json;
use smol::stream::StreamExt;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;
use crate::commands::print;

/// How long a send without `--wait` waits for the relay to accept the transfer before it
/// returns, saying it is still queued.
const ACCEPT_LIMIT: Duration = Duration::from_secs(15);

/// The daemon's transfer signals, subscribed to before the transfer is handed over so
/// that nothing it says about it is missed.
pub struct Follow {
    files: FilesProxy<'static>,
    progress: ProgressStream,
    status: StatusChangedStream,
}

/// Where following a transfer ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The relay accepted it and the upload runs (without `--wait`).
    Accepted,
    /// On the relay (`stored`) or already on the recipient's device (`delivered`).
    Done(FileStatus),
    /// Refused, with the relay's reason.
    Failed(String),
    /// Still queued: the link is down (`offline`/`connecting`) or the relay did not
    /// answer in time; the daemon sends it when it can.
    Queued(String),
}

impl Follow {
    pub async fn subscribe(conn: &Connection) -> Result<Self, Failure> {
        let files = FilesProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let progress = files.receive_progress().await?;
        let status = files.receive_status_changed().await?;
        Ok(Self {
            files,
            progress,
            status,
        })
    }

    /// Follows transfer `id` (`what` names it for people: "file.pdf", "voice message"),
    /// prints the outcome, and fails when the relay refused it.
    pub async fn finish(
        mut self,
        conn: &Connection,
        id: &str,
        what: &str,
        wait: bool,
        json: bool,
    ) -> Result<(), Failure> {
        let link = link_state(conn).await;
        let mut bar = Bar::new(json, wait);
        let outcome = if !wait && link != ConnectionState::Online {
            Outcome::Queued(format!("the link to the relay is {link}"))
        } else {
            let followed = self.follow(id, wait, &mut bar);
            if wait {
                followed.await?
            } else {
                smol::future::or(followed, async {
                    smol::Timer::after(ACCEPT_LIMIT).await;
                    Ok(Outcome::Queued("the relay has not taken it yet".into()))
                })
                .await?
            }
        };
        bar.clear();
        let (status, reason) = match &outcome {
            Outcome::Accepted => ("sending", None),
            Outcome::Done(s) => (s.as_str(), None),
            Outcome::Failed(r) => (FileStatus::Failed.as_str(), Some(r.as_str())),
            Outcome::Queued(r) => (FileStatus::Queued.as_str(), Some(r.as_str())),
        };
        let value = json!({ "id": id, "status": status, "reason": reason });
        match outcome {
            Outcome::Failed(reason) => {
                if json {
                    print(true, value, "")?;
                }
                Err(Failure::Daemon(format!("{what} ({id}) failed: {reason}")))
            }
            Outcome::Accepted => print(json, value, &format!("sending {what} as {id}")),
            Outcome::Done(FileStatus::Delivered) => {
                print(json, value, &format!("{what} ({id}) delivered"))
            }
            Outcome::Done(_) => print(
                json,
                value,
                &format!("{what} ({id}) stored on the relay until the recipient collects it"),
            ),
            Outcome::Queued(why) => print(
                json,
                value,
                &format!("{what} queued as {id}: {why}; it is sent when the relay takes it"),
            ),
        }
    }

    async fn follow(&mut self, id: &str, wait: bool, bar: &mut Bar) -> Result<Outcome, Failure> {
        loop {
            let event = smol::future::or(
                async { self.progress.next().await.map(Event::Progress) },
                async { self.status.next().await.map(Event::Status) },
            )
            .await;
            match event {
                Some(Event::Progress(p)) => {
                    let Ok(a) = p.args() else { continue };
                    if a.id != id {
                        continue;
                    }
                    if !wait {
                        return Ok(Outcome::Accepted);
                    }
                    bar.show(id, a.done, a.size);
                }
                Some(Event::Status(s)) => {
                    let Ok(a) = s.args() else { continue };
                    if a.id != id {
                        continue;
                    }
                    match a.status.parse::<FileStatus>() {
                        Ok(s @ (FileStatus::Stored | FileStatus::Delivered)) => {
                            return Ok(Outcome::Done(s));
                        }
                        Ok(FileStatus::Failed) => {
                            let reason = self
                                .files
                                .reasons()
                                .await
                                .ok()
                                .and_then(|mut r| r.remove(id))
                                .unwrap_or_else(|| "the relay refused it".into());
                            return Ok(Outcome::Failed(reason));
                        }
                        _ => {}
                    }
                }
                None => {
                    return Err(Failure::Daemon(
                        "the daemon's signals stopped (did phoned exit?)".into(),
                    ));
                }
            }
        }
    }
}

enum Event {
    Progress(Progress),
    Status(StatusChanged),
}

/// The account's link to the relay; `offline` when it cannot be read.
async fn link_state(conn: &Connection) -> ConnectionState {
    let Ok(account) = AccountProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
    else {
        return ConnectionState::Offline;
    };
    account
        .connection_state()
        .await
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ConnectionState::Offline)
}

/// How `--wait` shows progress: a bar on a terminal (stderr), JSON lines with `--json`
/// (stdout), nothing otherwise.
struct Bar {
    json: bool,
    tty: bool,
    drawn: bool,
}

impl Bar {
    fn new(json: bool, wait: bool) -> Self {
        Self {
            json: json && wait,
            tty: wait && !json && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    fn show(&mut self, id: &str, done: u64, size: u64) {
        if self.json {
            let line = json!({ "event": "progress", "id": id, "done": done, "size": size });
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        } else if self.tty {
            let _ = write!(std::io::stderr().lock(), "\r{}", bar_line(done, size));
            self.drawn = true;
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r{:60}\r", "");
            self.drawn = false;
        }
    }
}

/// `[#########           ]  45 %  4.5 of 10.0 MiB`.
fn bar_line(done: u64, size: u64) -> String {
    const WIDTH: u64 = 20;
    let done = done.min(size);
    let (filled, percent) = match size {
        0 => (WIDTH, 100),
        _ => (done * WIDTH / size, done * 100 / size),
    };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    format!(
        "[{}{}] {percent:>3} %  {:.1} of {:.1} MiB",
        "#".repeat(filled as usize),
        " ".repeat((WIDTH - filled) as usize),
        mib(done),
        mib(size)
    )
}

#[cfg(test)]
mod tests {
    use super::bar_line;

    #[test]
    fn the_bar_fills_with_the_transfer() {
        assert_eq!(
            bar_line(0, 10 << 20),
            "[                    ]   0 %  0.0 of 10.0 MiB"
        );
        assert_eq!(
            bar_line(5 << 20, 10 << 20),
            "[##########          ]  50 %  5.0 of 10.0 MiB"
        );
        // An empty file is done at once; a resumed count past the size stays at 100 %.
        assert!(bar_line(0, 0).contains("100 %"));
        assert!(bar_line(11, 10).starts_with("[####################] 100 %"));
    }
}
