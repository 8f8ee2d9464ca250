//! The fuzz engine: a mutation loop over ingot's parsers on the stable
//! toolchain, no instrumentation. Each target of `ingot::fuzz` starts from
//! its seeds (the files in `fuzz/corpus/<target>/`, the seeds built in
//! `src/fuzz.rs`, and for recipes the repository's own), and runs mutated
//! copies of them until its time is up.
//!
//! Without coverage, the engine steers by what the parser says: an input
//! whose outcome (accepted, or its error message with numbers and quoted
//! text blotted out) was not seen before joins the pool that later inputs
//! are mutated from, so inputs that get past one check are built on.
//!
//! Findings, in `--found` (default `fuzz/found`):
//! - a panic: the input as `<target>-panic-<sha256 prefix>`, with the
//!   message and backtrace beside it (`.txt`); the first input per panic
//!   location is kept, and the run goes on;
//! - an input during which the parser held more than `--max-memory` MiB
//!   at once (an allocation that an input's claims decide, not its size):
//!   `<target>-memory-<sha256 prefix>`, the first one kept; the run goes on;
//! - a hang (an input running longer than `--timeout`): the input as
//!   `<target>-hang-<sha256 prefix>`, and the engine exits at once (3);
//! - an abort (allocation failure, stack overflow) kills the process: the
//!   input is still in `.current-<target>`, written before every run;
//!   `scripts/fuzz` names it `<target>-crash-<sha256 prefix>`.
//!
//! Exit status: 0 without findings, 1 with findings, 2 on bad usage, 3 on a
//! hang. The same `--seed` replays the same inputs (with `--runs`, exactly
//! the same session).
//!
//! ```sh
//! cargo run --release --example fuzz -- --target all --seconds 10 --seed 1
//! cargo run --release --example fuzz -- --target deb --replay fuzz/found/deb-panic-0123abcd
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use ingot::fuzz::{TARGETS, Target};
use sha2::{Digest as _, Sha256};

#[derive(Parser, Debug)]
#[command(about = "Mutation fuzzing of ingot's parsers (see examples/fuzz.rs)")]
struct Args {
    /// A target (see --list), or `all`.
    #[arg(long, default_value = "all")]
    target: String,
    /// Seconds to fuzz each target.
    #[arg(long, default_value = "10", value_parser = seconds)]
    seconds: Duration,
    /// Stops each target after this many mutated inputs as well.
    #[arg(long)]
    runs: Option<u64>,
    /// The random generator's seed: the same seed gives the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Saved seeds, one directory per target.
    #[arg(long, default_value = "fuzz/corpus")]
    corpus: PathBuf,
    /// Where findings are written.
    #[arg(long, default_value = "fuzz/found")]
    found: PathBuf,
    /// Seconds an input may run before it is a hang.
    #[arg(long, default_value = "5", value_parser = seconds)]
    timeout: Duration,
    /// The largest input made, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_len: usize,
    /// MiB a parser may hold at once while it reads one input.
    #[arg(long, default_value_t = 256)]
    max_memory: usize,
    /// Lists the targets, one a line, and exits.
    #[arg(long)]
    list: bool,
    /// Runs these files through --target once each, panics not caught,
    /// and prints each outcome.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
}

fn seconds(s: &str) -> Result<Duration, String> {
    let n: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Duration::try_from_secs_f64(n).map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for t in TARGETS {
            println!("{}", t.name);
        }
        return ExitCode::SUCCESS;
    }
    let targets: Vec<&'static Target> = match args.target.as_str() {
        "all" => TARGETS.iter().collect(),
        name => match ingot::fuzz::target(name) {
            Some(t) => vec![t],
            None => {
                eprintln!("fuzz: no target {name:?}; --list shows them");
                return ExitCode::from(2);
            }
        },
    };
    if !args.replay.is_empty() {
        return replay(&targets, &args.replay);
    }
    if let Err(e) = std::fs::create_dir_all(&args.found) {
        eprintln!("fuzz: creating {}: {e}", args.found.display());
        return ExitCode::from(2);
    }
    let watch = Watch::start(args.found.clone(), args.timeout);
    install_panic_hook();
    let mut findings = 0;
    for target in targets {
        match fuzz(target, &args, &watch) {
            Ok(n) => findings += n,
            Err(e) => {
                eprintln!("fuzz: {}: {e}", target.name);
                return ExitCode::from(2);
            }
        }
    }
    if findings == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("fuzz: {findings} finding(s) in {}", args.found.display());
        ExitCode::FAILURE
    }
}

