//! Which sink or source the config's `input`/`output` means: an exact server name first
//! (`alsa_output.usb-…`), else a description compared without regard to case
//! (`"usb headset"` for "USB Headset"). Pure functions, so the rule is tested alone.

use super::introspect::DeviceInfo;

/// The device `wanted` names, if one exists.
pub fn find<'a>(wanted: &str, devices: &'a [DeviceInfo]) -> Option<&'a DeviceInfo> {
    devices.iter().find(|d| d.name == wanted).or_else(|| {
        let wanted = wanted.to_lowercase();
        devices
            .iter()
            .find(|d| d.description.to_lowercase() == wanted)
    })
}

/// The devices, for an error message: `name (description)`, comma-separated; `none`.
pub fn available(devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return "none".to_owned();
    }
    devices
        .iter()
        .map(|d| {
            if d.description.is_empty() || d.description == d.name {
                d.name.clone()
            } else {
                format!("{} ({})", d.name, d.description)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, description: &str) -> DeviceInfo {
        DeviceInfo {
            name: name.into(),
            description: description.into(),
            index: 0,
        }
    }

    #[test]
    fn a_device_is_found_by_exact_name_else_by_description_ignoring_case() {
        let devices = [
            dev(
                "alsa_output.pci-0000_00_1f.3.analog-stereo",
                "Built-in Audio",
            ),
            dev("alsa_output.usb-Logitech_H390", "USB Headset"),
            // A description that is another device's name loses to the name.
            dev("odd", "alsa_output.usb-Logitech_H390"),
        ];
        let name = |w| find(w, &devices).map(|d| d.name.as_str());
        assert_eq!(
            name("alsa_output.usb-Logitech_H390"),
            Some("alsa_output.usb-Logitech_H390")
        );
        assert_eq!(name("USB Headset"), Some("alsa_output.usb-Logitech_H390"));
        assert_eq!(name("usb headset"), Some("alsa_output.usb-Logitech_H390"));
        assert_eq!(
            name("built-in AUDIO"),
            Some("alsa_output.pci-0000_00_1f.3.analog-stereo")
        );
        // Names are exact: no case folding (this one matches only as the description of
        // "odd"), no prefixes.
        assert_eq!(name("ALSA_OUTPUT.USB-LOGITECH_H390"), Some("odd"));
        assert_eq!(name("ALSA_OUTPUT.PCI-0000_00_1F.3.ANALOG-STEREO"), None);
        assert_eq!(name("USB"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn the_error_lists_names_and_descriptions() {
        assert_eq!(available(&[]), "none");
        assert_eq!(
            available(&[dev("speaker", "Null Output"), dev("mic", "mic")]),
            "speaker (Null Output), mic"
        );
    }
}
