//! Back-off for failed logins, and budgets for new accounts, per client. Sans-IO: the
//! caller passes the time in.
//!
//! A login attempt is *reserved* ([`Throttle::begin`]) before its password hash is
//! computed and settled ([`Throttle::finish`]) after: attempts still hashing count as
//! failures, so parallel connections get no more password checks than one client trying
//! as fast as the back-off lets it. The keys an attempt is checked against:
//! - without a valid device token: its (address, number) pair, its address (across
//!   numbers, with a larger allowance: many devices may share one NAT address) and its
//!   number (guessing from many addresses);
//! - with one (a device that has logged in before, see [`crate::token`]): only that
//!   device's own key, so strangers' failures, from any address, never lock it out. The
//!   password is still checked; the token alone logs nothing in.
//!
//! A failure is recorded on every key that applies, checked or not.

use std::collections::HashMap;
use std::net::IpAddr;

/// Failures allowed per (address, number), per number and per device before back-off.
const FREE_FAILURES: u32 = 5;
/// Failures allowed per address (all numbers together) before back-off.
const FREE_FAILURES_ADDRESS: u32 = 10;
/// The first back-off, doubled with each further failure.
const BASE_DELAY_MS: u64 = 1_000;
const MAX_DELAY_MS: u64 = 5 * 60_000;
/// What a client is told to wait when its key's budget is taken by attempts still being
/// checked: about one hash, after which their outcome decides.
const IN_FLIGHT_WAIT_MS: u64 = 1_000;
/// An entry with no failure for this long is forgotten.
const FORGET_AFTER_MS: u64 = 60 * 60_000;
/// Entries kept at most; the stalest are dropped beyond it.
const MAX_ENTRIES: usize = 100_000;

/// A device token's identity (its random part), see [`crate::token`].
pub type DeviceId = [u8; 16];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// IPv4 address, or the /64 prefix of an IPv6 address.
    Ip(IpAddr),
    Number(String),
    /// One address trying one number.
    Pair(IpAddr, String),
    /// One device, by its login token.
    Device(DeviceId),
}

/// The IPv4 address, or the /64 prefix of an IPv6 address (one site's devices).
pub fn prefix(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6([s[0], s[1], s[2], s[3], 0, 0, 0, 0].into())
            }
        },
        v4 => v4,
    }
}

impl Key {
    pub fn ip(addr: IpAddr) -> Key {
        Key::Ip(prefix(addr))
    }

    fn free_failures(&self) -> u32 {
        match self {
            Key::Ip(_) => FREE_FAILURES_ADDRESS,
            _ => FREE_FAILURES,
        }
    }
}

/// Who is trying to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub addr: IpAddr,
    /// The number as sent (callers cut it to a bounded length).
    pub number: String,
    /// The device, when it presented a valid token for this number.
    pub device: Option<DeviceId>,
}

impl Login {
    /// The keys this attempt must be allowed by, and reserves.
    fn checked(&self) -> Vec<Key> {
        match self.device {
            Some(d) => vec![Key::Device(d)],
            None => vec![
                Key::Pair(prefix(self.addr), self.number.clone()),
                Key::ip(self.addr),
                Key::Number(self.number.clone()),
            ],
        }
    }

    /// The keys a failure of this attempt counts on.
    fn recorded(&self) -> Vec<Key> {
        let mut keys = vec![
            Key::Pair(prefix(self.addr), self.number.clone()),
            Key::ip(self.addr),
            Key::Number(self.number.clone()),
        ];
        keys.extend(self.device.map(Key::Device));
        keys
    }
}

/// An attempt reserved by [`Throttle::begin`]; give it back to [`Throttle::finish`].
#[derive(Debug)]
#[must_use = "a reservation holds its keys' budget until finished"]
pub struct Reservation {
    login: Login,
}

impl Reservation {
    pub fn login(&self) -> &Login {
        &self.login
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    /// Attempts reserved and not yet finished (their hashes are running).
    pending: u32,
    last_failure_ms: u64,
    blocked_until_ms: u64,
}

impl Entry {
    fn failures_at(&self, now_ms: u64) -> u32 {
        if now_ms.saturating_sub(self.last_failure_ms) > FORGET_AFTER_MS {
            0
        } else {
            self.failures
        }
    }

