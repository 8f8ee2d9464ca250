//! Archive indexes: the deb822 text of a `Packages` index and of a
//! `Release` file, read as a stream of stanzas, and the relation fields
//! (`Depends`, `Pre-Depends`, `Provides`) parsed into typed relations.
//!
//! An index is untrusted input until its hash is checked, and large even
//! when trusted, so reading is bounded ([`Limits`]) and every error names
//! the line. The signature of an `InRelease` is checked before its body
//! reaches [`read_release`]; that is not this module's job.
//!
//! Format: deb822(5). Stanzas are separated by blank lines (or lines of
//! spaces and tabs); a field is `Name: value`, its name matched without
//! regard to case; a line starting with a space or a tab continues the
//! field before it. Comment lines are refused: archive tools never write
//! them, and a `#` line in an index means it is not one.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, BufRead, Read};

use crate::debian::version::{ParseVersionError, Version};
use crate::digest::Digest;

/// How much one index may make us read and hold. Debian 12's main
/// `Packages` for amd64 (50 MB, 63,440 stanzas) has at most 29 fields in a
/// stanza, a 76 KB stanza and a 75 KB line (a Rust library's `Provides`);
/// the defaults leave an order of magnitude above each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one line, without its newline.
    pub line_bytes: usize,
    /// Bytes in one stanza, newlines included.
    pub stanza_bytes: usize,
    /// Fields in one stanza.
    pub fields: usize,
    /// Bytes in the whole index.
    pub total_bytes: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        line_bytes: 1 << 20,
        stanza_bytes: 4 << 20,
        fields: 256,
        total_bytes: 512 << 20,
    };
}

/// Why an index cannot be read. Each names the 1-based line it is about;
/// the caller says which index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("line {line}: {source}")]
    Io {
        line: usize,
        #[source]
        source: io::Error,
    },
    #[error("line {line}: not UTF-8")]
    NotUtf8 { line: usize },
    #[error("line {line}: {what} is over the limit of {limit}")]
    TooLarge {
        line: usize,
        what: &'static str,
        limit: u64,
    },
    /// The text is not deb822.
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// A field is missing or its value is wrong; `package` names the
    /// stanza's package where it has one.
    #[error("line {line}: {}{field}: {reason}", in_package(.package))]
    Field {
        line: usize,
        package: Option<String>,
        field: String,
        reason: String,
    },
}

fn in_package(package: &Option<String>) -> String {
    package
        .as_ref()
        .map(|p| format!("package {p}: "))
        .unwrap_or_default()
}

/// One `Name: value` field. A folded value keeps its continuation lines,
/// each trimmed, joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// The line the field starts on; its continuation lines follow it.
    pub line: usize,
}

/// One stanza (paragraph) of fields, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// The line the stanza starts on.
    pub line: usize,
    pub fields: Vec<Field>,
}

impl Stanza {
    /// The field named `name`, whatever the case of either.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// The stanzas of a deb822 text, read one at a time within [`Limits`].
/// After an error it yields nothing more.
pub struct Stanzas<R> {
    reader: R,
    limits: Limits,
    /// The number of the last line read.
    line: usize,
    total: u64,
    failed: bool,
}

impl<R: BufRead> Stanzas<R> {
    pub fn new(reader: R) -> Stanzas<R> {
        Stanzas::with_limits(reader, Limits::DEFAULT)
    }

    pub fn with_limits(reader: R, limits: Limits) -> Stanzas<R> {
        Stanzas {
            reader,
            limits,
            line: 0,
            total: 0,
            failed: false,
        }
    }

    /// The packages of a `Packages` index, one stanza at a time.
    pub fn packages(self) -> impl Iterator<Item = Result<Package, IndexError>> {
        self.map(|s| s.and_then(|s| Package::from_stanza(&s)))
    }

    /// The next line without its line ending, or `None` at the end. Reads
    /// at most one byte past the line limit, so an endless line costs no
    /// more than a long one.
    fn next_line(&mut self) -> Result<Option<String>, IndexError> {
        let line = self.line + 1;
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(self.limits.line_bytes as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| IndexError::Io { line, source })?;
        if n == 0 {
            return Ok(None);
        }
        self.line = line;
        self.total += n as u64;
        if self.total > self.limits.total_bytes {
            return Err(IndexError::TooLarge {
                line,
                what: "the index",
                limit: self.limits.total_bytes,
            });
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.len() > self.limits.line_bytes {
            return Err(IndexError::TooLarge {
                line,
                what: "the line",
                limit: self.limits.line_bytes as u64,
            });
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|_| IndexError::NotUtf8 { line })
    }

    fn next_stanza(&mut self) -> Result<Option<Stanza>, IndexError> {
        let mut stanza = Stanza {
            line: 0,
            fields: Vec::new(),
        };
        let mut bytes = 0;
        while let Some(text) = self.next_line()? {
            let line = self.line;
            if is_blank(&text) {
                if stanza.fields.is_empty() {
                    continue;
                }
                break;
            }
            bytes += text.len() + 1;
            if bytes > self.limits.stanza_bytes {
                return Err(IndexError::TooLarge {
                    line,
                    what: "the stanza",
                    limit: self.limits.stanza_bytes as u64,
                });
            }
            if text.starts_with([' ', '\t']) {
                let Some(field) = stanza.fields.last_mut() else {
                    return Err(syntax(line, "a continuation line with no field before it"));
                };
                field.value.push('\n');
                field.value.push_str(text.trim());
                continue;
            }
            let field = parse_field_line(&text, line)?;
            if stanza.get(&field.name).is_some() {
                return Err(syntax(
                    line,
                    format!("field {} appears twice in one stanza", field.name),
                ));
            }
            if stanza.fields.len() == self.limits.fields {
                return Err(IndexError::TooLarge {
                    line,
                    what: "the number of fields in the stanza",
                    limit: self.limits.fields as u64,
                });
            }
            if stanza.fields.is_empty() {
                stanza.line = line;
            }
            stanza.fields.push(field);
        }
        Ok((!stanza.fields.is_empty()).then_some(stanza))
    }
}

impl<R: BufRead> Iterator for Stanzas<R> {
    type Item = Result<Stanza, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_stanza();
        self.failed = next.is_err();
        next.transpose()
    }
}

fn is_blank(line: &str) -> bool {
    line.bytes().all(|b| b == b' ' || b == b'\t')
}

fn syntax(line: usize, reason: impl Into<String>) -> IndexError {
    IndexError::Syntax {
        line,
        reason: reason.into(),
    }
}

/// `Name: value`. deb822(5): a name is printable ASCII without `:`, and
/// starts with neither `#` nor `-`.
fn parse_field_line(text: &str, line: usize) -> Result<Field, IndexError> {
    if text.starts_with('#') {
        return Err(syntax(line, "a comment line, which no index holds"));
    }
    let Some((name, value)) = text.split_once(':') else {
        return Err(syntax(line, "expected 'Name: value'"));
    };
    let valid = !name.is_empty()
        && !name.starts_with(['#', '-'])
        && name.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(syntax(line, format!("invalid field name {name:?}")));
    }
    Ok(Field {
        name: name.to_string(),
        value: value.trim().to_string(),
        line,
    })
}

