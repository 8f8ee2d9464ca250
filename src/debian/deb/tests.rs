//! `.deb`s built here, well formed and hostile. Real packages, checked
//! against dpkg-deb, are in tests/deb.rs.

use std::io::Write as _;

use tar::EntryType::{self, Directory, Link, Regular, Symlink, XHeader};

use super::*;
use crate::digest::Digest;
use crate::rootfs::NodeKind;

/// (name, type, link target, content); names written raw, bypassing the
/// tar crate's own checks, as a hostile package would be.
type RawEntry<'a> = (&'a str, EntryType, &'a str, &'a [u8]);

fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(if *kind == Directory { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn ar_header(name: &str, size: impl std::fmt::Display) -> Vec<u8> {
    let h = format!(
        "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
        0, 0, 0, 100644
    );
    assert_eq!(h.len(), AR_HEADER, "{h:?}");
    h.into_bytes()
}

/// An `ar` member: name and content.
type ArMember<'a> = (&'a str, &'a [u8]);

fn ar(members: &[ArMember]) -> Vec<u8> {
    let mut out = AR_MAGIC.to_vec();
    for (name, data) in members {
        out.extend(ar_header(name, data.len()));
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn xz(b: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zst(b: &[u8]) -> Vec<u8> {
    zstd::encode_all(b, 3).unwrap()
}

const CONTROL: &str = "Package: hello\nVersion: 1:2.10-3+b1\nArchitecture: amd64\n\
Multi-Arch: same\nDepends: libc6 (>= 2.34),\n libfoo | libbar\nPre-Depends: dpkg\n\
Description: greets\n Hello.\n .\n More.\n";

fn control_tar(control: &str, extra: &[RawEntry]) -> Vec<u8> {
    let mut entries: Vec<RawEntry> = vec![
        ("./", Directory, "", b""),
        ("./control", Regular, "", control.as_bytes()),
    ];
    entries.extend_from_slice(extra);
    raw_tar(&entries)
}

/// A package's files: a directory, a file, a symlink and a hardlink.
fn data_tar() -> Vec<u8> {
    raw_tar(&[
        ("./", Directory, "", b""),
        ("./usr/", Directory, "", b""),
        ("./usr/bin/", Directory, "", b""),
        ("./usr/bin/hello", Regular, "", b"#!/bin/sh\necho hello\n"),
        ("./usr/bin/hi", Symlink, "hello", b""),
        ("./usr/bin/hey", Link, "./usr/bin/hello", b""),
    ])
}

/// A .deb of `data`, stored as `member`.
fn deb(member: &str, data: &[u8]) -> Vec<u8> {
    ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", &gz(&control_tar(CONTROL, &[]))),
        (member, data),
    ])
}

fn open(bytes: &[u8]) -> Result<Deb<&[u8]>, DebError> {
    Deb::read("t.deb", bytes, bytes.len() as u64)
}

fn open_within(bytes: &[u8], limits: Limits) -> Result<Deb<&[u8]>, DebError> {
    Deb::with_limits("t.deb", bytes, bytes.len() as u64, limits)
}

fn read(bytes: &[u8]) -> Result<Data, DebError> {
    open(bytes)?.read_data(&View::new(), &mut |_, _| Ok(()))
}

/// The error a .deb gives, opened and read.
fn refusal(bytes: &[u8]) -> DebError {
    match read(bytes) {
        Ok(_) => panic!("read"),
        Err(e) => e,
    }
}

fn p(s: &str) -> ImagePath {
    s.parse().unwrap()
}

#[test]
fn a_package_is_read_in_every_compression() {
    let tar = data_tar();
    let stored: [(&str, Vec<u8>); 4] = [
        ("data.tar", tar.clone()),
        ("data.tar.gz", gz(&tar)),
        ("data.tar.xz", xz(&tar)),
        ("data.tar.zst", zst(&tar)),
    ];
    for (member, data) in stored {
        let bytes = deb(member, &data);
        let deb = open(&bytes).unwrap();
        assert_eq!(deb.data_member().0, member);
        let control = &deb.package().control;
        assert_eq!(control.package, "hello");
        assert_eq!(control.info_name(), "hello:amd64");

        let mut view = View::new();
        let mut seen = BTreeMap::new();
        let files = deb
            .apply_data(&mut view, &mut |path, r| {
                let mut content = Vec::new();
                r.read_to_end(&mut content)?;
                seen.insert(path.to_string(), Digest::of(&content));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            String::from_utf8(files.to_dpkg_list()).unwrap(),
            "/.\n/usr\n/usr/bin\n/usr/bin/hello\n/usr/bin/hi\n/usr/bin/hey\n",
            "{member}"
        );
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [(
                "/usr/bin/hello".to_string(),
                Digest::of(b"#!/bin/sh\necho hello\n")
            )]
        );
        assert_eq!(
            view.get(&p("/usr/bin/hey")).unwrap().kind,
            NodeKind::Hardlink {
                target: p("/usr/bin/hello")
            }
        );
        assert_eq!(
            view.get(&p("/usr/bin/hi")).unwrap().kind,
            NodeKind::Symlink {
                target: "hello".into()
            }
        );
    }
}

#[test]
fn control_tar_is_read_in_every_compression() {
    let tar = control_tar(CONTROL, &[]);
    for (member, stored) in [
        ("control.tar", tar.clone()),
        ("control.tar.gz", gz(&tar)),
        ("control.tar.xz", xz(&tar)),
        ("control.tar.zst", zst(&tar)),
    ] {
        let bytes = ar(&[
            ("debian-binary", b"2.0\n"),
            (member, &stored),
            ("data.tar", &data_tar()),
        ]);
        let deb = open(&bytes).unwrap();
        assert_eq!(deb.package().member, member);
        assert_eq!(deb.package().control.stanza, CONTROL);
    }
}

#[test]
fn the_data_stream_is_the_tar() {
    let tar = data_tar();
    let bytes = deb("data.tar.xz", &xz(&tar));
    let mut out = Vec::new();
    open(&bytes)
        .unwrap()
        .into_data()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, tar);
}

#[test]
fn control_files_conffiles_md5sums_and_scripts_are_read() {
    let md5 = "d41d8cd98f00b204e9800998ecf8427e  usr/share/doc/hello/copyright\n\
               0123456789ABCDEF0123456789abcdef  usr/bin/with space\n";
    let tar = control_tar(
        CONTROL,
        &[
            (
                "./conffiles",
                Regular,
                "",
                b"/etc/hello.conf\n\nremove-on-upgrade /etc/old.conf\n",
            ),
            ("./md5sums", Regular, "", md5.as_bytes()),
            ("./postinst", Regular, "", b"#!/bin/sh\n"),
            ("./prerm", Regular, "", b"#!/bin/sh\n"),
            ("./triggers", Regular, "", b"activate-noawait ldconfig\n"),
            ("./shlibs", Regular, "", b"libhello 1 hello\n"),
        ],
    );
    let bytes = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", &xz(&tar)),
        ("data.tar", &data_tar()),
    ]);
    let deb = open(&bytes).unwrap();
    let package = deb.package();
    assert_eq!(
        package.scripts(),
        [Script::Postinst, Script::Prerm, Script::Triggers]
    );
    assert_eq!(
        package.conffiles,
        [
            Conffile {
                path: p("/etc/hello.conf"),
                remove_on_upgrade: false
            },
            Conffile {
                path: p("/etc/old.conf"),
                remove_on_upgrade: true
            },
        ]
    );
    let md5sums = package.md5sums.as_ref().unwrap();
    assert_eq!(md5sums.text, md5.as_bytes());
    assert_eq!(md5sums.files[1].path, p("/usr/bin/with space"));
    assert_eq!(
        hex::encode(md5sums.files[1].md5),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(package.files["shlibs"], b"libhello 1 hello\n");
    assert_eq!(
        package.files.keys().collect::<Vec<_>>(),
        [
            "conffiles",
            "control",
            "md5sums",
            "postinst",
            "prerm",
            "shlibs",
            "triggers"
        ]
    );
}

#[test]
fn control_fields_are_parsed_and_kept_as_written() {
    let c = parse_control(CONTROL.as_bytes()).unwrap();
    assert_eq!(
        (
            c.package.as_str(),
            c.version.as_str(),
            c.architecture.as_str()
        ),
        ("hello", "1:2.10-3+b1", "amd64")
    );
    assert_eq!(c.multi_arch, MultiArch::Same);
    assert!(!c.essential);
    assert_eq!(
        c.depends.as_deref(),
        Some("libc6 (>= 2.34), libfoo | libbar")
    );
    assert_eq!(c.pre_depends.as_deref(), Some("dpkg"));
    assert_eq!(c.provides, None);
    assert_eq!(
        c.field("depends"),
        Some("libc6 (>= 2.34),\n libfoo | libbar")
    );
    assert_eq!(c.field("Description"), Some("greets\n Hello.\n .\n More."));
    assert_eq!(c.stanza, CONTROL);

    // Blank lines around the stanza are no part of it.
    let c = parse_control(format!("\n{CONTROL}\n\n").as_bytes()).unwrap();
    assert_eq!(c.stanza, CONTROL);
    let c = parse_control(b"Package: a0\nVersion: 1.0\nArchitecture: all\nEssential: yes").unwrap();
    assert!(c.essential);
    assert_eq!(c.info_name(), "a0");
}

#[test]
fn bad_control_files_are_refused() {
    let base = "Package: hello\nVersion: 1.0\nArchitecture: amd64\n";
    let cases = [
        (
            "Version: 1.0\nArchitecture: amd64\n".to_string(),
            "no Package",
        ),
        ("Package: hello\nArchitecture: amd64\n".into(), "no Version"),
        ("Package: hello\nVersion: 1.0\n".into(), "no Architecture"),
        (
            base.replace("hello", "../../etc/x"),
            "not a valid package name",
        ),
        (base.replace("hello", "Hello"), "not a valid package name"),
        (base.replace("1.0", "1.0 2"), "characters a version may not"),
        (base.replace("1.0", "x:1.0"), "epoch"),
        (base.replace("amd64", "amd64/../x"), "not an architecture"),
        (format!("{base}Package: again\n"), "appears twice"),
        (format!("{base}package: again\n"), "appears twice"),
        (format!("{base}\nPackage: second\n"), "blank line inside"),
        (format!(" continued\n{base}"), "continuation line before"),
        (format!("{base}Essential: maybe\n"), "neither yes nor no"),
        (format!("{base}Multi-Arch: sometimes\n"), "none of"),
        (format!("{base}no colon\n"), "is not a field"),
        (format!("{base}Bad Name: x\n"), "not a field name"),
        (
            base.replace("Version: 1.0", "Version: 1.0\n 2.0"),
            "spans several lines",
        ),
        (String::new(), "no fields"),
    ];
    for (text, needle) in cases {
        let err = parse_control(text.as_bytes()).unwrap_err();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    let err = parse_control(b"Package: h\xffllo\n").unwrap_err();
    assert!(err.contains("UTF-8"), "{err}");

    // Through a whole .deb, the error names the member and the file.
    let bytes = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &control_tar("Package: x/y\n", &[])),
        ("data.tar", &data_tar()),
    ]);
    let err = open(&bytes).err().unwrap().to_string();
    assert!(err.starts_with("t.deb: control.tar: ./control:"), "{err}");
}

