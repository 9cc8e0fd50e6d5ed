//! What a config reload (SIGHUP) changes: which keys differ between the running config
//! and the new one, which of them apply live and which only after a restart. Pure; the
//! server applies the result ([`crate::server::Running::reload`]).

use crate::config::Config;

/// Keys that cannot change under a running relay (the sockets and the open database).
pub const RESTART_KEYS: [&str; 10] = [
    "listen",
    "state_dir",
    "map_size_mib",
    "metrics_listen",
    "store",
    "media_listen",
    "media_advertise_port",
    "media_threads",
    "relay_id",
    "cluster_advertise",
];

/// The outcome of a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys whose new values are in effect (for new connections, where that matters).
    pub applied: Vec<&'static str>,
    /// Keys that changed in the file but keep their old value until a restart.
    pub needs_restart: Vec<&'static str>,
    /// The certificate's fingerprint, when the reload changed it.
    pub fingerprint: Option<String>,
}

impl Reloaded {
    /// The applied keys for the log: `a, b` or `nothing changed`.
    pub fn summary(&self) -> String {
        if self.applied.is_empty() {
            "nothing changed".to_owned()
        } else {
            self.applied.join(", ")
        }
    }
}

/// Compares `old` with `new` and returns the config to run with (`new`, with the
/// restart-only keys kept from `old`) and the changed keys. The certificate is not looked
/// at here: its files are re-read on every reload.
pub fn plan(old: &Config, mut new: Config) -> (Config, Reloaded) {
    // Every key is compared below; a new field makes this fail to compile until it is.
    let Config {
        listen: _,
        state_dir: _,
        numbers: _,
        allow_provision: _,
        allow_register: _,
        provision_burst: _,
        provision_per_hour: _,
        ring_timeout: _,
        max_message_bytes: _,
        mailbox_quota_bytes: _,
        max_file_bytes: _,
        keep_alive: _,
        idle_timeout: _,
        map_size_mib: _,
        max_connections: _,
        max_connections_per_address: _,
        login_timeout: _,
        min_free_space: _,
        max_partial_bytes: _,
        partial_expiry: _,
        tls: _,
        metrics_listen: _,
        store: _,
        media_listen: _,
        media_advertise_port: _,
        media_threads: _,
        relay_id: _,
        cluster_advertise: _,
    } = old;
    let mut out = Reloaded::default();
    let mut live = |key: &'static str, changed: bool| {
        if changed {
            out.applied.push(key);
        }
    };
    live("numbers", old.numbers != new.numbers);
    live(
        "allow_provision",
        old.allow_provision != new.allow_provision,
    );
    live("allow_register", old.allow_register != new.allow_register);
    live(
        "provision_burst",
        old.provision_burst != new.provision_burst,
    );
    live(
        "provision_per_hour",
        old.provision_per_hour != new.provision_per_hour,
    );
    live("ring_timeout_ms", old.ring_timeout != new.ring_timeout);
    live(
        "max_message_bytes",
        old.max_message_bytes != new.max_message_bytes,
    );
    live(
        "mailbox_quota_kib",
        old.mailbox_quota_bytes != new.mailbox_quota_bytes,
    );
    live("max_file_mib", old.max_file_bytes != new.max_file_bytes);
    live("keep_alive_ms", old.keep_alive != new.keep_alive);
    live("idle_timeout_ms", old.idle_timeout != new.idle_timeout);
    live(
        "max_connections",
        old.max_connections != new.max_connections,
    );
    live(
        "max_connections_per_address",
        old.max_connections_per_address != new.max_connections_per_address,
    );
    live("login_timeout_ms", old.login_timeout != new.login_timeout);
    live(
        "min_free_space_mib",
        old.min_free_space != new.min_free_space,
    );
    live(
        "max_partial_mib",
        old.max_partial_bytes != new.max_partial_bytes,
    );
    live("partial_expiry_s", old.partial_expiry != new.partial_expiry);
    live(
        "tls_cert",
        old.tls.as_ref().map(|t| &t.0) != new.tls.as_ref().map(|t| &t.0),
    );
    live(
        "tls_key",
        old.tls.as_ref().map(|t| &t.1) != new.tls.as_ref().map(|t| &t.1),
    );

    if old.listen != new.listen {
        out.needs_restart.push("listen");
        new.listen = old.listen;
    }
    if old.state_dir != new.state_dir {
        out.needs_restart.push("state_dir");
        new.state_dir = old.state_dir.clone();
    }
    if old.map_size_mib != new.map_size_mib {
        out.needs_restart.push("map_size_mib");
        new.map_size_mib = old.map_size_mib;
    }
    if old.metrics_listen != new.metrics_listen {
        out.needs_restart.push("metrics_listen");
        new.metrics_listen = old.metrics_listen;
    }
    if old.store != new.store {
        out.needs_restart.push("store");
        new.store = old.store.clone();
    }
    if old.media_listen != new.media_listen {
        out.needs_restart.push("media_listen");
        new.media_listen = old.media_listen;
    }
    if old.media_advertise_port != new.media_advertise_port {
        out.needs_restart.push("media_advertise_port");
        new.media_advertise_port = old.media_advertise_port;
    }
    if old.media_threads != new.media_threads {
        out.needs_restart.push("media_threads");
        new.media_threads = old.media_threads;
    }
    if old.relay_id != new.relay_id {
        out.needs_restart.push("relay_id");
        new.relay_id = old.relay_id.clone();
    }
    if old.cluster_advertise != new.cluster_advertise {
        out.needs_restart.push("cluster_advertise");
        new.cluster_advertise = old.cluster_advertise;
    }
    (new, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let old = config("allow_provision = false\ntls_cert = \"/c\"\ntls_key = \"/k\"");
        let (run, r) = plan(&old, old.clone());
        assert_eq!(r, Reloaded::default());
        assert_eq!(r.summary(), "nothing changed");
        assert_eq!(run, old);
    }

    #[test]
    fn live_keys_are_applied_and_named() {
        let old = config("");
        let new = config(
            "numbers = \"5000-5999\"\nallow_provision = false\nring_timeout_ms = 1000\n\
             max_file_mib = 1\nidle_timeout_ms = 60000\ntls_cert = \"/c\"\ntls_key = \"/k\"",
        );
        let (run, r) = plan(&old, new.clone());
        assert_eq!(
            r.applied,
            [
                "numbers",
                "allow_provision",
                "ring_timeout_ms",
                "max_file_mib",
                "idle_timeout_ms",
                "tls_cert",
                "tls_key"
            ]
        );
        assert!(r.needs_restart.is_empty());
        assert_eq!(
            r.summary(),
            "numbers, allow_provision, ring_timeout_ms, max_file_mib, idle_timeout_ms, tls_cert, tls_key"
        );
        assert_eq!(run, new);
    }

    #[test]
    fn connection_limits_apply_live() {
        let old = config("");
        let new = config("max_connections_per_address = 4\nlogin_timeout_ms = 3000");
        let (run, r) = plan(&old, new);
        assert_eq!(
            r.applied,
            ["max_connections_per_address", "login_timeout_ms"]
        );
        assert_eq!(run.max_connections_per_address, 4);
        assert_eq!(run.login_timeout, std::time::Duration::from_secs(3));
    }

    #[test]
    fn restart_keys_keep_their_old_values() {
        let old = config("listen = \"127.0.0.1:7000\"\nstate_dir = \"/a\"");
        let new = config(
            "listen = \"127.0.0.1:7001\"\nstate_dir = \"/b\"\nmap_size_mib = 64\n\
             allow_register = false\nmetrics_listen = \"127.0.0.1:9447\"\n\
             store = \"postgres://relay@localhost/phone\"\nrelay_id = \"r2\"\n\
             media_listen = \"127.0.0.1:7100\"\nmedia_advertise_port = 7200\nmedia_threads = 2\n\
             cluster_advertise = \"10.0.0.2:7447\"",
        );
        let (run, r) = plan(&old, new);
        assert_eq!(r.needs_restart, RESTART_KEYS);
        assert_eq!(run.relay_id, None);
        assert_eq!(run.cluster_advertise, None);
        assert_eq!(r.applied, ["allow_register"]);
        assert_eq!(run.listen, old.listen);
        assert_eq!(run.state_dir, old.state_dir);
        assert_eq!(run.map_size_mib, old.map_size_mib);
        assert_eq!(run.metrics_listen, None);
        assert_eq!(run.store, crate::store::Backend::Heed);
        assert_eq!(run.media_listen, old.media_listen);
        assert_eq!(run.media_threads, 1);
        assert!(!run.allow_register);
    }
}
