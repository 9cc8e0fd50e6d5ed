//! Relay links (calls between relays of one PostgreSQL cluster): only a relay presenting
//! the cluster's certificate may open one; and the cost of a call between relays against
//! one on a single relay (set-up times and media delay, printed with `--nocapture`, no
//! timing asserted; docs/benchmarks.md has the figures).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use phoned_proto::call::CallPhase;
use phoned_proto::media::MediaFrame;
use phoned_proto::{Event, Request, Response};
use phoned_tests::client::Client;
use phoned_tests::process::RelayProcess;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use common::Relay;

/// Two relays on one fresh database sharing one certificate (a cluster); `None` without
/// PostgreSQL here (never in CI).
fn cluster_of_two() -> Option<(Relay, Relay)> {
    let url = phoned_tests::postgres::shared()?.database();
    let a = common::relay(&format!("store = \"{url}\"\nrelay_id = \"a\""));
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    for f in ["relay-cert.der", "relay-key.der"] {
        std::fs::copy(a.process.state_dir.join(f), state.join(f)).expect("copy identity");
    }
    let process = RelayProcess::start(
        common::BIN.as_ref(),
        &state,
        "127.0.0.1:0",
        &format!("store = \"{url}\"\nrelay_id = \"b\""),
    );
    assert_eq!(process.fingerprint, a.process.fingerprint);
    Some((a, Relay { process, dir }))
}

/// Accepts any server certificate: the test is about what the relay accepts.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A relay-link client presenting `identity` (certificate, PKCS#8 key), or none.
fn link_client(identity: Option<(Vec<u8>, Vec<u8>)>) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let mut tls = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"phoned-peer/1".to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ))
}

/// Opens a relay link to `relay` as `config` and says whether it is still open after a
/// second (a link the relay refuses is closed by then, or never opened).
async fn link_stays_open(relay: &Relay, config: quinn::ClientConfig) -> bool {
    let endpoint = phoned_tests::client::endpoint();
    let Ok(connecting) =
        endpoint.connect_with(config, relay.process.addr, "cluster.phoned.invalid")
    else {
        return false;
    };
    let Ok(conn) = connecting.await else {
        return false;
    };
    // A stream with a byte on it, so that the relay has something to refuse.
    if let Ok((mut send, _recv)) = conn.open_bi().await {
        let _ = send.write_all(&[0]).await;
    }
    smol::future::or(
        async {
            conn.closed().await;
            false
        },
        async {
            smol::Timer::after(Duration::from_secs(1)).await;
            true
        },
    )
    .await
}

#[test]
fn only_a_relay_with_the_cluster_certificate_opens_a_relay_link() {
    let Some((a, _b)) = cluster_of_two() else {
        return;
    };
    let stranger = rcgen::generate_simple_self_signed(vec!["phone-relay".into()]).unwrap();
    let theirs = (
        stranger.cert.der().to_vec(),
        stranger.signing_key.serialize_der(),
    );
    let ours = (
        std::fs::read(a.process.state_dir.join("relay-cert.der")).unwrap(),
        std::fs::read(a.process.state_dir.join("relay-key.der")).unwrap(),
    );
    smol::block_on(async {
        assert!(
            !link_stays_open(&a, link_client(Some(theirs))).await,
            "a relay with another certificate opened a link"
        );
        assert!(
            !link_stays_open(&a, link_client(None)).await,
            "a link without a certificate stayed open"
        );
        // The same client with the cluster's certificate: the link stays.
        assert!(link_stays_open(&a, link_client(Some(ours))).await);
    });
}

async fn dial(c: &Client, to: &str) -> u64 {
    match c.request(Request::Dial { to: to.into() }).await.unwrap() {
        Response::CallPlaced { call } => call,
        other => panic!("{other:?}"),
    }
}

