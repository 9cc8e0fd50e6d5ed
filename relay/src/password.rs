//! Argon2id password hashing, run off the async executor with a cap on how many hashes
//! run at once (each takes ~19 MiB and tens of milliseconds).

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use async_lock::Semaphore;

/// Hashes a password with Argon2id and the crate's default parameters (PHC string).
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a PHC hash. A malformed hash never verifies.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Runs hashes on the blocking thread pool, at most `limit` at a time.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when a number is unknown, so that the answer takes as long as
    /// for a wrong password.
    decoy: Arc<String>,
}

impl Hasher {
    pub fn new(limit: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            decoy: Arc::new(hash("decoy password for unknown numbers").unwrap_or_default()),
        }
    }

    pub async fn hash(&self, password: String) -> Option<String> {
        let _permit = self.permits.acquire().await;
        blocking::unblock(move || hash(&password).ok()).await
    }

    /// Verifies `password` against `phc`, or against the decoy when `phc` is `None`
    /// (and then always fails).
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let _permit = self.permits.acquire().await;
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.as_str().to_owned());
        let ok = blocking::unblock(move || verify(&password, &phc)).await;
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_argon2id() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn unknown_accounts_never_verify() {
        let hasher = Hasher::new(2);
        assert!(!smol::block_on(
            hasher.verify("decoy password for unknown numbers".into(), None)
        ));
    }
}