#[test]
fn bad_conffiles_and_md5sums_are_refused() {
    for (text, needle) in [
        (&b"etc/relative\n"[..], "no absolute path"),
        (b"keep /etc/x\n", "unknown flag"),
        (b"/etc/../shadow\n", "not a plain path"),
    ] {
        let err = parse_conffiles(text).unwrap_err();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    for text in [
        &b"d41d8cd98f00b204e9800998ecf8427e usr/x\n"[..],
        b"d41d8cd98f00b204e9800998ecf8427  usr/x\n",
        b"z41d8cd98f00b204e9800998ecf8427e  usr/x\n",
        b"d41d8cd98f00b204e9800998ecf8427e  ../x\n",
    ] {
        let err = parse_md5sums(text).unwrap_err();
        assert!(err.contains("not \"MD5  PATH\""), "{text:?}: {err}");
    }
}

#[test]
fn control_tar_holds_plain_files_only() {
    for (extra, needle) in [
        (
            ("./postinst", Symlink, "/etc/shadow", &b""[..]),
            "not a regular file",
        ),
        (("./sub/control", Regular, "", b"x"), "not at the top"),
        (("../control", Regular, "", b"x"), "not a plain name"),
        (("/control", Regular, "", b"x"), "not a plain name"),
        (("./control", Regular, "", b"x"), "appears twice"),
    ] {
        let bytes = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control_tar(CONTROL, &[extra])),
            ("data.tar", &data_tar()),
        ]);
        let err = open(&bytes).err().unwrap();
        assert!(
            matches!(&err, DebError::Refused { member, reason, .. }
                if member == "control.tar" && reason.contains(needle)),
            "{extra:?}: {err}"
        );
    }
    let bytes = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar", &raw_tar(&[("./", Directory, "", b"")])),
        ("data.tar", &data_tar()),
    ]);
    assert!(
        open(&bytes)
            .err()
            .unwrap()
            .to_string()
            .contains("no ./control")
    );
}

