//! Debian package versions, `[epoch:]upstream[-revision]`, parsed and
//! ordered as Debian Policy §5.6.12 and dpkg's `verrevcmp` do.
//!
//! Hand-written rather than taken from the `debversion` crate: the whole
//! algorithm is the sixty lines below, and that crate would bring chrono,
//! lazy-regex and num-bigint for it (dpkg itself compares digit runs of any
//! length without big integers, as [`cmp_part`] does).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A Debian version. Two versions that dpkg orders as equal are equal
/// here too, though they may print differently: `1.0-0` and `0:1.0` both
/// equal `1.0` (§5.6.12: an absent revision compares as `0`).
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u32,
    upstream: String,
    /// Empty when the version has no `-`.
    revision: String,
}

impl Version {
    /// The epoch; 0 when none is written.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision, `None` for a native package's version.
    pub fn revision(&self) -> Option<&str> {
        (!self.revision.is_empty()).then_some(self.revision.as_str())
    }
}

/// Why a string is not a Debian version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {input:?}: {reason}")]
pub struct ParseVersionError {
    input: String,
    reason: &'static str,
}

impl FromStr for Version {
    type Err = ParseVersionError;

    /// Parses as dpkg's `parseversion` does, with its warnings made errors:
    /// a character outside Policy's sets is refused, because the version
    /// comes from an untrusted index and would otherwise leak into
    /// relation syntax (`,`, `|`, `(`) or file names. An upstream part not
    /// starting with a digit is accepted, as dpkg and apt accept it.
    fn from_str(s: &str) -> Result<Version, ParseVersionError> {
        let err = |reason| ParseVersionError {
            input: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(err("contains whitespace"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("the epoch is not a number"));
                }
                let epoch = e.parse().map_err(|_| err("the epoch is too large"))?;
                (epoch, rest)
            }
            None => (0, s),
        };
        // The revision follows the *last* hyphen: upstream may hold hyphens.
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return Err(err("empty revision")),
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(err("empty upstream version"));
        }
        // Colons may appear in upstream only after an epoch, which the
        // split above guarantees; hyphens only when there is a revision.
        if !upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b))
        {
            return Err(err("invalid character in the upstream version"));
        }
        if !revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
        {
            return Err(err("invalid character in the revision"));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| cmp_part(&self.upstream, &other.upstream))
            .then_with(|| cmp_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// The weight of one byte in a non-digit run (§5.6.12): `~` before
/// everything, even the end of the part (0); letters before all other
/// characters.
fn weight(b: Option<u8>) -> i32 {
    match b {
        None => 0,
        Some(b'~') => -1,
        // A digit facing a non-digit ends its side's run, like the end.
        Some(b) if b.is_ascii_digit() => 0,
        Some(b) if b.is_ascii_alphabetic() => i32::from(b),
        Some(b) => i32::from(b) + 256,
    }
}

/// Compares an upstream version or a revision: alternately a run of
/// non-digits, by [`weight`], then a run of digits, as numbers (of any
/// length: leading zeros skipped, then the longer run is larger, then the
/// first differing digit decides).
fn cmp_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let is_digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !is_digit(a, i)) || (j < b.len() && !is_digit(b, j)) {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let (start_a, start_b) = (i, j);
        while is_digit(a, i) {
            i += 1;
        }
        while is_digit(b, j) {
            j += 1;
        }
        let (run_a, run_b) = (&a[start_a..i], &b[start_b..j]);
        let by_number = run_a.len().cmp(&run_b.len()).then_with(|| run_a.cmp(run_b));
        if by_number != Ordering::Equal {
            return by_number;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Known orderings, `a < b`: from Policy §5.6.12's examples and dpkg's
    /// own test suite (lib/dpkg/t/t-version.c).
    const LESS: &[(&str, &str)] = &[
        ("1.0~rc1", "1.0"),
        ("2.0", "1:0.1"),
        ("1.0-1", "1.0-1+b1"),
        ("2.30-1", "2.30a"),
        ("1.0~~", "1.0~~a"),
        ("1.0~~a", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+"),
        ("1.0a", "1.0."),
        ("1.0~", "1.0a"),
        ("1.2.3", "1.10"),
        ("1.3", "1.3.0"),
        ("1.0.9", "1.0.10"),
        ("7.6-0", "7.6p2-4"),
        ("1.0-1", "1.0.3-3"),
        ("1.0-1~bpo12+1", "1.0-1"),
        ("1.0-1", "1.0-2"),
        ("1.0-9", "1.0-10"),
        ("9:1", "10:0"),
        ("0:1.0", "1:0"),
        ("1.0", "1.0-0.1"),
        ("2.36-9+deb12u7", "2.36-9+deb12u14"),
        ("3.0.17-1~deb12u2", "3.0.17-1"),
        ("1.18446744073709551615", "1.18446744073709551616"),
        ("1.99999999999999999999", "1.100000000000000000000"),
        ("a", "b"),
        ("1:1.2-3-4", "1:1.2-3-5"),
        ("0.1+1", "0.1+a"),
    ];

    /// Pairs dpkg orders as equal.
    const EQUAL: &[(&str, &str)] = &[
        ("1.0", "1.0"),
        ("0:1.0", "1.0"),
        ("1.0-0", "1.0"),
        ("1.001", "1.1"),
        ("1.00", "1.0"),
        ("1.0-00", "1.0"),
        ("00:1", "1"),
    ];

    #[test]
    fn known_orderings() {
        for (a, b) in LESS {
            assert!(v(a) < v(b), "{a} < {b}");
            assert!(v(b) > v(a), "{b} > {a}");
            assert_ne!(v(a), v(b), "{a} != {b}");
        }
        for (a, b) in EQUAL {
            assert_eq!(v(a).cmp(&v(b)), Ordering::Equal, "{a} = {b}");
        }
    }

    #[test]
    fn sorting_follows_the_policy_example() {
        // §5.6.12: "~~, ~~a, ~, the empty part, a".
        let mut vs: Vec<Version> = ["1a", "1~", "1", "1~~a", "1~~"].map(v).to_vec();
        vs.sort();
        let shown: Vec<String> = vs.iter().map(Version::to_string).collect();
        assert_eq!(shown, ["1~~", "1~~a", "1~", "1", "1a"]);
    }

    #[test]
    fn parts_are_split_at_the_first_colon_and_the_last_hyphen() {
        let x = v("2:1.2-3-4");
        assert_eq!(
            (x.epoch(), x.upstream(), x.revision()),
            (2, "1.2-3", Some("4"))
        );
        let x = v("1:2:3");
        assert_eq!((x.epoch(), x.upstream(), x.revision()), (1, "2:3", None));
        let x = v("20250419~deb12u2");
        assert_eq!(
            (x.epoch(), x.upstream(), x.revision()),
            (0, "20250419~deb12u2", None)
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["1.0", "1:1.0-1", "2.36-9+deb12u14", "1.2-3-4", "1:2:3-a~b"] {
            assert_eq!(v(s).to_string(), s);
        }
        // An explicit zero epoch is not printed (as dpkg prints it).
        assert_eq!(v("0:1.0").to_string(), "1.0");
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in [
            "",
            ":1.0",
            "a:1.0",
            "1:",
            "-1",
            "1.0-",
            "1.0 -1",
            " 1.0",
            "1.0,",
            "1.0(",
            "1.0-1:2",
            "1.0-1_2",
            "1.0|2",
            "99999999999:1",
            "1.0-a-",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} should be refused");
        }
        let e = "1.0-".parse::<Version>().unwrap_err();
        assert_eq!(e.to_string(), "invalid version \"1.0-\": empty revision");
    }
}
