//! Paths and metadata of entries inside an image: parsed once from recipe
//! strings, then carried as types (an `ImagePath` is never `..`-laden).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// An absolute path inside the image, normalized: no `.`, `..` or empty
/// components. Stored without the leading `/` (the form tar uses); the root
/// is the empty string. A shared `str`, exactly as long as the path: a view
/// holds one per entry, hundreds of thousands of them, and the layer being
/// written names its entries with the same text (see [`Self::into_shared`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImagePath(Arc<str>);

impl ImagePath {
    pub fn root() -> ImagePath {
        ImagePath(Arc::from(""))
    }

    /// The path's relative form, shared, not copied: a layer entry named by
    /// it and the view's path for it are one allocation.
    pub fn into_shared(self) -> Arc<str> {
        self.0
    }

    /// [`Self::from_stored`] for text already shared.
    pub fn from_shared(rel: Arc<str>) -> Option<ImagePath> {
        (rel.is_empty() || is_canonical(&rel)).then_some(ImagePath(rel))
    }

    /// The relative form used in tar headers (`etc/passwd`).
    pub fn as_rel(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds a path from an already-relative tar name, as found in a layer.
    /// Returns None for names with `..` or empty components.
    pub fn from_rel(rel: &str) -> Option<ImagePath> {
        let rel = rel.trim_start_matches("./").trim_end_matches('/');
        let rel = if rel == "." { "" } else { rel };
        if rel.is_empty() {
            return Some(ImagePath::root());
        }
        is_canonical(rel).then(|| ImagePath(rel.into()))
    }

    /// A path as ingot stores it (its relative form, canonical already);
    /// None for any other text.
    pub fn from_stored(rel: &str) -> Option<ImagePath> {
        ImagePath::is_stored(rel).then(|| ImagePath(rel.into()))
    }

    /// Whether [`ImagePath::from_stored`] takes `rel`.
    pub fn is_stored(rel: &str) -> bool {
        rel.is_empty() || is_canonical(rel)
    }

    pub fn parent(&self) -> Option<ImagePath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => ImagePath(self.0[..i].into()),
            None => ImagePath::root(),
        })
    }

    /// The text of [`ImagePath::parent`] ("" for the root and what lies
    /// right below it), without making a path of it: for filters run on
    /// every path of an image.
    pub fn parent_rel(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    /// The last component ("" for the root).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// This path with one more component. `name` must be a single,
    /// non-empty component without `/`.
    pub fn join(&self, name: &str) -> ImagePath {
        debug_assert!(!name.is_empty() && !name.contains('/'));
        self.join_rel(name)
    }

    /// Joins a relative path of several components (empty ones skipped),
    /// in one allocation.
    pub fn join_rel(&self, rel: &str) -> ImagePath {
        let mut out = String::with_capacity(self.0.len() + 1 + rel.len());
        out.push_str(&self.0);
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(c);
        }
        ImagePath(out.into())
    }

    /// Every proper ancestor from the top down, excluding the root.
    pub fn ancestors(&self) -> Vec<ImagePath> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(p) = cur {
            if p.is_root() {
                break;
            }
            cur = p.parent();
            out.push(p);
        }
        out.reverse();
        out
    }

    pub fn starts_with(&self, other: &ImagePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&*other.0)
                && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", display_name(&self.0))
    }
}

/// Whether `rel` is a non-empty relative path with no empty, `.` or `..`
/// component: the stored form of an [`ImagePath`] other than the root.
fn is_canonical(rel: &str) -> bool {
    // One pass over the bytes, not a split: every path of a layer comes
    // through here when a cached summary is applied (300,000 at a time).
    let component_ok = |len: usize, dots: bool| len > 0 && !(dots && len <= 2);
    let (mut len, mut dots) = (0, true);
    for &b in rel.as_bytes() {
        if b == b'/' {
            if !component_ok(len, dots) {
                return false;
            }
            (len, dots) = (0, true);
        } else {
            len += 1;
            dots &= b == b'.';
        }
    }
    component_ok(len, dots)
}