/// deb(5): `_` members may come anywhere before data.tar and are skipped;
/// whatever follows data.tar is never read.
#[test]
fn optional_members_are_skipped_and_what_follows_data_is_not_read() {
    let control = gz(&control_tar(CONTROL, &[]));
    let bytes = ar(&[
        ("debian-binary", b"2.1\nmore to come\n"),
        ("_gpgorigin", b"signature"),
        ("control.tar.gz", &control),
        ("_extra", b"x"),
        ("data.tar", &data_tar()),
        ("whatever", b"ignored"),
    ]);
    let data = read(&bytes).unwrap();
    assert_eq!(data.files.paths().len(), 6);
    // Not even a broken header after it matters.
    let mut cut = deb("data.tar", &data_tar());
    cut.extend_from_slice(b"garbage");
    read(&cut).unwrap();
}

#[test]
fn members_out_of_place_are_refused() {
    let control = gz(&control_tar(CONTROL, &[]));
    let data = data_tar();
    let cases: [(&[ArMember], &str); 7] = [
        (
            &[
                ("debian-binary", b"2.0\n"),
                ("data.tar", &data),
                ("control.tar.gz", &control),
            ],
            "\"data.tar\" comes where deb(5) puts control.tar",
        ),
        (
            &[
                ("control.tar.gz", &control),
                ("debian-binary", b"2.0\n"),
                ("data.tar", &data),
            ],
            "first member is \"control.tar.gz\"",
        ),
        (
            &[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &control),
                ("extra", b"x"),
                ("data.tar", &data),
            ],
            "\"extra\" comes where deb(5) puts data.tar",
        ),
        (
            &[
                ("debian-binary", b"2.0\n"),
                ("control.tar.gz", &control),
                ("control.tar.gz", &control),
                ("data.tar", &data),
            ],
            "two control.tar members",
        ),
        (
            &[("debian-binary", b"2.0\n"), ("control.tar.gz", &control)],
            "ends before its data.tar",
        ),
        (&[("debian-binary", b"3.0\n")], "only 2.x is read"),
        (&[("debian-binary", b"2.0")], "no newline"),
    ];
    for (members, needle) in cases {
        let err = open(&ar(members)).err().unwrap();
        assert!(
            matches!(&err, DebError::Malformed { deb, reason } if deb == "t.deb" && reason.contains(needle)),
            "{needle}: {err}"
        );
    }
    for format in [&b"2.\n"[..], b"2.0a\n", b" 2.0\n", b"20\n"] {
        let err = open(&ar(&[("debian-binary", format)])).err().unwrap();
        assert!(err.to_string().contains("only 2.x"), "{format:?}: {err}");
    }
}

