//! Tests of the whole layer encoding: tar write → read round trips, golden
//! digests, and independence from input order and content source.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use flate2::read::MultiGzDecoder;
use proptest::prelude::*;

use super::*;

fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

fn bytes(data: &[u8]) -> EntryKind {
    EntryKind::File(Content::Bytes(data.to_vec()))
}

fn symlink(target: &str) -> EntryKind {
    EntryKind::Symlink {
        target: target.to_string(),
    }
}

/// Writes a layer into memory: (layer, compressed blob).
fn encode(entries: Vec<Entry>, mtime: u64) -> (Layer, Vec<u8>) {
    let mut blob = Vec::new();
    let layer = write(entries, mtime, &mut blob).unwrap();
    (layer, blob)
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    MultiGzDecoder::new(blob).read_to_end(&mut tar).unwrap();
    tar
}

/// The fixed entry set of the golden test: one of each kind.
fn golden_entries() -> Vec<Entry> {
    vec![
        entry("etc", EntryKind::Dir, 0o755),
        entry("etc/hello", bytes(b"hello\n"), 0o644),
        entry("etc/current", symlink("hello"), 0o777),
        Entry::whiteout("etc", "motd"),
        entry("srv", EntryKind::Dir, 0o755),
        Entry::opaque_whiteout("srv"),
    ]
}

/// Pins the encoding. If this fails, the layer bytes changed: that is a new
/// `ENCODING_VERSION`, on purpose, never a value to update quietly.
/// Regenerate with `cargo test golden_digests -- --nocapture`.
#[test]
fn golden_digests() {
    let (layer, blob) = encode(golden_entries(), 0);
    println!("{layer:#?}");
    assert_eq!(ENCODING_VERSION, "3");
    assert_eq!(
        layer.diff_id.to_string(),
        "sha256:1110adadbaa60c27ce24f7e2c354fc8c3d13eaa54b27d9edbfbd18d4b9f490a1"
    );
    assert_eq!(
        layer.digest.to_string(),
        "sha256:47575275d6c2dfaff7be34c649bd6f77ac9f6eb53d836e6995e5a6b41a52b19d"
    );
    assert_eq!((layer.size, blob.len()), (213, 213));
}

#[test]
fn golden_entries_read_back_in_canonical_order() {
    let (_, blob) = encode(golden_entries(), 0);
    let tar = gunzip(&blob);
    let mut archive = tar::Archive::new(&tar[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "etc/",
            "etc/.wh.motd",
            "etc/current",
            "etc/hello",
            "srv/",
            "srv/.wh..wh..opq"
        ]
    );
    // Plain ustar, no PAX header, two zero blocks at the end.
    assert_eq!(tar.len(), 512 * (6 + 1 + 2));
    assert!(tar[tar.len() - 1024..].iter().all(|&b| b == 0));
}

#[test]
fn bytes_do_not_depend_on_input_order() {
    let mut reversed = golden_entries();
    reversed.reverse();
    assert_eq!(encode(golden_entries(), 0).1, encode(reversed, 0).1);
}

#[test]
fn mtime_is_the_callers_and_is_part_of_the_identity() {
    let (a, _) = encode(golden_entries(), 0);
    let (b, blob) = encode(golden_entries(), 1_700_000_000);
    assert_ne!(a.diff_id, b.diff_id);
    let tar = gunzip(&blob);
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        assert_eq!(e.unwrap().header().mtime().unwrap(), 1_700_000_000);
    }
}

#[test]
fn host_files_stream_to_the_same_bytes_as_in_memory_content() {
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(3 * gzip::BLOCK_SIZE + 11, 7);
    let host = dir.path().join("big");
    std::fs::write(&host, &data).unwrap();
    let from_path = EntryKind::File(Content::Path {
        path: host,
        size: data.len() as u64,
    });
    let (a, blob_a) = encode(vec![entry("big", from_path, 0o644)], 0);
    let (b, blob_b) = encode(vec![entry("big", bytes(&data), 0o644)], 0);
    assert_eq!((a, blob_a), (b, blob_b));
}

