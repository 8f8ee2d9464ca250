//! Library errors. Each maps to one exit code (design.md, "Output"): 2 for
//! usage and recipe errors, which the user fixes by changing the input; 1
//! for everything that failed while building or verifying.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, ParseDigestError};

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
    /// `verify` found the image is not what it should be: the layout has
    /// problems (the report, already on stdout, lists them), it is not the
    /// digest asked for, or a rebuild made another image. The message says
    /// which, naming what was compared.
    #[error("{0}")]
    Unverified(String),
    /// A blob is missing, unreadable, or not what its descriptor says.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A layer is not what its descriptor and its config say, or its tar
    /// holds what no layer may.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A Debian package is malformed, beyond ingot's bounds, or holds
    /// what no layer may.
    #[error(transparent)]
    Deb(#[from] DebError),
    /// A Debian archive could not be fetched, was not what its signature
    /// and its Release say, or the packages asked for do not resolve. The
    /// error is a `debian::archive::ArchiveError` (downcast `error` to
    /// match on it): that module sits above this one, so it converts its
    /// error and says which exit code it calls for.
    #[error("{error}")]
    Archive {
        error: Box<dyn std::error::Error + Send + Sync>,
        exit_code: i32,
    },
    /// An error met on something it does not name itself (an image, a
    /// base, a push), said first; the error keeps its type.
    #[error("{context}: {source}")]
    Within {
        context: String,
        #[source]
        source: Box<Error>,
    },
    /// `export` found the image's layout corrupt, or it changed meanwhile.
    /// (Boxed: a layer error is large, and every `Result` pays for it.)
    #[error("{image}: {source}")]
    Export {
        image: String,
        #[source]
        source: Box<ExportError>,
    },
    /// A registry could not be reached, refused us, or served something
    /// other than what was asked for.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A values file does not bind to the image's params; every problem,
    /// one per line.
    #[error("the values do not bind ({} {}):\n  {}", .0.len(), if .0.len() == 1 { "problem" } else { "problems" }, .0.join("\n  "))]
    Unbound(Vec<String>),
    /// A failure of a command whose exit 1 is a result (`diff`: the images
    /// differ): it exits 2, as diff(1) does on trouble. The error keeps
    /// its words and its kind.
    #[error(transparent)]
    Trouble(Box<Error>),
    /// The seal found ways in; each line names rule, path and layer.
    #[error("the image is not sealed ({} violations; allow one only with seal.allow and a reason):\n  {}", .0.len(), .0.join("\n  "))]
    Unsealed(Vec<String>),
}