fn replay(targets: &[&'static Target], files: &[PathBuf]) -> ExitCode {
    let [target] = targets else {
        eprintln!("fuzz: --replay needs one --target");
        return ExitCode::from(2);
    };
    for file in files {
        let input = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("fuzz: reading {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        let start = Instant::now();
        let held = memory::reset_peak();
        let outcome = (target.run)(&input);
        let took = start.elapsed().as_secs_f64();
        let used = memory::peak().saturating_sub(held) >> 20;
        match outcome {
            Ok(()) => println!("{}: accepted ({took:.3} s, {used} MiB)", file.display()),
            Err(e) => println!("{}: refused ({took:.3} s, {used} MiB): {e}", file.display()),
        }
    }
    ExitCode::SUCCESS
}

// --- one target ---------------------------------------------------------

/// Fuzzes one target for its time; returns its number of findings.
fn fuzz(target: &'static Target, args: &Args, watch: &Watch) -> Result<usize, String> {
    let seeds = seeds(target, &args.corpus)?;
    let current = args.found.join(format!(".current-{}", target.name));
    let mut session = Session {
        target,
        found: &args.found,
        current: std::fs::File::create(&current)
            .map_err(|e| format!("creating {}: {e}", current.display()))?,
        watch,
        rng: Rng::new(args.seed ^ fnv(target.name.as_bytes())),
        pool: Pool::new(),
        max_memory: args.max_memory << 20,
        findings: BTreeMap::new(),
    };
    let mut accepted_seeds = 0;
    for seed in &seeds {
        if session.run(seed)? {
            accepted_seeds += 1;
        }
        session.pool.seed(seed.clone());
    }

    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < args.seconds && args.runs.is_none_or(|max| runs < max) {
        let mut input = session.pool.pick(&mut session.rng).to_vec();
        mutate(&mut input, &session.pool, &mut session.rng, args.max_len);
        session.run(&input)?;
        runs += 1;
    }
    let took = start.elapsed().as_secs_f64();
    std::fs::remove_file(&current).map_err(|e| format!("removing {}: {e}", current.display()))?;

    let found = session.findings.len();
    println!(
        "{:<15} {runs:>9} runs in {took:>5.1} s ({:>7.0}/s), seeds {accepted_seeds}/{} accepted, \
         {} outcomes, pool {}, {found} finding(s)",
        target.name,
        runs as f64 / took.max(1e-9),
        seeds.len(),
        session.pool.classes.len(),
        session.pool.inputs.len(),
    );
    for (what, count) in &session.findings {
        println!("  {what} ({count} input(s))");
    }
    Ok(found)
}

/// One target's run: its pool, its generator, what it found.
struct Session<'a> {
    target: &'static Target,
    found: &'a Path,
    /// `.current-<target>`, where each input is written before it runs, so
    /// that an abort leaves it. Rewritten in place, never truncated to
    /// nothing and reopened: ext4 then flushes it to disk on every run.
    current: std::fs::File,
    watch: &'a Watch,
    rng: Rng,
    pool: Pool,
    /// Bytes a parser may hold at once.
    max_memory: usize,
    /// How many inputs met each finding (a panic's location, too much
    /// memory).
    findings: BTreeMap<String, usize>,
}

impl Session<'_> {
    /// Runs one input: true if the target accepted it.
    fn run(&mut self, input: &[u8]) -> Result<bool, String> {
        self.current
            .write_all_at(input, 0)
            .and_then(|()| self.current.set_len(input.len() as u64))
            .map_err(|e| format!("writing .current-{}: {e}", self.target.name))?;
        let run = self.target.run;
        let held = memory::reset_peak();
        self.watch.begin(self.target.name);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(input)));
        self.watch.end();
        let used = memory::peak().saturating_sub(held);
        let heavy = used > self.max_memory;
        if heavy {
            let what = format!("held more than {} MiB", self.max_memory >> 20);
            let note = format!("held {} MiB at most, over {held} bytes before", used >> 20);
            self.found("memory", what, input, note)?;
        }
        match outcome {
            // Mutated again, a heavy input would be found again, slowly.
            Ok(_) if heavy => Ok(false),
            Ok(result) => {
                self.pool.offer(&class(&result), input, &mut self.rng);
                Ok(result.is_ok())
            }
            Err(_) => {
                let caught = take_panic();
                let what = format!("panicked at {}: {}", caught.location, caught.message);
                self.found("panic", what, input, caught.backtrace)?;
                Ok(false)
            }
        }
    }

    /// Counts a finding; the first input to meet it is saved, `note`
    /// beside it.
    fn found(
        &mut self,
        kind: &str,
        what: String,
        input: &[u8],
        note: String,
    ) -> Result<(), String> {
        let count = self.findings.entry(what.clone()).or_default();
        *count += 1;
        if *count > 1 {
            return Ok(());
        }
        let name = self.target.name;
        let path = self
            .found
            .join(format!("{name}-{kind}-{}", sha_prefix(input)));
        std::fs::write(&path, input)
            .and_then(|()| {
                std::fs::write(
                    path.with_extension("txt"),
                    format!("target: {name}\n{what}\n\n{note}"),
                )
            })
            .map_err(|e| format!("saving {}: {e}", path.display()))?;
        println!("  {name}: {what}\n    input saved as {}", path.display());
        Ok(())
    }
}

