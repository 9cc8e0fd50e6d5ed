//! How a device trusts its relay: a fingerprint pinned in the config, else one learnt on
//! first use (TOFU) and kept in the state, else (first contact) any certificate that a
//! public CA vouches for is accepted without pinning, and a self-signed one is pinned.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// What the verifier expects of the relay's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// This exact fingerprint (from the config, or learnt earlier).
    Pinned { fingerprint: String, learnt: bool },
    /// First contact: accept a publicly trusted certificate, or record a self-signed one.
    FirstUse,
    /// Accept anything (tests and tools only).
    Any,
}

/// What the handshake showed.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub fingerprint: Option<String>,
    /// The certificate chains to a public root for the relay's name.
    pub public: bool,
}

#[derive(Debug)]
pub struct Verifier {
    trust: Trust,
    seen: Arc<Mutex<Seen>>,
    provider: Arc<CryptoProvider>,
    public: Option<Arc<WebPkiServerVerifier>>,
}

impl Verifier {
    pub fn new(trust: Trust, provider: Arc<CryptoProvider>, seen: Arc<Mutex<Seen>>) -> Verifier {
        let public = match trust {
            Trust::FirstUse => public_verifier(provider.clone()),
            _ => None,
        };
        Verifier {
            trust,
            seen,
            provider,
            public,
        }
    }
}

/// A WebPKI verifier over the system's trust store, if it has any roots.
fn public_verifier(provider: Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .ok()
}

/// The message for a fingerprint mismatch: names both, says where the pin came from.
pub fn mismatch(seen: &str, pinned: &str, learnt: bool) -> String {
    let origin = if learnt {
        "the fingerprint learnt on first connection (if the relay was reinstalled and you trust its new certificate, run `phonectl relay forget`)"
    } else {
        "relay_fingerprint in the config"
    };
    format!("relay certificate fingerprint {seen} does not match {pinned}, {origin}")
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = phoned_proto::fingerprint::of_der(end_entity);
        let public = self.public.as_ref().is_some_and(|v| {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .is_ok()
        });
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Seen {
            fingerprint: Some(fp.clone()),
            public,
        };
        match &self.trust {
            Trust::Pinned {
                fingerprint,
                learnt,
            } if *fingerprint != fp => {
                Err(rustls::Error::General(mismatch(&fp, fingerprint, *learnt)))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_both_fingerprints_and_where_the_pin_came_from() {
        let configured = mismatch("sha256:aa", "sha256:bb", false);
        assert!(configured.contains("sha256:aa") && configured.contains("sha256:bb"));
        assert!(configured.contains("relay_fingerprint in the config"));
        let learnt = mismatch("sha256:aa", "sha256:bb", true);
        assert!(learnt.contains("learnt on first connection"), "{learnt}");
        assert!(learnt.contains("`phonectl relay forget`"), "{learnt}");
    }
}