/// A tar name as a `String`, losslessly. Bases keep their names as raw bytes
/// (rule 6), and some are not UTF-8: each invalid byte becomes NUL followed
/// by two hex digits. NUL can be in no tar name and no recipe path, so the
/// escaped form never collides with a real name.
pub fn decode_name(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push('\0');
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// The raw bytes a [`decode_name`]d name stands for.
pub fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut parts = name.split('\0');
    if let Some(first) = parts.next() {
        out.extend_from_slice(first.as_bytes());
    }
    for part in parts {
        // Each escape is NUL and two hex digits; decode_name wrote them.
        let (hex, rest) = part.split_at(part.len().min(2));
        out.extend(u8::from_str_radix(hex, 16).ok());
        out.extend_from_slice(rest.as_bytes());
    }
    out
}

/// A decoded name for people: escaped bytes shown as `\xNN`.
pub fn display_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('\0') {
        name.replace('\0', "\\x").into()
    } else {
        name.into()
    }
}

impl fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for ImagePath {
    type Err = String;

    fn from_str(s: &str) -> Result<ImagePath, String> {
        if !s.starts_with('/') {
            return Err(format!("image path {s:?} must be absolute (start with /)"));
        }
        if s.contains('\0') {
            return Err(format!("image path {s:?} contains a NUL byte"));
        }
        let mut parts = Vec::new();
        for c in s.split('/').filter(|c| !c.is_empty()) {
            match c {
                "." => {}
                ".." => return Err(format!("image path {s:?} must not contain `..`")),
                c if c.starts_with(crate::layer::WHITEOUT_PREFIX) => {
                    return Err(format!(
                        "image path {s:?} uses the reserved whiteout prefix `.wh.`"
                    ));
                }
                c => parts.push(c),
            }
        }
        Ok(ImagePath(parts.join("/").into()))
    }
}

/// Permission bits (`0o7777` at most), written in recipes as a quoted octal
/// string so YAML's octal and base-60 rules cannot bite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        let bad = || format!("mode {s:?} must be 3 or 4 octal digits, like \"0644\"");
        if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        u32::from_str_radix(s, 8).map(Mode).map_err(|_| bad())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A change of permission bits: an octal mode, which replaces them all, or
/// chmod(1)'s symbolic form, which edits them: clauses separated by `,`,
/// each `[ugoa]*` then one or more `[+-=][rwxXst]*` (`u-s,g-s`, `go-w`,
/// `a+rX`). With no `u`, `g`, `o` or `a`, a clause means `a`: no umask is
/// read, so the result is the same on every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// As written: shown, and keyed, in this form.
    text: String,
    how: ModeHow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ModeHow {
    Absolute(u32),
    /// (who mask of `u`/`g`/`o` as 0o4/0o2/0o1, operator, permissions).
    Symbolic(Vec<(u8, u8, String)>),
}

impl FromStr for ModeChange {
    type Err = String;

    fn from_str(s: &str) -> Result<ModeChange, String> {
        if s.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            let Mode(bits) = s.parse()?;
            return Ok(ModeChange {
                text: s.to_string(),
                how: ModeHow::Absolute(bits),
            });
        }
        let bad = |why: &str| {
            format!(
                "mode {s:?}: {why}; expected octal digits (\"0755\") or chmod's symbolic \
                 form, like \"u-s,g-s\" or \"go-w\""
            )
        };
        let mut clauses = Vec::new();
        for clause in s.split(',') {
            let mut who = 0u8;
            let mut rest = clause;
            while let Some(c) = rest.chars().next().filter(|c| "ugoa".contains(*c)) {
                who |= match c {
                    'u' => 0o4,
                    'g' => 0o2,
                    'o' => 0o1,
                    _ => 0o7,
                };
                rest = &rest[1..];
            }
            if who == 0 {
                who = 0o7;
            }
            if rest.is_empty() {
                return Err(bad(&format!("{clause:?} has no +, - or =")));
            }
            while let Some(op) = rest.chars().next() {
                if !"+-=".contains(op) {
                    return Err(bad(&format!("{op:?} is not an operator")));
                }
                rest = &rest[1..];
                let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
                let perms = &rest[..end];
                if let Some(p) = perms.chars().find(|c| !"rwxXst".contains(*c)) {
                    return Err(bad(&format!("{p:?} is not one of r, w, x, X, s, t")));
                }
                clauses.push((who, op as u8, perms.to_string()));
                rest = &rest[end..];
            }
        }
        Ok(ModeChange {
            text: s.to_string(),
            how: ModeHow::Symbolic(clauses),
        })
    }
}