/// The target's seeds: the saved corpus, those built in code, and for the
/// recipe parser every recipe in the repository.
fn seeds(target: &Target, corpus: &Path) -> Result<Vec<Vec<u8>>, String> {
    let mut files = files_in(&corpus.join(target.name))?;
    if target.name == "recipe" {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["recipes", "base-images"] {
            for sub in files_in(&root.join(dir))? {
                files.push(sub.join("recipe.yaml"));
            }
        }
    }
    let mut seeds = Vec::new();
    for file in files {
        if file.is_file() {
            seeds.push(std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?);
        }
    }
    seeds.extend((target.seeds)().map_err(|e| format!("building seeds: {e}"))?);
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    Ok(seeds)
}

/// The entries of `dir`, sorted; none if it does not exist.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

/// An outcome, with what changes from input to input blotted out: numbers,
/// digests, quoted text.
fn class(result: &Result<(), String>) -> String {
    let Err(message) = result else {
        return "accepted".into();
    };
    let mut out = String::new();
    let mut word = String::new();
    let mut quoted = None;
    let mut escaped = false;
    // A word with a digit in it, or a long one of hex digits, is a number
    // or a digest.
    let flush = |word: &mut String, out: &mut String| {
        let hex = word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit());
        if hex || word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars() {
        if let Some(q) = quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => {
                    quoted = None;
                    out.push(c);
                }
                _ => {}
            }
            continue;
        }
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        match c {
            '"' | '`' => {
                quoted = Some(c);
                out.push(c);
            }
            // Input bytes shown raw, not words of a message.
            _ if !c.is_ascii_graphic() && c != ' ' => {}
            _ => out.push(c),
        }
        if out.len() >= 60 {
            return out;
        }
    }
    flush(&mut word, &mut out);
    out
}

/// The inputs mutations start from: the seeds, then every input whose
/// outcome was new, within `MAX_POOL` inputs and `MAX_POOL_BYTES` (a new
/// one then replaces a random non-seed).
struct Pool {
    inputs: Vec<Vec<u8>>,
    seeds: usize,
    bytes: usize,
    /// The outcomes seen, hashed; at most `MAX_CLASSES`, after which new
    /// outcomes no longer count as new.
    classes: std::collections::HashSet<u64>,
}