    fn idle(&self) -> bool {
        self.pending == 0 && self.failures == 0 && self.blocked_until_ms == 0
    }
}

#[derive(Debug, Default)]
pub struct Throttle {
    entries: HashMap<Key, Entry>,
}

impl Throttle {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Err(ms)` if `key` must wait `ms` more before its next attempt may start.
    pub fn check(&self, key: &Key, now_ms: u64) -> Result<(), u64> {
        let Some(e) = self.entries.get(key) else {
            return Ok(());
        };
        if e.blocked_until_ms > now_ms {
            return Err(e.blocked_until_ms - now_ms);
        }
        // Counting every attempt in flight as a failure, would this one be past the
        // free ones and inside a back-off? Then it waits for their outcome.
        if e.pending > 0 && e.failures_at(now_ms) + e.pending > key.free_failures() {
            return Err(IN_FLIGHT_WAIT_MS);
        }
        Ok(())
    }

    /// Reserves an attempt for `login` before its password is checked, or says how many
    /// ms it must wait (the longest wait of its keys).
    pub fn begin(&mut self, login: Login, now_ms: u64) -> Result<Reservation, u64> {
        let keys = login.checked();
        let wait = keys
            .iter()
            .filter_map(|k| self.check(k, now_ms).err())
            .max();
        if let Some(ms) = wait {
            return Err(ms);
        }
        for key in keys {
            self.make_room(&key, now_ms);
            self.entries.entry(key).or_default().pending += 1;
        }
        Ok(Reservation { login })
    }

    /// Settles a reserved attempt. A success clears the record of its (address, number)
    /// pair and its device, or of its number when it had no device token; never its
    /// address's: one address guessing many numbers keeps its back-off.
    pub fn finish(&mut self, r: Reservation, success: bool, now_ms: u64) {
        for key in r.login.checked() {
            if let Some(e) = self.entries.get_mut(&key) {
                e.pending = e.pending.saturating_sub(1);
            }
        }
        if success {
            let mut clear = vec![Key::Pair(prefix(r.login.addr), r.login.number.clone())];
            match r.login.device {
                Some(d) => clear.push(Key::Device(d)),
                // A known device getting in says nothing about the strangers who put a
                // number-wide block on its number; clearing it would give them a fresh
                // budget. Anyone else who knows the password may clear it.
                None => clear.push(Key::Number(r.login.number.clone())),
            }
            for key in clear {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.failures = 0;
                    e.blocked_until_ms = 0;
                }
            }
        } else {
            for key in r.login.recorded() {
                self.failure(key, now_ms);
            }
        }
        for key in r.login.recorded() {
            if self.entries.get(&key).is_some_and(Entry::idle) {
                self.entries.remove(&key);
            }
        }
    }

    /// Gives back a reserved attempt whose password was never checked (the relay could
    /// not read the account): no outcome is recorded.
    pub fn release(&mut self, r: Reservation) {
        for key in r.login.checked() {
            if let Some(e) = self.entries.get_mut(&key) {
                e.pending = e.pending.saturating_sub(1);
                if e.idle() {
                    self.entries.remove(&key);
                }
            }
        }
    }

    fn failure(&mut self, key: Key, now_ms: u64) {
        self.make_room(&key, now_ms);
        let free = key.free_failures();
        let e = self.entries.entry(key).or_default();
        e.failures = e.failures_at(now_ms) + 1;
        e.last_failure_ms = now_ms;
        if e.failures > free {
            let doublings = (e.failures - free - 1).min(20);
            let delay = (BASE_DELAY_MS << doublings).min(MAX_DELAY_MS);
            e.blocked_until_ms = now_ms + delay;
        }
    }

    fn make_room(&mut self, key: &Key, now_ms: u64) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
            self.prune(now_ms);
        }
    }

    fn prune(&mut self, now_ms: u64) {
        // Entries with attempts in flight stay: their reservations come back.
        self.entries.retain(|_, e| {
            e.pending > 0 || now_ms.saturating_sub(e.last_failure_ms) <= FORGET_AFTER_MS
        });
        if self.entries.len() >= MAX_ENTRIES {
            // Still full of fresh entries: drop the older half.
            let mut times: Vec<u64> = self.entries.values().map(|e| e.last_failure_ms).collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.entries
                .retain(|_, e| e.pending > 0 || e.last_failure_ms > cut);
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
mod tests;

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
