//! `VoiceCall.StartTime` as oFono writes it: `YYYY-MM-DDTHH:MM:SS+HHMM`. The bridge writes
//! UTC (`+0000`): it has no time zone data, and the offset says which time it is.

/// The time `ms` (Unix milliseconds) as oFono's `StartTime`.
pub fn format(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_times() {
        assert_eq!(format(0), "1970-01-01T00:00:00+0000");
        assert_eq!(format(951_782_400_000), "2000-02-29T00:00:00+0000");
        assert_eq!(format(1_709_210_096_789), "2024-02-29T12:34:56+0000");
        assert_eq!(format(4_102_444_799_000), "2099-12-31T23:59:59+0000");
    }

    proptest::proptest! {
        #[test]
        fn dates_are_valid_and_ordered(a in 0u64..8_000_000_000_000, b in 0u64..8_000_000_000_000) {
            let (fa, fb) = (format(a), format(b));
            proptest::prop_assert_eq!(fa.len(), 24);
            let month: u32 = fa[5..7].parse().unwrap();
            let day: u32 = fa[8..10].parse().unwrap();
            proptest::prop_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            // Same width and most significant first: text order is time order.
            proptest::prop_assert_eq!(a / 1000 < b / 1000, fa < fb);
        }
    }
}
