//! The one entry-order comparator (design.md, rule 2).
//!
//! Every layer lists its entries in this order, whatever order the caller
//! produced them in, so the tar bytes depend only on the set of entries.
//! The order is depth-first, directory by directory: a directory comes right
//! before its contents, and within one directory the opaque whiteout comes
//! first, then other whiteouts, then ordinary names, each group by raw bytes.
//! Whiteouts lead so that an extractor applying the layer in stream order
//! hides lower content before this layer adds anything beside it.

use std::cmp::Ordering;

use super::{Entry, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

/// Compares two tar paths (relative, `/`-separated, no trailing slash) in
/// the canonical layer order.
///
/// Paths are compared component by component; the first differing
/// component decides, and a path that runs out first (an ancestor) sorts
/// before its descendants. Equal only for equal strings.
///
/// Made without splitting the paths (it orders every map a plan holds,
/// 300,000 entries at a time): the first byte they differ at decides,
/// the end of a component before any byte, unless the component it lies
/// in is a whiteout in either, whose rank then decides as
/// [`by_components`] does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let common = common_prefix(x, y);
    // The component they part in starts after the last `/` they share
    // (an ASCII byte, so a char boundary).
    let start = x[..common]
        .iter()
        .rposition(|&c| c == b'/')
        .map_or(0, |i| i + 1);
    let (a_rest, b_rest) = (&a[start..], &b[start..]);
    if a_rest.starts_with(WHITEOUT_PREFIX) || b_rest.starts_with(WHITEOUT_PREFIX) {
        return by_components(a_rest, b_rest);
    }
    let rank = |c: Option<&u8>| match c {
        None => 0,
        Some(b'/') => 1,
        Some(&c) => u16::from(c) + 2,
    };
    rank(x.get(common)).cmp(&rank(y.get(common)))
}

/// How many bytes `x` and `y` share at their start, found eight at a time:
/// neighbouring paths share most of their length (`srv/app/node_modules/…`),
/// and a plan of 300,000 entries compares hundreds of millions of bytes.
pub fn common_prefix(x: &[u8], y: &[u8]) -> usize {
    let (x_words, _) = x.as_chunks::<8>();
    let (y_words, _) = y.as_chunks::<8>();
    let mut shared = 0;
    for (p, q) in x_words.iter().zip(y_words) {
        // Read little-endian, the first differing byte is the lowest set one.
        let differ = u64::from_le_bytes(*p) ^ u64::from_le_bytes(*q);
        if differ != 0 {
            return shared + (differ.trailing_zeros() / 8) as usize;
        }
        shared += 8;
    }
    shared
        + x[shared..]
            .iter()
            .zip(&y[shared..])
            .take_while(|(p, q)| p == q)
            .count()
}

/// [`compare`], component by component.
fn by_components(a: &str, b: &str) -> Ordering {
    let mut a_parts = a.split('/');
    let mut b_parts = b.split('/');
    loop {
        match (a_parts.next(), b_parts.next()) {
            (Some(x), Some(y)) => match compare_names(x, y) {
                Ordering::Equal => continue,
                decided => return decided,
            },
            // `a` is an ancestor of `b` (or equal to it, below).
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
        }
    }
}

/// Sorts entries in the canonical order, in place: a stable sort would
/// allocate scratch of up to half the entries (8 MB at 100,000). Only
/// entries with equal paths could end up in either order, and those are a
/// caller error that [`super::write`] rejects.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_unstable_by(|a, b| compare(&a.path, &b.path));
}

/// Orders two names inside the same directory.
fn compare_names(a: &str, b: &str) -> Ordering {
    (rank(a), a.as_bytes()).cmp(&(rank(b), b.as_bytes()))
}

