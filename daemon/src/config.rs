//! `phoned` configuration (TOML), validated once at start. Every problem is one message
//! naming the key.

use std::path::{Path, PathBuf};

pub use phoned_client::config::ConfigError;
use phoned_proto::Number;

use crate::audio::codec::FrameDuration;
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    relay: Option<RelayField>,
    relay_fingerprint: Option<String>,
    relay_media_port: Option<u16>,
    number: Option<String>,
    password: Option<String>,
    display_name: Option<String>,
    download_dir: Option<PathBuf>,
    #[serde(default)]
    audio: AudioFile,
}

/// `relay`: one address, or a list of them (several relays of one cluster).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RelayField {
    One(String),
    Many(Vec<String>),
}

/// One relay address: a host (a name or an IP address) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddr {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioFile {
    backend: Option<String>,
    input: Option<String>,
    output: Option<String>,
    input_wav: Option<PathBuf>,
    output_wav: Option<PathBuf>,
    // Spanned: a bad value is reported with its line, as a parse error is.
    ring: Option<toml::Spanned<String>>,
    ring_volume: Option<toml::Spanned<i64>>,
    frame_ms: Option<toml::Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioBackend {
    Cpal,
    Pulse,
    File,
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub backend: AudioBackend,
    pub input: Option<String>,
    pub output: Option<String>,
    pub input_wav: Option<PathBuf>,
    pub output_wav: Option<PathBuf>,
    /// How an incoming call sounds (`ring`, `ring_volume`).
    pub ring: Ring,
    /// The frame a call's audio is sent in (`frame_ms`, 10 or 20).
    pub frame: FrameDuration,
}

/// `frame_ms` when the config does not say.
pub const DEFAULT_FRAME: FrameDuration = FrameDuration::Ms20;

/// What an incoming call sounds like here (`[audio] ring`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RingSound {
    /// The built-in double ring (`"builtin"`, the default).
    #[default]
    Builtin,
    /// No ring and no call-waiting tone from the daemon (`"off"`).
    Off,
    /// A WAV file, looped (an absolute path).
    Wav(PathBuf),
}

/// The ring settings (`[audio] ring`, `ring_volume`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub sound: RingSound,
    /// 0–100 %, on the cubic scale of desktop volume sliders (see `ring::tone::gain`).
    pub volume: u8,
}

/// `ring_volume` when the config does not say.
pub const DEFAULT_RING_VOLUME: u8 = 70;

