//! How adapters reach the driver: [`Handle`] sends commands (and waits for their reply),
//! link events and relay answers over one channel, reads the latest [`Snapshot`] without
//! touching the core, and announces the changes adapters make themselves (messages,
//! files, contacts).

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use phoned_proto::{AccountInfo, Event, Request, Response};
use smol::channel::Sender;

use crate::call::engine::Local;
use crate::call::media::Quality;
use crate::config::Config;
use crate::core::{
    AudioSource, Barrier, Change, Command, CoreError, LinkEvent, Reply, Snapshot, Token,
};
use crate::reload;
use crate::store::Store;
use crate::work::Work;
use phoned_client::Client;

use crate::link::media::MediaLink;

pub(super) type ReplySender = Sender<Result<Reply, CoreError>>;

/// What the driver's task receives.
pub(super) enum Msg {
    Command {
        command: Command,
        reply: Option<ReplySender>,
    },
    /// The link is up with this client.
    Online {
        client: Arc<Client>,
        media: Arc<MediaLink>,
        account: AccountInfo,
        online: Vec<(String, String)>,
    },
    Link(LinkEvent),
    /// An event the relay pushed.
    Event(Event),
    Answer {
        token: Token,
        result: Result<Response, CoreError>,
    },
    /// Asks for the live relay client (to open a bulk stream).
    Client(Sender<Option<Arc<Client>>>),
    /// What is wrong with `source`'s audio devices now (`None`: they work).
    Audio {
        source: AudioSource,
        problem: Option<String>,
    },
    /// Call `local`'s media measured its quality.
    Quality {
        local: Local,
        quality: Quality,
    },
}

/// The latest snapshot, replaced whole by the driver after each input. The lock only
/// guards the pointer swap: readers clone the `Arc` and let go.
pub(super) struct SnapshotCell(RwLock<Arc<Snapshot>>);

impl SnapshotCell {
    pub(super) fn new(s: Snapshot) -> SnapshotCell {
        SnapshotCell(RwLock::new(Arc::new(s)))
    }

    pub(super) fn get(&self) -> Arc<Snapshot> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set(&self, s: Snapshot) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(s);
    }
}

/// What every adapter gets: the way to the driver, the store, and where state lives.
#[derive(Clone)]
pub struct Handle {
    pub(super) tx: Sender<Msg>,
    pub(super) snapshot: Arc<SnapshotCell>,
    pub(super) changes: Sender<Change>,
    pub store: Store,
    pub state_dir: PathBuf,
    /// Where the config was read from, to read it again.
    pub config_path: PathBuf,
    /// The bounded queue for blocking work D-Bus callers ask for.
    pub work: Arc<Work>,
    /// Voice message recordings and playbacks: one at a time, as long as they last.
    pub audio_work: Arc<Work>,
    /// Held by whoever hands the text outbox to the relay ([`crate::messages`]): one at
    /// a time, oldest first, so a new message never overtakes an older one.
    pub outbox: Arc<smol::lock::Mutex<()>>,
}

fn stopped() -> CoreError {
    CoreError::failed("the daemon is stopping")
}

impl Handle {
    /// Runs `command` in the core and waits for its reply.
    pub async fn command(&self, command: Command) -> Result<Reply, CoreError> {
        let (tx, rx) = smol::channel::bounded(1);
        self.tx
            .send(Msg::Command {
                command,
                reply: Some(tx),
            })
            .await
            .map_err(|_| stopped())?;
        rx.recv().await.map_err(|_| stopped())?
    }

    /// Sends a request to the relay through the core; fails at once if offline.
    pub async fn request(&self, request: Request) -> Result<Response, CoreError> {
        match self.command(Command::Relay(request)).await? {
            Reply::Response(r) => Ok(r),
            other => Err(CoreError::failed(format!("unexpected reply {other:?}"))),
        }
    }

    /// The live relay client, to open bulk streams on; `None` while offline.
    pub async fn client(&self) -> Option<Arc<Client>> {
        let (tx, rx) = smol::channel::bounded(1);
        self.tx.send(Msg::Client(tx)).await.ok()?;
        rx.recv().await.ok().flatten()
    }

    /// What the core looked like after its latest input.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.get()
    }

    /// The config in effect.
    pub fn config(&self) -> Arc<Config> {
        self.snapshot().config.clone()
    }

    /// Announces a change made outside the core (a stored message, a contact).
    pub fn announce(&self, change: Change) {
        let _ = self.changes.try_send(change);
    }

    /// Returns once every change queued until now has been announced (objects added,
    /// signals sent).
    pub async fn announced(&self) {
        let (tx, rx) = smol::channel::bounded(1);
        let reached = Barrier(Arc::new(move || {
            let _ = tx.try_send(());
        }));
        if self.changes.try_send(Change::Barrier(reached)).is_ok() {
            let _ = rx.recv().await;
        }
    }

    /// Reports what is wrong with `source`'s audio devices now (`None`: they work). Any
    /// thread may call it (the media threads do); it never blocks.
    pub fn audio(&self, source: AudioSource, problem: Option<String>) {
        let _ = self.tx.try_send(Msg::Audio { source, problem });
    }

    /// Reports call `local`'s quality (once a second, from its media thread); never
    /// blocks.
    pub fn quality(&self, local: Local, quality: Quality) {
        let _ = self.tx.try_send(Msg::Quality { local, quality });
    }

    /// For the link: a link event.
    pub(crate) fn link(&self, event: LinkEvent) {
        let _ = self.tx.try_send(Msg::Link(event));
    }

    /// For the link: logged in with `client`.
    pub(crate) fn online(
        &self,
        client: Arc<Client>,
        media: Arc<MediaLink>,
        account: AccountInfo,
        online: Vec<(String, String)>,
    ) {
        let _ = self.tx.try_send(Msg::Online {
            client,
            media,
            account,
            online,
        });
    }

    /// For the link: an event the relay pushed.
    pub(crate) fn event(&self, event: Event) {
        let _ = self.tx.try_send(Msg::Event(event));
    }

    /// Re-reads the config file and puts it into effect (SIGHUP and `Manager.Reload`),
    /// logging what changed or why nothing did. A config that does not load changes
    /// nothing.
    pub async fn reload(&self) -> Result<Vec<reload::Change>, CoreError> {
        let loaded = Config::load(&self.config_path).map_err(|e| {
            tracing::error!("config not reloaded, keeping the old one: {e}");
            CoreError::new(crate::core::ErrorKind::InvalidConfig, e.to_string())
        })?;
        match self.command(Command::Reload(Arc::new(loaded))).await? {
            Reply::Reloaded(changes) => {
                tracing::info!(
                    config = %self.config_path.display(),
                    "config reloaded: {}",
                    reload::describe(&changes)
                );
                // The snapshot is published before the reply: it shows the calls the
                // reconnect waits for.
                if reload::needs_reconnect(&changes) && !self.snapshot().calls.is_empty() {
                    tracing::info!(
                        "the new config applies to the link once the calls in progress end"
                    );
                }
                Ok(changes)
            }
            other => Err(CoreError::failed(format!("unexpected reply {other:?}"))),
        }
    }
}