#[test]
fn broken_archives_are_refused() {
    let whole = deb("data.tar.xz", &xz(&data_tar()));
    // Cut in the magic, in a header, in debian-binary, in control.tar,
    // in data.tar, and just before data.tar's pad byte.
    for cut in [
        3,
        8 + 30,
        8 + 62,
        8 + 64 + 70,
        whole.len() - 100,
        whole.len() - 1,
    ] {
        let err = open(&whole[..cut])
            .and_then(|d| d.read_data(&View::new(), &mut |_, _| Ok(())))
            .err()
            .unwrap();
        assert!(
            matches!(&err, DebError::Malformed { reason, .. } if reason.contains("truncated")),
            "cut at {cut}: {err}"
        );
    }
    // Odd data.tar sizes need their pad byte, as dpkg wants.
    assert_eq!(whole.len() % 2, 0);

    let err = open(b"<html>not found</html>").err().unwrap();
    assert!(err.to_string().contains("not an ar archive"), "{err}");

    // A header without its magic, a name that is no name, a size that is
    // no number.
    let mut bad = whole.clone();
    bad[8 + 58] = b'x';
    assert!(open(&bad).err().unwrap().to_string().contains("magic"));
    let mut bad = whole.clone();
    bad[8] = 0;
    assert!(open(&bad).err().unwrap().to_string().contains("printable"));
    let mut bad = whole.clone();
    bad[8 + 48] = b'-';
    assert!(open(&bad).err().unwrap().to_string().contains("size"));

    // A member that claims more than the file holds is refused before it
    // is read.
    let mut claim = AR_MAGIC.to_vec();
    claim.extend(ar_header("debian-binary", 4));
    claim.extend(b"2.0\n");
    claim.extend(ar_header("control.tar.gz", 9_999_999_999u64));
    claim.extend(b"small");
    let err = open(&claim).err().unwrap();
    assert!(
        matches!(&err, DebError::Malformed { reason, .. }
            if reason.contains("\"control.tar.gz\" claims 10000000000 bytes, and 5 are left")),
        "{err}"
    );
}