/// A file of a tree named by its root and the entry's path reads as the
/// same host file named whole; a path that does not end in the file's
/// place in the tree falls back to the whole host path.
#[test]
fn tree_content_is_the_host_file_below_its_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pkg/lib")).unwrap();
    let data = pseudo_random(gzip::BLOCK_SIZE + 5, 3);
    std::fs::write(dir.path().join("pkg/lib/a.js"), &data).unwrap();
    let root: Arc<Path> = Arc::from(dir.path());
    let size = data.len() as u64;

    let tree = Content::below(&root, "pkg/lib/a.js", "srv/app/pkg/lib/a.js", size);
    assert!(matches!(tree, Content::Tree { from: 8, .. }), "{tree:?}");
    let host = dir.path().join("pkg/lib/a.js");
    assert_eq!(
        tree.host_path("srv/app/pkg/lib/a.js").as_deref(),
        Some(&*host)
    );
    assert_eq!(tree.host_path("srv"), None);
    let (a, blob_a) = encode(
        vec![entry("srv/app/pkg/lib/a.js", EntryKind::File(tree), 0o644)],
        0,
    );
    let (b, blob_b) = encode(vec![entry("srv/app/pkg/lib/a.js", bytes(&data), 0o644)], 0);
    assert_eq!((a, blob_a), (b, blob_b));

    // Resolved elsewhere (through a symlink, say), or a part of a name.
    for path in ["srv/app/pkg/other.js", "srv/app/xpkg/lib/a.js"] {
        let content = Content::below(&root, "pkg/lib/a.js", path, size);
        assert_eq!(
            content,
            Content::Path {
                path: host.clone(),
                size
            },
            "{path}"
        );
    }
    // The tree's root itself, a single file copied.
    let single = Content::below(&Arc::from(&*host), "", "srv/a.js", size);
    assert_eq!(
        single,
        Content::Path {
            path: host.clone(),
            size
        }
    );
    // A file that changed is named whole in the error.
    let grown = Content::below(&root, "pkg/lib/a.js", "srv/app/pkg/lib/a.js", size + 1);
    let err = write(
        vec![entry("srv/app/pkg/lib/a.js", EntryKind::File(grown), 0o644)],
        0,
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&host.display().to_string()) && err.contains("changed while building"),
        "{err}"
    );
}

#[test]
fn a_host_file_that_changed_size_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("f");
    std::fs::write(&host, b"abc").unwrap();
    for size in [2, 4] {
        let kind = EntryKind::File(Content::Path {
            path: host.clone(),
            size,
        });
        let err = write(vec![entry("f", kind, 0o644)], 0, Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&host.display().to_string()), "{msg}");
        assert!(msg.contains("changed while building"), "{msg}");
    }
}

#[test]
fn duplicate_and_invalid_paths_are_refused_before_writing() {
    for entries in [
        vec![
            entry("a", EntryKind::Dir, 0o755),
            entry("a", bytes(b""), 0o644),
        ],
        vec![entry("a/../b", EntryKind::Dir, 0o755)],
    ] {
        let mut out = Vec::new();
        let err = write(entries, 0, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
    }
}

#[test]
fn an_empty_layer_is_two_zero_blocks() {
    let (layer, blob) = encode(Vec::new(), 0);
    assert_eq!(gunzip(&blob), vec![0; 1024]);
    assert_eq!(layer.diff_id, Digest::of(&[0; 1024]));
}

/// Deterministic bytes from a seed, so large contents are cheap to generate.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A generated file's content and where the layer reads it from.
#[derive(Debug, Clone)]
enum Spec {
    Dir,
    File {
        len: usize,
        seed: u64,
        on_disk: bool,
    },
    Symlink(String),
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9_-]{1,12}",
        2 => "[a-zé日 .]{1,40}",
        1 => "[a-z]{95,130}",
        1 => "\\.wh\\.[a-z]{1,5}",
        1 => Just(OPAQUE_WHITEOUT.to_string()),
    ]
    .prop_filter("`.` and `..` are not names", |c| c != "." && c != "..")
}