impl Error {
    /// A verification that found `problems` things wrong with a layout.
    pub fn unverified_problems(problems: usize) -> Error {
        let noun = if problems == 1 { "problem" } else { "problems" };
        Error::Unverified(format!("verification failed: {problems} {noun}"))
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Recipe(_) | Error::Usage(_) | Error::Unbound(_) | Error::Trouble(_) => 2,
            Error::Io { .. }
            | Error::Failed(_)
            | Error::Export { .. }
            | Error::Unverified(_)
            | Error::Unsealed(_)
            | Error::Registry(_)
            | Error::Blob(_)
            | Error::Layer(_)
            | Error::Deb(_) => 1,
            Error::Archive { exit_code, .. } => *exit_code,
            Error::Within { source, .. } => source.exit_code(),
        }
    }

    /// What kind of error this is, as `--json` names it: one word per
    /// variant (`recipe`, `usage`, `io`, `failed`, `unverified`, `blob`,
    /// `layer`, `deb`, `archive`, `export`, `registry`, `unbound`,
    /// `unsealed`). An error met on something keeps its own kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Recipe(_) => "recipe",
            Error::Usage(_) => "usage",
            Error::Io { .. } => "io",
            Error::Failed(_) => "failed",
            Error::Unverified(_) => "unverified",
            Error::Blob(_) => "blob",
            Error::Layer(_) => "layer",
            Error::Deb(_) => "deb",
            Error::Archive { .. } => "archive",
            Error::Export { .. } => "export",
            Error::Registry(_) => "registry",
            Error::Unbound(_) => "unbound",
            Error::Unsealed(_) => "unsealed",
            Error::Within { source, .. } | Error::Trouble(source) => source.kind(),
        }
    }

    /// Where in a recipe the error is, when it is a recipe's.
    pub fn recipe_error(&self) -> Option<&RecipeError> {
        match self {
            Error::Recipe(e) => Some(e),
            Error::Within { source, .. } | Error::Trouble(source) => source.recipe_error(),
            _ => None,
        }
    }

    /// Each problem of an error that lists several (values that do not
    /// bind, the seal's violations); empty for others.
    pub fn problems(&self) -> &[String] {
        match self {
            Error::Unbound(p) | Error::Unsealed(p) => p,
            Error::Within { source, .. } | Error::Trouble(source) => source.problems(),
            _ => &[],
        }
    }

    /// This error, met on `context`.
    pub fn within(self, context: impl Into<String>) -> Error {
        Error::Within {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A 1-based line and column in a recipe file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// An error in a recipe or its inputs, at a position in the recipe file
/// where there is one (a file that cannot be read has none).
/// Always exit code 2: the user must change the recipe or its files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecipeError {
    pub file: PathBuf,
    pub pos: Option<Pos>,
    pub message: String,
}

impl RecipeError {
    /// An error about `file` as a whole, at no position in it.
    pub fn in_file(file: impl Into<PathBuf>, message: impl Into<String>) -> RecipeError {
        RecipeError {
            file: file.into(),
            pos: None,
            message: message.into(),
        }
    }

    /// Where the error is: `FILE:LINE:COL`, or `FILE` without a position.
    pub fn location(&self) -> String {
        match self.pos {
            Some(Pos { line, col }) => format!("{}:{line}:{col}", self.file.display()),
            None => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

/// What went wrong talking to a registry. Each is one line naming the
/// registry (and the blob), for exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach the registry at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("{host}: authentication failed: {detail}")]
    Unauthorized { host: String, detail: String },
    #[error("{host}: access denied to {what}")]
    Denied { host: String, what: String },
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: digest mismatch: expected {expected}, found {found}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        found: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, found {found}")]
    SizeMismatch {
        what: String,
        expected: u64,
        found: String,
    },
    #[error("credentials from {origin}: {message}")]
    Credentials { origin: String, message: String },
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
    /// A time limit elapsed; `message` names the request and the limit.
    #[error("registry {host}: {message}")]
    Timeout { host: String, message: String },
    /// A response longer than ingot reads for its kind (`what`).
    #[error("registry {host}: {request}: more than {}, the most {what} may have", size(*.limit))]
    TooLarge {
        host: String,
        request: String,
        what: String,
        limit: u64,
    },
}

/// `4 MiB`, `1 KiB`, or bytes: a limit as its constant reads.
fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// A blob that is missing, unreadable or not what its descriptor says.
/// Each names the blob by the digest it was asked for, so that one line
/// tells which file of `blobs/sha256` to look at.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {digest}: missing")]
    Missing { digest: Digest },
    /// A directory, a device, a FIFO or a symlink under a blob's name:
    /// never read, as a FIFO or a device may not end. `kind` says which
    /// ("a FIFO").
    #[error("blob {digest}: not a regular file ({kind})")]
    NotRegular { digest: Digest, kind: &'static str },
    /// The file is not as long as the descriptor says. `content` is what
    /// the whole file hashes to: when it is the digest, only the
    /// descriptor's size is wrong, which calls for another repair than a
    /// truncated blob.
    #[error(
        "blob {digest}: size mismatch: expected {expected} bytes, found {found}{}",
        if content == digest { " (its content matches the digest: the descriptor is wrong)" } else { "" }
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        found: u64,
        content: Digest,
    },
    #[error("blob {expected}: digest mismatch: the content hashes to {found}")]
    DigestMismatch { expected: Digest, found: Digest },
    #[error("blob {digest}: {source}")]
    Io {
        digest: Digest,
        #[source]
        source: io::Error,
    },
}

/// A layer that cannot be applied: its blob is wrong, its stream does not
/// decompress, its tar is not the config's diff_id, or its tar holds what
/// no layer may. Each names the layer by its blob digest.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The descriptor names no digest a blob store can hold.
    #[error(transparent)]
    Digest(#[from] ParseDigestError),
    #[error("layer {layer}: unsupported layer media type {media_type}")]
    MediaType { layer: Digest, media_type: String },
    /// The blob is intact, but its stream does not decompress: it was
    /// written wrong, not damaged since.
    #[error("layer {layer}: corrupt or truncated stream (the blob itself is intact): {source}")]
    Decode {
        layer: Digest,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: diff_id mismatch: expected {expected}, found {found}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        found: Digest,
    },
    /// The layer is intact and decompresses, but its tar is malformed or
    /// hostile (an entry escaping the root, a hardlink to nothing): a
    /// refusal of what the image holds, not a damaged file.
    #[error("layer {layer}: {reason}")]
    Refused { layer: Digest, reason: String },
}

/// A `.deb` ingot will not read (deb(5), as dpkg reads it). A `.deb` is
/// untrusted input: each error names the file, and the member and entry at
/// fault, so one line says which package to look at and why.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The file could not be read.
    #[error("{deb}: {source}")]
    Io {
        deb: String,
        #[source]
        source: io::Error,
    },
    /// The archive is not a binary package: not an `ar` archive, cut
    /// short, a wrong `debian-binary`, or members other than deb(5) says
    /// where it says.
    #[error("{deb}: not a Debian binary package: {reason}")]
    Malformed { deb: String, reason: String },
    /// A member, or what it decompresses to, goes past one of the bounds
    /// in `debian::deb::LIMITS`.
    #[error("{deb}: {member}: {what} is more than the limit of {limit}")]
    Limit {
        deb: String,
        member: String,
        what: String,
        limit: u64,
    },
    /// A member's compressed stream does not decode.
    #[error("{deb}: {member}: corrupt or truncated compressed stream: {source}")]
    Decode {
        deb: String,
        member: String,
        #[source]
        source: io::Error,
    },
    /// A member is well formed as an archive, but holds what ingot
    /// refuses: a control file it cannot parse, an unsupported
    /// compression, a data entry escaping the root or that readers would
    /// take differently.
    #[error("{deb}: {member}: {reason}")]
    Refused {
        deb: String,
        member: String,
        reason: String,
    },
}

/// Why an export failed once the image was found. The first two are the
/// layout's fault, the last the output's.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A layer is not what the manifest and the config say it is.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A layer read back with another size the second time: the layout
    /// changed while it was exported.
    #[error(
        "layer {diff_id} changed while it was exported: {expected} bytes when checked, {found} when written"
    )]
    Changed {
        diff_id: Digest,
        expected: u64,
        found: u64,
    },
    /// The archive could not be written.
    #[error("writing the archive: {0}")]
    Write(#[source] io::Error),
}

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

