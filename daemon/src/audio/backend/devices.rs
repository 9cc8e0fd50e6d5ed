//! What `phonectl audio devices` shows: the input and output devices of the backend the
//! daemon would use for a call with its current config ([`resolve`](super::resolve)).

use super::cpal::CpalBackend;
use super::error::{AudioError, Direction};
use super::{Options, pulse};
use crate::config::{Audio, AudioBackend};

/// One device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    pub direction: Direction,
    /// What `input`/`output` accept: a pulse source/sink name, a cpal (ALSA) id, a WAV path.
    pub name: String,
    /// What people see; empty when there is nothing more than the name.
    pub description: String,
    /// The one used when the config names none.
    pub is_default: bool,
}

/// The devices of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList {
    /// `"pulse"`, `"cpal"`, `"file"` or `"null"`.
    pub backend: &'static str,
    pub devices: Vec<DeviceEntry>,
}

/// Lists the devices of the backend `config` resolves to. Blocks (a pulse server is asked,
/// at most a few seconds), so async callers run it on a blocking thread.
pub fn list(config: &Audio) -> Result<DeviceList, AudioError> {
    let backend = super::resolve(config, super::pulse_usable());
    let mut devices = Vec::new();
    match backend {
        AudioBackend::Pulse => {
            let found = pulse::devices()?;
            for (direction, list, default) in [
                (Direction::Capture, &found.sources, &found.default_source),
                (Direction::Playback, &found.sinks, &found.default_sink),
            ] {
                devices.extend(list.iter().map(|d| DeviceEntry {
                    direction,
                    name: d.name.clone(),
                    description: d.description.clone(),
                    is_default: default.as_deref() == Some(d.name.as_str()),
                }));
            }
        }
        AudioBackend::Cpal => {
            let host = CpalBackend::new(None, None, Options::default());
            for direction in [Direction::Capture, Direction::Playback] {
                devices.extend(
                    host.devices(direction)?
                        .into_iter()
                        .filter(|(name, _, _)| !alsa_converter(name))
                        .map(|(name, description, is_default)| DeviceEntry {
                            direction,
                            name,
                            description,
                            is_default,
                        }),
                );
            }
        }
        AudioBackend::File => {
            for (direction, path) in [
                (Direction::Capture, &config.input_wav),
                (Direction::Playback, &config.output_wav),
            ] {
                devices.extend(path.iter().map(|p| DeviceEntry {
                    direction,
                    name: p.display().to_string(),
                    description: String::new(),
                    is_default: true,
                }));
            }
        }
        AudioBackend::Null => {}
    }
    Ok(DeviceList {
        backend: match backend {
            AudioBackend::Pulse => "pulse",
            AudioBackend::Cpal => "cpal",
            AudioBackend::File => "file",
            AudioBackend::Null => "null",
        },
        devices,
    })
}

/// ALSA's converter plugins (from libasound2-plugins and alsa-lib), which ALSA lists
/// beside the devices but which carry no sound of their own: a resampler, a channel mixer
/// or a DSP on top of another device. Listing them as microphones and speakers only misleads.
fn alsa_converter(name: &str) -> bool {
    const CONVERTERS: [&str; 7] = [
        "lavrate",
        "samplerate",
        "speexrate",
        "speex",
        "upmix",
        "vdownmix",
        "a52",
    ];
    CONVERTERS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alsa_converter_plugins_are_not_listed_as_devices() {
        for converter in ["lavrate", "samplerate", "speexrate", "upmix", "vdownmix"] {
            assert!(alsa_converter(converter), "{converter}");
        }
        for device in [
            "default",
            "null",
            "pulse",
            "hw:CARD=Headset,DEV=0",
            "sysdefault",
        ] {
            assert!(!alsa_converter(device), "{device}");
        }
    }

    #[test]
    fn the_file_backend_lists_its_wav_paths_and_null_nothing() {
        let mut audio = Audio {
            backend: AudioBackend::File,
            input: None,
            output: None,
            input_wav: Some("/in.wav".into()),
            output_wav: None,
            ring: Default::default(),
            frame: Default::default(),
        };
        let list = list(&audio).expect("a list");
        assert_eq!(list.backend, "file");
        assert_eq!(list.devices.len(), 1);
        assert_eq!(list.devices[0].direction, Direction::Capture);
        assert_eq!(list.devices[0].name, "/in.wav");
        audio.backend = AudioBackend::Null;
        let list = super::list(&audio).expect("a list");
        assert_eq!((list.backend, list.devices.len()), ("null", 0));
    }
}