fn spec() -> impl Strategy<Value = Spec> {
    let len = prop_oneof![8 => 0..600usize, 1 => 100_000..300_000usize];
    prop_oneof![
        2 => Just(Spec::Dir),
        4 => (len, any::<u64>(), any::<bool>())
            .prop_map(|(len, seed, on_disk)| Spec::File { len, seed, on_disk }),
        2 => prop_oneof!["[a-z./]{1,30}", "/?[a-z/é]{90,300}"]
            .prop_filter("targets are non-empty", |t| !t.is_empty())
            .prop_map(Spec::Symlink),
    ]
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..70_000u64,
        1 => ((1 << 21) - 2)..((1 << 21) + 2u64),
        1 => any::<u32>().prop_map(u64::from),
        1 => any::<u64>(),
    ]
}

fn mtime() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(0u64),
        2 => 0..(1u64 << 33),
        1 => Just((1u64 << 33) - 1),
        1 => Just(1u64 << 33),
        1 => any::<u64>(),
    ]
}

type Generated = Vec<(Vec<String>, Spec, u32, u64, u64)>;

fn generated() -> impl Strategy<Value = Generated> {
    prop::collection::vec(
        (
            prop::collection::vec(component(), 1..8),
            spec(),
            any::<u32>(),
            id(),
            id(),
        ),
        0..24,
    )
}

/// Turns generated specs into entries (unique paths), writing on-disk
/// contents into `dir`; returns them with their expected content.
fn build(generated: Generated, dir: &std::path::Path) -> Vec<(Entry, Vec<u8>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, (parts, spec, mode, uid, gid)) in generated.into_iter().enumerate() {
        let path = parts.join("/");
        if !seen.insert(path.clone()) {
            continue;
        }
        let (kind, content) = match spec {
            Spec::Dir => (EntryKind::Dir, Vec::new()),
            Spec::Symlink(target) => (EntryKind::Symlink { target }, Vec::new()),
            Spec::File { len, seed, on_disk } => {
                let data = pseudo_random(len, seed);
                let content = if on_disk {
                    let host = dir.join(i.to_string());
                    std::fs::write(&host, &data).unwrap();
                    Content::Path {
                        path: host,
                        size: len as u64,
                    }
                } else {
                    Content::Bytes(data.clone())
                };
                (EntryKind::File(content), data)
            }
        };
        let entry = Entry {
            path: path.into(),
            kind,
            mode,
            uid,
            gid,
        };
        out.push((entry, content));
    }
    out
}

