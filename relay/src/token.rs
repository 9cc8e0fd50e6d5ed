//! Device login tokens: what a device that has logged in before shows at its next login
//! so that strangers' failed logins on its number do not lock it out (see
//! [`crate::throttle`]). A token never logs anything in by itself: the password is checked
//! as always; a valid token only changes which back-off keys the attempt is held to.
//!
//! Tokens are stateless: 16 random bytes (the device's id) and an HMAC-SHA256 over them,
//! the account id and a digest of the account's password hash, with a key the relay
//! keeps in its state dir ([`KEY_FILE`], made on first start). A password change or reset
//! therefore invalidates every token of the account; losing the key file invalidates all
//! tokens (devices then log in as new ones and get fresh tokens).

use std::path::Path;

use ring::hmac;
use sha2::Digest;

use crate::cert::{CertError, write_private};
use crate::store::Account;
use crate::throttle::DeviceId;

/// The token key's file in the state dir.
pub const KEY_FILE: &str = "login-token.key";
const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 32;
/// Separates this MAC's inputs from any other use of the key.
const CONTEXT: &[u8] = b"phoned device login token 1";

pub struct Tokens {
    key: hmac::Key,
}

impl Tokens {
    /// Loads the key from `state_dir`, making it on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Tokens, CertError> {
        let path = state_dir.join(KEY_FILE);
        let io = |source| CertError::Io {
            path: path.clone(),
            source,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) if b.len() == KEY_BYTES => b,
            Ok(_) => {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not a {KEY_BYTES}-byte key; delete it to make a new one"),
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; KEY_BYTES];
                getrandom::fill(&mut key).map_err(|e| io(std::io::Error::other(e.to_string())))?;
                write_private(&path, &key)?;
                key
            }
            Err(e) => return Err(io(e)),
        };
        Ok(Tokens::from_key(&bytes))
    }

    pub fn from_key(bytes: &[u8]) -> Tokens {
        Tokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// A token for `account` on device `device` (hex text).
    pub fn issue(&self, account: &Account, device: DeviceId) -> String {
        let tag = hmac::sign(&self.key, &message(account, &device));
        let mut out = String::with_capacity(2 * (device.len() + TAG_BYTES));
        for b in device.iter().chain(tag.as_ref()) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// A token for a device that has none yet.
    pub fn issue_new(&self, account: &Account) -> Result<String, getrandom::Error> {
        let mut device = [0u8; 16];
        getrandom::fill(&mut device)?;
        Ok(self.issue(account, device))
    }

    /// The device a token was issued to, if it is valid for `account` as it is now.
    pub fn verify(&self, token: &str, account: &Account) -> Option<DeviceId> {
        let bytes = unhex(token)?;
        if bytes.len() != 16 + TAG_BYTES {
            return None;
        }
        let (device, tag) = bytes.split_at(16);
        let device: DeviceId = device.try_into().ok()?;
        hmac::verify(&self.key, &message(account, &device), tag).ok()?;
        Some(device)
    }
}

fn message(account: &Account, device: &DeviceId) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 8 + 16 + 32);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&account.id.to_be_bytes());
    m.extend_from_slice(device);
    m.extend_from_slice(&sha2::Sha256::digest(account.password_hash.as_bytes()));
    m
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: u64, hash: &str) -> Account {
        Account {
            id,
            number: "1042".into(),
            display_name: "A".into(),
            password_hash: hash.into(),
            created_ms: 0,
            disabled: false,
            last_seen_ms: 0,
            epoch: 0,
        }
    }

    #[test]
    fn a_token_is_valid_for_its_account_and_password_only() {
        let tokens = Tokens::from_key(&[7; 32]);
        let a = account(1, "$argon2id$one");
        let t = tokens.issue(&a, [3; 16]);
        assert_eq!(tokens.verify(&t, &a), Some([3; 16]));
        assert_eq!(tokens.verify(&t, &account(2, "$argon2id$one")), None);
        // A new password (set by the user or reset by an administrator) ends it.
        assert_eq!(tokens.verify(&t, &account(1, "$argon2id$two")), None);
        // Another relay's key, a changed byte, garbage: not valid.
        assert_eq!(Tokens::from_key(&[8; 32]).verify(&t, &a), None);
        let mut forged = t.clone().into_bytes();
        forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
        assert_eq!(tokens.verify(&String::from_utf8(forged).unwrap(), &a), None);
        for junk in ["", "zz", "é", &t[..t.len() - 2]] {
            assert_eq!(tokens.verify(junk, &a), None, "{junk}");
        }
    }

    #[test]
    fn the_key_is_made_once_privately_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = account(1, "h");
        let t = Tokens::load_or_create(dir.path())
            .unwrap()
            .issue(&a, [1; 16]);
        let again = Tokens::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&t, &a).is_some());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(again.issue_new(&a).unwrap() != t);
    }
}
