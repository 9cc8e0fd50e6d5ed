//! Who may open a relay link (the QUIC connection between two relays of a cluster that
//! carries calls between them, [`super::link`]): mutual TLS where both sides must present
//! exactly this relay's own certificate. Every relay of a cluster presents the same one
//! (devices pin it), so "the same certificate as mine" is the cluster's membership test,
//! with nothing more to configure; a relay with any other certificate cannot open a link
//! nor be reached as one.
//!
//! Relay links use their own ALPN ([`PEER_ALPN`]) on the relay's one QUIC endpoint and
//! port: the server offers both protocols, devices ask only for [`phoned_proto::ALPN`].
//! The server asks every client for a certificate but does not require one (devices have
//! none); a link without the cluster certificate is refused after the handshake, and a
//! client certificate that is not the cluster's fails the handshake itself.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::cert::Identity;

/// The TLS ALPN identifier of a relay link.
pub const PEER_ALPN: &[u8] = b"phoned-peer/1";

/// The name a relay link's client asks for (the certificate is checked by equality, not
/// by name).
pub const PEER_SERVER_NAME: &str = "cluster.phoned.invalid";

/// Accepts exactly one certificate: the cluster's (this relay's own leaf).
#[derive(Debug)]
pub struct ClusterCert {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ClusterCert {
    pub fn new(cert: CertificateDer<'static>, provider: Arc<CryptoProvider>) -> ClusterCert {
        ClusterCert { cert, provider }
    }

    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.cert.as_ref() {
            Ok(())
        } else {
            Err(rustls::Error::General(format!(
                "relay link: certificate {} is not this cluster's {}",
                crate::cert::fingerprint(presented),
                crate::cert::fingerprint(&self.cert)
            )))
        }
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for ClusterCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.3 only (QUIC).
        Err(rustls::Error::General("TLS 1.2 is not spoken".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ServerCertVerifier for ClusterCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not spoken".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// Whether a connection's peer presented the cluster certificate (the server verifier has
/// already refused any other one; this catches a link that presented none).
pub fn presented_cluster_cert(conn: &quinn::Connection, own: &CertificateDer<'_>) -> bool {
    conn.peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .is_some_and(|chain| chain.first().is_some_and(|c| c.as_ref() == own.as_ref()))
}

/// Whether the connection negotiated the relay-link ALPN.
pub fn is_peer_link(conn: &quinn::Connection) -> bool {
    conn.handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .is_some_and(|p| p == PEER_ALPN)
}

/// The TLS side of a relay link's client: this relay's identity as client certificate,
/// and only the cluster certificate accepted from the server.
pub fn client_tls(identity: &Identity) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ClusterCert::new(identity.chain[0].clone(), provider.clone());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> CertificateDer<'static> {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        c.cert.der().clone()
    }

    #[test]
    fn only_the_cluster_certificate_passes_either_way() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (ours, theirs) = (cert("a"), cert("b"));
        let v = ClusterCert::new(ours.clone(), provider);
        let now = UnixTime::now();
        assert!(v.verify_client_cert(&ours, &[], now).is_ok());
        let err = v.verify_client_cert(&theirs, &[], now).unwrap_err();
        assert!(err.to_string().contains("not this cluster's"), "{err}");
        let name = ServerName::try_from(PEER_SERVER_NAME).unwrap();
        assert!(v.verify_server_cert(&ours, &[], &name, &[], now).is_ok());
        assert!(v.verify_server_cert(&theirs, &[], &name, &[], now).is_err());
        // Devices have no certificate: asked, not required.
        assert!(v.offer_client_auth() && !v.client_auth_mandatory());
    }
}
