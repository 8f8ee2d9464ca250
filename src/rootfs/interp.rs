//! The interpreter the kernel loads to run a file: the one an ELF
//! program's `PT_INTERP` program header names (as
//! `/lib64/ld-linux-x86-64.so.2` for a dynamically linked program), or a
//! script's `#!` line (`execve(2)`, "Interpreter scripts").
//!
//! Only a file's first [`HEAD`] bytes are read: the ELF header, the program
//! headers and the interpreter's name sit there in every linker's layout.
//! A file whose headers lie further in says nothing (the System V ABI,
//! "Program Header"; `elf(5)`).

/// How much of a file is kept to read its headers.
pub const HEAD: usize = 16 * 1024;

/// `PT_INTERP`: the program header naming the interpreter.
const PT_INTERP: u32 = 3;

/// The longest interpreter name taken (the kernel's limit is PATH_MAX).
const MAX_INTERP: usize = 4096;

/// The kernel reads this much of a script for its `#!` line
/// (`BINPRM_BUF_SIZE`).
const SCRIPT_LINE: usize = 256;

/// Whether `bytes` start as an ELF file does.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The interpreter a file names, read from its first bytes `head`: an ELF
/// program's or a script's. None for any other file, a static program, or
/// an ELF file whose program headers or interpreter lie past `head`.
pub fn interpreter(head: &[u8]) -> Option<String> {
    if head.starts_with(b"#!") {
        return script_interpreter(head);
    }
    elf_interpreter(head)
}

/// The first word of a `#!` line, as Linux's binfmt_script reads it:
/// blanks skipped, the word ends at a blank, a newline or a NUL.
fn script_interpreter(head: &[u8]) -> Option<String> {
    let line = &head[2..head.len().min(SCRIPT_LINE)];
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    let word = line
        .split(|b| matches!(b, b' ' | b'\t' | 0))
        .find(|w| !w.is_empty())?;
    Some(String::from_utf8_lossy(word).into_owned())
}