/// The group a name belongs to within its directory, in emission order.
fn rank(name: &str) -> u8 {
    if name == OPAQUE_WHITEOUT {
        0
    } else if name.starts_with(WHITEOUT_PREFIX) {
        1
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_whiteout(name: &str) -> bool {
        name.starts_with(WHITEOUT_PREFIX)
    }

    /// Names drawn from a small alphabet so that collisions, shared
    /// prefixes, whiteouts and the opaque marker all occur often.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("a.txt".to_string()),
            Just("A".to_string()),
            Just("b".to_string()),
            Just("é".to_string()),
            Just(OPAQUE_WHITEOUT.to_string()),
            Just(".wh.a".to_string()),
            Just(".wh.".to_string()),
            Just(".wh".to_string()),
            "[a-c.\\-é]{1,4}",
            "\\.wh\\.[a-c.]{0,3}",
        ]
    }

    fn plain_name() -> impl Strategy<Value = String> {
        name().prop_filter("not a whiteout", |n| !is_whiteout(n))
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(name(), 1..5).prop_map(|parts| parts.join("/"))
    }

    fn plain_path() -> impl Strategy<Value = String> {
        prop::collection::vec(plain_name(), 1..5).prop_map(|parts| parts.join("/"))
    }

    /// An optional tail below a name: "" or "/x/y".
    fn tail() -> impl Strategy<Value = String> {
        prop::collection::vec(name(), 0..3)
            .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect::<String>())
    }

    #[test]
    fn examples_from_the_contract() {
        let ordered = [
            "a",
            "a/b",
            "a.txt",
            "d",
            "d/.wh..wh..opq",
            "d/.wh.x",
            "d/.wh.y",
            // Below `.wh.` in raw bytes, yet after every whiteout.
            "d/-",
            "d/.a",
            "d/A",
            "d/A/z",
            "d/b",
            "e",
        ];
        for (i, x) in ordered.iter().enumerate() {
            for (j, y) in ordered.iter().enumerate() {
                assert_eq!(compare(x, y), i.cmp(&j), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn whiteouts_lead_even_before_subdirectories() {
        assert_eq!(compare("d/.wh.z", "d/a/b"), Ordering::Less);
        assert_eq!(compare("d/.wh..wh..opq", "d/.wh.."), Ordering::Less);
        // `.wh` without the trailing dot is an ordinary name.
        assert_eq!(compare("d/a", "d/.wh"), Ordering::Greater);
    }

    #[test]
    fn sort_orders_entries_by_path() {
        let mut entries: Vec<Entry> = ["d/b", "d", "d/.wh.x", "c"]
            .iter()
            .map(|p| Entry {
                path: (*p).into(),
                kind: crate::layer::EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            })
            .collect();
        sort(&mut entries);
        let paths: Vec<&str> = entries.iter().map(|e| &*e.path).collect();
        assert_eq!(paths, ["c", "d", "d/.wh.x", "d/b"]);
    }

    proptest! {
        #[test]
        fn common_prefix_counts_the_shared_bytes(
            stem in "[ab/]{0,20}",
            x in "[ab/]{0,12}",
            y in "[ab/]{0,12}",
        ) {
            let (x, y) = (format!("{stem}{x}"), format!("{stem}{y}"));
            let naive = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
            prop_assert_eq!(common_prefix(x.as_bytes(), y.as_bytes()), naive);
        }

        #[test]
        fn comparing_bytes_orders_as_comparing_components(a in path(), b in path()) {
            prop_assert_eq!(compare(&a, &b), by_components(&a, &b), "{} vs {}", a, b);
        }

        #[test]
        fn antisymmetric_and_consistent_with_equality(a in path(), b in path()) {
            prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
            prop_assert_eq!(compare(&a, &b) == Ordering::Equal, a == b);
            prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        }

        #[test]
        fn transitive(a in path(), b in path(), c in path()) {
            let mut v = [a, b, c];
            v.sort_by(|x, y| compare(x, y));
            prop_assert_ne!(compare(&v[0], &v[1]), Ordering::Greater);
            prop_assert_ne!(compare(&v[1], &v[2]), Ordering::Greater);
            prop_assert_ne!(compare(&v[0], &v[2]), Ordering::Greater);
        }

        #[test]
        fn a_sorted_list_is_ordered_pairwise(mut v in prop::collection::vec(path(), 0..24)) {
            v.sort_by(|x, y| compare(x, y));
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    prop_assert_ne!(compare(&v[i], &v[j]), Ordering::Greater,
                        "{} before {}", v[i], v[j]);
                }
            }
        }

        #[test]
        fn ancestors_come_first(p in path(), below in prop::collection::vec(name(), 1..4)) {
            let child = format!("{p}/{}", below.join("/"));
            prop_assert_eq!(compare(&p, &child), Ordering::Less);
            prop_assert_eq!(compare(&child, &p), Ordering::Greater);
        }

        #[test]
        fn whiteouts_precede_their_non_whiteout_siblings(
            dir in prop::option::of(path()),
            w in "\\.wh\\.[a-z.]{0,4}",
            n in plain_name(),
            w_tail in tail(),
            n_tail in tail(),
        ) {
            let prefix = dir.map(|d| format!("{d}/")).unwrap_or_default();
            let white = format!("{prefix}{w}{w_tail}");
            let plain = format!("{prefix}{n}{n_tail}");
            let opaque = format!("{prefix}{OPAQUE_WHITEOUT}");
            prop_assert_eq!(compare(&white, &plain), Ordering::Less);
            prop_assert_eq!(compare(&opaque, &plain), Ordering::Less);
            if w != OPAQUE_WHITEOUT {
                prop_assert_eq!(compare(&opaque, &white), Ordering::Less);
            }
        }

        #[test]
        fn without_whiteouts_it_is_byte_order_of_components(a in plain_path(), b in plain_path()) {
            let bytes = |p: &str| p.split('/').map(|c| c.as_bytes().to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(compare(&a, &b), bytes(&a).cmp(&bytes(&b)));
        }
    }
}
