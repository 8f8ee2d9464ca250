//! The guard must never disagree with tar 0.4.46 on where an entry
//! starts: every archive here is read by tar both bare and through the
//! guard, and the two readings must match, entry by entry and error by
//! error, until the guard refuses a bound.

use std::io::{self, Cursor, Read};

use proptest::prelude::*;

use super::*;

/// Bounds no archive here reaches unless it means to.
const WIDE: Limits = Limits { entries: 1 << 20 };

// ---------------------------------------------------------------------------
// Raw archives, header by header

/// How a header's size field is written.
#[derive(Debug, Clone, Copy)]
enum SizeField {
    Octal(u64),
    Base256(u64),
}

#[derive(Default)]
struct Raw {
    out: Vec<u8>,
}

impl Raw {
    fn header(&mut self, name: &[u8], typeflag: u8, size: SizeField, form: Form) -> &mut Raw {
        let mut h = match form {
            Form::Ustar => tar::Header::new_ustar(),
            Form::Gnu => tar::Header::new_gnu(),
            Form::Old => tar::Header::new_old(),
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match size {
            SizeField::Octal(n) => h.set_size(n),
            SizeField::Base256(n) => {
                let field = &mut h.as_old_mut().size;
                field.fill(0);
                field[0] = 0x80;
                field[4..].copy_from_slice(&n.to_be_bytes());
            }
        }
        h.as_old_mut().linkflag = [typeflag];
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self
    }

    fn data(&mut self, data: &[u8]) -> &mut Raw {
        self.out.extend_from_slice(data);
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
        self
    }

    fn entry(&mut self, name: &[u8], typeflag: u8, data: &[u8]) -> &mut Raw {
        self.header(
            name,
            typeflag,
            SizeField::Octal(data.len() as u64),
            Form::Ustar,
        )
        .data(data)
    }

    fn pax(&mut self, typeflag: u8, records: &[(&str, &[u8])]) -> &mut Raw {
        let data = pax_data(records);
        self.entry(b"PaxHeaders/x", typeflag, &data)
    }

    fn long(&mut self, typeflag: u8, name: &[u8]) -> &mut Raw {
        let mut data = name.to_vec();
        data.push(0);
        self.header(
            b"././@LongLink",
            typeflag,
            SizeField::Octal(data.len() as u64),
            Form::Gnu,
        )
        .data(&data)
    }

    fn end(&mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 1024, 0);
        std::mem::take(&mut self.out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Ustar,
    Gnu,
    Old,
}

fn pax_data(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len = len.to_string().len() + rest;
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A GNU sparse file (`S`) of 6244 bytes, 3172 of them stored, whose map
/// needs the header's four slots and two extension blocks.
fn sparse(raw: &mut Raw) {
    let blocks: Vec<(u64, u64)> = (0..6)
        .map(|k| (k * 1024, 512))
        .chain([(6 * 1024, 100)])
        .collect();
    let stored: u64 = blocks.iter().map(|b| b.1).sum();
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..6].copy_from_slice(b"sparse");
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(stored);
    let gnu = h.as_gnu_mut().unwrap();
    for (slot, (offset, len)) in gnu.sparse.iter_mut().zip(&blocks[..4]) {
        slot.set_offset(*offset);
        slot.set_length(*len);
    }
    gnu.set_is_extended(true);
    gnu.set_real_size(6 * 1024 + 100);
    h.set_cksum();
    raw.out.extend_from_slice(h.as_bytes());
    for (chunk, more) in [(&blocks[4..6], true), (&blocks[6..], false)] {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (slot, (offset, len)) in ext.sparse_mut().iter_mut().zip(chunk) {
            slot.set_offset(*offset);
            slot.set_length(*len);
        }
        ext.set_is_extended(more);
        raw.out.extend_from_slice(ext.as_bytes());
    }
    let data: Vec<u8> = (0..stored).map(|i| (i % 251) as u8).collect();
    raw.data(&data);
}

// ---------------------------------------------------------------------------
// Two readings

/// One entry as tar yields it, or the error it stops with.
type Seen = Result<(u64, u64, u64, Vec<u8>, Option<Vec<u8>>, Vec<u8>), String>;

/// Every entry tar reads from `archive`, and whether the reading ended
/// with the guard's refusal.
fn read_all(archive: &mut tar::Archive<impl Read>) -> Vec<(Seen, bool)> {
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => return vec![(Err(e.to_string()), false)],
    };
    collect(entries, true)
}

/// The entries: header and data positions, size, name, link name and data
/// (`data` false: skipped, so a seekable reader seeks over it).
fn collect<R: Read>(entries: tar::Entries<'_, R>, data: bool) -> Vec<(Seen, bool)> {
    let mut seen = Vec::new();
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let refused = exceeded(&e).is_some();
                seen.push((Err(e.to_string()), refused));
                break;
            }
        };
        let mut bytes = Vec::new();
        if data && let Err(e) = entry.read_to_end(&mut bytes) {
            let refused = exceeded(&e).is_some();
            seen.push((Err(format!("data: {e}")), refused));
            break;
        }
        seen.push((
            Ok((
                entry.raw_header_position(),
                entry.raw_file_position(),
                entry.size(),
                entry.path_bytes().into_owned(),
                entry.link_name_bytes().map(|l| l.into_owned()),
                bytes,
            )),
            false,
        ));
    }
    seen
}

