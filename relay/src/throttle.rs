//! Back-off for failed logins, per client address and per number, decided before any
//! password hash is computed. Sans-IO: the caller passes the time in.

use std::collections::HashMap;
use std::net::IpAddr;

/// Failures allowed before back-off starts.
const FREE_FAILURES: u32 = 5;
/// The first back-off, doubled with each further failure.
const BASE_DELAY_MS: u64 = 1_000;
const MAX_DELAY_MS: u64 = 5 * 60_000;
/// An entry with no failure for this long is forgotten.
const FORGET_AFTER_MS: u64 = 60 * 60_000;
/// Entries kept at most; the stalest are dropped beyond it.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// IPv4 address, or the /64 prefix of an IPv6 address.
    Ip(IpAddr),
    Number(String),
}

impl Key {
    pub fn ip(addr: IpAddr) -> Key {
        match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Ip(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Key::Ip(IpAddr::V6([s[0], s[1], s[2], s[3], 0, 0, 0, 0].into()))
                }
            },
            v4 => Key::Ip(v4),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure_ms: u64,
    blocked_until_ms: u64,
}

#[derive(Debug, Default)]
pub struct Throttle {
    entries: HashMap<Key, Entry>,
}

impl Throttle {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Err(ms)` if `key` must wait `ms` more before its next attempt.
    pub fn check(&self, key: &Key, now_ms: u64) -> Result<(), u64> {
        match self.entries.get(key) {
            Some(e) if e.blocked_until_ms > now_ms => Err(e.blocked_until_ms - now_ms),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failure(&mut self, key: Key, now_ms: u64) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.prune(now_ms);
        }
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last_failure_ms: now_ms,
            blocked_until_ms: 0,
        });
        if now_ms.saturating_sub(e.last_failure_ms) > FORGET_AFTER_MS {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure_ms = now_ms;
        if e.failures > FREE_FAILURES {
            let doublings = (e.failures - FREE_FAILURES - 1).min(20);
            let delay = (BASE_DELAY_MS << doublings).min(MAX_DELAY_MS);
            e.blocked_until_ms = now_ms + delay;
        }
    }

    /// A successful login clears the number's record (not the address's: one address
    /// guessing many numbers keeps its back-off).
    pub fn success(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    fn prune(&mut self, now_ms: u64) {
        self.entries
            .retain(|_, e| now_ms.saturating_sub(e.last_failure_ms) <= FORGET_AFTER_MS);
        if self.entries.len() >= MAX_ENTRIES {
            // Still full of fresh entries: drop the older half.
            let mut times: Vec<u64> = self.entries.values().map(|e| e.last_failure_ms).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.entries.retain(|_, e| e.last_failure_ms > cut);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_starts_after_free_failures_and_doubles() {
        let mut t = Throttle::new();
        let k = Key::Number("1042".into());
        for _ in 0..FREE_FAILURES {
            assert!(t.check(&k, 0).is_ok());
            t.failure(k.clone(), 0);
        }
        assert!(t.check(&k, 0).is_ok());
        t.failure(k.clone(), 0);
        assert_eq!(t.check(&k, 0), Err(1_000));
        assert!(t.check(&k, 1_000).is_ok());
        t.failure(k.clone(), 1_000);
        assert_eq!(t.check(&k, 1_000), Err(2_000));
        for _ in 0..40 {
            t.failure(k.clone(), 2_000);
        }
        assert_eq!(t.check(&k, 2_000), Err(MAX_DELAY_MS));
        t.success(&k);
        assert!(t.check(&k, 2_000).is_ok());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut t = Throttle::new();
        let k = Key::ip("10.0.0.1".parse().unwrap());
        for _ in 0..FREE_FAILURES {
            t.failure(k.clone(), 0);
        }
        t.failure(k.clone(), FORGET_AFTER_MS + 1);
        assert!(t.check(&k, FORGET_AFTER_MS + 1).is_ok());
    }

    #[test]
    fn ipv6_is_keyed_by_prefix() {
        assert_eq!(
            Key::ip("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            Key::ip("2001:db8:1:2:ffff::1".parse().unwrap())
        );
        assert_eq!(
            Key::ip("::ffff:10.0.0.1".parse().unwrap()),
            Key::ip("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = Throttle::new();
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            t.failure(Key::Number(i.to_string()), i);
        }
        assert!(t.len() <= MAX_ENTRIES);
    }
}

/// Token buckets per key: `burst` actions at once, refilled at `per_hour`. Used to stop
/// one address from provisioning the whole number range.
#[derive(Debug)]
pub struct Buckets {
    burst: f64,
    per_ms: f64,
    tokens: HashMap<Key, (f64, u64)>,
}

impl Buckets {
    pub fn new(burst: u32, per_hour: u32) -> Buckets {
        Buckets {
            burst: f64::from(burst),
            per_ms: f64::from(per_hour) / 3_600_000.0,
            tokens: HashMap::new(),
        }
    }

    /// Changes the burst and refill rate (a config reload). Every key keeps the tokens it
    /// has earned until `now_ms` at the old rate, capped at the new burst, and refills at
    /// the new rate from then on.
    pub fn set_rates(&mut self, burst: u32, per_hour: u32, now_ms: u64) {
        let (old_burst, old_per_ms) = (self.burst, self.per_ms);
        let burst = f64::from(burst);
        for (tokens, at) in self.tokens.values_mut() {
            let earned = old_per_ms * now_ms.saturating_sub(*at) as f64;
            *tokens = (*tokens + earned).min(old_burst).min(burst);
            *at = (*at).max(now_ms);
        }
        self.burst = burst;
        self.per_ms = f64::from(per_hour) / 3_600_000.0;
    }

    /// Takes one token for `key`, or says how many ms until one is available.
    pub fn take(&mut self, key: Key, now_ms: u64) -> Result<(), u64> {
        if self.tokens.len() >= MAX_ENTRIES && !self.tokens.contains_key(&key) {
            let (burst, per_ms) = (self.burst, self.per_ms);
            // Drop the keys that have refilled completely: they hold no information.
            self.tokens
                .retain(|_, (t, at)| *t + per_ms * (now_ms.saturating_sub(*at) as f64) < burst);
        }
        let (tokens, at) = self.tokens.entry(key).or_insert((self.burst, now_ms));
        let refilled = (*tokens + self.per_ms * now_ms.saturating_sub(*at) as f64).min(self.burst);
        *at = now_ms;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            if self.per_ms <= 0.0 {
                return Err(u64::MAX);
            }
            Err(((1.0 - refilled) / self.per_ms).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut b = Buckets::new(3, 60);
        let k = || Key::ip("10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(b.take(k(), 0).is_ok());
        }
        let wait = b.take(k(), 0).unwrap_err();
        assert_eq!(wait, 60_000);
        assert!(b.take(k(), 60_000).is_ok());
        assert!(b.take(Key::ip("10.0.0.2".parse().unwrap()), 0).is_ok());
    }

    #[test]
    fn new_rates_keep_earned_tokens_within_the_new_burst() {
        let k = || Key::ip("10.0.0.1".parse().unwrap());
        let fresh = || Key::ip("10.0.0.9".parse().unwrap());
        let mut b = Buckets::new(3, 60);
        for _ in 0..3 {
            b.take(k(), 0).unwrap();
        }
        // One token earned at the old rate (one a minute) by 60 s, then the rate drops
        // to one an hour: that token stays, the next one takes an hour.
        b.set_rates(3, 1, 60_000);
        assert!(b.take(k(), 60_000).is_ok());
        let wait = b.take(k(), 60_000).unwrap_err();
        assert!((3_599_000..=3_601_000).contains(&wait), "{wait}");

        // A smaller burst caps what a key holds, and applies to new keys.
        let mut b = Buckets::new(10, 60);
        b.take(k(), 0).unwrap();
        b.set_rates(2, 60, 0);
        assert!(b.take(k(), 0).is_ok());
        assert!(b.take(k(), 0).is_ok());
        assert!(b.take(k(), 0).is_err());
        assert!(b.take(fresh(), 0).is_ok());
        assert!(b.take(fresh(), 0).is_ok());
        assert!(b.take(fresh(), 0).is_err());

        // No refill at all: waiting does not help.
        b.set_rates(2, 0, 0);
        assert_eq!(b.take(k(), 10_000_000).unwrap_err(), u64::MAX);
    }
}
