//! Scraping a real relay's metrics endpoint (OpenMetrics text), checking its shape.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::configured::ConfiguredRelay;

/// The address the relay logged for its endpoint.
pub fn endpoint(relay: &ConfiguredRelay) -> SocketAddr {
    let log = relay.log();
    let at = log
        .split("metrics endpoint on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics endpoint logged:\n{log}"));
    at.parse().expect("metrics address")
}

/// One HTTP request; the whole response (the relay closes the connection).
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(super::WAIT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    out
}

/// The samples of a scrape, `name{labels}` → value. Checks the exposition's shape on
/// the way: a 200 with the OpenMetrics type, every sample line `name[{…}] value`,
/// every family described, `# EOF` last.
pub fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let response = http(addr, "GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "no EOF marker:\n{body}");
    let mut samples = BTreeMap::new();
    let mut described = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            described.push(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let family = name.split('{').next().unwrap();
        assert!(
            described.iter().any(|d| family.starts_with(d.as_str())),
            "a sample before its TYPE: {line}"
        );
        assert!(
            family.starts_with("phone_relay_"),
            "not the relay's: {line}"
        );
        samples.insert(name.to_owned(), value);
    }
    samples
}

pub fn get(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {samples:#?}"))
}