/// How a package may satisfy dependencies across architectures
/// (the `Multi-Arch` field; absent means `No`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MultiArch {
    No,
    Same,
    /// Satisfies plain dependencies of packages of any architecture.
    Foreign,
    /// Satisfies `name:any` dependencies.
    Allowed,
}

impl fmt::Display for MultiArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultiArch::No => "no",
            MultiArch::Same => "same",
            MultiArch::Foreign => "foreign",
            MultiArch::Allowed => "allowed",
        })
    }
}

/// One binary package of a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub depends: Vec<Relation>,
    pub pre_depends: Vec<Relation>,
    pub provides: Vec<Provide>,
    /// The `.deb`'s path from the archive's root, checked to stay inside it.
    pub filename: String,
    pub size: u64,
    pub sha256: Digest,
    pub essential: bool,
    pub priority: Option<String>,
}

impl Package {
    /// The package a stanza describes. `Package`, `Version`,
    /// `Architecture`, `Filename`, `Size` and `SHA256` are required: a
    /// package ingot cannot pin by hash is refused, not skipped.
    pub fn from_stanza(stanza: &Stanza) -> Result<Package, IndexError> {
        let name = required(stanza, "Package", None)?;
        let name = parse_value(name, None, |v| {
            valid_package_name(v)
                .then(|| v.to_string())
                .ok_or_else(|| "not a valid package name".to_string())
        })?;
        let pkg = Some(name.as_str());
        let version = parse_value(required(stanza, "Version", pkg)?, pkg, |v| {
            v.parse::<Version>().map_err(|e| e.to_string())
        })?;
        let architecture = parse_value(required(stanza, "Architecture", pkg)?, pkg, |v| {
            valid_arch(v)
                .then(|| v.to_string())
                .ok_or_else(|| "not a valid architecture".to_string())
        })?;
        let multi_arch = optional(stanza, "Multi-Arch", pkg, |v| match v {
            "no" => Ok(MultiArch::No),
            "same" => Ok(MultiArch::Same),
            "foreign" => Ok(MultiArch::Foreign),
            "allowed" => Ok(MultiArch::Allowed),
            _ => Err("expected no, same, foreign or allowed".to_string()),
        })?
        .unwrap_or(MultiArch::No);
        let depends = optional(stanza, "Depends", pkg, parse_relations)?.unwrap_or_default();
        let pre_depends =
            optional(stanza, "Pre-Depends", pkg, parse_relations)?.unwrap_or_default();
        let provides = optional(stanza, "Provides", pkg, parse_provides)?.unwrap_or_default();
        let filename = parse_value(required(stanza, "Filename", pkg)?, pkg, |v| {
            archive_path(v).map(str::to_string)
        })?;
        let size = parse_value(required(stanza, "Size", pkg)?, pkg, |v| {
            v.parse::<u64>().map_err(|_| "not a byte count".to_string())
        })?;
        let sha256 = parse_value(required(stanza, "SHA256", pkg)?, pkg, parse_sha256)?;
        let essential = optional(stanza, "Essential", pkg, |v| match v {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err("expected yes or no".to_string()),
        })?
        .unwrap_or(false);
        let priority = stanza.get("Priority").map(|f| f.value.clone());
        Ok(Package {
            name,
            version,
            architecture,
            multi_arch,
            depends,
            pre_depends,
            provides,
            filename,
            size,
            sha256,
            essential,
            priority,
        })
    }
}

/// Every package of a `Packages` index, within [`Limits::DEFAULT`].
pub fn read_packages<R: BufRead>(reader: R) -> Result<Vec<Package>, IndexError> {
    Stanzas::new(reader).packages().collect()
}

fn required<'a>(
    stanza: &'a Stanza,
    name: &str,
    package: Option<&str>,
) -> Result<&'a Field, IndexError> {
    stanza.get(name).ok_or_else(|| IndexError::Field {
        line: stanza.line,
        package: package.map(str::to_string),
        field: name.to_string(),
        reason: "missing".to_string(),
    })
}

fn optional<T>(
    stanza: &Stanza,
    name: &str,
    package: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, IndexError> {
    stanza
        .get(name)
        .map(|f| parse_value(f, package, parse))
        .transpose()
}

/// Parses a field's value; an error names the field, its line and the
/// package.
fn parse_value<T>(
    field: &Field,
    package: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, IndexError> {
    parse(&field.value).map_err(|reason| IndexError::Field {
        line: field.line,
        package: package.map(str::to_string),
        field: field.name.clone(),
        reason,
    })
}

/// Policy §5.6.1: lowercase letters, digits, `+`, `-` and `.`, starting
/// with a letter or digit. (Policy also asks for two characters; dpkg
/// does not, and neither do we.)
fn valid_package_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// An architecture name (`amd64`, `all`, `musl-linux-arm64`).
fn valid_arch(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A path from the archive's root, as `Filename` and the Release file list
/// give it. Refused unless every component is a plain name: the path is
/// later joined to a URL and a cache directory.
fn archive_path(s: &str) -> Result<&str, String> {
    let plain = |c: &str| !matches!(c, "" | "." | "..");
    if s.split('/').all(plain) && !s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Ok(s)
    } else {
        Err(format!(
            "{s:?} is not a relative path of plain names inside the archive"
        ))
    }
}

fn parse_sha256(s: &str) -> Result<Digest, String> {
    format!("sha256:{s}")
        .parse()
        .map_err(|_| format!("{s:?} is not 64 lowercase hex digits"))
}

/// The comparison of a version constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<<`
    Earlier,
    /// `<=` (and the obsolete `<`, which meant the same)
    EarlierOrEqual,
    /// `=`
    Equal,
    /// `>=` (and the obsolete `>`)
    LaterOrEqual,
    /// `>>`
    Later,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Earlier => "<<",
            Op::EarlierOrEqual => "<=",
            Op::Equal => "=",
            Op::LaterOrEqual => ">=",
            Op::Later => ">>",
        }
    }
}

