//! The number and secret a device provisioned, kept in its state dir (mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub number: String,
    pub password: String,
}

#[derive(Debug, Error)]
pub enum CredentialsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Encode(#[from] toml::ser::Error),
}

const FILE: &str = "account.toml";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Reads the stored credentials; `Ok(None)` if there are none yet.
pub fn load(state_dir: &Path) -> Result<Option<Credentials>, CredentialsError> {
    let p = path(state_dir);
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| CredentialsError::Parse {
                message: e.message().to_owned(),
                path: p,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CredentialsError::Io { path: p, source }),
    }
}

/// Writes the credentials atomically, readable by the owner only.
pub fn save(state_dir: &Path, creds: &Credentials) -> Result<(), CredentialsError> {
    let p = path(state_dir);
    let tmp = p.with_extension("tmp");
    let text = toml::to_string(creds)?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)?;
        if let Ok(dir) = std::fs::File::open(state_dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    };
    write().map_err(|source| CredentialsError::Io { path: p, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_privately_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let c = Credentials {
            number: "1042".into(),
            password: "secret".into(),
        };
        save(dir.path(), &c).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(c));
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(path(dir.path()), "number = 5").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