/// A reader that says its file is longer than it is: a file that shrank
/// while it was read.
#[test]
fn a_file_shorter_than_it_said_is_truncated() {
    let whole = deb("data.tar.xz", &xz(&data_tar()));
    let cut = &whole[..whole.len() - 100];
    let err = Deb::read("t.deb", cut, whole.len() as u64)
        .unwrap()
        .read_data(&View::new(), &mut |_, _| Ok(()))
        .err()
        .unwrap();
    assert!(
        matches!(&err, DebError::Malformed { reason, .. }
            if reason.contains("ends inside member \"data.tar.xz\"")),
        "{err}"
    );
}

#[test]
fn bounds_are_enforced() {
    let small = Limits {
        members: 4,
        debian_binary: 8,
        control_member: 1 << 10,
        control_tar: 16 << 10,
        control_entries: 4,
        data_tar: 64 << 10,
        data_entries: 8,
    };
    let limit = |bytes: &[u8], member: &str, what: &str| {
        let err = open_within(bytes, small)
            .and_then(|d| d.read_data(&View::new(), &mut |_, _| Ok(())))
            .err()
            .unwrap();
        assert!(
            matches!(&err, DebError::Limit { member: m, what: w, .. } if m == member && w.contains(what)),
            "{member} {what}: {err}"
        );
        err
    };
    // Bombs: a megabyte of zeros in a few hundred bytes, past a 64 KiB
    // bound on what data.tar decompresses to.
    let mut bomb = data_tar();
    bomb.truncate(bomb.len() - 1024);
    bomb.resize(1 << 20, 0);
    for (member, stored) in [
        ("data.tar.zst", zst(&bomb)),
        ("data.tar.xz", xz(&bomb)),
        ("data.tar.gz", gz(&bomb)),
    ] {
        assert!(stored.len() < 4 << 10);
        let err = limit(&deb(member, &stored), member, "data.tar decompressed");
        assert_eq!(
            err.to_string(),
            format!("t.deb: {member}: data.tar decompressed is more than the limit of 65536")
        );
    }
    // The same bound holds on the stream handed out.
    let bytes = deb("data.tar.zst", &zst(&bomb));
    let mut data = open_within(&bytes, small).unwrap().into_data().unwrap();
    let err = io::copy(&mut data, &mut io::sink()).unwrap_err();
    assert!(
        err.to_string()
            .contains("t.deb: data.tar.zst: more than 65536 bytes"),
        "{err}"
    );
    assert!(matches!(data.error(), Some(DebError::Limit { .. })));

    // control.tar: stored, decompressed, entries.
    let pad = vec![b'x'; 20 << 10];
    let big = control_tar(CONTROL, &[("./templates", Regular, "", &pad)]);
    let bytes = |control: &[u8]| {
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", control),
            ("data.tar", &data_tar()),
        ])
    };
    limit(
        &bytes(&gz(&big)),
        "control.tar.gz",
        "control.tar decompressed",
    );
    let noise: Vec<u8> = (0..4096u32)
        .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
        .collect();
    let stored = gz(&control_tar(
        CONTROL,
        &[("./templates", Regular, "", &noise)],
    ));
    limit(&bytes(&stored), "control.tar.gz", "its size");
    let many: Vec<RawEntry> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| (*n, Regular, "", &b""[..]))
        .collect();
    let err = open_within(&bytes(&gz(&control_tar(CONTROL, &many))), small)
        .err()
        .unwrap();
    assert!(err.to_string().contains("more than 4 entries"), "{err}");

    // data.tar entries, members, debian-binary.
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let tar = raw_tar(&names.map(|n| (n, Regular, "", &b""[..])));
    limit(&deb("data.tar", &tar), "data.tar", "number of entries");
    let control = gz(&control_tar(CONTROL, &[]));
    let members = ar(&[
        ("debian-binary", b"2.0\n"),
        ("_a", b""),
        ("_b", b""),
        ("control.tar.gz", &control),
        ("data.tar", &data_tar()),
    ]);
    let err = open_within(&members, small).err().unwrap();
    assert!(err.to_string().contains("more than 4 members"), "{err}");
    let err = open_within(&ar(&[("debian-binary", b"2.0\n0123456789\n")]), small)
        .err()
        .unwrap();
    assert!(matches!(err, DebError::Limit { .. }), "{err}");
}