const MAX_POOL: usize = 2048;
const MAX_POOL_BYTES: usize = 128 << 20;
const MAX_CLASSES: usize = 1 << 20;

impl Pool {
    fn new() -> Pool {
        Pool {
            inputs: Vec::new(),
            seeds: 0,
            bytes: 0,
            classes: std::collections::HashSet::new(),
        }
    }

    /// Adds a seed, just run (and so offered: that copy goes).
    fn seed(&mut self, input: Vec<u8>) {
        for dropped in self.inputs.drain(self.seeds..) {
            self.bytes -= dropped.len();
        }
        self.bytes += input.len();
        self.inputs.push(input);
        self.seeds += 1;
    }

    fn offer(&mut self, class: &str, input: &[u8], rng: &mut Rng) {
        if self.classes.len() >= MAX_CLASSES || !self.classes.insert(fnv(class.as_bytes())) {
            return;
        }
        if self.inputs.len() < MAX_POOL && self.bytes + input.len() <= MAX_POOL_BYTES {
            self.bytes += input.len();
            self.inputs.push(input.to_vec());
        } else if self.inputs.len() > self.seeds {
            let at = self.seeds + rng.below(self.inputs.len() - self.seeds);
            let bytes = self.bytes - self.inputs[at].len() + input.len();
            if bytes <= MAX_POOL_BYTES {
                self.bytes = bytes;
                self.inputs[at] = input.to_vec();
            }
        }
    }

    /// Seeds half the time: the pool's discoveries must not crowd them out.
    fn pick(&self, rng: &mut Rng) -> &[u8] {
        let n = if rng.chance(2) {
            self.seeds
        } else {
            self.inputs.len()
        };
        &self.inputs[rng.below(n)]
    }

    fn other(&self, rng: &mut Rng) -> &[u8] {
        &self.inputs[rng.below(self.inputs.len())]
    }
}

// --- findings -----------------------------------------------------------

/// Counts the bytes the process holds, and the most it held since the
/// last reset: what one input made a parser allocate.
mod memory {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    static HELD: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    struct Counting;

    #[global_allocator]
    static COUNTING: Counting = Counting;

    fn grew(bytes: usize) {
        let now = HELD.fetch_add(bytes, Relaxed) + bytes;
        PEAK.fetch_max(now, Relaxed);
    }

    // SAFETY: every call goes to the system allocator as it came; only
    // the counters are added.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract, passed on.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract, passed on.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) };
            HELD.fetch_sub(layout.size(), Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract, passed on.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                HELD.fetch_sub(layout.size(), Relaxed);
                grew(new_size);
            }
            p
        }
    }

    /// Starts a new peak; returns the bytes held now.
    pub fn reset_peak() -> usize {
        let now = HELD.load(Relaxed);
        PEAK.store(now, Relaxed);
        now
    }

    pub fn peak() -> usize {
        PEAK.load(Relaxed)
    }
}

/// What the panic hook saw.
#[derive(Default)]
struct Caught {
    location: String,
    message: String,
    backtrace: String,
}

static CAUGHT: Mutex<Option<Caught>> = Mutex::new(None);

/// Keeps each panic's message, location and backtrace for the finding,
/// instead of printing them for every input that panics the same way.
fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "(unknown)".into());
        let backtrace = std::backtrace::Backtrace::force_capture().to_string();
        if let Ok(mut caught) = CAUGHT.lock() {
            *caught = Some(Caught {
                location,
                message,
                backtrace,
            });
        }
    }));
}

fn take_panic() -> Caught {
    CAUGHT
        .lock()
        .ok()
        .and_then(|mut c| c.take())
        .unwrap_or_default()
}

fn sha_prefix(input: &[u8]) -> String {
    hex::encode(&Sha256::digest(input)[..8])
}

