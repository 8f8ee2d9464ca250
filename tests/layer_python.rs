//! Reads a layer written by `ingot::layer::write` with Python's `gzip` and
//! `tarfile`, an independent reader: a layer only our own reader accepts
//! would not be a layer.

use std::io::Write as _;
use std::process::Command;

use ingot::digest::Digest;
use ingot::layer::{self, Content, Entry, EntryKind};

const MTIME: u64 = 1_700_000_000;

/// Reads every member whole (so a bad size or padding surfaces), drains
/// the gzip stream to its end (so the CRC32 and ISIZE are checked), and
/// prints what it saw as JSON.
const READER: &str = r#"
import gzip, hashlib, json, sys, tarfile
members = []
with gzip.open(sys.argv[1], "rb") as gz:
    with tarfile.open(fileobj=gz, mode="r|") as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else b""
            assert len(data) == m.size, m.name
            members.append({
                "name": m.name, "type": m.type.decode(), "mode": m.mode,
                "uid": m.uid, "gid": m.gid, "mtime": m.mtime,
                "linkname": m.linkname, "sha256": hashlib.sha256(data).hexdigest(),
            })
    gz.read()
with open(sys.argv[1], "rb") as f:
    diff_id = hashlib.sha256(gzip.decompress(f.read())).hexdigest()
json.dump({"members": members, "diff_id": diff_id}, sys.stdout)
"#;

fn python3_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Deterministic filler; varied enough that gzip blocks do not all match.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(seed) ^ (i / 251) as u8)
        .collect()
}

fn entry(path: String, kind: EntryKind) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

/// A few hundred entries: directories, small and multi-block files,
/// symlinks, whiteouts, and names that need PAX.
fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    for d in 0..10u8 {
        let dir = format!("dir{d:02}");
        out.push(Entry {
            mode: 0o755,
            ..entry(dir.clone(), EntryKind::Dir)
        });
        for f in 0..30u8 {
            let len = if f % 10 == 9 {
                300 * 1024
            } else {
                usize::from(f) * 97
            };
            let data = content(len, d.wrapping_mul(31).wrapping_add(f) | 1);
            out.push(entry(
                format!("{dir}/file{f:02}"),
                EntryKind::File(Content::Bytes(data)),
            ));
        }
        out.push(entry(
            format!("{dir}/link"),
            EntryKind::Symlink {
                target: "file00".into(),
            },
        ));
        out.push(Entry::whiteout(&dir, "gone"));
    }
    out.push(Entry::opaque_whiteout("dir03"));
    let deep = vec!["segment-of-a-long-path"; 14].join("/");
    out.push(Entry {
        mode: 0o4755,
        uid: 3_000_000,
        gid: 42,
        ..entry(
            format!("dir09/{deep}"),
            EntryKind::Symlink {
                target: format!("/{}", "t".repeat(200)),
            },
        )
    });
    out
}

#[test]
fn python_reads_every_member() {
    if !python3_available() {
        println!("note: python3 not found, skipping the Python reader check");
        return;
    }
    let entries = entries();
    let big = "dir05/file19";
    let big_content = match &entries.iter().find(|e| &*e.path == big).unwrap().kind {
        EntryKind::File(Content::Bytes(b)) => b.clone(),
        other => panic!("{other:?}"),
    };
    assert!(big_content.len() > 128 * 1024);

    let mut file = tempfile::NamedTempFile::new().unwrap();
    let layer = layer::write(entries.clone(), MTIME, &mut file).unwrap();
    file.flush().unwrap();

    let output = Command::new("python3")
        .arg("-c")
        .arg(READER)
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python3 failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let members = seen["members"].as_array().unwrap();

    assert_eq!(members.len(), entries.len());
    assert_eq!(seen["diff_id"], layer.diff_id.hex());

    // Python lists the members in our canonical order.
    let mut sorted = entries.clone();
    layer::order::sort(&mut sorted);
    let names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = sorted.iter().map(|e| &*e.path).collect();
    assert_eq!(names, expected);

    let member = |name: &str| members.iter().find(|m| m["name"] == name).unwrap();
    assert_eq!(member(big)["sha256"], Digest::of(&big_content).hex());
    assert_eq!(member(big)["mtime"], MTIME);

    let long = entries.last().unwrap();
    let m = member(&long.path);
    assert_eq!(m["type"], "2");
    assert_eq!(
        (&m["uid"], &m["gid"], &m["mode"]),
        (&3_000_000.into(), &42.into(), &0o4755.into())
    );
    assert_eq!(m["linkname"], format!("/{}", "t".repeat(200)));
}