/// A media frame whose payload is the sender's clock (µs since `epoch`).
fn stamped(call: u64, seq: u32, epoch: Instant) -> bytes::Bytes {
    let us = epoch.elapsed().as_micros() as u64;
    common::media_frame(call, seq, us.to_le_bytes().to_vec())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p99(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// `calls` calls from `x` to `y` (number `ny`): dial → ringing on `y`, answer → active on
/// `x`, and the one-way delay of `frames` media frames each way (ms).
async fn measure(x: &Client, y: &Client, ny: &str, calls: usize, frames: u32) -> [Vec<f64>; 3] {
    let epoch = Instant::now();
    let (mut ring, mut answer, mut delay) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..calls {
        let t0 = Instant::now();
        let call = dial(x, ny).await;
        let rang = y
            .wait_event(
                common::WAIT,
                |e| matches!(e, Event::CallIncoming { call: c, .. } if *c == call),
            )
            .await;
        assert!(rang.is_some(), "the callee never rang");
        ring.push(t0.elapsed().as_secs_f64() * 1e3);
        let t1 = Instant::now();
        y.request(Request::Answer { call }).await.unwrap();
        let active = x
            .wait_event(common::WAIT, |e| {
                matches!(e, Event::CallState { call: c, phase: CallPhase::Active { .. } } if *c == call)
            })
            .await;
        assert!(active.is_some(), "the caller never saw the answer");
        answer.push(t1.elapsed().as_secs_f64() * 1e3);
        for (from, to) in [(x, y), (y, x)] {
            let mut got = 0;
            for seq in 0..frames {
                from.conn.send_datagram(stamped(call, seq, epoch)).unwrap();
                let d = smol::future::or(async { to.conn.read_datagram().await.ok() }, async {
                    smol::Timer::after(Duration::from_secs(1)).await;
                    None
                })
                .await;
                let Some(d) = d else { continue };
                let f = MediaFrame::decode(&d).expect("a media frame");
                let sent = u64::from_le_bytes(f.payload[..8].try_into().unwrap());
                let now = epoch.elapsed().as_micros() as u64;
                delay.push(now.saturating_sub(sent) as f64 / 1e3);
                got += 1;
                smol::Timer::after(Duration::from_millis(2)).await;
            }
            assert!(got > frames / 2, "media did not flow: {got} of {frames}");
        }
        x.request(Request::Hangup { call }).await.unwrap();
        let ended = y
            .wait_event(common::WAIT, |e| {
                matches!(e, Event::CallState { call: c, phase: CallPhase::Ended(_) } if *c == call)
            })
            .await;
        assert!(ended.is_some(), "the hangup did not reach the callee");
    }
    [ring, answer, delay]
}

#[test]
fn call_setup_and_media_delay_on_one_relay_and_across_two() {
    let Some((ra, rb)) = cluster_of_two() else {
        return;
    };
    const CALLS: usize = 20;
    const FRAMES: u32 = 100;
    smol::block_on(async {
        let (x, _, _) = ra.provisioned("X").await;
        let (same, n_same, _) = ra.provisioned("Same").await;
        let (other, n_other, _) = rb.provisioned("Other").await;
        let seen = x
            .wait_event(
                common::WAIT,
                |e| matches!(e, Event::Presence { number, online: true, .. } if *number == n_other),
            )
            .await;
        assert!(seen.is_some(), "relay a never saw the device on relay b");
        for (label, y, ny) in [
            ("one relay", &same, &n_same),
            ("two relays", &other, &n_other),
        ] {
            let [mut ring, mut answer, mut delay] = measure(&x, y, ny, CALLS, FRAMES).await;
            let first = ring[0];
            eprintln!(
                "{label}: dial→ringing median {:.2} ms (first {:.2}), answer→active median {:.2} ms, \
                 media one-way delay median {:.3} ms p99 {:.3} ms ({} frames)",
                median(&mut ring),
                first,
                median(&mut answer),
                median(&mut delay),
                p99(&mut delay),
                delay.len()
            );
        }
    });
}
