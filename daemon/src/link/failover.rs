//! Which relay to try, sans-IO: the configured relays (a list, and each name's every
//! address: several A/AAAA records) flattened in order, and a rotation over them. A try
//! that fails, or a link that is lost, moves the rotation on, so the next try goes to the
//! next relay of the cluster; a working link stays where it is.
//!
//! With the reconnect schedule ([`super::BACKOFF`]: the first retry after 0.1–0.2 s, each
//! of the first tries given 3.5 s) and the client's idle timeout (a dead relay is noticed
//! 4–5 s after its last packet), a device of a relay that died is on the next one within
//! about 6 s, or 10 s when that one is dead too.

use std::net::SocketAddr;

/// One address to try, and the name its certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The host as configured (an IP address or a DNS name).
    pub host: String,
}

/// The addresses to try, in order, from each configured host's resolved addresses
/// (config order, each host's addresses in the order the resolver gave them; an address
/// seen before is skipped).
pub fn targets(resolved: Vec<(String, Vec<SocketAddr>)>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for (host, addrs) in resolved {
        for addr in addrs {
            if !out.iter().any(|t| t.addr == addr) {
                out.push(Target {
                    addr,
                    host: host.clone(),
                });
            }
        }
    }
    out
}

/// Where in the list of targets the next try goes.
#[derive(Debug, Default, Clone)]
pub struct Rotation {
    next: usize,
}

impl Rotation {
    /// The target to try now, of `targets`.
    pub fn pick<'a>(&self, targets: &'a [Target]) -> Option<&'a Target> {
        if targets.is_empty() {
            return None;
        }
        targets.get(self.next % targets.len())
    }

    /// The try failed, or the link was lost: the next try goes to the next target.
    pub fn moved_on(&mut self) {
        self.next = self.next.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_address_of_every_host_in_order_without_repeats() {
        let t = targets(vec![
            (
                "r.example".into(),
                vec![a("10.0.0.1:7447"), a("10.0.0.2:7447")],
            ),
            ("10.0.0.2".into(), vec![a("10.0.0.2:7447")]),
            ("dead.example".into(), vec![]),
            ("10.0.0.3".into(), vec![a("10.0.0.3:9")]),
        ]);
        let addrs: Vec<SocketAddr> = t.iter().map(|t| t.addr).collect();
        assert_eq!(
            addrs,
            [a("10.0.0.1:7447"), a("10.0.0.2:7447"), a("10.0.0.3:9")]
        );
        assert_eq!(t[1].host, "r.example");
    }

    #[test]
    fn a_failure_moves_to_the_next_relay_and_wraps_around() {
        let t = targets(vec![(
            "r".into(),
            vec![a("10.0.0.1:1"), a("10.0.0.2:1"), a("10.0.0.3:1")],
        )]);
        let mut r = Rotation::default();
        let mut tried = Vec::new();
        for _ in 0..4 {
            tried.push(r.pick(&t).unwrap().addr);
            r.moved_on();
        }
        assert_eq!(
            tried,
            [
                a("10.0.0.1:1"),
                a("10.0.0.2:1"),
                a("10.0.0.3:1"),
                a("10.0.0.1:1")
            ]
        );
        // A list that shrank (DNS answered fewer records) still gives one.
        assert_eq!(r.pick(&t[..1]).unwrap().addr, a("10.0.0.1:1"));
        assert_eq!(r.pick(&[]), None);
    }
}