impl ModeChange {
    /// The bits `mode` becomes, for a directory when `dir`.
    pub fn apply(&self, mode: u32, dir: bool) -> u32 {
        let clauses = match &self.how {
            ModeHow::Absolute(bits) => return *bits,
            ModeHow::Symbolic(clauses) => clauses,
        };
        let mut mode = mode & 0o7777;
        for (who, op, perms) in clauses {
            let who = u32::from(*who);
            // rwx for each of u, g and o chosen.
            let spread = |bit: u32| {
                (0..3)
                    .filter(|i| who & (1 << i) != 0)
                    .fold(0, |m, i| m | bit << (3 * i))
            };
            let mut bits = 0;
            for p in perms.chars() {
                bits |= match p {
                    'r' => spread(0o4),
                    'w' => spread(0o2),
                    'x' => spread(0o1),
                    'X' if dir || mode & 0o111 != 0 => spread(0o1),
                    's' => {
                        (if who & 0o4 != 0 { 0o4000 } else { 0 })
                            | (if who & 0o2 != 0 { 0o2000 } else { 0 })
                    }
                    't' if who & 0o1 != 0 => 0o1000,
                    _ => 0,
                };
            }
            match op {
                b'+' => mode |= bits,
                b'-' => mode &= !bits,
                _ => {
                    // `=`: the chosen classes' bits, and their special bit
                    // (setuid for u, setgid for g, sticky for o), are set
                    // to exactly these.
                    let special = (if who & 0o4 != 0 { 0o4000 } else { 0 })
                        | (if who & 0o2 != 0 { 0o2000 } else { 0 })
                        | (if who & 0o1 != 0 { 0o1000 } else { 0 });
                    mode = (mode & !(spread(0o7) | special)) | bits;
                }
            }
        }
        mode
    }
}