impl Default for Ring {
    fn default() -> Ring {
        Ring {
            sound: RingSound::Builtin,
            volume: DEFAULT_RING_VOLUME,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` as written (the port defaults to 7447); a list joined with `, `. The
    /// relay's pin and login tokens are kept under it: the relays of one list are one
    /// service (one certificate).
    pub relay: String,
    /// The relays to try, in order: each host's addresses in turn, then the next host
    /// (see `link::failover`).
    pub relays: Vec<RelayAddr>,
    pub relay_fingerprint: Option<String>,
    /// The relay's UDP media port as this device reaches it, when a port forward makes it
    /// differ from the one the relay announces; `Some(0)`: no UDP media plane, media on
    /// QUIC datagrams only. `None`: the announced port.
    pub relay_media_port: Option<u16>,
    /// Fixed credentials; else the daemon provisions and keeps its own.
    pub credentials: Option<(String, String)>,
    pub display_name: String,
    /// Whether `display_name` was written in the file (else it is the host's name).
    pub display_name_given: bool,
    pub download_dir: Option<PathBuf>,
    pub audio: Audio,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = phoned_client::config::read(path)?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text)
            .map_err(|e| ConfigError::parse(Path::new("<inline>"), text, e.message(), e.span()))?;
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        let written = match file.relay {
            None => {
                return Err(invalid(
                    "relay",
                    "missing: set relay = \"host:7447\"".into(),
                ));
            }
            Some(RelayField::One(one)) => vec![one],
            Some(RelayField::Many(many)) if many.is_empty() => {
                return Err(invalid("relay", "the list is empty".into()));
            }
            Some(RelayField::Many(many)) => many,
        };
        let relays = written
            .iter()
            .map(|r| {
                split_host_port(r)
                    .map(|(host, port)| RelayAddr { host, port })
                    .map_err(|e| invalid("relay", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let relay = written.join(", ");
        let relay_fingerprint = match file.relay_fingerprint {
            Some(fp) => Some(phoned_proto::fingerprint::parse(&fp).ok_or_else(|| {
                invalid(
                    "relay_fingerprint",
                    "expected sha256: and 64 hex digits (phone-relay fingerprint prints it)".into(),
                )
            })?),
            None => None,
        };
        let credentials = match (file.number, file.password) {
            (Some(n), Some(p)) => {
                n.parse::<Number>()
                    .map_err(|e| invalid("number", e.to_string()))?;
                if p.is_empty() {
                    return Err(invalid("password", "is empty".into()));
                }
                Some((n, p))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "password",
                    "number is set, password is missing".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "number",
                    "password is set, number is missing".into(),
                ));
            }
        };
        let display_name_given = file.display_name.is_some();
        let display_name = file.display_name.unwrap_or_else(hostname);
        phoned_proto::ident::check_display_name(&display_name)
            .map_err(|e| invalid("display_name", e.to_string()))?;
        let backend = match file.audio.backend.as_deref().unwrap_or("cpal") {
            "cpal" => AudioBackend::Cpal,
            "pulse" => AudioBackend::Pulse,
            "file" => AudioBackend::File,
            "null" => AudioBackend::Null,
            other => {
                return Err(invalid(
                    "audio.backend",
                    format!("{other:?} is not one of \"cpal\", \"pulse\", \"file\", \"null\""),
                ));
            }
        };
        if backend == AudioBackend::File
            && file.audio.input_wav.is_none()
            && file.audio.output_wav.is_none()
        {
            return Err(invalid(
                "audio.backend",
                "\"file\" needs input_wav or output_wav".into(),
            ));
        }
        let ring = ring(text, file.audio.ring, file.audio.ring_volume)?;
        let frame = match file.audio.frame_ms {
            None => DEFAULT_FRAME,
            Some(v) => {
                let span = v.span();
                let v = v.into_inner();
                u32::try_from(v)
                    .ok()
                    .and_then(FrameDuration::from_millis)
                    .ok_or_else(|| {
                        ConfigError::parse(
                            Path::new("<inline>"),
                            text,
                            &format!("audio.frame_ms: {v} is not 10 or 20 (ms)"),
                            Some(span),
                        )
                    })?
            }
        };
        Ok(Config {
            relay,
            relays,
            relay_fingerprint,
            relay_media_port: file.relay_media_port,
            credentials,
            display_name,
            display_name_given,
            download_dir: file.download_dir,
            audio: Audio {
                backend,
                input: file.audio.input,
                output: file.audio.output,
                input_wav: file.audio.input_wav,
                output_wav: file.audio.output_wav,
                ring,
                frame,
            },
        })
    }
}

/// `[audio] ring` and `ring_volume`, checked: a WAV must be an absolute path to a file the
/// ring can play (read now, so a typo shows at start or reload, not when a call rings).
/// Problems are reported with their line, like the parser's.
fn ring(
    text: &str,
    sound: Option<toml::Spanned<String>>,
    volume: Option<toml::Spanned<i64>>,
) -> Result<Ring, ConfigError> {
    let at = |span, message: String| {
        ConfigError::parse(Path::new("<inline>"), text, &message, Some(span))
    };
    let sound = match sound {
        None => RingSound::Builtin,
        Some(s) => {
            let span = s.span();
            match s.into_inner().as_str() {
                "builtin" => RingSound::Builtin,
                "off" => RingSound::Off,
                path if Path::new(path).is_absolute() => {
                    let path = PathBuf::from(path);
                    crate::ring::wav::check(&path)
                        .map_err(|e| at(span, format!("audio.ring: {e}")))?;
                    RingSound::Wav(path)
                }
                other => {
                    return Err(at(
                        span,
                        format!(
                            "audio.ring: {other:?} is not \"builtin\", \"off\" or the absolute path of a WAV file"
                        ),
                    ));
                }
            }
        }
    };
    let volume = match volume {
        None => DEFAULT_RING_VOLUME,
        Some(v) => {
            let span = v.span();
            let v = v.into_inner();
            u8::try_from(v).ok().filter(|v| *v <= 100).ok_or_else(|| {
                at(
                    span,
                    format!("audio.ring_volume: {v} is not 0 to 100 (percent)"),
                )
            })?
        }
    };
    Ok(Ring { sound, volume })
}

/// Why a relay address does not read as one.
#[derive(Debug, Error)]
enum AddressError {
    #[error("{0:?} is not host:port")]
    NotHostPort(String),
    #[error("{0:?}: write an IPv6 address as [addr]:port")]
    BareIpv6(String),
    #[error(
        "{0:?}: give the relay as host:port (it speaks its own protocol over QUIC, not {1}://)"
    )]
    Scheme(String, String),
}

/// Splits `host:port`, `[v6]:port`, or a bare host (port 7447).
fn split_host_port(s: &str) -> Result<(String, u16), AddressError> {
    let bad = || AddressError::NotHostPort(s.to_owned());
    if s.trim().is_empty() || s.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    // A URL (http://relay:7447, quic://…) would otherwise read as an IPv6 address.
    if let Some((scheme, _)) = s.split_once("://") {
        return Err(AddressError::Scheme(s.to_owned(), scheme.to_owned()));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => phoned_proto::DEFAULT_PORT,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok((host.to_owned(), port))
        }
        Some(_) => Err(AddressError::BareIpv6(s.to_owned())),
        None => Ok((s.to_owned(), phoned_proto::DEFAULT_PORT)),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().chars().take(64).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "phoned".to_owned())
}

/// `$XDG_CONFIG_HOME/phoned/phoned.toml` (or `~/.config/…`) if it exists, else
/// `/etc/phoned/phoned.toml`.
pub fn default_path() -> PathBuf {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("phoned/phoned.toml"));
    match user {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("/etc/phoned/phoned.toml"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config() {
        let c = Config::parse("relay = \"127.0.0.1:7447\"\ndisplay_name = \"Kitchen\"").unwrap();
        assert_eq!(c.relays, [addr("127.0.0.1", 7447)]);
        assert_eq!(c.audio.backend, AudioBackend::Cpal);
        assert!(c.credentials.is_none());
        let c = Config::parse("relay = \"[::1]:9000\"").unwrap();
        assert_eq!(c.relays, [addr("::1", 9000)]);
        for url in ["http://relay.example:7447", "quic://relay.example"] {
            let e = split_host_port(url).unwrap_err().to_string();
            assert!(e.contains("host:port") && e.contains("://"), "{e}");
            assert!(!e.contains("IPv6"), "{e}");
        }
        let c = Config::parse("relay = \"relay.example.net\"").unwrap();
        assert_eq!(c.relays, [addr("relay.example.net", 7447)]);
    }

    fn addr(host: &str, port: u16) -> RelayAddr {
        RelayAddr {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn relay_takes_a_list_of_a_cluster_s_relays() {
        let c = Config::parse("relay = [\"r1.example:7447\", \"10.0.0.2\", \"[::1]:9\"]").unwrap();
        assert_eq!(
            c.relays,
            [
                addr("r1.example", 7447),
                addr("10.0.0.2", 7447),
                addr("::1", 9)
            ]
        );
        assert_eq!(c.relay, "r1.example:7447, 10.0.0.2, [::1]:9");
        for bad in [
            "relay = []",
            "relay = [\"ok:1\", \"http://x\"]",
            "relay = [1]",
        ] {
            let e = Config::parse(bad).unwrap_err().to_string();
            assert!(e.contains("relay"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let c = Config::parse(include_str!("../../config/phoned.toml")).unwrap();
        assert_eq!(c.relays[0].port, 7447);
        assert_eq!(c.audio.backend, AudioBackend::Cpal);
    }

    #[test]
    fn calls_send_the_default_frame_unless_frame_ms_says() {
        let c = Config::parse("relay = \"r:1\"").unwrap();
        assert_eq!(c.audio.frame, DEFAULT_FRAME);
        for (ms, frame) in [(10, FrameDuration::Ms10), (20, FrameDuration::Ms20)] {
            let text = format!("relay = \"r:1\"\n[audio]\nframe_ms = {ms}");
            assert_eq!(Config::parse(&text).unwrap().audio.frame, frame);
        }
    }

    #[test]
    fn the_ring_is_builtin_at_70_percent_unless_set() {
        let c = Config::parse("relay = \"r:1\"").unwrap();
        assert_eq!(c.audio.ring, Ring::default());
        assert_eq!(
            (c.audio.ring.sound, c.audio.ring.volume),
            (RingSound::Builtin, 70)
        );
        let c = Config::parse("relay = \"r:1\"\n[audio]\nring = \"off\"\nring_volume = 0").unwrap();
        assert_eq!(
            c.audio.ring,
            Ring {
                sound: RingSound::Off,
                volume: 0
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("ring.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).unwrap();
        (0..882).for_each(|_| w.write_sample(0i16).unwrap());
        w.finalize().unwrap();
        let text = format!(
            "relay = \"r:1\"\n[audio]\nring = \"{}\"\nring_volume = 100",
            wav.display()
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.audio.ring.sound, RingSound::Wav(wav));
        assert_eq!(c.audio.ring.volume, 100);
    }

    #[test]
    fn a_bad_ring_is_reported_with_its_line() {
        let e = Config::parse("relay = \"r:1\"\n[audio]\nbackend = \"null\"\nring = \"loud\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(line 4: ring = \"loud\")"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("ring.wav");
        std::fs::write(&text, "not a wav").unwrap();
        let e = Config::parse(&format!(
            "relay = \"r:1\"\n[audio]\nring = \"{}\"",
            text.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot open WAV") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn problems_name_their_key() {
        for (text, key) in [
            ("", "relay"),
            ("relay = \"a:b\"", "relay"),
            ("relay = \"::1:7447\"", "relay"),
            (
                "relay = \"r:1\"\nrelay_fingerprint = \"abc\"",
                "relay_fingerprint",
            ),
            ("relay = \"r:1\"\nnumber = \"1042\"", "password"),
            (
                "relay = \"r:1\"\nnumber = \"x\"\npassword = \"p\"",
                "number",
            ),
            ("relay = \"r:1\"\ndisplay_name = \"\"", "display_name"),
            (
                "relay = \"r:1\"\n[audio]\nbackend = \"oss\"",
                "audio.backend",
            ),
            (
                "relay = \"r:1\"\n[audio]\nbackend = \"file\"",
                "audio.backend",
            ),
            ("relay = \"r:1\"\ncolour = 1", "colour"),
            ("relay = \"r:1\"\n[audio]\nring = \"bultin\"", "audio.ring"),
            (
                "relay = \"r:1\"\n[audio]\nring = \"ring.wav\"",
                "absolute path",
            ),
            (
                "relay = \"r:1\"\n[audio]\nring = \"/nonexistent/ring.wav\"",
                "/nonexistent/ring.wav",
            ),
            (
                "relay = \"r:1\"\n[audio]\nring_volume = 101",
                "audio.ring_volume",
            ),
            ("relay = \"r:1\"\n[audio]\nring_volume = -1", "0 to 100"),
            ("relay = \"r:1\"\n[audio]\nframe_ms = 15", "audio.frame_ms"),
            ("relay = \"r:1\"\n[audio]\nframe_ms = \"10\"", "frame_ms"),
            (
                "relay = \"r:1\"\n[audio]\nring_volume = \"loud\"",
                "ring_volume",
            ),
            ("relay = 5", "relay"),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }
}
