//! Debian archives (issue 13): what ingot reads to install packages without
//! running anything. Everything here reads untrusted input, within
//! documented bounds.

pub mod archive;
pub mod deb;
pub mod fetch;
pub mod index;
pub mod install;
pub mod native;
pub mod resolve;
pub mod signed;
pub mod version;