impl fmt::Display for ModeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Numeric owner `uid:gid` (rule 4: names are never resolved or written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for Owner {
    type Err = String;

    /// `"uid:gid"`, or `"uid"` alone meaning the same number for the group.
    fn from_str(s: &str) -> Result<Owner, String> {
        let num = |part: &str| {
            part.parse::<u32>().map_err(|_| {
                format!(
                    "owner {s:?} must be numeric \"uid:gid\" or \"uid\" (names are not resolved)"
                )
            })
        };
        match s.split_once(':') {
            Some((u, g)) => Ok(Owner {
                uid: num(u)?,
                gid: num(g)?,
            }),
            None => {
                let id = num(s)?;
                Ok(Owner { uid: id, gid: id })
            }
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

deserialize_from_str!(Mode, ModeChange, Owner);

/// In text (recipes, reports, JSON) a path is its Display form; in binary
/// encodings (the cache's summaries) its stored form, which keeps a name
/// that is not UTF-8 exactly as the layer had it (Display escapes it, and
/// the escape does not parse back to the same path).
impl serde::Serialize for ImagePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_str(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for ImagePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let human = d.is_human_readable();
        let s = String::deserialize(d)?;
        if human {
            s.parse().map_err(serde::de::Error::custom)
        } else if s.is_empty() || is_canonical(&s) {
            // The stored form is canonical already: taken as it is.
            Ok(ImagePath(s.into()))
        } else {
            Err(serde::de::Error::custom(format!(
                "bad stored image path {s:?}"
            )))
        }
    }
}

/// Serializes through Display, the same text the recipe holds.
macro_rules! serialize_display {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

serialize_display!(Mode, ModeChange, Owner);

/// The length of the longest common prefix of `a` and `b` that ends on a
/// character boundary of both: what a path shares with the one before it
/// in a front-coded list of paths (layer summaries, filed layer files).
pub fn shared_prefix(a: &str, b: &str) -> usize {
    let mut n = crate::layer::order::common_prefix(a.as_bytes(), b.as_bytes());
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_have_no_empty_dot_or_dot_dot_component() {
        let by_split = |rel: &str| {
            rel.split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
        };
        for rel in [
            "",
            "a",
            "a/b",
            ".",
            "..",
            "...",
            ".a",
            "a.",
            "..a",
            "a/./b",
            "a/../b",
            "a/...",
            "/a",
            "a/",
            "a//b",
            "./a",
            "a/.",
            "a/..",
            "é/.é",
            ".../..../b",
        ] {
            assert_eq!(is_canonical(rel), by_split(rel), "{rel:?}");
        }
    }

    #[test]
    fn image_paths_normalize_and_refuse_escapes() {
        let p: ImagePath = "/etc//hello/./x".parse().unwrap();
        assert_eq!(p.as_rel(), "etc/hello/x");
        assert_eq!(p.to_string(), "/etc/hello/x");
        assert_eq!(p.parent().unwrap().as_rel(), "etc/hello");
        assert_eq!(p.parent_rel(), "etc/hello");
        assert_eq!(ImagePath::from_rel("etc").unwrap().parent_rel(), "");
        assert_eq!(ImagePath::root().parent_rel(), "");
        assert_eq!(
            p.ancestors().iter().map(|a| a.as_rel()).collect::<Vec<_>>(),
            ["etc", "etc/hello"]
        );
        assert!("/etc/../x".parse::<ImagePath>().is_err());
        assert!("etc/x".parse::<ImagePath>().is_err());
        assert!("/etc/.wh.x".parse::<ImagePath>().is_err());
        assert!(p.starts_with(&"/etc".parse().unwrap()));
        assert!(
            !"/etcx"
                .parse::<ImagePath>()
                .unwrap()
                .starts_with(&"/etc".parse().unwrap())
        );
    }

    #[test]
    fn paths_keep_their_stored_form_in_binary_encodings() {
        let raw = ImagePath::from_rel(&decode_name(b"etc/caf\xe9")).unwrap();
        let bytes = postcard::to_stdvec(&raw).unwrap();
        assert_eq!(postcard::from_bytes::<ImagePath>(&bytes).unwrap(), raw);
        let json = serde_json::to_string(&raw).unwrap();
        assert_eq!(json, r#""/etc/caf\\xe9""#, "text keeps the escaped form");
        for bad in ["../x", "/etc", "a//b", "a/./b"] {
            let bytes = postcard::to_stdvec(bad).unwrap();
            assert!(postcard::from_bytes::<ImagePath>(&bytes).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_utf8_names_decode_losslessly() {
        assert_eq!(decode_name(b"etc/caf\xc3\xa9"), "etc/café");
        let raw = decode_name(b"etc/caf\xe9");
        assert_eq!(raw, "etc/caf\0e9");
        assert_ne!(decode_name(b"a\xff"), decode_name(b"a\xfe"));
        let path = ImagePath::from_rel(&raw).unwrap();
        assert_eq!(path.to_string(), "/etc/caf\\xe9");
        for raw in [
            &b"etc/caf\xe9"[..],
            b"\xff\xfe/a",
            b"plain",
            b"caf\xc3\xa9\x80",
        ] {
            assert_eq!(encode_name(&decode_name(raw)), raw);
        }
    }

    #[test]
    fn modes_and_owners_parse_strictly() {
        assert_eq!("0750".parse::<Mode>(), Ok(Mode(0o750)));
        assert_eq!("4755".parse::<Mode>(), Ok(Mode(0o4755)));
        for bad in ["75", "0758", "07777x", "-644", "12345"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
        assert_eq!("10:20".parse::<Owner>(), Ok(Owner { uid: 10, gid: 20 }));
        assert_eq!("7".parse::<Owner>(), Ok(Owner { uid: 7, gid: 7 }));
        assert!("root:root".parse::<Owner>().is_err());
    }

    #[test]
    fn mode_changes_read_as_chmod_reads_them() {
        let apply = |change: &str, mode: u32, dir: bool| {
            change.parse::<ModeChange>().unwrap().apply(mode, dir)
        };
        assert_eq!(apply("0755", 0o4711, false), 0o755);
        assert_eq!(apply("u-s,g-s", 0o6755, false), 0o755);
        assert_eq!(apply("-s", 0o6755, false), 0o755);
        assert_eq!(apply("go-w", 0o777, false), 0o755);
        assert_eq!(apply("a+rX", 0o600, true), 0o755);
        assert_eq!(apply("a+rX", 0o600, false), 0o644);
        assert_eq!(apply("a+rX", 0o700, false), 0o755);
        assert_eq!(apply("u=rw,go=r", 0o4777, false), 0o644);
        assert_eq!(apply("o+t", 0o777, true), 0o1777);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
        assert_eq!(apply("g+s", 0o755, true), 0o2755);
        for bad in ["", "u", "u+q", "z+x", "0999", "u-s,", "u+s;g-s"] {
            assert!(bad.parse::<ModeChange>().is_err(), "{bad}");
        }
        assert_eq!(
            "u-s,g-s".parse::<ModeChange>().unwrap().to_string(),
            "u-s,g-s"
        );
    }
}