/// A reader that returns at most `chunk` bytes a read, as a decoder may.
struct Chunked<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Reads `bytes` bare and through the guard (in reads of every size in
/// `chunks`, and seeking); the guard must agree with tar up to where it
/// refuses, which it returns (None: it agreed throughout).
fn agree(bytes: &[u8], limits: Limits, chunks: &[usize]) -> Option<String> {
    let bare = read_all(&mut tar::Archive::new(bytes));
    let mut refusal = None;
    for &chunk in chunks {
        let guarded = read_all(&mut tar::Archive::new(Guard::with_limits(
            Chunked { bytes, chunk },
            limits,
        )));
        refusal = compare(&bare, &guarded);

        // The guard alone hands on every byte, and sees entries start
        // where tar does.
        let mut guard = Guard::with_limits(Chunked { bytes, chunk }, limits);
        let mut out = Vec::new();
        let ran = io::copy(&mut guard, &mut out);
        if refusal.is_none() {
            let starts: Vec<u64> = bare
                .iter()
                .filter_map(|(s, _)| s.as_ref().ok().map(|e| e.0))
                .collect();
            assert!(
                guard.starts.starts_with(&starts),
                "guard starts {:?}, tar {starts:?}",
                guard.starts
            );
            if bare.iter().all(|(s, _)| s.is_ok()) {
                assert_eq!(guard.starts, starts);
                assert_eq!(out, bytes);
                ran.unwrap();
            }
        }
    }

    // Seeking over the data, as a docker-archive is scanned.
    let mut archive = tar::Archive::new(Cursor::new(bytes));
    let bare_seek = collect(archive.entries_with_seek().unwrap(), false);
    let mut archive = tar::Archive::new(Guard::with_limits(Cursor::new(bytes), limits));
    let guarded_seek = collect(archive.entries_with_seek().unwrap(), false);
    let seek_refusal = compare(&bare_seek, &guarded_seek);
    assert_eq!(seek_refusal.is_some(), refusal.is_some());
    refusal
}

/// Compares two readings up to the guard's refusal, if any.
fn compare(bare: &[(Seen, bool)], guarded: &[(Seen, bool)]) -> Option<String> {
    for (i, (seen, refused)) in guarded.iter().enumerate() {
        if *refused {
            return Some(seen.clone().unwrap_err());
        }
        assert_eq!(
            Some(seen),
            bare.get(i).map(|(s, _)| s),
            "entry {i} differs through the guard"
        );
    }
    assert_eq!(
        bare.len(),
        guarded.len(),
        "the guard read a different number"
    );
    None
}

const CHUNKS: &[usize] = &[1, 3, 100, 512, 513, 4096, 1 << 20];

fn agrees(bytes: &[u8]) {
    assert_eq!(agree(bytes, WIDE, CHUNKS), None);
}

fn refuses(bytes: &[u8], limits: Limits) -> String {
    agree(bytes, limits, CHUNKS).expect("the guard should refuse")
}

// ---------------------------------------------------------------------------
// Valid archives: the guard agrees with tar

#[test]
fn plain_archives_agree() {
    let mut b = tar::Builder::new(Vec::new());
    for (i, size) in [0usize, 1, 511, 512, 513, 5000].iter().enumerate() {
        let mut h = tar::Header::new_ustar();
        h.set_size(*size as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("f{i}"), &vec![b'a'; *size][..])
            .unwrap();
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_cksum();
    b.append_data(&mut h, "d/", io::empty()).unwrap();
    agrees(&b.into_inner().unwrap());
    // No end blocks at all, as umoci 0.4 writes, and an empty archive.
    agrees(&Raw::default().entry(b"a", b'0', b"x").out);
    agrees(&[]);
    agrees(&[0; 1024]);
}

#[test]
fn gnu_long_names_and_links_agree() {
    let long = "d/".repeat(200) + "file";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, format!("{long}.link"), &long)
        .unwrap();
    agrees(&b.into_inner().unwrap());

    let bytes = Raw::default()
        .long(b'L', long.as_bytes())
        .long(b'K', b"target")
        .entry(b"short", b'2', b"")
        .entry(b"next", b'0', b"data")
        .end();
    agrees(&bytes);
}

#[test]
fn pax_records_and_the_size_override_agree() {
    let long = "p/".repeat(300);
    let bytes = Raw::default()
        .pax(b'x', &[("path", long.as_bytes()), ("linkpath", b"t")])
        .entry(b"short", b'2', b"")
        // The header says 5000 bytes; the PAX size, which tar takes, 10.
        .pax(b'x', &[("size", b"10")])
        .header(b"sized", b'0', SizeField::Octal(5000), Form::Ustar)
        .data(b"0123456789")
        .entry(b"after", b'0', b"after")
        // A size record after a malformed one is not read.
        .pax(b'x', &[("mtime", b"1")])
        .end();
    agrees(&bytes);

    let mut malformed = Raw::default();
    let mut data = b"3 x\n".to_vec();
    data.extend(pax_data(&[("size", b"10")]));
    malformed
        .entry(b"PaxHeaders/x", b'x', &data)
        .entry(b"f", b'0', b"header size")
        .entry(b"g", b'0', b"");
    agrees(&malformed.end());

    // The size applies past long names to the entry they describe, and
    // not to a global header, which ends the group.
    let bytes = Raw::default()
        .pax(b'x', &[("size", b"600")])
        .long(b'L', b"a/long/name")
        .header(b"x", b'0', SizeField::Octal(0), Form::Ustar)
        .data(&[7; 600])
        .pax(b'x', &[("size", b"9999")])
        .pax(b'g', &[("comment", b"hi")])
        .entry(b"plain", b'0', b"abc")
        .end();
    agrees(&bytes);
}

#[test]
fn headers_tar_does_not_take_as_extensions_agree() {
    // A pre-POSIX header typed `x` or `L` is yielded as an entry: its
    // records describe nothing, and the next header's size stands.
    let mut raw = Raw::default();
    let data = pax_data(&[("size", b"0")]);
    raw.header(b"old", b'x', SizeField::Octal(data.len() as u64), Form::Old)
        .data(&data)
        .entry(b"f", b'0', b"not empty")
        .header(b"oldlong", b'L', SizeField::Octal(4), Form::Old)
        .data(b"abc\0")
        .entry(b"g", b'0', b"z");
    agrees(&raw.end());
}

#[test]
fn gnu_sparse_files_with_extension_blocks_agree() {
    let mut raw = Raw::default();
    raw.entry(b"before", b'0', b"1");
    sparse(&mut raw);
    raw.entry(b"after", b'0', b"2");
    agrees(&raw.end());
}

#[test]
fn base_256_sizes_and_trailing_blocks_agree() {
    let bytes = Raw::default()
        .header(b"big", b'0', SizeField::Base256(600), Form::Gnu)
        .data(&[1; 600])
        .long(b'L', b"x")
        .header(b"y", b'0', SizeField::Base256(0), Form::Gnu)
        .end();
    agrees(&bytes);
    // Whatever follows the end blocks is no header: tar stops there.
    let mut trailing = bytes.clone();
    trailing.extend(Raw::default().long(b'L', &vec![b'x'; 2 << 20]).out.clone());
    trailing.extend([0xff; 700]);
    agrees(&trailing);
}

// ---------------------------------------------------------------------------
// What the guard refuses

#[test]
fn oversized_extension_entries_are_refused_before_tar_reads_them() {
    for (typeflag, what) in [
        (b'L', "a GNU long name"),
        (b'K', "a GNU long link name"),
        (b'x', "a PAX extended header"),
        (b'g', "a PAX global header"),
    ] {
        let mut raw = Raw::default();
        raw.entry(b"first", b'0', b"ok")
            .header(
                b"././@LongLink",
                typeflag,
                SizeField::Octal(3 << 30),
                Form::Gnu,
            )
            .data(&[b'a'; 4096]);
        let bytes = raw.end();
        let message = refuses(&bytes, WIDE);
        assert_eq!(
            message,
            format!("{what} of 3221225472 bytes (limit 1048576)"),
            "{}",
            typeflag as char
        );
        // Nothing of the refused header reaches tar.
        let mut guard = Guard::with_limits(&bytes[..], WIDE);
        let mut out = Vec::new();
        let err = io::copy(&mut guard, &mut out).unwrap_err();
        assert!(exceeded(&err).is_some(), "{err}");
        assert_eq!(out.len(), 1024);
        assert!(guard.read(&mut [0; 10]).is_err(), "a refusal sticks");
    }
    // In base-256 too; and exactly the limit is fine.
    let bytes = Raw::default()
        .header(b"x", b'L', SizeField::Base256(MAX_EXTENSION + 1), Form::Gnu)
        .end();
    assert!(refuses(&bytes, WIDE).contains("1048577 bytes"));
    let name = vec![b'n'; MAX_EXTENSION as usize - 1];
    agrees(
        &Raw::default()
            .long(b'L', &name)
            .entry(b"f", b'0', b"")
            .end(),
    );
}

#[test]
fn the_entry_bound_counts_entries_not_their_extension_headers() {
    let archive = |n: usize| {
        let mut raw = Raw::default();
        for i in 0..n {
            raw.pax(b'x', &[("path", format!("p{i}").as_bytes())])
                .long(b'L', format!("long{i}").as_bytes())
                .entry(b"f", b'0', b"x");
        }
        raw.end()
    };
    let limits = Limits { entries: 100 };
    assert_eq!(agree(&archive(100), limits, &[4096]), None);
    let message = agree(&archive(101), limits, &[4096]).unwrap();
    assert_eq!(
        message,
        "more than 100 entries (limit 100; --max-layer-entries raises it)"
    );
}

#[test]
fn names_longer_than_path_max_are_refused() {
    let check = |bytes: Vec<u8>| {
        let mut archive = tar::Archive::new(Guard::with_limits(&bytes[..], WIDE));
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        names(&entry)
    };
    let name = |n: usize| vec![b'a'; n];
    assert_eq!(
        check(
            Raw::default()
                .long(b'L', &name(4096))
                .entry(b"f", b'0', b"")
                .end()
        ),
        Ok(())
    );
    let err = check(
        Raw::default()
            .long(b'L', &name(4097))
            .entry(b"f", b'0', b"")
            .end(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("a name of 4097 bytes starting \"aaaa")
            && err.to_string().ends_with("(limit 4096, PATH_MAX)"),
        "{err}"
    );
    let err = check(
        Raw::default()
            .pax(b'x', &[("linkpath", &name(5000))])
            .entry(b"l", b'2', b"")
            .end(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("a link name of 5000 bytes"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Random archives, and mutations of them

#[derive(Debug, Clone)]
enum Piece {
    File(usize, usize),
    Long(u8, usize),
    Pax(Option<u64>, usize),
    Global(usize),
    Old(u8, usize),
    Base256(usize),
    Sparse,
    Zero,
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => (1..120usize, 0..1500usize).prop_map(|(n, d)| Piece::File(n, d)),
        2 => (prop_oneof![Just(b'L'), Just(b'K')], 1..700usize).prop_map(|(t, n)| Piece::Long(t, n)),
        2 => (proptest::option::of(0..1500u64), 0..600usize).prop_map(|(s, n)| Piece::Pax(s, n)),
        1 => (0..300usize).prop_map(Piece::Global),
        1 => (prop_oneof![Just(b'x'), Just(b'L'), Just(b'0')], 0..600usize)
            .prop_map(|(t, n)| Piece::Old(t, n)),
        1 => (0..1500usize).prop_map(Piece::Base256),
        1 => Just(Piece::Sparse),
        1 => Just(Piece::Zero),
    ]
}

fn build(pieces: &[Piece]) -> (Vec<u8>, Vec<usize>) {
    let mut raw = Raw::default();
    let mut headers = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        headers.push(raw.out.len());
        let data = |n: usize| -> Vec<u8> { (0..n).map(|k| (k * 31 + i) as u8).collect() };
        match piece {
            Piece::File(name, size) => {
                raw.entry(&vec![b'f'; (*name).min(100)], b'0', &data(*size));
            }
            Piece::Long(t, n) => {
                raw.long(*t, &vec![b'n'; *n]);
            }
            Piece::Pax(size, n) => {
                let size = size.map(|s| s.to_string());
                let mut records: Vec<(&str, &[u8])> = vec![("comment", &b"c"[..]); 1];
                let path = vec![b'p'; *n];
                records.push(("path", &path));
                if let Some(size) = &size {
                    records.push(("size", size.as_bytes()));
                }
                raw.pax(b'x', &records);
            }
            Piece::Global(n) => {
                raw.pax(b'g', &[("comment", &vec![b'g'; *n])]);
            }
            Piece::Old(t, n) => {
                raw.header(b"old", *t, SizeField::Octal(*n as u64), Form::Old)
                    .data(&data(*n));
            }
            Piece::Base256(n) => {
                raw.header(b"b", b'0', SizeField::Base256(*n as u64), Form::Gnu)
                    .data(&data(*n));
            }
            Piece::Sparse => sparse(&mut raw),
            Piece::Zero => {
                raw.out.extend([0; 512]);
            }
        }
    }
    (raw.end(), headers)
}

/// A change to one header field, the checksum then set to match (or not).
#[derive(Debug, Clone)]
enum Mutation {
    Size(u64, bool),
    Typeflag(u8),
    Extended(u8),
    Magic(usize),
    Byte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..(1u64 << 34), any::<bool>()).prop_map(|(s, b)| Mutation::Size(s, b)),
        prop::sample::select(&b"0125LKxgS\0A"[..]).prop_map(Mutation::Typeflag),
        (0..3u8).prop_map(Mutation::Extended),
        (0..3usize).prop_map(Mutation::Magic),
        (0..512usize, any::<u8>()).prop_map(|(at, b)| Mutation::Byte(at, b)),
    ]
}

fn mutate(bytes: &mut [u8], at: usize, m: &Mutation) {
    let block = &mut bytes[at..at + 512];
    match m {
        Mutation::Size(size, base256) => {
            let field = &mut block[124..136];
            if *base256 {
                field.fill(0);
                field[0] = 0x80;
                field[4..].copy_from_slice(&size.to_be_bytes());
            } else {
                let text = format!("{:011o}\0", size % (1 << 33));
                field.copy_from_slice(text.as_bytes());
            }
        }
        Mutation::Typeflag(t) => block[156] = *t,
        Mutation::Extended(e) => block[482] = *e,
        Mutation::Magic(m) => block[257..265]
            .copy_from_slice([&b"ustar\x0000"[..], b"ustar  \0", b"\0\0\0\0\0\0\0\0"][*m]),
        Mutation::Byte(at, b) => block[*at] = *b,
    }
    if !matches!(m, Mutation::Byte(..)) {
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(block);
        h.set_cksum();
        block.copy_from_slice(h.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_archives_read_the_same_through_the_guard(
        pieces in prop::collection::vec(piece(), 0..12),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 0..3),
        chunk in 1..2000usize,
    ) {
        let (mut bytes, headers) = build(&pieces);
        for (which, m) in &mutations {
            if !headers.is_empty() {
                mutate(&mut bytes, headers[which.index(headers.len())], m);
            }
        }
        if let Some(refusal) = agree(&bytes, WIDE, &[chunk, 512]) {
            // Only an extension entry past its bound is refused here.
            prop_assert!(refusal.contains("(limit 1048576)"), "{}", refusal);
        }
    }
}
