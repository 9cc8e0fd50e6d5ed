//! The delay histogram the forwarding benches share (included with `#[path]`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Delay histogram: 1 µs bins up to 20 ms, 1 ms bins up to 2 s, one overflow bin.
pub struct Histogram {
    bins: Vec<AtomicU64>,
}

const FINE_US: u64 = 20_000;
const COARSE_MS: u64 = 2_000;

impl Histogram {
    pub fn new() -> Histogram {
        let n = FINE_US + (COARSE_MS - FINE_US / 1000) + 1;
        Histogram {
            bins: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn record(&self, us: u64) {
        let bin = if us < FINE_US {
            us
        } else {
            (FINE_US + us / 1000 - FINE_US / 1000).min(self.bins.len() as u64 - 1)
        };
        self.bins[bin as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for b in &self.bins {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// The `q` quantile in µs (lower edge of its bin).
    pub fn quantile(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self
            .bins
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let i = i as u64;
                return if i < FINE_US {
                    i as f64
                } else {
                    ((i - FINE_US) * 1000 + FINE_US) as f64
                };
            }
        }
        f64::INFINITY
    }
}