/// The watchdog: an input running longer than `timeout` is saved as a hang
/// and ends the process.
struct Watch {
    running: Arc<Mutex<Option<(&'static str, Instant)>>>,
}

impl Watch {
    fn start(found: PathBuf, timeout: Duration) -> Watch {
        let running: Arc<Mutex<Option<(&'static str, Instant)>>> = Arc::default();
        let seen = running.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                // The lock stays held while the input is saved: the run
                // cannot end and the next input overwrite it meanwhile.
                if let Ok(running) = seen.lock()
                    && let Some((target, since)) = *running
                    && since.elapsed() > timeout
                {
                    hang(&found, target, since.elapsed());
                }
            }
        });
        Watch { running }
    }

    fn begin(&self, target: &'static str) {
        if let Ok(mut r) = self.running.lock() {
            *r = Some((target, Instant::now()));
        }
    }

    fn end(&self) {
        if let Ok(mut r) = self.running.lock() {
            *r = None;
        }
    }
}

fn hang(found: &Path, target: &str, took: Duration) -> ! {
    let current = found.join(format!(".current-{target}"));
    let input = std::fs::read(&current).unwrap_or_default();
    let path = found.join(format!("{target}-hang-{}", sha_prefix(&input)));
    match std::fs::rename(&current, &path) {
        Ok(()) => eprintln!(
            "fuzz: {target}: an input ran {:.1} s without returning; saved as {}",
            took.as_secs_f64(),
            path.display()
        ),
        Err(e) => eprintln!("fuzz: {target}: a hang; saving {}: {e}", current.display()),
    }
    let _ = std::io::stderr().flush();
    std::process::exit(3)
}

// --- mutations ----------------------------------------------------------

/// xorshift64*: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that nearby seeds start far apart and
        // the state is never 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// True one time in `n`.
    fn chance(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn maybe_pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sizes and counts that parsers get wrong: edges of bit widths and of tar's
/// 512-byte blocks and 11-digit octal fields.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    99,
    100,
    101,
    255,
    256,
    511,
    512,
    513,
    1023,
    1024,
    4096,
    65535,
    65536,
    (1 << 20) + 1,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    1 << 33,
    0o77777777777,
    (1 << 53) + 1,
    i64::MAX as u64,
    u64::MAX,
];

/// Words the formats are made of, and a few that upset parsers.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\n\n",
    b"\n ",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3",
    b":",
    b": ",
    b",",
    b"\"",
    b"'",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"-0",
    b"18446744073709551616",
    b"../",
    b"..",
    b"/",
    b"./",
    b"//",
    b".wh.",
    b".wh..wh..opq",
    b"././@LongLink",
    b"PaxHeaders.0/",
    b" path=",
    b" linkpath=",
    b" size=",
    b" mtime=",
    b" GNU.sparse.map=",
    b"ustar\x0000",
    b"ustar  \0",
    b"!<arch>\n",
    b"`\n",
    b"debian-binary",
    b"control.tar.zst",
    b"data.tar.xz",
    b"Package: ",
    b"Version: ",
    b"Depends: ",
    b"Provides: ",
    b"Pre-Depends: ",
    b" | ",
    b" (>= ",
    b" (<< 1:0~)",
    b":any",
    b"Filename: ",
    b"Size: ",
    b"SHA256: ",
    b"-----BEGIN PGP SIGNED MESSAGE-----\n",
    b"-----BEGIN PGP SIGNATURE-----\n",
    b"-----END PGP SIGNATURE-----\n",
    b"Hash: SHA512\n",
    b"- ",
    b"=",
    b"&a ",
    b"*a",
    b"<<: ",
    b"!!binary ",
    b"!tag ",
    b"---\n",
    b"~",
    b"{{ ",
    b" }}",
    b"{% ",
    b"sha256:",
    b"\"mediaType\":",
    b"application/vnd.oci.image.index.v1+json",
    b"application/vnd.oci.image.manifest.v1+json",
    b"application/vnd.docker.distribution.manifest.list.v2+json",
    b"application/vnd.oci.image.layer.v1.tar+zstd",
    b"\"size\":",
    b"\"Layers\":",
    b"blobs/sha256/",
];

