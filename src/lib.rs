//! ingot compiles a declarative recipe into a sealed, bit-for-bit
//! reproducible OCI image. See design.md for the contract; `main.rs` is a
//! thin shell over this library.

// Declared before the modules, so that every one of them can use it.
/// Implements serde's Deserialize through FromStr, so a bad value is a serde
/// error reported at the value's position.
macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

pub mod attest;
pub mod base;
pub mod cli;
pub mod commands;
pub mod debian;
pub mod diff;
pub mod digest;
pub mod error;
pub mod fleet;
#[doc(hidden)]
pub mod fuzz;
pub mod image;
pub mod layer;
pub mod lock;
pub mod net;
pub mod params;
pub mod pipeline;
pub mod progress;
pub mod rebase;
pub mod recipe;
pub mod registry;
pub mod rootfs;
pub mod seal;
pub mod sign;
pub mod store;

pub use error::{Error, Result};
