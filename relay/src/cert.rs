//! The relay's TLS identity: a self-signed certificate made on first start and kept in
//! the state dir (or a configured certificate), and its SHA-256 fingerprint.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: no {what} found in PEM file")]
    Pem { path: PathBuf, what: &'static str },
}

pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// `sha256:` and the lowercase hex SHA-256 of the leaf certificate.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }
}

pub fn fingerprint(cert: &[u8]) -> String {
    phoned_proto::fingerprint::of_der(cert)
}

/// The self-signed identity's files in the state dir.
pub const CERT_FILE: &str = "relay-cert.der";
pub const KEY_FILE: &str = "relay-key.der";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Loads the self-signed identity from `state_dir`, making it on first use.
pub fn load_or_create(state_dir: &Path) -> Result<Identity, CertError> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        let cert = fs::read(&cert_path).map_err(io(&cert_path))?;
        let key = fs::read(&key_path).map_err(io(&key_path))?;
        return Ok(Identity {
            chain: vec![CertificateDer::from(cert)],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        });
    }
    fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let made =
        rcgen::generate_simple_self_signed(vec!["phone-relay".to_owned(), "localhost".to_owned()])?;
    let cert = made.cert.der().to_vec();
    let key = made.signing_key.serialize_der();
    // Key first, written privately; the certificate's presence marks a complete pair.
    write_private(&key_path, &key)?;
    write_private(&cert_path, &cert)?;
    Ok(Identity {
        chain: vec![CertificateDer::from(cert)],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
    })
}

/// Reads only the fingerprint, for `phone-relay fingerprint`.
pub fn stored_fingerprint(state_dir: &Path) -> Result<String, CertError> {
    let path = state_dir.join(CERT_FILE);
    let cert = fs::read(&path).map_err(io(&path))?;
    Ok(fingerprint(&cert))
}

/// Loads a certificate chain and key from PEM files (e.g. from a public CA).
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<Identity, CertError> {
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|_| CertError::Pem {
            path: cert_path.to_owned(),
            what: "certificate",
        })?
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(CertError::Pem {
            path: cert_path.to_owned(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|_| CertError::Pem {
        path: key_path.to_owned(),
        what: "private key",
    })?;
    Ok(Identity { chain, key })
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CertError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(stored_fingerprint(dir.path()).unwrap(), a.fingerprint());
        assert!(a.fingerprint().starts_with("sha256:") && a.fingerprint().len() == 71);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
