//! What a config reload changes, and when each change takes effect (sans-IO).
//!
//! The daemon re-reads its config on SIGHUP or `Manager.Reload`. Nothing is dropped to
//! apply a change: settings the link uses wait for a reconnect, which waits for calls in
//! progress to end; audio settings apply to the next call; the rest apply at once.

use std::fmt;

use crate::config::Config;

/// When a changed key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Already in effect when the reload returns.
    Now,
    /// From the next call on; calls in progress keep their devices.
    NextCall,
    /// When the link reconnects, which happens as soon as no call is in progress.
    Reconnect,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Now => "now",
            Effect::NextCall => "next-call",
            Effect::Reconnect => "reconnect",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One changed config key (as written in the file) and when it applies.
pub type Change = (&'static str, Effect);

/// The keys that differ between `old` and `new`, in file order.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    // Every key is compared below; a new field fails to compile here until it is.
    let Config {
        relay: _,
        relays: _,
        relay_fingerprint: _,
        relay_media_port: _,
        credentials: _,
        display_name: _,
        display_name_given: _,
        download_dir: _,
        audio:
            crate::config::Audio {
                backend: _,
                input: _,
                output: _,
                input_wav: _,
                output_wav: _,
                ring: _,
                frame: _,
            },
    } = old;
    let mut changes = Vec::new();
    let mut check = |differs: bool, key: &'static str, effect: Effect| {
        if differs {
            changes.push((key, effect));
        }
    };
    check(old.relay != new.relay, "relay", Effect::Reconnect);
    check(
        old.relay_fingerprint != new.relay_fingerprint,
        "relay_fingerprint",
        Effect::Reconnect,
    );
    check(
        old.relay_media_port != new.relay_media_port,
        "relay_media_port",
        Effect::Reconnect,
    );
    let number = |c: &Config| c.credentials.as_ref().map(|(n, _)| n.clone());
    let password = |c: &Config| c.credentials.as_ref().map(|(_, p)| p.clone());
    check(number(old) != number(new), "number", Effect::Reconnect);
    check(
        password(old) != password(new),
        "password",
        Effect::Reconnect,
    );
    check(
        old.display_name != new.display_name,
        "display_name",
        Effect::Now,
    );
    check(
        old.download_dir != new.download_dir,
        "download_dir",
        Effect::Now,
    );
    let (a, b) = (&old.audio, &new.audio);
    check(a.backend != b.backend, "audio.backend", Effect::NextCall);
    check(a.input != b.input, "audio.input", Effect::NextCall);
    check(a.output != b.output, "audio.output", Effect::NextCall);
    check(
        a.input_wav != b.input_wav,
        "audio.input_wav",
        Effect::NextCall,
    );
    check(
        a.output_wav != b.output_wav,
        "audio.output_wav",
        Effect::NextCall,
    );
    // A ring in progress keeps its sound: the next incoming call rings with the new one.
    check(a.ring.sound != b.ring.sound, "audio.ring", Effect::NextCall);
    check(
        a.ring.volume != b.ring.volume,
        "audio.ring_volume",
        Effect::NextCall,
    );
    check(a.frame != b.frame, "audio.frame_ms", Effect::NextCall);
    changes
}

/// Whether applying `changes` needs the link to reconnect.
pub fn needs_reconnect(changes: &[Change]) -> bool {
    changes.iter().any(|(_, e)| *e == Effect::Reconnect)
}

/// `relay (reconnect), audio.backend (next-call)`, or `nothing changed`.
pub fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "nothing changed".to_owned();
    }
    changes
        .iter()
        .map(|(k, e)| format!("{k} ({e})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(&format!("display_name = \"Desk\"\n{text}")).unwrap()
    }

    #[test]
    fn identical_configs_change_nothing() {
        let a = parse("relay = \"r:1\"\n[audio]\nbackend = \"null\"");
        assert!(diff(&a, &a.clone()).is_empty());
        assert_eq!(describe(&[]), "nothing changed");
    }

    #[test]
    fn each_key_has_its_effect() {
        let old = parse("relay = \"r:1\"");
        let new = parse(
            "relay = \"s:1\"\nrelay_fingerprint = \"sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\"\n\
             number = \"1042\"\npassword = \"pw\"\ndownload_dir = \"/tmp/x\"\n\
             [audio]\nbackend = \"file\"\ninput = \"hw:1\"\noutput = \"hw:2\"\n\
             input_wav = \"in.wav\"\noutput_wav = \"out.wav\"\nring = \"off\"\nring_volume = 20",
        );
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            vec![
                ("relay", Effect::Reconnect),
                ("relay_fingerprint", Effect::Reconnect),
                ("number", Effect::Reconnect),
                ("password", Effect::Reconnect),
                ("download_dir", Effect::Now),
                ("audio.backend", Effect::NextCall),
                ("audio.input", Effect::NextCall),
                ("audio.output", Effect::NextCall),
                ("audio.input_wav", Effect::NextCall),
                ("audio.output_wav", Effect::NextCall),
                ("audio.ring", Effect::NextCall),
                ("audio.ring_volume", Effect::NextCall),
            ]
        );
        assert!(needs_reconnect(&changes));
    }

    #[test]
    fn a_new_password_alone_reconnects_and_a_name_does_not() {
        let old = parse("relay = \"r:1\"\nnumber = \"1042\"\npassword = \"a\"");
        let new = parse("relay = \"r:1\"\nnumber = \"1042\"\npassword = \"b\"");
        assert_eq!(diff(&old, &new), vec![("password", Effect::Reconnect)]);
        let renamed = Config::parse(
            "relay = \"r:1\"\nnumber = \"1042\"\npassword = \"a\"\ndisplay_name = \"Hall\"",
        )
        .unwrap();
        let changes = diff(&old, &renamed);
        assert_eq!(changes, vec![("display_name", Effect::Now)]);
        assert!(!needs_reconnect(&changes));
        assert_eq!(describe(&changes), "display_name (now)");
    }
}