/// Tar's numeric header fields: (offset, width).
const TAR_FIELDS: &[(usize, usize)] = &[
    (124, 12), // size
    (124, 12),
    (124, 12),
    (100, 8),  // mode
    (108, 8),  // uid
    (116, 8),  // gid
    (136, 12), // mtime
    (329, 8),  // devmajor
    (337, 8),  // devminor
    (148, 8),  // chksum
];

/// Entry types worth trying in a header.
const TAR_TYPES: &[u8] = b"0\x00125671LKxgSDVMN";

/// Applies a few mutations, stacked.
fn mutate(input: &mut Vec<u8>, pool: &Pool, rng: &mut Rng, max_len: usize) {
    let n = 1 + rng.below(4) * rng.below(3);
    for _ in 0..n {
        mutate_once(input, pool, rng, max_len);
    }
    // The tar reader checks header checksums: mend them most of the time, so
    // mutations inside headers reach what follows.
    if !rng.chance(4) {
        mend_tar_checksums(input);
    }
    input.truncate(max_len);
}

fn mutate_once(input: &mut Vec<u8>, pool: &Pool, rng: &mut Rng, max_len: usize) {
    let len = input.len();
    match rng.below(16) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.next() as u8;
        }
        2 if len > 0 => {
            let at = rng.below(len);
            input[at] = *rng.pick(b"\0\x01\x7f\x80\xff07 \n/.-:");
        }
        3 | 4 => tar_number(input, rng),
        5 => tar_type(input, rng),
        6 | 7 => text_number(input, rng),
        8 if len >= 8 => {
            let value = *rng.pick(INTERESTING);
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let at = rng.below(len - width + 1);
            let bytes = if rng.chance(2) {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            input[at..at + width].copy_from_slice(&bytes[..width]);
        }
        9 => {
            let at = rng.below(len + 1);
            let token = *rng.pick(TOKENS);
            if rng.chance(3) && at + token.len() <= len {
                input[at..at + token.len()].copy_from_slice(token);
            } else {
                input.splice(at..at, token.iter().copied());
            }
        }
        10 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(32);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, bytes);
        }
        11 if len > 0 => {
            let (start, end) = chunk(len, rng);
            input.drain(start..end);
        }
        12 if len > 0 => {
            let (start, end) = chunk(len, rng);
            let copy = input[start..end].to_vec();
            let at = if rng.chance(2) {
                end
            } else {
                rng.below(len + 1)
            };
            let times = if rng.chance(8) { 1 + rng.below(64) } else { 1 };
            for _ in 0..times {
                input.splice(at..at, copy.iter().copied());
            }
        }
        13 => {
            let other = pool.other(rng);
            let (keep, from) = (rng.below(len + 1), rng.below(other.len() + 1));
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
        }
        14 if len > 0 => input.truncate(rng.below(len)),
        15 => gzip_inner(input, rng, max_len),
        _ => {}
    }
}

/// A range of `0..len`, often short, sometimes whole 512-byte blocks.
fn chunk(len: usize, rng: &mut Rng) -> (usize, usize) {
    if len >= 512 && rng.chance(3) {
        let blocks = len / 512;
        let start = rng.below(blocks) * 512;
        let n = 1 + rng.below(blocks - start / 512);
        return (start, start + n * 512);
    }
    let start = rng.below(len);
    let max = if rng.chance(4) {
        len - start
    } else {
        (len - start).min(16)
    };
    (start, start + 1 + rng.below(max))
}

/// Where tar headers start: before each `ustar` magic (headers may sit at
/// any offset, inside an `ar` or a docker archive), else every 512 bytes.
fn tar_headers(input: &[u8]) -> Vec<usize> {
    let found: Vec<usize> = memchr::memmem::find_iter(input, b"ustar")
        .filter_map(|at| at.checked_sub(257))
        .filter(|at| at + 512 <= input.len())
        .collect();
    if found.is_empty() {
        (0..input.len() / 512).map(|b| b * 512).collect()
    } else {
        found
    }
}

