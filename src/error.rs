//! Library errors. Each maps to one exit code (design.md, "Output"): 2 for
//! usage and recipe errors, which the user fixes by changing the input; 1
//! for everything that failed while building or verifying.

use std::io;

use crate::recipe::RecipeError;
use crate::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A recipe or one of its inputs is wrong, at a known position.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// The command line or an image reference is wrong.
    #[error("{0}")]
    Usage(String),
    /// I/O failed; `context` says on what.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A build or an image check failed for another reason.
    #[error("{0}")]
    Failed(String),
    /// `verify` found problems; the report, already on stdout, lists them.
    #[error("verification failed: {problems} {}", if *.problems == 1 { "problem" } else { "problems" })]
    Unverified { problems: usize },
    /// `export` found the image's layout corrupt, or it changed meanwhile.
    #[error("{image}: {source}")]
    Export {
        image: String,
        #[source]
        source: crate::export::ExportError,
    },
    /// A registry could not be reached, refused us, or served something
    /// other than what was asked for.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A values file does not bind to the image's params; every problem,
    /// one per line.
    #[error("the values do not bind ({} {}):\n  {}", .0.len(), if .0.len() == 1 { "problem" } else { "problems" }, .0.join("\n  "))]
    Unbound(Vec<String>),
    /// The seal found ways in; each line names rule, path and layer.
    #[error("the image is not sealed ({} violations; allow one only with seal.allow and a reason):\n  {}", .0.len(), .0.join("\n  "))]
    Unsealed(Vec<String>),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Recipe(_) | Error::Usage(_) | Error::Unbound(_) => 2,
            Error::Io { .. }
            | Error::Failed(_)
            | Error::Export { .. }
            | Error::Unverified { .. }
            | Error::Unsealed(_)
            | Error::Registry(_) => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds "what we were doing" to I/O errors, ripgrep-style.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}