#[test]
fn unsupported_compressions_are_refused_by_name() {
    let err = refusal(&deb("data.tar.bz2", b"BZh91AY&SY"));
    assert_eq!(
        err.to_string(),
        "t.deb: data.tar.bz2: bzip2 compression is not supported (only gzip, xz and zstd)"
    );
    for member in ["data.tar.lzma", "data.tar.lz4", "data.targz"] {
        let err = refusal(&deb(member, b"x"));
        assert!(
            matches!(&err, DebError::Refused { member: m, .. } if m == member),
            "{err}"
        );
    }
    // dpkg reads control.tar in none, gzip, xz and zstd only.
    let bytes = ar(&[
        ("debian-binary", b"2.0\n"),
        ("control.tar.bz2", b"BZh91AY&SY"),
        ("data.tar", &data_tar()),
    ]);
    let err = open(&bytes).err().unwrap();
    assert!(
        matches!(&err, DebError::Refused { member, .. } if member == "control.tar.bz2"),
        "{err}"
    );
    let err = refusal(&deb("data.tar", b""));
    assert!(err.to_string().contains("empty member"), "{err}");
}

#[test]
fn corrupt_streams_are_told_apart_from_refusals() {
    let mut stored = xz(&data_tar());
    let middle = stored.len() / 2;
    stored[middle] ^= 0x55;
    let err = refusal(&deb("data.tar.xz", &stored));
    assert!(
        matches!(&err, DebError::Decode { member, .. } if member == "data.tar.xz"),
        "{err}"
    );
    // Trailing bytes after the compressed stream, past the tar's end.
    let mut stored = gz(&data_tar());
    stored.extend_from_slice(b"junk");
    let err = refusal(&deb("data.tar.gz", &stored));
    assert!(matches!(&err, DebError::Decode { .. }), "{err}");
    let mut stored = zst(&data_tar());
    stored.extend_from_slice(b"junk");
    let err = refusal(&deb("data.tar.zst", &stored));
    assert!(matches!(&err, DebError::Decode { .. }), "{err}");
}

