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
    /// A configured `tls_cert` or `tls_key` names a file that is not there.
    #[error("{path}: {what} file does not exist")]
    Missing { path: PathBuf, what: &'static str },
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

    /// The key of the QUIC stateless resets this relay sends, derived from its private
    /// key. A reset tells a device at once that the relay no longer knows its connection
    /// (a restart), but the device believes it only if its token (an HMAC of the
    /// connection id under this key) matches the one the relay gave at the handshake. A
    /// key drawn afresh on each start made every reset after a restart look forged, so
    /// devices waited for their idle timeout instead. The key stays secret as long as the
    /// private key does, and changes with it.
    pub fn reset_key(&self) -> ring::hmac::Key {
        let seed = self.derive(b"QUIC stateless reset key");
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed)
    }

    /// The key of the check that quinn's connection ids carry, derived like
    /// [`Identity::reset_key`]: a relay answers a packet for a connection it does not know
    /// with a reset only if the id passes the check, and a restarted relay must still
    /// recognise the ids it handed out before. This key is not secret (quinn's check is
    /// FxHash, which an observer of many ids might invert); its own label keeps it
    /// independent of the reset key and of the private key.
    pub fn connection_id_key(&self) -> u64 {
        let seed = self.derive(b"QUIC connection id check key");
        let mut first = [0; 8];
        first.copy_from_slice(&seed[..8]);
        u64::from_le_bytes(first)
    }

    /// SHA-256 of a label and the private key: a value only this relay knows, the same
    /// on every start.
    fn derive(&self, label: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut seed = Sha256::new();
        seed.update(b"phone-relay v1: ");
        seed.update(label);
        seed.update([0]);
        seed.update(self.key.secret_der());
        seed.finalize().into()
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
    let cert_pem = read_pem(cert_path, "certificate")?;
    let key_pem = read_pem(key_path, "private key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(CertError::Pem {
            path: cert_path.to_owned(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| CertError::Pem {
        path: key_path.to_owned(),
        what: "private key",
    })?;
    Ok(Identity { chain, key })
}

/// Reads a PEM file whole, telling a missing file apart from one without PEM in it.
fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CertError::Missing {
            path: path.to_owned(),
            what,
        },
        _ => CertError::Io {
            path: path.to_owned(),
            source,
        },
    })
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

    /// A PEM certificate and key made with rcgen, written into `dir`.
    fn pem_files(dir: &Path) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["relay.example".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert, made.cert.pem()).unwrap();
        fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn the_reset_key_is_the_same_after_a_restart_and_differs_between_relays() {
        let tag = |i: &Identity| {
            ring::hmac::sign(&i.reset_key(), b"connection id")
                .as_ref()
                .to_vec()
        };
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        let other = load_or_create(&dir.path().join("other")).unwrap();
        assert_eq!(tag(&first), tag(&again));
        assert_ne!(tag(&first), tag(&other));
        assert_eq!(first.connection_id_key(), again.connection_id_key());
        assert_ne!(first.connection_id_key(), other.connection_id_key());
    }

    #[test]
    fn pem_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pem_files(dir.path());
        assert_eq!(load_pem(&cert, &key).unwrap().chain.len(), 1);
    }

    #[test]
    fn a_missing_certificate_or_key_file_is_named_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pem_files(dir.path());
        let gone = dir.path().join("gone.pem");
        let err = load_pem(&gone, &key).err().unwrap();
        assert!(matches!(&err, CertError::Missing { path, what: "certificate" } if *path == gone));
        assert_eq!(
            err.to_string(),
            format!("{}: certificate file does not exist", gone.display())
        );
        let err = load_pem(&cert, &gone).err().unwrap();
        assert!(matches!(&err, CertError::Missing { path, what: "private key" } if *path == gone));
        assert_eq!(
            err.to_string(),
            format!("{}: private key file does not exist", gone.display())
        );
        // A file that is there but holds no PEM still says so.
        let garbage = dir.path().join("garbage.pem");
        fs::write(&garbage, "not pem").unwrap();
        let err = load_pem(&garbage, &key).err().unwrap();
        assert!(matches!(
            err,
            CertError::Pem {
                what: "certificate",
                ..
            }
        ));
        let err = load_pem(&cert, &garbage).err().unwrap();
        assert!(matches!(
            err,
            CertError::Pem {
                what: "private key",
                ..
            }
        ));
    }

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
