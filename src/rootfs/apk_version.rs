//! apk's version ordering, for saying whether an Alpine package was
//! upgraded or downgraded (as `apk version -t` says; apk-tools
//! src/version.c, whose behaviour this follows).
//!
//! A version is `digit{.digit}...{letter}{_suffix{digit}}...{~hash}{-r#}`:
//! `1.2.3`, `2.0b`, `1.1_alpha1`, `0.9_git20240101`, `1.4~a3f91c`,
//! `1.2-r3`. Two versions are compared token by token while both have a
//! token of the same kind; then the longer one is newer, unless what it
//! goes on with is a pre-release suffix (`_alpha`, `_beta`, `_pre`,
//! `_rc`), which makes it older: `1.0_rc1 < 1.0 < 1.0_p1 < 1.0-r1`.

use std::cmp::Ordering;

/// A token's kind, in the order apk ranks them: when two versions part
/// ways, the one going on with a later kind is the older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
}

/// Suffixes by rank; the ones before `""` (no suffix) are pre-releases.
const SUFFIXES: [&str; 10] = [
    "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];
const NO_SUFFIX: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
    /// A number's value, a suffix's rank.
    value: u64,
}

/// The tokens of `version`, ending with [`Kind::End`]; None when it is
/// not an apk version.
fn tokens(version: &str) -> Option<Vec<Token<'_>>> {
    let mut out = Vec::new();
    let (first, mut rest) = digits(version)?;
    out.push(Token {
        kind: Kind::InitialDigit,
        ..first
    });
    let mut last = Kind::InitialDigit;
    while let Some(c) = rest.chars().next() {
        let token = match c {
            'a'..='z' if last <= Kind::Digit => {
                let (text, after) = rest.split_at(1);
                rest = after;
                Token {
                    kind: Kind::Letter,
                    text,
                    value: u64::from(c),
                }
            }
            '.' | '0'..='9' if last <= Kind::Digit || (c != '.' && last == Kind::Suffix) => {
                let kind = if last == Kind::Suffix {
                    Kind::SuffixNumber
                } else {
                    Kind::Digit
                };
                let from = if c == '.' { &rest[1..] } else { rest };
                let (number, after) = digits(from)?;
                rest = after;
                Token { kind, ..number }
            }
            '_' if last <= Kind::SuffixNumber => {
                let end = rest[1..]
                    .find(|c: char| !c.is_ascii_lowercase())
                    .map_or(rest.len(), |n| n + 1);
                let text = &rest[1..end];
                let rank = SUFFIXES.iter().position(|s| *s == text && !s.is_empty())?;
                rest = &rest[end..];
                Token {
                    kind: Kind::Suffix,
                    text,
                    value: rank as u64,
                }
            }
            '~' if last < Kind::CommitHash => {
                let end = rest[1..]
                    .find(|c: char| !c.is_ascii_hexdigit())
                    .map_or(rest.len(), |n| n + 1);
                let text = &rest[1..end];
                if text.is_empty() {
                    return None;
                }
                rest = &rest[end..];
                Token {
                    kind: Kind::CommitHash,
                    text,
                    value: 0,
                }
            }
            '-' if last < Kind::Revision => {
                let (number, after) = digits(rest.strip_prefix("-r")?)?;
                rest = after;
                Token {
                    kind: Kind::Revision,
                    ..number
                }
            }
            _ => return None,
        };
        last = token.kind;
        out.push(token);
    }
    out.push(Token {
        kind: Kind::End,
        text: "",
        value: 0,
    });
    Some(out)
}

/// The leading decimal digits of `s` as a number token (kind to be set),
/// and what follows; None when there are none or they overflow.
fn digits(s: &str) -> Option<(Token<'_>, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let text = &s[..end];
    let value = text.parse().ok()?;
    let token = Token {
        kind: Kind::Digit,
        text,
        value,
    };
    Some((token, &s[end..]))
}

/// Two tokens of one kind.
fn token_order(a: &Token, b: &Token) -> Ordering {
    match a.kind {
        // A leading zero after the first number compares as text, as
        // Gentoo's rules have it: 1.01 < 1.1.
        Kind::Digit if a.text.starts_with('0') || b.text.starts_with('0') => a.text.cmp(b.text),
        Kind::CommitHash => a.text.cmp(b.text),
        _ => a.value.cmp(&b.value),
    }
}

/// How `a` and `b` are ordered as apk orders them; None when either is
/// not an apk version.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (ta, tb) = (tokens(a)?, tokens(b)?);
    let mut pairs = ta.iter().zip(&tb);
    let (x, y) = loop {
        let (x, y) = pairs.next()?;
        if x.kind != y.kind || x.kind == Kind::End {
            break (x, y);
        }
        match token_order(x, y) {
            Ordering::Equal => {}
            other => return Some(other),
        }
    };
    let pre_release = |t: &Token| t.kind == Kind::Suffix && (t.value as usize) < NO_SUFFIX;
    Some(if x.kind == y.kind {
        Ordering::Equal
    } else if pre_release(x) {
        Ordering::Less
    } else if pre_release(y) {
        Ordering::Greater
    } else {
        // The one going on with a later kind of token is the older.
        y.kind.cmp(&x.kind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each version is older than the next (checked both ways).
    fn ascending(versions: &[&str]) {
        for pair in versions.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Some(Ordering::Less), "{pair:?}");
            assert_eq!(
                compare(pair[1], pair[0]),
                Some(Ordering::Greater),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn numbers_letters_suffixes_and_revisions() {
        ascending(&[
            "0.9",
            "1.0_alpha",
            "1.0_alpha2",
            "1.0_beta",
            "1.0_pre1",
            "1.0_rc1",
            "1.0",
            "1.0-r1",
            "1.0_p1",
            "1.0a",
            "1.0.1",
            "1.2",
            "1.10",
            "2",
        ]);
        ascending(&["1.01", "1.1"]);
        ascending(&["1.0_git20240101", "1.0_git20240202", "1.0_p1"]);
        ascending(&["3.3.2-r0", "3.3.2-r1", "3.3.2-r10", "3.3.3-r0"]);
        ascending(&["1.4~a3f91c", "1.4~b", "1.4~b-r1"]);
        assert_eq!(compare("1.2.3-r4", "1.2.3-r4"), Some(Ordering::Equal));
    }

    #[test]
    fn what_is_no_apk_version_is_unordered() {
        for bad in [
            "", "a1", "1..2", "1_foo", "1-2", "1.0-r", "1~", "1_rc1a", "1.0 ",
        ] {
            assert_eq!(compare(bad, "1.0"), None, "{bad:?}");
        }
        assert_eq!(compare("99999999999999999999", "1"), None);
    }
}