/// The data tar goes through the layer reader's refusals; the error names
/// the .deb, the member and the entry.
#[test]
fn hostile_data_entries_are_refused() {
    let cases: [(&[RawEntry], &str); 8] = [
        (
            &[("./../escape", Regular, "", b"x")],
            "\"./../escape\" escapes the image root",
        ),
        (
            &[("/etc/passwd", Regular, "", b"x")],
            "\"/etc/passwd\" is an absolute path",
        ),
        (
            &[("./x", Link, "../../etc/shadow", b"")],
            "escapes the image root",
        ),
        (
            &[("./x", Link, "./nothing", b"")],
            "which the image does not have",
        ),
        (
            &[("./etc/.wh.passwd", Regular, "", b"")],
            "\".wh.passwd\" begins with \".wh.\"",
        ),
        (
            &[("./.wh..wh..opq", Regular, "", b"")],
            "begins with \".wh.\"",
        ),
        (
            &[("./a/", Directory, "", b""), ("./a/", Directory, "", b"")],
            "lists /a twice",
        ),
        (
            &[
                ("x", XHeader, "", b"12 path=one\n12 path=two\n"),
                ("./z", Regular, "", b""),
            ],
            "PAX path records that differ",
        ),
    ];
    for (entries, needle) in cases {
        for (member, stored) in [
            ("data.tar", raw_tar(entries)),
            ("data.tar.xz", xz(&raw_tar(entries))),
        ] {
            let err = refusal(&deb(member, &stored));
            assert!(
                matches!(&err, DebError::Refused { member: m, reason, .. }
                    if m == member && reason.contains(needle)),
                "{entries:?}: {err}"
            );
            assert!(
                err.to_string().starts_with(&format!("t.deb: {member}: ")),
                "{err}"
            );
        }
    }
}

#[test]
fn long_names_are_read_and_bounded() {
    let write = |name: &str| {
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        builder.append_data(&mut h, name, &b"x"[..]).unwrap();
        builder.into_inner().unwrap()
    };
    let fine = format!("usr/{}", vec!["d".repeat(200); 4].join("/"));
    let data = read(&deb("data.tar", &write(&fine))).unwrap();
    assert_eq!(data.files.paths(), [p(&format!("/{fine}"))]);
    // 4096 bytes: a name the tar reader takes, a path dpkg could not make.
    let too_long = format!("usr/{}", vec!["d".repeat(250); 16].join("/"));
    let too_long = format!("{too_long}/{}", "e".repeat(4096 - too_long.len() - 1));
    assert_eq!(too_long.len(), 4096);
    let err = refusal(&deb("data.tar", &write(&too_long)));
    assert!(err.to_string().contains("more than 4095"), "{err}");
    // Longer still: a name no reader takes.
    let err = refusal(&deb("data.tar", &write(&format!("{too_long}e"))));
    assert!(
        err.to_string()
            .contains("a name of 4097 bytes starting \"usr/ddd"),
        "{err}"
    );
    assert!(err.to_string().contains("(limit 4096, PATH_MAX)"), "{err}");
    let err = refusal(&deb("data.tar", &write(&"x".repeat(NAME_MAX + 1))));
    assert!(
        err.to_string().contains("a component longer than 255"),
        "{err}"
    );
}

/// A base, merged-/usr as debootstrap makes them: `/bin` and `/lib` are
/// symlinks into `/usr`, `/var/mail` is setgid mail.
fn merged_usr() -> View {
    let mut view = View::new();
    view.apply_tar(
        &raw_tar(&[
            ("usr/", Directory, "", b""),
            ("usr/bin/", Directory, "", b""),
            ("usr/lib/", Directory, "", b""),
            ("bin", Symlink, "usr/bin", b""),
            ("lib", Symlink, "/usr/lib", b""),
            ("var/", Directory, "", b""),
            ("var/mail/", Directory, "", b""),
        ])[..],
    )
    .unwrap();
    let mut mail = view.get(&p("/var/mail")).unwrap().clone();
    mail.mode = 0o2775;
    mail.gid = 8;
    view.apply(vec![Change::Put(p("/var/mail"), mail, None)]);
    view
}

