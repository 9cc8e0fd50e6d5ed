//! The relay process' own CPU time (user + system, all threads), read from `getrusage`
//! at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;

/// CPU seconds this process has used so far (user + system, all threads).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one rusage struct into the zeroed value we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Writes `cpu_seconds_total` when scraped.
#[derive(Debug)]
pub(crate) struct CpuCollector;

impl Collector for CpuCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(cpu_seconds());
        let metric = encoder.encode_descriptor(
            "cpu_seconds",
            "CPU time the relay process has used (user + system, all threads)",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_seconds();
        // Spin until the clock (10 ms or finer) has moved: never forever on a live process.
        let mut x = 0u64;
        while cpu_seconds() <= before {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() > before);
    }
}
