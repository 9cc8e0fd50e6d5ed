//! Certificate fingerprints as devices pin them: `sha256:` and 64 lowercase hex digits.

use sha2::{Digest, Sha256};

/// The fingerprint of a DER certificate.
///
/// ```
/// let fp = phoned_proto::fingerprint::of_der(b"not really a certificate");
/// assert!(fp.starts_with("sha256:") && fp.len() == 71);
/// ```
pub fn of_der(der: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in Sha256::digest(der) {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

/// Normalises a fingerprint someone typed: accepts upper case and `:` separators
/// between hex pairs; `None` if it is not a SHA-256 fingerprint.
pub fn parse(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .strip_prefix("sha256:")
        .or_else(|| text.trim().strip_prefix("SHA256:"))?
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises() {
        let fp = of_der(b"x");
        assert_eq!(parse(&fp).as_deref(), Some(fp.as_str()));
        assert_eq!(
            parse(&fp.to_uppercase().replacen("SHA256", "sha256", 1)).as_deref(),
            Some(fp.as_str())
        );
        assert_eq!(parse("sha256:abc"), None);
        assert_eq!(parse("md5:00"), None);
    }
}
