//! `phone-relay`: serve, print the fingerprint, administer accounts or back up the state.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use phone_relay::config::{Config, Overrides};
use phone_relay::store::{Backend, Store};
use phone_relay::{admin, backup, cert};
use phoned_client::signals::Signals;
use phoned_client::systemd;

#[derive(Parser)]
#[command(
    name = "phone-relay",
    version,
    about = "The phoned relay: accounts, numbers, presence and calls over QUIC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Where {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State directory (database, certificate). Overrides the config.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay until SIGTERM or SIGINT; SIGHUP re-reads the config.
    Serve {
        #[command(flatten)]
        at: Where,
        /// UDP address to listen on (default 0.0.0.0:7447). Overrides the config.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print the SHA-256 fingerprint of the relay's certificate (pin it in phoned).
    Fingerprint {
        #[command(flatten)]
        at: Where,
    },
    /// Manage accounts and back up the state; safe while the relay runs.
    Admin {
        #[command(flatten)]
        at: Where,
        #[command(subcommand)]
        what: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    #[command(subcommand)]
    Users(Users),
    /// Copy the database (a consistent snapshot), the self-signed identity and the
    /// stored files into DEST, which must not exist or be empty.
    Backup {
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
    /// Copy the embedded store (the state dir's database and file blobs) into an empty
    /// PostgreSQL database; then set `store = "URL"` in the config. Stop the relay first.
    Migrate {
        /// The PostgreSQL database: postgres://user@host/db.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Subcommand)]
enum Users {
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add an account. Prints a generated password unless --password-stdin is given.
    Add {
        #[arg(long)]
        number: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account and close its sessions.
    Disable { number: String },
    /// Enable a disabled account.
    Enable { number: String },
    /// Delete an account and free its number.
    Delete { number: String },
    /// Move an account to another number.
    SetNumber { old: String, new: String },
    /// Set a new password (generated and printed, or from stdin) and close the sessions.
    ResetPassword {
        number: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { at, listen } => serve(at, listen),
        Command::Fingerprint { at } => fingerprint(at),
        Command::Admin {
            at,
            what: AdminCommand::Users(users),
        } => admin_users(at, users),
        Command::Admin {
            at,
            what: AdminCommand::Backup { dest },
        } => admin_backup(at, &dest),
        Command::Admin {
            at,
            what: AdminCommand::Migrate { to },
        } => admin_migrate(at, &to),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phone-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(at: Where, listen: Option<String>) -> anyhow::Result<Config> {
    Ok(Config::load(
        at.config.as_deref(),
        Overrides {
            listen,
            state_dir: at.state_dir,
        },
    )?)
}

/// Re-reads the config (command-line overrides still win) and applies it; on any
/// error logs one line and keeps the running config. Runs on SIGHUP, between systemd's
/// RELOADING=1 and READY=1 (see `phoned_client::signals`).
fn reload(running: &phone_relay::Running, path: Option<&Path>, overrides: &Overrides) {
    let result = Config::load(path, overrides.clone())
        .map_err(anyhow::Error::from)
        .and_then(|config| Ok(running.reload(config)?));
    match result {
        Ok(reloaded) => {
            for key in &reloaded.needs_restart {
                tracing::warn!("{key} changed; takes effect after a restart");
            }
            let summary = reloaded.summary();
            match &reloaded.fingerprint {
                Some(fp) => tracing::info!(fingerprint = %fp, "config reloaded: {summary}"),
                None => tracing::info!("config reloaded: {summary}"),
            }
        }
        Err(e) => tracing::error!("config reload failed, keeping the running config: {e:#}"),
    }
}

/// Each Argon2id hash allocates 19 MiB. glibc would keep freed blocks of that size in
/// per-thread arenas (its mmap threshold adapts upwards), so a relay that verified a few
/// logins on several pool threads would sit at hundreds of MiB. A fixed threshold keeps
/// such blocks mmapped, so they go back to the system when freed.
///
/// The threshold is 4 MiB, not lower, and the heap is trimmed past 8 MiB free: every
/// message write runs in a nested LMDB transaction (see `store::heed::commit`), whose
/// `mdb_txn_begin` allocates 3 MiB of page lists. Mmapped, that is an mmap and a munmap
/// (with a TLB shootdown across cores) per message; the group-commit thread spent most
/// of its time there. From the heap it is reused.
fn return_large_allocations_to_the_system() {
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

fn serve(at: Where, listen: Option<String>) -> anyhow::Result<()> {
    return_large_allocations_to_the_system();
    phoned_client::logging::init();
    let path = at.config.clone();
    let overrides = Overrides {
        listen,
        state_dir: at.state_dir,
    };
    let config = Config::load(path.as_deref(), overrides.clone())?;
    if std::env::var_os("SMOL_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: no other thread exists yet; smol reads this on first use below.
        unsafe { std::env::set_var("SMOL_THREADS", n.to_string()) };
    }
    smol::block_on(async {
        // Registered before anything says "ready": an early SIGHUP must not kill the relay.
        let signals = Signals::new()?;
        let running = phone_relay::start(config)?;
        let fingerprint = running.fingerprint();
        let mut out = std::io::stdout().lock();
        if let Some(media) = running.media_addr {
            writeln!(out, "media on {media}")?;
        }
        writeln!(out, "listening on {}", running.addr)?;
        writeln!(out, "fingerprint {fingerprint}")?;
        out.flush()?;
        drop(out);
        tracing::info!(addr = %running.addr, %fingerprint, "relay ready");
        systemd::ready(&running.status());
        let _watchdog = systemd::spawn_watchdog();
        let signal = signals
            .until_stopped(async || {
                reload(&running, path.as_deref(), &overrides);
                running.status()
            })
            .await;
        tracing::info!(?signal, "shutting down");
        systemd::stopping();
        running.shutdown().await;
        Ok(())
    })
}

fn fingerprint(at: Where) -> anyhow::Result<()> {
    let config = load(at, None)?;
    let fp = match &config.tls {
        Some((c, k)) => cert::load_pem(c, k)?.fingerprint(),
        None => cert::stored_fingerprint(&config.state_dir).map_err(|e| {
            anyhow::anyhow!("{e} (has the relay been started once with this state dir?)")
        })?,
    };
    println!("{fp}");
    Ok(())
}

/// The relay's existing database, opened beside the running relay (if any): the LMDB
/// environment in the state dir, or the configured PostgreSQL database.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.store == Backend::Heed && !config.state_dir.join("db").exists() {
        anyhow::bail!("no relay database in {}", config.state_dir.display());
    }
    Ok(Store::open(
        &config.store,
        &config.state_dir,
        config.map_size_mib,
    )?)
}

fn admin_backup(at: Where, dest: &Path) -> anyhow::Result<()> {
    let config = load(at, None)?;
    let Store::Heed(store) = open_store(&config)? else {
        anyhow::bail!(
            "the relay's state is in PostgreSQL: back it up with pg_dump (docs/operations.md, \"Backups\")"
        );
    };
    let written = backup::backup(&store, &config.state_dir, config.map_size_mib, dest)?;
    written.report(&mut std::io::stdout().lock())?;
    Ok(())
}

fn admin_migrate(at: Where, to: &str) -> anyhow::Result<()> {
    let config = load(at, None)?;
    let url: phone_relay::store::pg::Url = to
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--to: {e}"))?;
    if !config.state_dir.join("db").exists() {
        anyhow::bail!("no relay database in {}", config.state_dir.display());
    }
    let heed = phone_relay::store::heed::HeedStore::open(&config.state_dir, config.map_size_mib)?;
    let pg = phone_relay::store::pg::PgStore::open(&url)?;
    let done = admin::migrate(&heed, &config.state_dir, &pg)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "migrated into {url}: {} accounts, {} waiting messages and files, {} receipts, {} blobs",
        done.accounts, done.inbox, done.receipts, done.blobs
    )?;
    if done.missing_blobs > 0 {
        writeln!(
            out,
            "{} files waiting had no blob in {}/blobs (their download will fail)",
            done.missing_blobs,
            config.state_dir.display()
        )?;
    }
    writeln!(
        out,
        "now set store = \"{url}\" in the relay's config and start it"
    )?;
    Ok(())
}

fn admin_users(at: Where, users: Users) -> anyhow::Result<()> {
    let config = load(at, None)?;
    let store = open_store(&config)?;
    let mut out = std::io::stdout().lock();
    match users {
        Users::List { json } => admin::list(&store, json, &mut out)?,
        Users::Add {
            number,
            name,
            password_stdin,
        } => {
            let (password, generated) = admin::password_from(password_stdin)?;
            let a = admin::add(&store, &number, &name, &password)?;
            writeln!(out, "added {} ({})", a.number, a.display_name)?;
            if generated {
                writeln!(out, "password: {password}")?;
            }
        }
        Users::Disable { number } => {
            admin::set_disabled(&store, &number, true)?;
            writeln!(out, "disabled {number}")?;
        }
        Users::Enable { number } => {
            admin::set_disabled(&store, &number, false)?;
            writeln!(out, "enabled {number}")?;
        }
        Users::Delete { number } => {
            admin::delete(&store, &number)?;
            writeln!(out, "deleted {number}")?;
        }
        Users::SetNumber { old, new } => {
            let a = admin::set_number(&store, &old, &new)?;
            writeln!(out, "moved {old} to {}", a.number)?;
        }
        Users::ResetPassword {
            number,
            password_stdin,
        } => {
            let (password, generated) = admin::password_from(password_stdin)?;
            admin::reset_password(&store, &number, &password)?;
            writeln!(out, "password reset for {number}")?;
            if generated {
                writeln!(out, "password: {password}")?;
            }
        }
    }
    Ok(())
}
