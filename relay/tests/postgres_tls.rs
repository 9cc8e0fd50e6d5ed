//! TLS to PostgreSQL: a relay whose `store` URL says `sslmode=verify-full` and names the
//! CA (`sslrootcert`) talks to a real PostgreSQL that takes TCP connections over TLS only,
//! serves devices from it, and every connection it holds is encrypted (the server's own
//! `pg_stat_ssl` says so); a server whose certificate another CA signed is refused.

mod common;

use phone_relay::store::pg::{PgStore, Url};
use phoned_tests::postgres::Cluster;

fn url(port: u16, db: &str, query: &str) -> String {
    format!("postgres://phoned@127.0.0.1:{port}/{db}{query}")
}

#[test]
fn a_relay_on_postgres_over_tls_serves_devices_on_encrypted_connections_only() {
    let Some((pg, tls)) = Cluster::start_tls() else {
        return;
    };
    pg.psql("postgres", "CREATE DATABASE phone");
    // The server refuses TCP without TLS, so whatever works below went over TLS.
    let plain: Url = url(tls.port, "phone", "").parse().expect("plain URL");
    let refused = PgStore::open(&plain).err().expect("no TLS, no entry");
    assert!(
        refused.to_string().contains("no encryption") || refused.to_string().contains("hba"),
        "{refused}"
    );

    let secure = url(
        tls.port,
        "phone",
        &format!(
            "?sslmode=verify-full&sslrootcert={}",
            tls.ca_pem.display().to_string().replace('/', "%2F")
        ),
    );
    let relay = common::relay(&format!("store = \"{secure}\""));
    smol::block_on(async {
        let (a, na, _) = relay.provisioned("A").await;
        let (b, nb, _) = relay.provisioned("B").await;
        assert_ne!(na, nb);
        assert!(
            a.online()
                .await
                .expect("online")
                .iter()
                .any(|(n, _)| *n == nb),
            "A does not see B online"
        );
        drop(b);
    });
    let counts = pg.psql(
        "phone",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = 'phone-relay'",
    );
    let (encrypted, clear) = counts.split_once('|').expect("two counts");
    assert!(
        encrypted.parse::<u32>().expect("count") > 0,
        "no relay connection: {counts}"
    );
    assert_eq!(clear, "0", "a relay connection without TLS: {counts}");
}

#[test]
fn a_server_whose_certificate_another_ca_signed_is_refused() {
    let Some((pg, tls)) = Cluster::start_tls() else {
        return;
    };
    pg.psql("postgres", "CREATE DATABASE phone");
    let dir = tempfile::tempdir().expect("temp dir");
    let other_ca = dir.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("CA");
    std::fs::write(&other_ca, other.cert.pem()).expect("write CA");
    let wrong: Url = url(
        tls.port,
        "phone",
        &format!("?sslmode=require&sslrootcert={}", other_ca.display()),
    )
    .parse()
    .expect("URL");
    assert!(wrong.tls());
    let err = PgStore::open(&wrong).err().expect("an unknown CA");
    assert!(err.to_string().contains("certificate"), "{err}");

    // The right CA, for contrast: the same server and database are fine.
    let right: Url = url(
        tls.port,
        "phone",
        &format!("?sslmode=require&sslrootcert={}", tls.ca_pem.display()),
    )
    .parse()
    .expect("URL");
    PgStore::open(&right).expect("the server's own CA");
}
