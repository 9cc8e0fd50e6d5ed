//! How records keep a named value (a status, a kind, a call's direction or result): as its
//! public string, through `#[serde(with = "named")]`. Those fields were `String`s before
//! they were typed, and postcard writes a string as its length and bytes but an enum as
//! its variant index; keeping the string keeps the records an older daemon wrote readable
//! (and lets variants be added or reordered without touching the store).

use std::fmt::Display;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_string())
}

pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: FromStr,
    T::Err: Display,
    D: Deserializer<'de>,
{
    String::deserialize(d)?.parse().map_err(D::Error::custom)
}