/// `(op version)` after a package name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub op: Op,
    pub version: Version,
}

impl Constraint {
    /// Whether `version` satisfies this constraint.
    pub fn allows(&self, version: &Version) -> bool {
        let ord = version.cmp(&self.version);
        match self.op {
            Op::Earlier => ord.is_lt(),
            Op::EarlierOrEqual => ord.is_le(),
            Op::Equal => ord.is_eq(),
            Op::LaterOrEqual => ord.is_ge(),
            Op::Later => ord.is_gt(),
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {})", self.op.symbol(), self.version)
    }
}

/// The architecture qualifier after a name in a relation (`name:any`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchQualifier {
    /// `:any`: satisfied only by a `Multi-Arch: allowed` package.
    Any,
    /// `:native`: the architecture being installed for.
    Native,
    /// `:amd64` and the like.
    Arch(String),
}

/// One alternative of a relation: `name[:arch] [(op version)]`. The
/// architecture restrictions (`[amd64]`) and build profiles (`<!nocheck>`)
/// that source packages may write are checked for syntax and dropped:
/// they select build dependencies and mean nothing in a binary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub arch: Option<ArchQualifier>,
    pub constraint: Option<Constraint>,
}

impl fmt::Display for Alternative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch {
            Some(ArchQualifier::Any) => f.write_str(":any")?,
            Some(ArchQualifier::Native) => f.write_str(":native")?,
            Some(ArchQualifier::Arch(a)) => write!(f, ":{a}")?,
            None => {}
        }
        if let Some(c) = &self.constraint {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

/// One comma-separated relation: satisfied by any of its alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub alternatives: Vec<Alternative>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, alt) in self.alternatives.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{alt}")?;
        }
        Ok(())
    }
}

/// One entry of `Provides`: a virtual package, versioned or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provide {
    pub name: String,
    /// Only `(= version)` may be written (Policy §7.5).
    pub version: Option<Version>,
}

/// A relation field: `a | b (>= 1.2) [amd64] <!nocheck>, c:any (<< 3)`.
/// An empty value holds no relations; an empty relation between commas is
/// an error, as it is for dpkg.
pub fn parse_relations(value: &str) -> Result<Vec<Relation>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|rel| {
            let alternatives = rel
                .split('|')
                .map(parse_alternative)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Relation { alternatives })
        })
        .collect()
}

/// `Provides`: relations of one alternative each, with no architecture
/// qualifier and no constraint but `=`.
pub fn parse_provides(value: &str) -> Result<Vec<Provide>, String> {
    parse_relations(value)?
        .into_iter()
        .map(|rel| {
            let shown = rel.to_string();
            let [alt] = <[Alternative; 1]>::try_from(rel.alternatives)
                .map_err(|_| format!("{shown:?}: a Provides entry has no alternatives"))?;
            if alt.arch.is_some() {
                return Err(format!(
                    "{shown:?}: a Provides entry has no architecture qualifier"
                ));
            }
            let version = match alt.constraint {
                None => None,
                Some(Constraint {
                    op: Op::Equal,
                    version,
                }) => Some(version),
                Some(_) => return Err(format!("{shown:?}: only '=' may version a provide")),
            };
            Ok(Provide {
                name: alt.name,
                version,
            })
        })
        .collect()
}

fn parse_alternative(text: &str) -> Result<Alternative, String> {
    let s = text.trim();
    let end = s
        .find(|c: char| c.is_whitespace() || "([<".contains(c))
        .unwrap_or(s.len());
    let (head, rest) = s.split_at(end);
    let (name, arch) = match head.split_once(':') {
        Some((name, "any")) => (name, Some(ArchQualifier::Any)),
        Some((name, "native")) => (name, Some(ArchQualifier::Native)),
        Some((name, a)) if valid_arch(a) => (name, Some(ArchQualifier::Arch(a.to_string()))),
        Some((_, a)) => return Err(format!("{s:?}: invalid architecture qualifier {a:?}")),
        None => (head, None),
    };
    if !valid_package_name(name) {
        return Err(if s.is_empty() {
            "an empty relation".to_string()
        } else {
            format!("{s:?}: invalid package name {name:?}")
        });
    }
    let mut rest = rest.trim_start();
    let mut constraint = None;
    if let Some(r) = rest.strip_prefix('(') {
        let (inner, after) = r
            .split_once(')')
            .ok_or_else(|| format!("{s:?}: unclosed '('"))?;
        constraint = Some(parse_constraint(inner).map_err(|e| format!("{s:?}: {e}"))?);
        rest = after.trim_start();
    }
    // Source-only syntax: checked, then dropped (see Alternative).
    if let Some(r) = rest.strip_prefix('[') {
        let (inner, after) = r
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed '['"))?;
        let archs_ok = inner
            .split_whitespace()
            .all(|a| valid_arch(a.strip_prefix('!').unwrap_or(a)));
        if inner.trim().is_empty() || !archs_ok {
            return Err(format!("{s:?}: invalid architecture restriction"));
        }
        rest = after.trim_start();
    }
    while let Some(r) = rest.strip_prefix('<') {
        let (inner, after) = r
            .split_once('>')
            .ok_or_else(|| format!("{s:?}: unclosed '<'"))?;
        if inner.trim().is_empty() {
            return Err(format!("{s:?}: empty build profile"));
        }
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        return Err(format!("{s:?}: unexpected {rest:?}"));
    }
    Ok(Alternative {
        name: name.to_string(),
        arch,
        constraint,
    })
}