/// Writes an interesting number into a numeric field of a tar header: in
/// octal as tar writes it, all digits without a terminator, or base-256
/// (GNU) for what octal cannot hold.
fn tar_number(input: &mut [u8], rng: &mut Rng) {
    let headers = tar_headers(input);
    if headers.is_empty() {
        return;
    }
    let at = *rng.pick(&headers);
    let (offset, width) = *rng.pick(TAR_FIELDS);
    let value = *rng.pick(INTERESTING);
    let field = &mut input[at + offset..at + offset + width];
    let octal = format!("{value:o}");
    match rng.below(4) {
        0 | 1 if octal.len() < width => {
            let text = format!("{octal:0>w$}\0", w = width - 1);
            field.copy_from_slice(text.as_bytes());
        }
        2 if octal.len() <= width => {
            let text = format!("{octal:0>width$}");
            field.copy_from_slice(text.as_bytes());
        }
        _ => {
            field.fill(0);
            field[0] = 0x80;
            let bytes = value.to_be_bytes();
            let n = bytes.len().min(width - 1);
            field[width - n..].copy_from_slice(&bytes[bytes.len() - n..]);
        }
    }
}

fn tar_type(input: &mut [u8], rng: &mut Rng) {
    let headers = tar_headers(input);
    if !headers.is_empty() {
        let at = *rng.pick(&headers);
        input[at + 156] = *rng.pick(TAR_TYPES);
    }
}