/// Says what a typed error was met on, when it does not say so itself,
/// keeping its type ([`Error::Within`]).
pub trait Within<T> {
    fn within(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> Within<T> for std::result::Result<T, E> {
    fn within(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| e.into().within(what()))
    }
}

/// What the tar crate says of a stream it cannot read, fit for a one-line
/// message. Its header errors quote the header's bytes as they are (binary
/// garbage, for a file that is no tar at all): those are named for what they
/// mean, and anything else is escaped and cut short.
pub fn tar_message(e: &io::Error) -> String {
    let text = e.to_string();
    if text.starts_with("numeric field") || text.contains("checksum mismatch") {
        return "a header block is no tar header (not a tar archive, or a corrupt one)".into();
    }
    printable(&text, 200)
}

/// `text` with control characters escaped, cut to `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() || c == char::REPLACEMENT_CHARACTER {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_errors_name_a_position_only_where_there_is_one() {
        let at = RecipeError {
            file: PathBuf::from("r.yaml"),
            pos: Some(Pos { line: 3, col: 7 }),
            message: "bad".into(),
        };
        assert_eq!(at.to_string(), "r.yaml:3:7: bad");
        let whole = RecipeError::in_file("nope.yaml", "cannot read recipe: gone");
        assert_eq!(whole.to_string(), "nope.yaml: cannot read recipe: gone");
    }

    #[test]
    fn tar_messages_never_carry_raw_bytes() {
        let garbage = io::Error::other(
            "numeric field did not have utf-8 text: \u{8f}\u{fffd}\u{7} when getting cksum for \u{1b}[2J",
        );
        let said = tar_message(&garbage);
        assert!(
            said.starts_with("a header block is no tar header"),
            "{said}"
        );
        let other = tar_message(&io::Error::other(format!(
            "bad\u{1b}[2J{}",
            "x".repeat(500)
        )));
        assert!(!other.contains('\u{1b}') && other.ends_with('…'), "{other}");
    }
}