fn parse_constraint(inner: &str) -> Result<Constraint, String> {
    let inner = inner.trim();
    // Longest operators first: `<` is a prefix of `<<` and `<=`.
    const OPS: [(&str, Op); 7] = [
        ("<<", Op::Earlier),
        ("<=", Op::EarlierOrEqual),
        (">>", Op::Later),
        (">=", Op::LaterOrEqual),
        ("=", Op::Equal),
        ("<", Op::EarlierOrEqual),
        (">", Op::LaterOrEqual),
    ];
    let (op, version) = OPS
        .iter()
        .find_map(|(sym, op)| inner.strip_prefix(sym).map(|v| (*op, v)))
        .ok_or_else(|| format!("no operator in ({inner})"))?;
    let version = version
        .trim()
        .parse()
        .map_err(|e: ParseVersionError| e.to_string())?;
    Ok(Constraint { op, version })
}

/// One file a `Release` lists under `SHA256:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFile {
    pub sha256: Digest,
    pub size: u64,
    /// From the suite's directory (`main/binary-amd64/Packages.xz`).
    pub path: String,
}

/// What ingot reads of a `Release` file, or of the body of an `InRelease`
/// once its signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// `No-Support-for-Architecture-all: Packages`: `Architecture: all`
    /// packages are only in `binary-all/Packages`, not repeated in each
    /// architecture's index.
    pub arch_all_separate: bool,
    /// The `SHA256:` list, in the order written.
    pub files: Vec<ReleaseFile>,
}

