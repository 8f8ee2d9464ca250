//! ingot compiles a declarative recipe into a sealed, bit-for-bit
//! reproducible OCI image. See design.md for the contract; `main.rs` is a
//! thin shell over this library.

pub mod base;
pub mod bind;
pub mod build;
pub mod cli;
pub mod digest;
pub mod error;
pub mod export;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod lock;
pub mod progress;
pub mod recipe;
pub mod registry;
pub mod rootfs;
pub mod seal;
pub mod store;
pub mod verify;

pub use error::{Error, Result};
