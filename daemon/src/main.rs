//! `phoned`: the phone daemon. Reads its config, keeps a link to the relay and serves
//! `org.phoned.Phone1` on D-Bus until SIGTERM or SIGINT.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Parser, ValueEnum};
use phoned::config::{self, Config};
use phoned::dbus::{self, Bus};
use phoned::driver::{self, Handle};
use phoned::store::Store;
use phoned_client::signals::Signals;
use phoned_client::systemd;

#[derive(Clone, Copy, ValueEnum)]
enum BusArg {
    Session,
    System,
}

#[derive(Parser)]
#[command(
    name = "phoned",
    version,
    about = "The phoned phone daemon: relay link and D-Bus service",
    after_help = "SIGTERM or SIGINT stops it; SIGHUP re-reads the config (as `phonectl reload` does). See phoned(8)."
)]
struct Cli {
    /// TOML config (default: $XDG_CONFIG_HOME/phoned/phoned.toml, else /etc/phoned/phoned.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State directory: account, relay pin, contacts (default: $STATE_DIRECTORY, else
    /// /var/lib/phoned on the system bus, else $XDG_STATE_HOME/phoned).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The bus to serve org.phoned.Phone1 on.
    #[arg(long, value_enum, default_value = "session")]
    bus: BusArg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    phoned_client::logging::init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phoned: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_state_dir(bus: Bus) -> PathBuf {
    phoned_client::dirs::state_dir("phoned", bus == Bus::System)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let bus = match cli.bus {
        BusArg::Session => Bus::Session,
        BusArg::System => Bus::System,
    };
    let config_path = cli.config.unwrap_or_else(config::default_path);
    let config = Config::load(&config_path)?;
    let state_dir = cli.state_dir.unwrap_or_else(|| default_state_dir(bus));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state_dir)
        .map_err(|e| anyhow!("cannot create state dir {}: {e}", state_dir.display()))?;
    // Absolute from here on: paths under it (downloads, the outbox) are shown to users
    // and compared with callers' paths, which must not depend on the daemon's cwd.
    let state_dir = std::fs::canonicalize(&state_dir)
        .map_err(|e| anyhow!("state dir {}: {e}", state_dir.display()))?;
    // Before anything touches the store: a second daemon on this dir stops here.
    let _lock = phoned::state_lock::StateLock::acquire(&state_dir)?;
    let store =
        Store::open(&state_dir).map_err(|e| anyhow!("state dir {}: {e}", state_dir.display()))?;
    let parts = driver::new(config, config_path, state_dir, store);
    let handle = parts.handle;
    smol::block_on(async {
        let signals = Signals::new().context("cannot handle signals")?;
        let driver = smol::spawn(parts.driver.run());
        let conn = dbus::serve(bus, handle.clone()).await?;
        let announcer = smol::spawn(dbus::announce(conn.clone(), handle.clone(), parts.changes));
        // Dropping `stop` tells the link to close its connection (see below).
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let link = smol::spawn(phoned::link::run(
            handle.clone(),
            parts.relink,
            parts.media,
            stopped,
        ));
        tracing::info!(relay = %handle.config().relay, "phoned started");
        // Ready once the bus name is ours: D-Bus clients can talk to us from now on.
        let status = |handle: &Handle| {
            format!(
                "serving {} (relay {})",
                phoned_proto::dbus::BUS_NAME,
                handle.config().relay
            )
        };
        systemd::ready(&status(&handle));
        let _watchdog = systemd::spawn_watchdog();
        let signal = signals
            .until_stopped(async || {
                let _ = handle.reload().await;
                status(&handle)
            })
            .await;
        tracing::info!(?signal, "stopping");
        systemd::stopping();
        // Close the relay connection before exiting, so that the others see this phone
        // offline now, not after the idle timeout. The link bounds its wait by
        // CLOSE_GRACE; this bound is in case it is stuck elsewhere (a DNS lookup, say).
        drop(stop);
        smol::future::or(link, async {
            smol::Timer::after(phoned::link::CLOSE_GRACE * 2).await;
        })
        .await;
        drop(announcer);
        drop(conn);
        drop(driver);
        Ok(())
    })
}
