//! Validation of what people type: phone numbers, number ranges, display names, passwords.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Shortest and longest number accepted (E.164 allows at most 15 digits).
pub const NUMBER_DIGITS: std::ops::RangeInclusive<usize> = 2..=15;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Password length bounds, in bytes.
pub const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 8..=256;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentError {
    #[error("invalid number {0:?}: use 2 to 15 digits, not starting with 0")]
    Number(String),
    #[error("invalid number range {0:?}: use FIRST-LAST, e.g. 1000-9999, with equal digit counts")]
    Range(String),
    #[error("invalid display name: {0}")]
    Name(&'static str),
    #[error("invalid password: use 8 to 256 bytes")]
    Password,
}

/// A phone number on a relay: 2 to 15 ASCII digits, no leading zero.
///
/// ```
/// use phoned_proto::Number;
/// assert_eq!("1042".parse::<Number>().unwrap().as_str(), "1042");
/// assert!("10a2".parse::<Number>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number(String);

impl Number {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number's numeric value (always fits: at most 15 digits).
    pub fn value(&self) -> u64 {
        self.0.parse().unwrap_or(0)
    }
}

impl FromStr for Number {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, IdentError> {
        let ok = NUMBER_DIGITS.contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        if ok {
            Ok(Number(s.to_owned()))
        } else {
            Err(IdentError::Number(truncate(s)))
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The inclusive range a relay provisions numbers from, written `FIRST-LAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberRange {
    pub first: u64,
    pub last: u64,
}

impl NumberRange {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `number` is one of this range's (a number is compared as digits, so
    /// "01042" is not in 1000-9999: numbers do not start with 0).
    pub fn contains(&self, number: &Number) -> bool {
        number
            .as_str()
            .parse::<u64>()
            .is_ok_and(|n| (self.first..=self.last).contains(&n))
    }

    /// The `i`th number of the range (`i` is taken modulo the range's length).
    pub fn nth(&self, i: u64) -> Number {
        Number((self.first + i % self.len()).to_string())
    }
}

impl FromStr for NumberRange {
    type Err = IdentError;
    fn from_str(s: &str) -> Result<Self, IdentError> {
        let bad = || IdentError::Range(truncate(s));
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (a, b) = (a.trim(), b.trim());
        let first: Number = a.parse().map_err(|_| bad())?;
        let last: Number = b.parse().map_err(|_| bad())?;
        if a.len() != b.len() || first.value() > last.value() {
            return Err(bad());
        }
        Ok(NumberRange {
            first: first.value(),
            last: last.value(),
        })
    }
}

impl fmt::Display for NumberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Checks a display name: 1 to 64 characters, not only spaces, and none of the
/// characters that hide or reorder text ([`crate::text::is_hidden`]: control and
/// bidirectional formatting characters, byte-order marks).
pub fn check_display_name(name: &str) -> Result<(), IdentError> {
    if name.trim().is_empty() {
        return Err(IdentError::Name("it is empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(IdentError::Name("it is longer than 64 characters"));
    }
    if name.chars().any(crate::text::is_hidden) {
        return Err(IdentError::Name(
            "it has control, bidirectional formatting or byte-order-mark characters",
        ));
    }
    Ok(())
}

/// Checks a new password's length (8 to 256 bytes).
pub fn check_password(password: &str) -> Result<(), IdentError> {
    if PASSWORD_BYTES.contains(&password.len()) {
        Ok(())
    } else {
        Err(IdentError::Password)
    }
}

/// Keeps error messages short when the input is huge.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers() {
        for ok in ["10", "1042", "123456789012345"] {
            assert!(ok.parse::<Number>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1",
            "0123",
            "12a4",
            "1234567890123456",
            " 1042",
            "+4912",
        ] {
            assert!(bad.parse::<Number>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let r: NumberRange = "1000-9999".parse().unwrap();
        assert_eq!(r.len(), 9000);
        assert_eq!(r.nth(0).as_str(), "1000");
        assert_eq!(r.nth(9000).as_str(), "1000");
        assert_eq!(r.nth(8999).as_str(), "9999");
        let n = |s: &str| s.parse::<Number>().unwrap();
        assert!(r.contains(&n("1000")) && r.contains(&n("9999")) && r.contains(&n("1042")));
        assert!(!r.contains(&n("99999")) && !r.contains(&n("999")) && !r.contains(&n("10000")));
        for bad in [
            "",
            "1000",
            "9999-1000",
            "100-9999",
            "1000-",
            "a-b",
            "0100-0200",
        ] {
            assert!(bad.parse::<NumberRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_passwords() {
        assert!(check_display_name("Kitchen").is_ok());
        assert!(check_display_name("  ").is_err());
        assert!(check_display_name("a\nb").is_err());
        assert!(check_display_name("Alice\u{202E}ecilA").is_err());
        assert!(check_display_name("\u{FEFF}Bob").is_err());
        assert!(check_display_name("a\u{2066}b\u{2069}").is_err());
        assert!(check_display_name("a\u{200F}").is_err());
        assert!(check_display_name("👩\u{200D}💻").is_ok());
        assert!(check_display_name(&"x".repeat(65)).is_err());
        assert!(check_display_name(&"é".repeat(64)).is_ok());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(257)).is_err());
    }

    proptest! {
        #[test]
        fn number_parse_never_panics(s in ".{0,40}") {
            if let Ok(n) = s.parse::<Number>() {
                prop_assert_eq!(n.as_str(), s.as_str());
                prop_assert_eq!(n.value().to_string(), s);
            }
        }
    }
}