impl Release {
    /// The listed file at `path`.
    pub fn file(&self, path: &str) -> Option<&ReleaseFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The release a single stanza describes. The `SHA256` list is
    /// required (there is nothing to check indexes against without it); a
    /// path listed twice is refused, as it could be checked against either.
    pub fn from_stanza(stanza: &Stanza) -> Result<Release, IndexError> {
        let words = |name| {
            stanza
                .get(name)
                .map(|f: &Field| f.value.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let sums = required(stanza, "SHA256", None)?;
        let mut files: Vec<ReleaseFile> = Vec::new();
        let mut paths = BTreeSet::new();
        // Continuation lines follow the field's line one for one: a
        // stanza holds no blank and no comment lines.
        for (line, entry) in (sums.line..).zip(sums.value.split('\n')) {
            if entry.is_empty() {
                continue;
            }
            let file = parse_release_file(entry).map_err(|reason| IndexError::Field {
                line,
                package: None,
                field: sums.name.clone(),
                reason,
            })?;
            if !paths.insert(file.path.clone()) {
                return Err(IndexError::Field {
                    line,
                    package: None,
                    field: sums.name.clone(),
                    reason: format!("{} is listed twice", file.path),
                });
            }
            files.push(file);
        }
        Ok(Release {
            suite: stanza.get("Suite").map(|f| f.value.clone()),
            codename: stanza.get("Codename").map(|f| f.value.clone()),
            architectures: words("Architectures"),
            components: words("Components"),
            arch_all_separate: stanza
                .get("No-Support-for-Architecture-all")
                .is_some_and(|f| f.value == "Packages"),
            files,
        })
    }
}

/// `<sha256> <size> <path>`.
fn parse_release_file(entry: &str) -> Result<ReleaseFile, String> {
    let parts: Vec<&str> = entry.split_whitespace().collect();
    let [hash, size, path] = parts[..] else {
        return Err(format!(
            "expected '<sha256> <size> <path>', found {entry:?}"
        ));
    };
    Ok(ReleaseFile {
        sha256: parse_sha256(hash)?,
        size: size
            .parse()
            .map_err(|_| format!("{size:?} is not a byte count"))?,
        path: archive_path(path)?.to_string(),
    })
}

/// The `Release` a text holds: exactly one stanza, within
/// [`Limits::DEFAULT`].
pub fn read_release<R: BufRead>(reader: R) -> Result<Release, IndexError> {
    let mut stanzas = Stanzas::new(reader);
    let Some(stanza) = stanzas.next().transpose()? else {
        return Err(syntax(1, "an empty Release file"));
    };
    if let Some(next) = stanzas.next().transpose()? {
        return Err(syntax(
            next.line,
            "a second stanza: a Release file holds one",
        ));
    }
    Release::from_stanza(&stanza)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Real stanzas of Debian 12's amd64 indexes (main and security), as
    /// `apt-cache show` printed them: the newest libc6, libssl3 twice,
    /// ca-certificates, openssl, libgcc-s1, gcc-12-base, debconf (with a
    /// folded `Tag`) and perl-base (versioned provides with an epoch).
    pub(crate) const BOOKWORM: &str = r#"Package: libc6
Source: glibc
Version: 2.36-9+deb12u14
Installed-Size: 13001
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Replaces: libc6-amd64
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales, libnss-nis, libnss-nisplus
Breaks: aide (<< 0.17.3-4+b3), busybox (<< 1.30.1-6), chrony (<< 4.2-3~), fakechroot (<< 2.19-3.5), firefox (<< 91~), firefox-esr (<< 91~), gnumach-image-1.8-486 (<< 2:1.8+git20210923~), gnumach-image-1.8-486-dbg (<< 2:1.8+git20210923~), gnumach-image-1.8-xen-486 (<< 2:1.8+git20210923~), gnumach-image-1.8-xen-486-dbg (<< 2:1.8+git20210923~), hurd (<< 1:0.9.git20220301-2), ioquake3 (<< 1.36+u20200211.f2c61c1~dfsg-2~), iraf-fitsutil (<< 2018.07.06-4), libgegl-0.4-0 (<< 0.4.18), libtirpc1 (<< 0.2.3), locales (<< 2.36), locales-all (<< 2.36), macs (<< 2.2.7.1-3~), nocache (<< 1.1-1~), nscd (<< 2.36), openarena (<< 0.8.8+dfsg-4~), openssh-server (<< 1:8.1p1-5), python3-iptables (<< 1.0.0-2), r-cran-later (<< 0.7.5+dfsg-2), tinydns (<< 1:1.05-14), valgrind (<< 1:3.19.0-1~), wcc (<< 0.0.2+dfsg-3)
Description: GNU C Library: Shared libraries
Description-md5: fc3001b0b90a1c8e6690b283a619d57f
Multi-Arch: same
Homepage: https://www.gnu.org/software/libc/libc.html
Tag: role::shared-lib
Section: libs
Priority: optional
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb
Size: 2759320
MD5sum: 8d98f0c882f269aaee8437bcfe89346e
SHA256: ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf

Package: libssl3
Source: openssl
Version: 3.0.22-1~deb12u2
Installed-Size: 6042
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit - shared libraries
Description-md5: 88547c6206c7fbc4fcc7d09ce100d210
Homepage: https://www.openssl.org/
Multi-Arch: same
Section: libs
Priority: optional
Filename: pool/updates/main/o/openssl/libssl3_3.0.22-1~deb12u2_amd64.deb
Size: 2039888
SHA256: cb4784740daa9b3b0eaea2b444bbefa686794afbbf3d678d238c1fd9875f2efd

Package: ca-certificates
Version: 20250419~deb12u2
Installed-Size: 388
Maintainer: Julien Cristau <jcristau@debian.org>
Architecture: all
Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0
Breaks: ca-certificates-java (<< 20121112+nmu1)
Description: Common CA certificates
Description-md5: e867d2a359bea1800b5bff209fc65bd1
Enhances: openssl
Multi-Arch: foreign
Section: misc
Priority: standard
Filename: pool/updates/main/c/ca-certificates/ca-certificates_20250419~deb12u2_all.deb
Size: 160948
SHA256: b9f76b5271a7ac373fd5e7e1b5b826a71ddd702b42a0d104955ecb1acfffc94b

Package: openssl
Version: 3.0.22-1~deb12u2
Installed-Size: 2315
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Depends: libc6 (>= 2.34), libssl3 (>= 3.0.9)
Suggests: ca-certificates
Description: Secure Sockets Layer toolkit - cryptographic utility
Description-md5: 9b6de2bb6e1d9016aeb0f00bcf6617bd
Homepage: https://www.openssl.org/
Multi-Arch: foreign
Section: utils
Priority: optional
Filename: pool/updates/main/o/openssl/openssl_3.0.22-1~deb12u2_amd64.deb
Size: 1441784
SHA256: 5cdf0b735b1c8a96ae0bf83ed328c83c2170f8320dedb035e98705b60b2d0cfe

Package: libgcc-s1
Source: gcc-12
Version: 12.2.0-14+deb12u1
Installed-Size: 140
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Replaces: libgcc1 (<< 1:10)
Provides: libgcc1 (= 1:12.2.0-14+deb12u1)
Depends: gcc-12-base (= 12.2.0-14+deb12u1), libc6 (>= 2.35)
Description: GCC support library
Description-md5: bbd60d723e97d8e06c04228ee4c76f10
Multi-Arch: same
Homepage: http://gcc.gnu.org/
Important: yes
Protected: yes
Tag: role::shared-lib
Section: libs
Priority: optional
Filename: pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_amd64.deb
Size: 49856
MD5sum: 9db51e73a4a0547f1e67400bc2c11a86
SHA256: 3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7

Package: gcc-12-base
Source: gcc-12
Version: 12.2.0-14+deb12u1
Installed-Size: 100
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Breaks: gnat (<< 7)
Description: GCC, the GNU Compiler Collection (base package)
Description-md5: b6e93638a6d08ea7a18929d7cf078e5d
Multi-Arch: same
Homepage: http://gcc.gnu.org/
Tag: role::shared-lib
Section: libs
Priority: optional
Filename: pool/main/g/gcc-12/gcc-12-base_12.2.0-14+deb12u1_amd64.deb
Size: 37596
MD5sum: 8e7e741807b1e1939df8f58323affdcb
SHA256: 1896a2aacf4ad681ff5eacc24a5b0ca4d5d9c9b9c9e4b6de5197bc1e116ea619

Package: debconf
Version: 1.5.82
Installed-Size: 491
Maintainer: Debconf Developers <debconf-devel@lists.alioth.debian.org>
Architecture: all
Replaces: debconf-tiny
Provides: debconf-2.0
Recommends: apt-utils, debconf-i18n
Suggests: debconf-doc, debconf-kde-helper, debconf-utils, libgtk3-perl, libnet-ldap-perl, libterm-readline-gnu-perl, perl, whiptail | dialog
Conflicts: debconf-tiny, whiptail-utf8 (<= 0.50.17-13)
Description: Debian configuration management system
Description-md5: 85b82bf406dfc9a635114f44ab7fb66d
Multi-Arch: foreign
Tag: admin::configuring, implemented-in::perl, interface::commandline,
 interface::graphical, interface::text-mode, interface::x11,
 role::program, scope::utility, suite::debian, uitoolkit::TODO,
 uitoolkit::gtk, uitoolkit::ncurses, uitoolkit::qt, use::configuring,
 x11::application
Section: admin
Priority: required
Filename: pool/main/d/debconf/debconf_1.5.82_all.deb
Size: 121212
MD5sum: ab40b7d3c7dd743f16d0d24ce3373270
SHA256: 74ab14194a3762b2fc717917dcfda42929ab98e3c59295a063344dc551cd7cc8

Package: perl-base
Source: perl
Version: 5.36.0-7+deb12u4
Installed-Size: 7643
Maintainer: Niko Tyni <ntyni@debian.org>
Architecture: amd64
Replaces: libfile-path-perl (<< 2.18), libfile-temp-perl (<< 0.2311), libio-socket-ip-perl (<< 0.41), libscalar-list-utils-perl (<< 1:1.62), libsocket-perl (<< 2.033), libxsloader-perl (<< 0.31), perl (<< 5.10.1-12), perl-modules (<< 5.20.1-3)
Provides: libfile-path-perl (= 2.18), libfile-temp-perl (= 0.2311), libio-socket-ip-perl (= 0.41), libscalar-list-utils-perl (= 1:1.62), libsocket-perl (= 2.033), libxsloader-perl (= 0.31), perlapi-5.36.0
Suggests: perl, sensible-utils
Conflicts: defoma (<< 0.11.12), doc-base (<< 0.10.3), mono-gac (<< 2.10.8.1-3), safe-rm (<< 0.8), update-inetd (<< 4.41)
Breaks: amanda-common (<< 1:3.3.9-2), backuppc (<< 4.4.0-7~), bucardo (<< 5.5.0-1.1), debconf (<< 1.5.61), dh-haskell (<< 0.3), duck (<< 0.14.1), intltool (<< 0.51.0-4), kio-perldoc (<< 20.04.1-1), latexml (<< 0.8.4-2), libdevel-mat-dumper-perl (<< 0.42-3), libencode-arabic-perl (<< 14.2-2), libexception-class-perl (<< 1.42), libfile-path-perl (<< 2.18), libfile-spec-perl (<< 3.8400), libfile-temp-perl (<< 0.2311), libio-socket-ip-perl (<< 0.41), libmp3-tag-perl (<< 1.13-1.2), libsbuild-perl (<< 0.67.0-1), libscalar-list-utils-perl (<< 1:1.62), libsocket-perl (<< 2.033), libxsloader-perl (<< 0.31), mailagent (<< 1:3.1-81-2), perl (<< 5.36.0~), perl-modules (<< 5.36.0~), pod2pdf (<< 0.42-5.1), slic3r (<< 1.2.9+dfsg-6.1), slic3r-prusa (<< 1.37.0+dfsg-1.1), texinfo (<< 6.1.0.dfsg.1-8)
Description: minimal Perl system
Description-md5: 6f98ca50727514fe6b19872d5ede03ec
Homepage: http://dev.perl.org/perl5/
Essential: yes
Pre-Depends: libc6 (>= 2.35), libcrypt1 (>= 1:4.1.0), dpkg (>= 1.17.17)
Section: perl
Priority: required
Filename: pool/updates/main/p/perl/perl-base_5.36.0-7+deb12u4_amd64.deb
Size: 1609596
SHA256: d7d1943aec9597629bf73075efcc5ef6dc9bda96d78e80d843156ecd448478b8

Package: libssl3
Source: openssl
Version: 3.0.20-1~deb12u2
Installed-Size: 6030
Maintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>
Architecture: amd64
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit - shared libraries
Description-md5: 88547c6206c7fbc4fcc7d09ce100d210
Multi-Arch: same
Homepage: https://www.openssl.org/
Tag: role::shared-lib
Section: libs
Priority: optional
Filename: pool/main/o/openssl/libssl3_3.0.20-1~deb12u2_amd64.deb
Size: 2036016
MD5sum: 4efab63a42e193c6107a3e1d1c46eaa4
SHA256: 89be24b41bff568ee6e7caf5680a3d808e80315ed92e407056ce0fa7a5bda025
"#;

    fn stanzas(text: &str) -> Result<Vec<Stanza>, IndexError> {
        Stanzas::new(text.as_bytes()).collect()
    }

    fn small(text: &str, limits: Limits) -> Result<Vec<Stanza>, IndexError> {
        Stanzas::with_limits(text.as_bytes(), limits).collect()
    }

    fn value<'a>(s: &'a Stanza, name: &str) -> &'a str {
        &s.get(name).unwrap().value
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn stanzas_fields_and_folded_lines() {
        let text = "\n\nPackage: a\nDescription: short\n long line\n \t.\n  more\n\n \t\n\
                    \nPACKAGE: b\nversion:1.0  \r\nMulti-arch:   same\n";
        let got = stanzas(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].line, 3);
        assert_eq!(value(&got[0], "description"), "short\nlong line\n.\nmore");
        assert_eq!(got[1].line, 11);
        assert_eq!(value(&got[1], "Package"), "b");
        assert_eq!(value(&got[1], "Version"), "1.0");
        assert_eq!(got[1].get("MULTI-ARCH").unwrap().line, 13);
        assert!(stanzas("").unwrap().is_empty());
        assert!(stanzas("\n \n\n").unwrap().is_empty());
    }

