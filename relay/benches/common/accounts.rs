//! Accounts the relay benches make directly in the store (included with `#[path]`).
//! Their hash uses tiny Argon2id parameters (the relay verifies with the parameters in
//! the stored hash), so logging them in costs no time: logins are not what these measure.

use std::path::Path;

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use phone_relay::store::{Backend, NewNumber, Store};
use phoned_proto::Number;

/// Creates `count` accounts numbered from `first`, each with `password`, in the store at
/// `state` (LMDB with a `map_size_mib` map, or `backend`'s PostgreSQL).
pub fn make(
    backend: &Backend,
    state: &Path,
    map_size_mib: u64,
    first: usize,
    count: usize,
    password: &str,
) {
    let store = Store::open(backend, state, map_size_mib).unwrap();
    let cheap = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8, 1, 1, None).unwrap(),
    );
    let hash = cheap
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    for i in first..first + count {
        let n: Number = i.to_string().parse().unwrap();
        store
            .create_account(NewNumber::Exact(&n), "bench", &hash, 0)
            .unwrap();
    }
}