/// dpkg unpacks a directory over a directory, or a symlink to one, by
/// leaving it be: the package's files land where the base's symlinks
/// lead. The file list keeps the names the package lists.
#[test]
fn packages_land_as_dpkg_unpacks_them() {
    let mut view = merged_usr();
    let tar = raw_tar(&[
        ("./", Directory, "", b""),
        ("./bin/", Directory, "", b""),
        ("./bin/sh", Regular, "", b"sh"),
        ("./lib/", Directory, "", b""),
        ("./lib/libc.so", Regular, "", b"libc"),
        ("./var/", Directory, "", b""),
        ("./var/mail/", Directory, "", b""),
        // A symlink where a directory is, or a symlink to the same one,
        // leaves it be too; one to another directory replaces it.
        ("./usr/lib", Symlink, "/elsewhere", b""),
    ]);
    let mut seen = Vec::new();
    let files = open(&deb("data.tar", &tar))
        .unwrap()
        .apply_data(&mut view, &mut |path, _| {
            seen.push(path.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(
        files.paths(),
        [
            "/",
            "/bin",
            "/bin/sh",
            "/lib",
            "/lib/libc.so",
            "/var",
            "/var/mail",
            "/usr/lib"
        ]
        .map(p)
    );
    let links = raw_tar(&[
        ("./bin", Symlink, "./usr/../usr/bin", b""),
        ("./lib", Symlink, "usr/bin", b""),
    ]);
    open(&deb("data.tar", &links))
        .unwrap()
        .apply_data(&mut view, &mut |_, _| Ok(()))
        .unwrap();
    assert_eq!(seen, [p("/usr/bin/sh"), p("/usr/lib/libc.so")]);
    let kind = |path: &str| view.get(&p(path)).map(|n| n.kind.clone());
    assert_eq!(
        kind("/bin"),
        Some(NodeKind::Symlink {
            target: "usr/bin".into()
        })
    );
    assert_eq!(
        kind("/lib"),
        Some(NodeKind::Symlink {
            target: "usr/bin".into()
        })
    );
    assert_eq!(kind("/usr/lib"), Some(NodeKind::Dir));
    assert_eq!(kind("/usr/lib/libc.so"), Some(NodeKind::File { size: 4 }));
    let mail = view.get(&p("/var/mail")).unwrap();
    assert_eq!((mail.mode, mail.gid, mail.layer), (0o2775, 8, 0));
}

#[test]
fn a_refused_package_leaves_the_view_as_it_was() {
    let mut view = View::new();
    let tar = raw_tar(&[
        ("./ok", Regular, "", b"x"),
        ("./../escape", Regular, "", b"x"),
    ]);
    let err = open(&deb("data.tar", &tar))
        .unwrap()
        .apply_data(&mut view, &mut |_, _| Ok(()))
        .unwrap_err();
    assert!(matches!(err, DebError::Refused { .. }), "{err}");
    assert_eq!(view.layer_count(), 0);
    assert!(view.iter().next().is_none());
}

#[test]
fn ar_headers_parse_as_dpkg_reads_them() {
    let header = |name: &str, size: &str| -> [u8; AR_HEADER] {
        let mut h = [b' '; AR_HEADER];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[48..48 + size.len()].copy_from_slice(size.as_bytes());
        h[58..].copy_from_slice(b"`\n");
        h
    };
    let parsed = parse_header(&header("debian-binary/", "4")).unwrap();
    assert_eq!(
        parsed,
        Member {
            name: "debian-binary".into(),
            size: 4
        }
    );
    assert_eq!(parse_header(&header("a", "  12")).unwrap().size, 12);
    for (name, size) in [
        ("a", ""),
        ("a", "1 2"),
        ("a", "0x10"),
        ("", "1"),
        ("a b", "1"),
    ] {
        assert!(
            parse_header(&header(name, size)).is_err(),
            "{name:?} {size:?}"
        );
    }
}

/// Issue 14: a GNU long name or PAX header claiming gigabytes is refused at
/// its header, in `data.tar` and in `control.tar`, naming the limit.
#[test]
fn extension_headers_past_their_bound_are_refused() {
    let bomb = |typeflag: tar::EntryType| {
        let mut tar = raw_tar(&[("./", Directory, "", b"")]);
        tar.truncate(tar.len() - 1024);
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(typeflag);
        h.set_size(3 << 30);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend(vec![b'a'; 1 << 16]);
        tar
    };
    for (typeflag, what) in [
        (tar::EntryType::GNULongName, "a GNU long name"),
        (tar::EntryType::XHeader, "a PAX extended header"),
    ] {
        let err = refusal(&deb("data.tar.gz", &gz(&bomb(typeflag))));
        assert_eq!(
            err.to_string(),
            format!("t.deb: data.tar.gz: {what} of 3221225472 bytes (limit 1048576)")
        );
        let bytes = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &bomb(typeflag)),
            ("data.tar", &data_tar()),
        ]);
        let err = open(&bytes).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("t.deb: control.tar: {what} of 3221225472 bytes (limit 1048576)")
        );
    }
}