/// The PAX keys an entry must have, and the ones it may have: a path of
/// 101–256 bytes needs PAX only when no `/` splits it into ustar fields.
fn pax_keys(e: &Entry, name: &str, mtime: u64) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let mut must = BTreeSet::new();
    let big = |v: u64| v >= 1 << 21;
    for (key, needed) in [
        ("uid", big(e.uid)),
        ("gid", big(e.gid)),
        ("mtime", mtime >= 1 << 33),
        ("path", name.len() > 256),
        (
            "linkpath",
            matches!(&e.kind, EntryKind::Symlink { target } if target.len() > 100),
        ),
    ] {
        if needed {
            must.insert(key);
        }
    }
    let mut may = must.clone();
    if name.len() > 100 {
        may.insert("path");
    }
    (must, may)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn layers_read_back_as_written(generated in generated(), mtime in mtime()) {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = build(generated, dir.path());
        let entries: Vec<Entry> = expected.iter().map(|(e, _)| e.clone()).collect();

        let mut blob = Vec::new();
        let layer = write(entries, mtime, &mut blob).unwrap();
        prop_assert_eq!(layer.digest, Digest::of(&blob));
        prop_assert_eq!(layer.size, blob.len() as u64);
        let tar = gunzip(&blob);
        prop_assert_eq!(layer.diff_id, Digest::of(&tar));

        expected.sort_by(|a, b| order::compare(&a.0.path, &b.0.path));
        let mut archive = tar::Archive::new(&tar[..]);
        let mut count = 0;
        for (got, (want, content)) in archive.entries().unwrap().zip(&expected) {
            let mut got = got.unwrap();
            count += 1;
            let is_dir = want.kind == EntryKind::Dir;
            let name = if is_dir { format!("{}/", want.path) } else { want.path.to_string() };
            prop_assert_eq!(&*got.path_bytes(), name.as_bytes());

            let pax: BTreeMap<String, String> = match got.pax_extensions().unwrap() {
                Some(records) => records
                    .map(|r| {
                        let r = r.unwrap();
                        (r.key().unwrap().to_string(), r.value().unwrap().to_string())
                    })
                    .collect(),
                None => BTreeMap::new(),
            };
            let keys: BTreeSet<&str> = pax.keys().map(String::as_str).collect();
            let (must, may) = pax_keys(want, &name, mtime);
            prop_assert!(must.is_subset(&keys) && keys.is_subset(&may), "{:?}", pax);

            let h = got.header().clone();
            prop_assert_eq!(h.mode().unwrap(), want.mode & 0o7777);
            // Read numbers from PAX first: the tar crate copies a PAX uid
            // into an 8-byte base-256 field, which loses ids of 2^63 and up.
            let number = |key: &str, field: io::Result<u64>| match pax.get(key) {
                Some(v) => v.parse::<u64>().unwrap(),
                None => field.unwrap(),
            };
            prop_assert_eq!(number("uid", h.uid()), want.uid);
            prop_assert_eq!(number("gid", h.gid()), want.gid);
            prop_assert_eq!(number("mtime", h.mtime()), mtime);
            prop_assert_eq!(h.username_bytes(), Some(&b""[..]));
            prop_assert_eq!(h.groupname_bytes(), Some(&b""[..]));

            match &want.kind {
                EntryKind::Dir => prop_assert_eq!(h.entry_type(), tar::EntryType::Directory),
                EntryKind::File(_) => prop_assert_eq!(h.entry_type(), tar::EntryType::Regular),
                EntryKind::Symlink { target } => {
                    prop_assert_eq!(h.entry_type(), tar::EntryType::Symlink);
                    let link = got.link_name_bytes().unwrap().into_owned();
                    prop_assert_eq!(link, target.as_bytes());
                }
                EntryKind::Hardlink { target } => {
                    prop_assert_eq!(h.entry_type(), tar::EntryType::Link);
                    let link = got.link_name_bytes().unwrap().into_owned();
                    prop_assert_eq!(link, target.as_bytes());
                }
            }
            let mut data = Vec::new();
            got.read_to_end(&mut data).unwrap();
            prop_assert!(&data == content, "content of {}", want.path);
        }
        prop_assert_eq!(count, expected.len());
    }
}

/// libzstd's multi-threaded mode gives the same bytes for any number of
/// workers, which is why zstd layers always use it: this pins that claim.
#[test]
fn zstd_bytes_do_not_depend_on_worker_count() {
    use std::io::Write as _;
    let data: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | (i % 7 == 0) as u8)
        .collect();
    let compress = |workers: u32| {
        let mut z = super::zstd_encoder(Vec::new(), workers).unwrap();
        z.write_all(&data).unwrap();
        z.finish().unwrap()
    };
    let one = compress(1);
    for workers in [2, 3, 8] {
        assert_eq!(
            Digest::of(&compress(workers)),
            Digest::of(&one),
            "{workers} workers"
        );
    }
    // Pins libzstd's bytes for the pinned parameters on input spanning
    // several jobs: a libzstd that encodes differently is a new
    // `ENCODING_VERSION`, not a digest to update quietly.
    assert_eq!(one.len(), 164166);
    assert_eq!(
        Digest::of(&one).to_string(),
        "sha256:45633a1fefc1a67fecff26db31f882db55799b398ed4db3ae77b557526997d94"
    );
}

#[test]
fn zstd_layers_round_trip() {
    let entries = vec![Entry {
        path: "a".into(),
        kind: EntryKind::File(Content::Bytes(b"hello".to_vec())),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }];
    let mut out = Vec::new();
    let layer = super::write_compressed(
        entries,
        0,
        crate::image::media::LayerCompression::Zstd,
        &mut out,
        None,
    )
    .unwrap();
    assert_eq!(layer.digest, Digest::of(&out));
    let tar = zstd::stream::decode_all(&out[..]).unwrap();
    assert_eq!(layer.diff_id, Digest::of(&tar));
}

