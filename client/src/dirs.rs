//! Where the relay and the daemon keep their state when no directory is given.

use std::path::PathBuf;

/// systemd's `$STATE_DIRECTORY` (the first, if it names several), else
/// `/var/lib/<name>` for a system service, else `$XDG_STATE_HOME/<name>`
/// (`~/.local/state/<name>`).
pub fn state_dir(name: &str, system: bool) -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let dir = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !dir.is_empty() {
            return PathBuf::from(dir);
        }
    }
    if system {
        return PathBuf::from("/var/lib").join(name);
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join(name)
}