/// Replaces a run of ASCII digits (a size in JSON, an `ar` header, a
/// Packages field, a PAX record's length) with an interesting number.
fn text_number(input: &mut Vec<u8>, rng: &mut Rng) {
    if input.is_empty() {
        return;
    }
    let from = rng.below(input.len());
    let Some(start) = input[from..].iter().position(u8::is_ascii_digit) else {
        return;
    };
    let start = from + start;
    let end = input[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(input.len(), |n| start + n);
    let value = *rng.pick(INTERESTING);
    let text = match rng.below(4) {
        0 => format!("-{value}"),
        1 => value.wrapping_sub(1).to_string(),
        _ => value.to_string(),
    };
    input.splice(start..end, text.into_bytes());
}

/// Mutates what a gzip stream holds rather than its compressed bytes.
fn gzip_inner(input: &mut Vec<u8>, rng: &mut Rng, max_len: usize) {
    if !input.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    let mut inner = Vec::new();
    // A damaged stream gives what it had before the damage.
    let _ = flate2::read::MultiGzDecoder::new(&input[..])
        .take(8 << 20)
        .read_to_end(&mut inner);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let written = if rng.chance(4096) {
        gzip_bomb(&mut e, inner, rng, max_len)
    } else {
        for _ in 0..1 + rng.below(3) {
            let len = inner.len();
            match rng.below(4) {
                0 => tar_number(&mut inner, rng),
                1 => tar_type(&mut inner, rng),
                2 if len > 0 => {
                    let at = rng.below(len);
                    inner[at] = rng.next() as u8;
                }
                _ => {
                    let at = rng.below(len + 1);
                    inner.splice(at..at, rng.pick(TOKENS).iter().copied());
                }
            }
        }
        mend_tar_checksums(&mut inner);
        e.write_all(&inner)
    };
    if written.is_ok()
        && let Ok(gz) = e.finish()
    {
        *input = gz;
    }
}

/// A decompression bomb: a header, most often of an extension entry (a
/// GNU long name, PAX records), claiming from 1 MiB to 1 GiB, and that
/// many zeros after it, which compress a thousandfold.
fn gzip_bomb(
    e: &mut flate2::write::GzEncoder<Vec<u8>>,
    mut inner: Vec<u8>,
    rng: &mut Rng,
    max_len: usize,
) -> std::io::Result<()> {
    let Some(&at) = rng.maybe_pick(&tar_headers(&inner)) else {
        return e.write_all(&inner);
    };
    let zeros: u64 = (1 << 20) << rng.below(11);
    inner[at + 156] = *rng.pick(b"LKxg0");
    let size = format!("{zeros:011o}\0");
    inner[at + 124..at + 136].copy_from_slice(size.as_bytes());
    mend_tar_checksums(&mut inner[at..at + 512]);
    e.write_all(&inner[..at + 512])?;
    let chunk = vec![0u8; 1 << 20];
    // Zeros past what the input may hold are cut off anyway.
    for _ in 0..zeros >> 20 {
        e.write_all(&chunk)?;
        if e.get_ref().len() > max_len {
            break;
        }
    }
    e.write_all(&inner[at + 512..])
}

/// Recomputes the checksum of every header found by its `ustar` magic.
fn mend_tar_checksums(input: &mut [u8]) {
    for at in memchr::memmem::find_iter(input, b"ustar")
        .filter_map(|m| m.checked_sub(257))
        .filter(|at| at + 512 <= input.len())
        .collect::<Vec<_>>()
    {
        let header = &mut input[at..at + 512];
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn pool(inputs: &[&[u8]]) -> Pool {
        let mut pool = Pool::new();
        for input in inputs {
            pool.seed(input.to_vec());
        }
        pool
    }

    #[test]
    fn flags_parse_into_durations_and_refuse_nonsense() {
        let args = Args::try_parse_from(["fuzz", "--target", "deb", "--seconds", "1.5"]).unwrap();
        assert_eq!(args.seconds, Duration::from_millis(1500));
        assert_eq!(args.timeout, Duration::from_secs(5));
        for bad in ["-1", "nan", "soon"] {
            assert!(
                Args::try_parse_from(["fuzz", "--seconds", bad]).is_err(),
                "{bad}"
            );
        }
    }

    /// The engine runs mutations outside `catch_unwind`: one that panics
    /// ends the session. Edge sizes, tar headers, gzip and splices.
    #[test]
    fn mutations_never_panic_and_keep_to_the_size_cap() {
        let tar = ingot::fuzz::layer_tar().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let edges: [&[u8]; 6] = [b"", b"x", &[0; 511], &[0; 512], &tar, &gz];
        let pool = pool(&edges);
        let mut rng = Rng::new(5);
        for round in 0..5_000 {
            let mut input = edges[round % edges.len()].to_vec();
            mutate(&mut input, &pool, &mut rng, 4096);
            assert!(input.len() <= 4096);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let tar = ingot::fuzz::layer_tar().unwrap();
        let pool = pool(&[&tar]);
        let inputs = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| {
                    let mut input = tar.clone();
                    mutate(&mut input, &pool, &mut rng, 1 << 20);
                    input
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(inputs(1), inputs(1));
        assert_ne!(inputs(1), inputs(2));
    }

    /// A header whose size was set and whose checksum was mended still
    /// reads as a header, with the size written.
    #[test]
    fn tar_sizes_are_written_where_tar_reads_them() {
        let tar = ingot::fuzz::layer_tar().unwrap();
        let mut rng = Rng::new(9);
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let mut input = tar.clone();
            tar_number(&mut input, &mut rng);
            mend_tar_checksums(&mut input);
            for at in tar_headers(&input) {
                let header = tar::Header::from_byte_slice(&input[at..at + 512]);
                assert_eq!(
                    header.cksum().unwrap(),
                    u32::from_str_radix(
                        std::str::from_utf8(&input[at + 148..at + 154]).unwrap(),
                        8
                    )
                    .unwrap()
                );
                if let Ok(size) = header.size() {
                    seen.insert(size);
                }
            }
        }
        for size in [0, 511, 512, 1 << 31, 1 << 33, 0o77777777777] {
            assert!(seen.contains(&size), "{size} never written: {seen:?}");
        }
    }

    #[test]
    fn outcomes_blot_out_numbers_digests_and_quoted_input() {
        let class = |m: &str| class(&Err(m.to_string()));
        assert_eq!(
            class("line 12: bad \"x\\\"y\""),
            class("line 3: bad \"zz\"")
        );
        assert_eq!(
            class("blob sha256:0a1b2c3d4e5f6789: 17 bytes"),
            class("blob sha256:ffeeddccbbaa: 2 bytes")
        );
        assert_ne!(class("missing field"), class("unknown field"));
        assert_eq!(super::class(&Ok(())), "accepted");
    }
}