/// The interpreter an ELF program names in its `PT_INTERP` header.
fn elf_interpreter(head: &[u8]) -> Option<String> {
    if !is_elf(head) {
        return None;
    }
    let wide = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match head.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let read = |at: usize, len: usize| -> Option<u64> {
        let bytes = head.get(at..at.checked_add(len)?)?;
        let mut value = 0u64;
        for i in 0..len {
            let b = if big { bytes[i] } else { bytes[len - 1 - i] };
            value = (value << 8) | u64::from(b);
        }
        Some(value)
    };
    // Offsets of e_phoff, e_phentsize and e_phnum, and of p_offset and
    // p_filesz in a program header, for each class.
    let (phoff, phentsize, phnum, word) = if wide {
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?, 8)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?, 4)
    };
    let (off_at, size_at) = if wide { (8, 32) } else { (4, 16) };
    let phoff = usize::try_from(phoff).ok()?;
    let phentsize = usize::try_from(phentsize).ok()?;
    if phentsize < size_at + word {
        return None;
    }
    for i in 0..usize::try_from(phnum).ok()? {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if read(at, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        let start = usize::try_from(read(at + off_at, word)?).ok()?;
        let len = usize::try_from(read(at + size_at, word)?).ok()?;
        let bytes = head.get(start..start.checked_add(len.min(MAX_INTERP))?)?;
        let name = bytes.split(|b| *b == 0).next().unwrap_or_default();
        return (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
    }
    None
}

/// The first bytes of a file that starts as an ELF program or a script,
/// kept as its content streams past: [`HEAD`] of a program, the `#!` line
/// of a script. Other files keep nothing.
#[derive(Debug, Default)]
pub struct Head {
    bytes: Vec<u8>,
    /// Whether the file was found to be neither.
    other: bool,
}

impl Head {
    pub fn feed(&mut self, chunk: &[u8]) {
        let limit = if self.bytes.starts_with(b"#!") {
            SCRIPT_LINE
        } else {
            HEAD
        };
        if self.other || self.bytes.len() >= limit {
            return;
        }
        let room = limit - self.bytes.len();
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = self.bytes.len();
        let elf = self.bytes[..n.min(4)] == b"\x7fELF"[..n.min(4)];
        let script = self.bytes[..n.min(2)] == b"#!"[..n.min(2)];
        if !elf && !script {
            self.other = true;
            self.bytes = Vec::new();
        } else if script && n > SCRIPT_LINE {
            self.bytes.truncate(SCRIPT_LINE);
        }
    }

    /// The interpreter the file names, if it names one.
    pub fn interpreter(&self) -> Option<String> {
        interpreter(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with one PT_LOAD and one
    /// PT_INTERP program header, naming `interp`.
    fn elf64(interp: &str) -> Vec<u8> {
        let mut f = vec![0u8; 0x40];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        let at = 0x40 + 2 * 56;
        for (p_type, offset, size) in [(1u32, 0u64, 0u64), (3, at as u64, interp.len() as u64 + 1)]
        {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&p_type.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            f.extend(ph);
        }
        f.extend(interp.as_bytes());
        f.push(0);
        f
    }

    /// A 32-bit big-endian one, as on mips or ppc.
    fn elf32_big(interp: &str) -> Vec<u8> {
        let mut f = vec![0u8; 0x34];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 2;
        f[0x1c..0x20].copy_from_slice(&0x34u32.to_be_bytes());
        f[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes());
        f[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        let mut ph = vec![0u8; 32];
        ph[..4].copy_from_slice(&3u32.to_be_bytes());
        ph[4..8].copy_from_slice(&(0x34u32 + 32).to_be_bytes());
        ph[16..20].copy_from_slice(&(interp.len() as u32 + 1).to_be_bytes());
        f.extend(ph);
        f.extend(interp.as_bytes());
        f.push(0);
        f
    }

    #[test]
    fn reads_the_interpreter_of_both_classes_and_byte_orders() {
        let ld = "/lib64/ld-linux-x86-64.so.2";
        assert_eq!(interpreter(&elf64(ld)).as_deref(), Some(ld));
        assert_eq!(
            interpreter(&elf32_big("/lib/ld.so.1")).as_deref(),
            Some("/lib/ld.so.1")
        );
        let mut head = Head::default();
        for chunk in elf64(ld).chunks(3) {
            head.feed(chunk);
        }
        assert_eq!(head.interpreter().as_deref(), Some(ld));
    }

    #[test]
    fn static_truncated_and_other_files_name_none() {
        let mut static_program = elf64("x");
        static_program[0x38] = 1; // only the PT_LOAD header
        assert_eq!(interpreter(&static_program), None);
        let whole = elf64("/lib/ld.so");
        for cut in [3, 0x20, 0x41, whole.len() - 4] {
            assert_eq!(interpreter(&whole[..cut]), None, "{cut}");
        }
        assert_eq!(interpreter(b"#/bin/sh\n"), None);
        // Absurd offsets and counts read nothing out of bounds.
        let mut absurd = elf64("/lib/ld.so");
        absurd[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interpreter(&absurd), None);
        let mut head = Head::default();
        head.feed(b"#/bin/sh\n");
        head.feed(&elf64("/x"));
        assert_eq!(head.interpreter(), None);
    }

    #[test]
    fn reads_a_scripts_first_word_as_the_kernel_does() {
        for (text, want) in [
            (&b"#!/bin/sh\necho\n"[..], Some("/bin/sh")),
            (b"#! \t/usr/bin/env python3 -u\n", Some("/usr/bin/env")),
            (b"#!/bin/bash", Some("/bin/bash")),
            (b"#!\n/bin/sh\n", None),
        ] {
            assert_eq!(interpreter(text).as_deref(), want, "{text:?}");
            let mut head = Head::default();
            for chunk in text.chunks(1) {
                head.feed(chunk);
            }
            assert_eq!(head.interpreter().as_deref(), want, "{text:?}");
        }
        // The kernel reads 256 bytes: a longer name is cut there.
        let long = format!("#!/{}\n", "x".repeat(400));
        assert_eq!(interpreter(long.as_bytes()).map(|s| s.len()), Some(254));
    }
}
