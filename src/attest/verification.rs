//! The package verification code of SPDX 2.3 (clause 7.9): the SHA-1 of
//! the files' SHA-1s in lowercase hex, sorted and concatenated.
//!
//! The sort needs every SHA-1 at once: 20 bytes a file, 6 MB at 300,000
//! files, the largest thing an SBOM of a build held (issue 19). They are
//! sorted instead in runs of [`RUN`], spilled to an anonymous temporary
//! file, and merged: memory is one run and a small buffer per run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

use sha1::{Digest as _, Sha1};

/// SHA-1s sorted in memory at a time: 320 KiB.
const RUN: usize = 16 << 10;

/// SHA-1s a run's cursor reads from the spill file at a time: 5 KiB.
const READ_AHEAD: usize = 256;

const SUM: usize = 20;

/// The verification code of the files whose SHA-1s are pushed, in any
/// order.
pub struct Code {
    run: Vec<[u8; SUM]>,
    run_len: usize,
    /// The runs sorted so far, one after the other.
    spilled: Option<BufWriter<File>>,
    runs: u64,
}

impl Default for Code {
    fn default() -> Code {
        Code::with_runs_of(RUN)
    }
}

impl Code {
    fn with_runs_of(run_len: usize) -> Code {
        Code {
            run: Vec::new(),
            run_len,
            spilled: None,
            runs: 0,
        }
    }

    pub fn push(&mut self, sum: [u8; SUM]) -> io::Result<()> {
        self.run.push(sum);
        if self.run.len() == self.run_len {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the run, sorted (SHA-1s sort as their lowercase hex does),
    /// after those spilled before it.
    fn spill(&mut self) -> io::Result<()> {
        self.run.sort_unstable();
        let out = match &mut self.spilled {
            Some(out) => out,
            None => self.spilled.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        for sum in self.run.drain(..) {
            out.write_all(&sum)?;
        }
        self.runs += 1;
        Ok(())
    }

    /// The code in lowercase hex; None when no SHA-1 was pushed.
    pub fn finish(mut self) -> io::Result<Option<String>> {
        let mut code = Sha1::new();
        let mut pushed = false;
        let mut hash = |sum: &[u8; SUM]| {
            let mut text = [0; 2 * SUM];
            code.update(crate::digest::hex_in(sum, &mut text));
            pushed = true;
        };
        if self.spilled.is_none() {
            self.run.sort_unstable();
            self.run.iter().for_each(&mut hash);
        } else {
            if !self.run.is_empty() {
                self.spill()?;
            }
            if let Some(out) = self.spilled.take() {
                let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
                merge(&file, self.run_len, self.runs, &mut hash)?;
            }
        }
        Ok(pushed.then(|| hex::encode(code.finalize())))
    }
}

/// Hands `each` the SHA-1s of `runs` sorted runs of `run_len` in `file`
/// (the last may be shorter) in order.
fn merge(
    file: &File,
    run_len: usize,
    runs: u64,
    each: &mut dyn FnMut(&[u8; SUM]),
) -> io::Result<()> {
    let size = file.metadata()?.len();
    let run_bytes = (run_len * SUM) as u64;
    let mut cursors: Vec<Cursor> = (0..runs)
        .map(|i| Cursor {
            at: i * run_bytes,
            end: ((i + 1) * run_bytes).min(size),
            read: Vec::new(),
            next: 0,
        })
        .collect();
    let mut heads = BinaryHeap::new();
    for (i, cursor) in cursors.iter_mut().enumerate() {
        if let Some(sum) = cursor.next(file)? {
            heads.push(Reverse((sum, i)));
        }
    }
    while let Some(Reverse((sum, i))) = heads.pop() {
        each(&sum);
        if let Some(next) = cursors[i].next(file)? {
            heads.push(Reverse((next, i)));
        }
    }
    Ok(())
}

/// Where one run is read up to, with what was read ahead of it.
struct Cursor {
    at: u64,
    end: u64,
    read: Vec<[u8; SUM]>,
    next: usize,
}

impl Cursor {
    fn next(&mut self, file: &File) -> io::Result<Option<[u8; SUM]>> {
        if self.next == self.read.len() {
            let left = (self.end - self.at) / SUM as u64;
            let take = left.min(READ_AHEAD as u64) as usize;
            if take == 0 {
                return Ok(None);
            }
            // Read in place: the buffer is the SHA-1s, back to back.
            self.read.resize(take, [0; SUM]);
            file.read_exact_at(self.read.as_flattened_mut(), self.at)?;
            self.at += (take * SUM) as u64;
            self.next = 0;
        }
        self.next += 1;
        Ok(Some(self.read[self.next - 1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code as clause 7.9 words it, everything held.
    fn held(sums: &[[u8; SUM]]) -> Option<String> {
        let mut text: Vec<String> = sums.iter().map(hex::encode).collect();
        text.sort();
        (!text.is_empty()).then(|| hex::encode(Sha1::digest(text.concat())))
    }

    fn sums(n: usize) -> Vec<[u8; SUM]> {
        // Some alike, so that equal SHA-1s meet across runs.
        (0..n)
            .map(|i| Sha1::digest((i % 700).to_le_bytes()).into())
            .collect()
    }

    fn code(sums: &[[u8; SUM]], run_len: usize) -> Option<String> {
        let mut code = Code::with_runs_of(run_len);
        for sum in sums {
            code.push(*sum).unwrap();
        }
        code.finish().unwrap()
    }

    #[test]
    fn spilled_runs_merge_to_the_code_of_all_held() {
        for n in [0, 1, 2, 63, 64, 65, 1000] {
            let sums = sums(n);
            for run_len in [1, 2, 64, 100, RUN] {
                assert_eq!(
                    code(&sums, run_len),
                    held(&sums),
                    "{n} sums in runs of {run_len}"
                );
            }
        }
    }

    #[test]
    fn no_file_is_no_code() {
        assert_eq!(code(&[], 4), None);
    }
}