    #[test]
    fn malformed_text_is_refused_at_its_line() {
        let cases = [
            (
                "Package: a\n continued\n\n folded?\n",
                "line 4: a continuation line with no field before it",
            ),
            (
                "Package: a\nno colon here\n",
                "line 2: expected 'Name: value'",
            ),
            (
                "Package: a\n# a comment\n",
                "line 2: a comment line, which no index holds",
            ),
            (
                "Package: a\n-Bad: x\n",
                "line 2: invalid field name \"-Bad\"",
            ),
            (
                "Package: a\nVersion: 1\npackage: b\n",
                "line 3: field package appears twice in one stanza",
            ),
            (
                "Package: a\nBad Name: x\n",
                "line 2: invalid field name \"Bad Name\"",
            ),
        ];
        for (text, want) in cases {
            let err = stanzas(text).unwrap_err();
            assert_eq!(err.to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn reading_stops_at_the_first_error() {
        let mut it = Stanzas::new("Package: a\n\nbad\n\nPackage: c\n".as_bytes());
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn non_utf8_is_refused_with_its_line() {
        let text = b"Package: a\n\nPackage: b\nVersion: \xff\n";
        let err = Stanzas::new(&text[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert_eq!(err.to_string(), "line 4: not UTF-8");
    }

    const TIGHT: Limits = Limits {
        line_bytes: 16,
        stanza_bytes: 40,
        fields: 3,
        total_bytes: 64,
    };

    #[test]
    fn each_limit_is_enforced_and_named() {
        let fits = "A: 0123456789abc\nB: 1\nC: 2\n\nD: 3\n";
        assert_eq!(small(fits, TIGHT).unwrap().len(), 2);
        let cases = [
            (
                "A: 1\nB: 0123456789abcd\n",
                "line 2: the line is over the limit of 16",
            ),
            (
                "A: 0123456789abc\nB: 0123456789abc\nC: 012\n",
                "line 3: the stanza is over the limit of 40",
            ),
            (
                "A: 1\nB: 2\nC: 3\nD: 4\n",
                "line 4: the number of fields in the stanza is over the limit of 3",
            ),
            (
                "A: 0123456789abc\n\nB: 0123456789abc\n\nC: 0123456789abc\n\nD: 0123456789\n",
                "line 7: the index is over the limit of 64",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                small(text, TIGHT).unwrap_err().to_string(),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn an_endless_line_is_refused_after_reading_past_the_limit_once() {
        // 1 GiB of one line without a newline: refused after the limit.
        let endless = io::BufReader::new(io::repeat(b'a').take(1 << 30));
        let mut it = Stanzas::new(endless);
        let err = it.next().unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "line 1: the line is over the limit of {}",
                Limits::DEFAULT.line_bytes
            )
        );
    }

    fn alt(name: &str, arch: Option<ArchQualifier>, c: Option<(Op, &str)>) -> Alternative {
        Alternative {
            name: name.to_string(),
            arch,
            constraint: c.map(|(op, ver)| Constraint {
                op,
                version: v(ver),
            }),
        }
    }

    #[test]
    fn relations_with_alternatives_constraints_and_qualifiers() {
        let got = parse_relations("a | b (>= 1.2) [amd64] <!nocheck>, c:any (<< 3)").unwrap();
        assert_eq!(
            got,
            [
                Relation {
                    alternatives: vec![
                        alt("a", None, None),
                        alt("b", None, Some((Op::LaterOrEqual, "1.2"))),
                    ]
                },
                Relation {
                    alternatives: vec![alt(
                        "c",
                        Some(ArchQualifier::Any),
                        Some((Op::Earlier, "3"))
                    )]
                },
            ]
        );
        assert_eq!(got[0].to_string(), "a | b (>= 1.2)");
        assert_eq!(got[1].to_string(), "c:any (<< 3)");
    }

    #[test]
    fn every_operator_and_spacing() {
        let cases = [
            ("x (<< 1)", Op::Earlier),
            ("x (<= 1)", Op::EarlierOrEqual),
            ("x (= 1)", Op::Equal),
            ("x (>= 1)", Op::LaterOrEqual),
            ("x (>> 1)", Op::Later),
            ("x (< 1)", Op::EarlierOrEqual),
            ("x (> 1)", Op::LaterOrEqual),
            ("x(>=1)", Op::LaterOrEqual),
            ("x ( >=  1 )", Op::LaterOrEqual),
            ("x\n (>= 1)", Op::LaterOrEqual),
        ];
        for (text, op) in cases {
            let rels = parse_relations(text).unwrap();
            assert_eq!(
                rels[0].alternatives[0],
                alt("x", None, Some((op, "1"))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn architecture_qualifiers() {
        let rels = parse_relations("a:any, b:native, c:amd64, d:i386 (>= 1)").unwrap();
        let archs: Vec<_> = rels
            .iter()
            .map(|r| r.alternatives[0].arch.clone())
            .collect();
        assert_eq!(
            archs,
            [
                Some(ArchQualifier::Any),
                Some(ArchQualifier::Native),
                Some(ArchQualifier::Arch("amd64".into())),
                Some(ArchQualifier::Arch("i386".into())),
            ]
        );
    }

    #[test]
    fn restrictions_and_profiles_are_parsed_and_dropped() {
        let rels =
            parse_relations("a [!i386 amd64] <!nocheck> <cross !stage1>, b <stage1>").unwrap();
        assert_eq!(rels[0].alternatives, [alt("a", None, None)]);
        assert_eq!(rels[1].alternatives, [alt("b", None, None)]);
    }

    #[test]
    fn constraints_allow_what_they_say() {
        let c = |op, ver: &str| Constraint {
            op,
            version: v(ver),
        };
        assert!(c(Op::Earlier, "2").allows(&v("1.9")));
        assert!(!c(Op::Earlier, "2").allows(&v("2")));
        assert!(c(Op::EarlierOrEqual, "2").allows(&v("2-0")));
        assert!(c(Op::Equal, "1:2").allows(&v("1:2")));
        assert!(!c(Op::Equal, "1:2").allows(&v("2")));
        assert!(c(Op::LaterOrEqual, "2.0.5~").allows(&v("2.0.5~rc1")));
        assert!(!c(Op::Later, "2").allows(&v("2")));
        assert!(c(Op::Later, "2").allows(&v("2+b1")));
    }

    #[test]
    fn malformed_relations_are_refused() {
        for bad in [
            "a, , b",
            "a,",
            "a |",
            "| a",
            "a (>= 1",
            "a (~ 1)",
            "a (>=)",
            "a (>= 1 2)",
            "A",
            "a:",
            "a:AMD64",
            "a []",
            "a [amd64",
            "a <>",
            "a <nocheck",
            "a b",
            "a (>= 1) (<< 2)",
        ] {
            assert!(parse_relations(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_relations("  ").unwrap(), []);
        assert_eq!(
            parse_relations("a (~ 1)").unwrap_err(),
            "\"a (~ 1)\": no operator in (~ 1)"
        );
    }

    #[test]
    fn provides_may_be_versioned_with_equals_only() {
        let got = parse_provides("libgcc1 (= 1:12.2.0-14), perlapi-5.36.0").unwrap();
        assert_eq!(
            got,
            [
                Provide {
                    name: "libgcc1".into(),
                    version: Some(v("1:12.2.0-14"))
                },
                Provide {
                    name: "perlapi-5.36.0".into(),
                    version: None
                },
            ]
        );
        for bad in ["a | b", "a (>= 1)", "a:any", "a (<< 1)"] {
            assert!(parse_provides(bad).is_err(), "{bad:?} should be refused");
        }
    }

    const MINIMAL: &str = "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n\
        Filename: pool/main/h/hello/hello_2.10-3_amd64.deb\nSize: 56000\n\
        SHA256: 0000000000000000000000000000000000000000000000000000000000000001\n";

    fn package(text: &str) -> Result<Package, IndexError> {
        let stanza = stanzas(text)?.remove(0);
        Package::from_stanza(&stanza)
    }

    #[test]
    fn a_minimal_package_takes_defaults() {
        let p = package(MINIMAL).unwrap();
        assert_eq!(p.name, "hello");
        assert_eq!(p.version, v("2.10-3"));
        assert_eq!(p.multi_arch, MultiArch::No);
        assert!(p.depends.is_empty() && p.pre_depends.is_empty() && p.provides.is_empty());
        assert!(!p.essential);
        assert_eq!(p.priority, None);
        assert_eq!(p.size, 56000);
    }

    #[test]
    fn bad_package_fields_name_the_package_field_and_line() {
        let with = |line: &str| format!("{MINIMAL}{line}\n");
        let cases = [
            (
                MINIMAL.replace("Size: 56000\n", ""),
                "line 1: package hello: Size: missing",
            ),
            (
                MINIMAL.replace("Package: hello", "Package: Hello"),
                "line 1: Package: not a valid package name",
            ),
            (
                MINIMAL.replace("2.10-3\n", "2.10-\n"),
                "line 2: package hello: Version: invalid version \"2.10-\": empty revision",
            ),
            (
                MINIMAL.replace("Size: 56000", "Size: -1"),
                "line 5: package hello: Size: not a byte count",
            ),
            (
                MINIMAL.replace("0001\n", "001\n"),
                "line 6: package hello: SHA256: \"000000000000000000000000000000000000000000000000000000000000001\" is not 64 lowercase hex digits",
            ),
            (
                MINIMAL.replace("pool/main/h/hello/", "pool/../../etc/"),
                "line 4: package hello: Filename: \"pool/../../etc/hello_2.10-3_amd64.deb\" is not a relative path of plain names inside the archive",
            ),
            (
                with("Multi-Arch: maybe"),
                "line 7: package hello: Multi-Arch: expected no, same, foreign or allowed",
            ),
            (
                with("Essential: true"),
                "line 7: package hello: Essential: expected yes or no",
            ),
            (
                with("Depends: libc6 (>= 2.34"),
                "line 7: package hello: Depends: \"libc6 (>= 2.34\": unclosed '('",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(package(&text).unwrap_err().to_string(), want);
        }
        for path in [
            "/abs/x.deb",
            "pool//x.deb",
            "pool/./x.deb",
            "pool/x.deb/",
            "..",
        ] {
            assert!(archive_path(path).is_err(), "{path:?}");
        }
    }

    #[test]
    fn real_bookworm_stanzas() {
        let pkgs = read_packages(BOOKWORM.as_bytes()).unwrap();
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "libc6",
                "libssl3",
                "ca-certificates",
                "openssl",
                "libgcc-s1",
                "gcc-12-base",
                "debconf",
                "perl-base",
                "libssl3",
            ]
        );
        let libc = &pkgs[0];
        assert_eq!(libc.version, v("2.36-9+deb12u14"));
        assert_eq!(libc.architecture, "amd64");
        assert_eq!(libc.multi_arch, MultiArch::Same);
        assert_eq!(libc.depends, parse_relations("libgcc-s1").unwrap());
        assert_eq!(
            libc.filename,
            "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb"
        );
        assert_eq!(libc.size, 2759320);
        assert_eq!(
            libc.sha256.hex(),
            "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf"
        );
        assert_eq!(libc.priority.as_deref(), Some("optional"));
        let ca = &pkgs[2];
        assert_eq!(ca.architecture, "all");
        assert_eq!(ca.multi_arch, MultiArch::Foreign);
        assert_eq!(ca.depends.len(), 2);
        assert_eq!(ca.depends[1].to_string(), "debconf (>= 0.5) | debconf-2.0");
        assert_eq!(pkgs[4].provides[0].version, Some(v("1:12.2.0-14+deb12u1")));
        let perl = &pkgs[7];
        assert!(perl.essential);
        assert_eq!(perl.pre_depends.len(), 3);
        assert_eq!(perl.provides.len(), 7);
        assert_eq!(perl.provides[6].version, None);
        assert!(pkgs[8].version < pkgs[1].version);
        // The folded Tag field of debconf keeps its lines.
        let debconf = stanzas(BOOKWORM).unwrap().remove(6);
        assert_eq!(debconf.get("tag").unwrap().value.lines().count(), 5);
    }

    const RELEASE: &str = "Origin: Debian\nLabel: Debian\nSuite: oldstable-updates\n\
        Version: 12-updates\nCodename: bookworm-updates\nDate: Mon, 30 Nov 2026 02:21:41 UTC\n\
        Acquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages\n\
        Architectures: all amd64 arm64\nComponents: main contrib\n\
        Description: Debian 12 - Updates\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e        0 main/binary-all/Packages\n\
        SHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855        0 main/binary-all/Packages\n \
        f61f27bd17de546264aa58f40f3aafaac7021e0ef69c17f6b1b4cd7664a037ec       20 main/binary-amd64/Packages.gz\n \
        515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f 50060337 main/binary-amd64/Packages\n";

    #[test]
    fn a_release_file() {
        let r = read_release(RELEASE.as_bytes()).unwrap();
        assert_eq!(r.suite.as_deref(), Some("oldstable-updates"));
        assert_eq!(r.codename.as_deref(), Some("bookworm-updates"));
        assert_eq!(r.architectures, ["all", "amd64", "arm64"]);
        assert_eq!(r.components, ["main", "contrib"]);
        assert!(r.arch_all_separate);
        assert_eq!(r.files.len(), 3);
        let f = r.file("main/binary-amd64/Packages").unwrap();
        assert_eq!(f.size, 50060337);
        assert_eq!(
            f.sha256.hex(),
            "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f"
        );
        assert!(r.file("main/binary-i386/Packages").is_none());
    }

    #[test]
    fn a_bad_release_is_refused_at_its_line() {
        let cases = [
            (
                RELEASE.replace(" 20 main", " 2x main"),
                "line 16: SHA256: \"2x\" is not a byte count",
            ),
            (
                RELEASE.replace("Packages.gz", "../Packages.gz"),
                "line 16: SHA256: \"main/binary-amd64/../Packages.gz\" is not a relative path of plain names inside the archive",
            ),
            (
                RELEASE.replace("Packages.gz", "Packages"),
                "line 17: SHA256: main/binary-amd64/Packages is listed twice",
            ),
            (
                RELEASE.replace("20 main/binary-amd64/Packages.gz", "20"),
                "line 16: SHA256: expected '<sha256> <size> <path>', found \"f61f27bd17de546264aa58f40f3aafaac7021e0ef69c17f6b1b4cd7664a037ec       20\"",
            ),
            (
                format!("{RELEASE}\nSuite: again\n"),
                "line 19: a second stanza: a Release file holds one",
            ),
            (
                RELEASE.replace("SHA256:", "SHA512:"),
                "line 1: SHA256: missing",
            ),
            (String::new(), "line 1: an empty Release file"),
        ];
        for (text, want) in cases {
            assert_eq!(read_release(text.as_bytes()).unwrap_err().to_string(), want);
        }
    }
}
