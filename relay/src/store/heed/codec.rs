//! A heed codec that stores values as postcard.

use std::borrow::Cow;
use std::marker::PhantomData;

use heed::{BoxedError, BytesDecode, BytesEncode};
use serde::{Deserialize, Serialize};

pub struct Postcard<T>(PhantomData<T>);

impl<'a, T: Serialize + 'a> BytesEncode<'a> for Postcard<T> {
    type EItem = T;
    fn bytes_encode(item: &'a T) -> Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Owned(postcard::to_allocvec(item)?))
    }
}

impl<'a, T: Deserialize<'a> + 'a> BytesDecode<'a> for Postcard<T> {
    type DItem = T;
    fn bytes_decode(bytes: &'a [u8]) -> Result<T, BoxedError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}