/// A hardlink is written as a link to a file before it in the layer, and
/// one to anything else is refused before a byte is written.
#[test]
fn hardlinks_name_a_file_before_them() {
    let entry = |path: &str, kind| Entry {
        path: path.into(),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    let file = || EntryKind::File(Content::Bytes(b"x".to_vec()));
    let link = |t: &str| EntryKind::Hardlink { target: t.into() };
    let mut out = Vec::new();
    write(vec![entry("b", link("a")), entry("a", file())], 0, &mut out).unwrap();
    let mut gz = flate2::read::GzDecoder::new(&out[..]);
    let mut tar = Vec::new();
    io::Read::read_to_end(&mut gz, &mut tar).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let kinds: Vec<(String, tar::EntryType)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("a".to_string(), tar::EntryType::Regular),
            ("b".to_string(), tar::EntryType::Link)
        ]
    );
    for entries in [
        vec![entry("a", link("b")), entry("b", file())],
        vec![entry("a", link("nothing"))],
        vec![entry("d", EntryKind::Dir), entry("e", link("d"))],
    ] {
        let err = write(entries, 0, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("is a hardlink to"), "{err}");
    }
}

/// A layer handed to its writer in runs, of any length, is the layer
/// written whole; runs come in order, none longer than asked; entries out
/// of order, twice, or a hardlink before its file are refused as they
/// come; and a stream of runs that breaks off fails the layer.
#[test]
fn runs_of_any_length_write_the_same_layer() {
    let mut entries: Vec<Entry> = (0..23)
        .flat_map(|i| {
            [
                entry(&format!("d{i:02}"), EntryKind::Dir, 0o755),
                entry(
                    &format!("d{i:02}/f"),
                    bytes(format!("{i}").as_bytes()),
                    0o644,
                ),
            ]
        })
        .rev()
        .collect();
    let (whole, blob) = encode(entries.clone(), 7);
    order::sort(&mut entries);
    let runs_of = |len: usize, entries: &[Entry]| -> io::Result<Vec<Run>> {
        let mut maker = RunMaker::new(len, Checker::new(["d00/f"]));
        let mut runs = Vec::new();
        for e in entries {
            runs.extend(maker.push(e.clone())?);
        }
        runs.extend(maker.finish());
        Ok(runs)
    };
    for len in [0, 1, 2, 5, 45, 46, 1000] {
        let runs = runs_of(len, &entries).unwrap();
        assert!(
            runs.iter()
                .all(|r| !r.entries().is_empty() && r.entries().len() <= len.max(1))
        );
        let joined: Vec<&Entry> = runs.iter().flat_map(|r| r.entries()).collect();
        assert_eq!(joined, entries.iter().collect::<Vec<_>>(), "runs of {len}");
        let mut out = Vec::new();
        let layer = write_runs(
            runs.into_iter().map(Ok),
            7,
            LayerCompression::Gzip,
            &mut out,
            None,
        )
        .unwrap();
        assert_eq!((layer, &out), (whole, &blob), "runs of {len}");
    }
    let link = entry(
        "d00/g",
        EntryKind::Hardlink {
            target: "d00/f".into(),
        },
        0o644,
    );
    let early = entry(
        "d00/e",
        EntryKind::Hardlink {
            target: "d00/f".into(),
        },
        0o644,
    );
    for (bad, why) in [
        (vec![entries[3].clone(), entries[2].clone()], "out of order"),
        (
            vec![entries[2].clone(), entries[2].clone()],
            "appears twice",
        ),
        (vec![entries[0].clone(), link], "which is no file before it"),
        (
            vec![entries[0].clone(), early, entries[1].clone()],
            "which is no file before it",
        ),
    ] {
        let err = runs_of(4, &bad).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let mut runs = runs_of(10, &entries).unwrap().into_iter();
    let first = runs.next().map(Ok);
    let broken = first
        .into_iter()
        .chain([Err(io::Error::other("the stream broke"))]);
    let err = write_runs(broken, 7, LayerCompression::Gzip, &mut Vec::new(), None).unwrap_err();
    assert!(err.to_string().contains("the stream broke"), "{err}");
}
