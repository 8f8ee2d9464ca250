//! ingot compiles a declarative recipe into a sealed, bit-for-bit
//! reproducible OCI image. See design.md for the contract.

pub mod digest;
pub mod layer;
