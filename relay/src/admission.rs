//! Which new connections the relay takes: at most `max_connections` in all and at most
//! `max_connections_per_address` from one client address (an IPv4 address or an IPv6
//! /64), counted from the moment a connection is accepted until it ends, logged in or
//! not. Sans-IO: the accept loop asks [`Connections::admit`] and gives the slot back with
//! [`Connections::release`] when the connection's task ends.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::throttle::prefix;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` reached.
    Full,
    /// `max_connections_per_address` reached for this address.
    Address,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Full => "connection limit reached",
            Refused::Address => "connection limit for this address reached",
        }
    }
}

/// The live connections, in all and per address.
#[derive(Debug, Default)]
pub struct Connections {
    per_address: HashMap<IpAddr, u32>,
    total: u32,
}

impl Connections {
    /// Takes a slot for a connection from `addr`, within the limits given (they may
    /// change with a reload; connections over a lowered limit are not cut).
    pub fn admit(
        &mut self,
        addr: IpAddr,
        max_total: u32,
        max_per_address: u32,
    ) -> Result<(), Refused> {
        if self.total >= max_total {
            return Err(Refused::Full);
        }
        let n = self.per_address.entry(prefix(addr)).or_insert(0);
        if *n >= max_per_address {
            return Err(Refused::Address);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back the slot of an admitted connection from `addr`.
    pub fn release(&mut self, addr: IpAddr) {
        let key = prefix(addr);
        if let Some(n) = self.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&key);
            }
            self.total -= 1;
        }
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Connections from `addr`'s address (or /64).
    pub fn from(&self, addr: IpAddr) -> u32 {
        self.per_address.get(&prefix(addr)).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let mut c = Connections::default();
        for _ in 0..16 {
            c.admit(ip("10.0.0.1"), 50, 16).unwrap();
        }
        assert_eq!(c.admit(ip("10.0.0.1"), 50, 16), Err(Refused::Address));
        // The same /64 is the same address.
        let mut v6 = Connections::default();
        v6.admit(ip("2001:db8::1"), 50, 1).unwrap();
        assert_eq!(v6.admit(ip("2001:db8::2"), 50, 1), Err(Refused::Address));
        assert!(v6.admit(ip("2001:db8:0:1::1"), 50, 1).is_ok());
        // Others still get in, up to the total.
        for i in 2..36 {
            c.admit(ip(&format!("10.0.0.{i}")), 50, 16).unwrap();
        }
        assert_eq!(c.total(), 50);
        assert_eq!(c.admit(ip("10.0.0.99"), 50, 16), Err(Refused::Full));
        c.release(ip("10.0.0.1"));
        assert_eq!(c.from(ip("10.0.0.1")), 15);
        assert!(c.admit(ip("10.0.0.99"), 50, 16).is_ok());
    }

    proptest! {
        /// Whatever the order of arrivals and departures, the counts stay within the
        /// limits and return to zero when every connection has ended.
        #[test]
        fn counts_stay_within_limits_and_drain(
            ops in proptest::collection::vec((0u8..6, any::<bool>()), 0..300),
            max_total in 1u32..20,
            max_per in 1u32..8,
        ) {
            let mut c = Connections::default();
            let mut live: Vec<IpAddr> = Vec::new();
            for (a, arrive) in ops {
                let addr = IpAddr::from([10, 0, 0, a]);
                if arrive {
                    if c.admit(addr, max_total, max_per).is_ok() {
                        live.push(addr);
                    }
                } else if let Some(i) = live.iter().position(|l| *l == addr) {
                    c.release(live.swap_remove(i));
                }
                prop_assert!(c.total() <= max_total);
                prop_assert!(c.from(addr) <= max_per);
                prop_assert_eq!(c.total() as usize, live.len());
            }
            for addr in live.drain(..) {
                c.release(addr);
            }
            prop_assert_eq!(c.total(), 0);
            prop_assert!(c.per_address.is_empty());
        }
    }
}
