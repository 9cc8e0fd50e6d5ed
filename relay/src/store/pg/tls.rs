//! TLS to PostgreSQL, asked for in the store URL the way libpq users know:
//! `sslmode=require` (or `verify-ca`, `verify-full`) connects only over TLS, and
//! `sslrootcert=/path/ca.pem` names the certificates the server's is checked against
//! (without it, the system's trusted roots). The server's certificate is always checked,
//! name included — what libpq calls `verify-full` — so a relay never sends its database
//! password to a server it cannot tell from an impostor. `disable`, `prefer` (the default)
//! and no `sslmode` connect without TLS, as before (over a unix socket TLS does not apply).
//!
//! Pure parsing here ([`split`]); the connector is built from its result once, when the
//! configuration is read, so a missing or unreadable CA file is a configuration error at
//! start, not a failure at the first connection.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The URL for `postgres::Config`: our parameters taken out, `verify-*` as `require`.
    pub url: String,
    /// TLS is required; with these roots (`None`: the system's).
    pub tls: Option<Option<PathBuf>>,
}

/// Splits the TLS parameters off a PostgreSQL URL.
pub fn split(url: &str) -> Result<Wanted, String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => {
            return Ok(Wanted {
                url: url.to_owned(),
                tls: None,
            });
        }
    };
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                let m = match value {
                    "disable" | "prefer" => value,
                    "require" | "verify-ca" | "verify-full" => "require",
                    other => {
                        return Err(format!(
                            "sslmode={other} is not one of disable, prefer, require, \
                             verify-ca, verify-full"
                        ));
                    }
                };
                mode = Some(m);
                kept.push(format!("sslmode={m}"));
            }
            "sslrootcert" => root = Some(PathBuf::from(percent_decode(value)?)),
            _ => kept.push(pair.to_owned()),
        }
    }
    let required = mode == Some("require");
    if root.is_some() && !required {
        return Err("sslrootcert is given but TLS is not required: add sslmode=require".into());
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Wanted {
        url,
        tls: required.then_some(root),
    })
}

/// `%XX` escapes decoded (a path in a URL query); anything else as is.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad %-escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The connector for `roots` (a PEM file of CA certificates, or the system's roots).
pub fn connector(roots: Option<&std::path::Path>) -> Result<MakeRustlsConnect, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert {}: no PEM certificate in it",
                    path.display()
                ));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "sslmode=require: the system has no trusted certificates; name the \
                     server's CA with sslrootcert=/path/ca.pem"
                        .into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sslmode_and_the_weak_modes_ask_for_no_tls() {
        for url in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=disable",
            "postgres://u@h/db?application_name=x&sslmode=prefer",
        ] {
            let w = split(url).unwrap();
            assert_eq!(w.tls, None, "{url}");
            assert_eq!(w.url, url);
        }
    }

    #[test]
    fn require_and_verify_modes_ask_for_verified_tls_with_the_named_roots() {
        let w = split("postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
            .unwrap();
        assert_eq!(w.url, "postgres://u@h:5432/db?sslmode=require");
        assert_eq!(w.tls, Some(Some(PathBuf::from("/etc/ca.pem"))));
        let w = split("postgres://u@h/db?sslmode=require&connect_timeout=3").unwrap();
        assert_eq!(w.url, "postgres://u@h/db?sslmode=require&connect_timeout=3");
        assert_eq!(w.tls, Some(None));
        let w = split("postgres://u@h/db?sslrootcert=/ca.pem&sslmode=verify-ca").unwrap();
        assert_eq!(w.tls, Some(Some(PathBuf::from("/ca.pem"))));
    }

    #[test]
    fn bad_tls_parameters_are_errors_that_say_why() {
        let e = split("postgres://u@h/db?sslmode=allow").unwrap_err();
        assert!(e.contains("sslmode=allow"), "{e}");
        let e = split("postgres://u@h/db?sslrootcert=/ca.pem").unwrap_err();
        assert!(e.contains("sslmode=require"), "{e}");
        let e = split("postgres://u@h/db?sslmode=require&sslrootcert=%zz").unwrap_err();
        assert!(e.contains("escape"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let e = connector(Some("/nonexistent/ca.pem".as_ref()))
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = connector(Some(&empty)).err().unwrap();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn a_ca_file_with_a_certificate_makes_a_connector() {
        let cert = rcgen::generate_simple_self_signed(vec!["db.example".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert.cert.pem()).unwrap();
        assert!(connector(Some(&path)).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_url_splits_without_panicking(url in "postgres://[a-z@:/%?&=.-]{0,40}") {
            let _ = split(&url);
        }
    }
}
