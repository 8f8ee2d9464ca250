//! Progress for stderr, for builds and transfers: files and bytes done,
//! total and rate, only for work long enough to need it (a second). Two
//! displays:
//! - on a terminal ([`Progress::terminal`]), one line redrawn in place
//!   (indicatif), cleared when the work ends and replaced by a closing
//!   line; log lines printed meanwhile go above it ([`Progress::suspend`]);
//! - elsewhere ([`Progress::new`]), plain lines through a sink, at most one
//!   a second, for logs that keep every line.
//!
//! The sink is handed in (cli.rs writes to stderr unless `--quiet` or
//! `--progress none`), so the result on stdout stays alone and tests can
//! capture the lines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The least time between two plain lines; the first line (or the
/// terminal's line) waits this long too, so work shorter than this prints
/// nothing.
const INTERVAL: Duration = Duration::from_secs(1);

type Sink = Box<dyn Fn(&str) + Send>;

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &self.inner {
            None => "Progress(quiet)",
            Some(_) => "Progress",
        })
    }
}

/// A shared progress meter; clones report to the same one. `quiet()`
/// reports nothing.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Option<Arc<Mutex<State>>>,
}

struct State {
    sink: Sink,
    what: String,
    total: u64,
    done: u64,
    files: u64,
    started: Instant,
    last_line: Option<Instant>,
    /// On a terminal: the line of the work under way, hidden until it has
    /// taken [`INTERVAL`].
    bar: Option<Bar>,
    terminal: bool,
    /// Log lines only: progress is counted but never shown.
    logs_only: bool,
    /// How long work runs before its progress shows, and between lines.
    interval: Duration,
}

struct Bar {
    bar: ProgressBar,
    shown: bool,
}

impl Progress {
    /// Reports through `sink`, one plain line per report.
    pub fn new(sink: impl Fn(&str) + Send + 'static) -> Progress {
        Progress::with(Box::new(sink), false)
    }

    /// Reports on stderr as one line redrawn in place: for a terminal.
    pub fn terminal() -> Progress {
        Progress::with(Box::new(|line| eprintln!("{line}")), true)
    }

    /// Shows no progress, but passes [`Progress::log`] lines to `sink`
    /// (`--progress none` without `--quiet`).
    pub fn logs_only(sink: impl Fn(&str) + Send + 'static) -> Progress {
        let progress = Progress::with(Box::new(sink), false);
        if let Some(state) = &progress.inner {
            lock(state).logs_only = true;
        }
        progress
    }

    fn with(sink: Sink, terminal: bool) -> Progress {
        Progress {
            inner: Some(Arc::new(Mutex::new(State {
                sink,
                what: String::new(),
                total: 0,
                done: 0,
                files: 0,
                started: Instant::now(),
                last_line: None,
                bar: None,
                terminal,
                logs_only: false,
                interval: INTERVAL,
            }))),
        }
    }

    /// This progress, showing work once it has run `interval` (not
    /// [`INTERVAL`]) and a line at most every `interval`.
    pub fn every(self, interval: Duration) -> Progress {
        if let Some(state) = &self.inner {
            lock(state).interval = interval;
        }
        self
    }

    pub fn quiet() -> Progress {
        Progress { inner: None }
    }

    /// Starts a transfer of `total` bytes described as `what`
    /// ("pushing docker://…"); 0 when it is not known yet.
    pub fn start(&self, what: &str, total: u64) {
        self.start_at(what, total, Instant::now());
    }

    /// Adds `n` bytes to the total: work found while it is under way.
    pub fn add_total(&self, n: u64) {
        if let Some(state) = &self.inner {
            let mut s = lock(state);
            s.total += n;
            if let Some(bar) = &s.bar {
                bar.bar.inc_length(n);
            }
        }
    }

    /// Counts `n` more bytes done.
    pub fn advance(&self, n: u64) {
        self.advance_at(n, Instant::now());
    }

    /// Counts one more file done (builds count files as well as bytes).
    pub fn advance_file(&self) {
        if let Some(state) = &self.inner {
            let mut s = lock(state);
            s.files += 1;
            if let Some(bar) = &s.bar {
                bar.bar.set_prefix(files(s.files));
            }
        }
    }

    /// Ends the transfer: a closing line if any progress was shown.
    pub fn finish(&self) {
        self.finish_at(Instant::now());
    }

    /// Prints one line now, whatever the interval (a log line), above the
    /// terminal's line if one is shown.
    pub fn log(&self, line: &str) {
        if let Some(state) = &self.inner {
            let s = lock(state);
            match &s.bar {
                Some(bar) if bar.shown => bar.bar.suspend(|| (s.sink)(line)),
                _ => (s.sink)(line),
            }
        }
    }

    /// Runs `f` (which prints to stderr) with the terminal's line cleared
    /// and drawn again after, so the two do not mix; quiet and plain
    /// progress just run it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let bar = self
            .inner
            .as_ref()
            .and_then(|state| lock(state).bar.as_ref().map(|b| b.bar.clone()));
        match bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn start_at(&self, what: &str, total: u64, now: Instant) {
        if let Some(state) = &self.inner {
            let mut s = lock(state);
            if let Some(old) = s.bar.take() {
                old.bar.finish_and_clear();
            }
            s.what = what.to_string();
            s.total = total;
            s.done = 0;
            s.files = 0;
            s.started = now;
            s.last_line = None;
            if s.terminal {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
                bar.set_style(style());
                bar.set_message(what.to_string());
                s.bar = Some(Bar { bar, shown: false });
            }
        }
    }

    fn advance_at(&self, n: u64, now: Instant) {
        let Some(state) = &self.inner else {
            return;
        };
        let mut s = lock(state);
        s.done += n;
        if s.logs_only {
            return;
        }
        let since_start = now.saturating_duration_since(s.started);
        let interval = s.interval;
        if let Some(bar) = &mut s.bar {
            bar.bar.inc(n);
            if !bar.shown && since_start >= interval {
                bar.shown = true;
                bar.bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            return;
        }
        let since = now.saturating_duration_since(s.last_line.unwrap_or(s.started));
        if since >= interval {
            s.last_line = Some(now);
            let of = match s.total {
                0 => String::new(),
                total => format!(" of {}", bytes(total)),
            };
            let line = format!(
                "{}: {}{}{of} ({})",
                s.what,
                files(s.files),
                bytes(s.done),
                rate(s.done, since_start)
            );
            (s.sink)(&line);
        }
    }

    fn finish_at(&self, now: Instant) {
        let Some(state) = &self.inner else {
            return;
        };
        let mut s = lock(state);
        let shown = match s.bar.take() {
            Some(bar) => {
                bar.bar.finish_and_clear();
                bar.shown
            }
            None => s.last_line.take().is_some(),
        };
        if shown {
            let took = now.saturating_duration_since(s.started);
            let line = format!(
                "{}: {}{} in {:.1} s ({})",
                s.what,
                files(s.files),
                bytes(s.done),
                took.as_secs_f64(),
                rate(s.done, took)
            );
            (s.sink)(&line);
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// `3 files, `, or nothing before the first.
fn files(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!("{n} files, "),
    }
}

/// The terminal's line: what, files, bytes of the total, rate, the time
/// left and a bar as wide as the rest of the terminal's width leaves.
fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg}: {prefix}{binary_bytes} of {binary_total_bytes} ({binary_bytes_per_sec}, {eta} left) [{wide_bar}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// `1.5 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn rate(done: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", bytes((done as f64 / secs) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured() -> (Progress, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let p = Progress::new(move |l: &str| sink.lock().unwrap().push(l.to_string()));
        (p, lines)
    }

    #[test]
    fn quick_transfers_print_nothing() {
        let (p, lines) = captured();
        let t0 = Instant::now();
        p.start_at("pushing x", 100, t0);
        p.advance_at(100, t0 + Duration::from_millis(100));
        p.finish_at(t0 + Duration::from_millis(100));
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn long_work_prints_at_most_a_line_a_second() {
        let (p, lines) = captured();
        let t0 = Instant::now();
        p.start_at("pushing x", 10 << 20, t0);
        // 100 updates over 5 seconds.
        for i in 1..=100u64 {
            p.advance_at(100 << 10, t0 + Duration::from_millis(i * 50));
        }
        p.finish_at(t0 + Duration::from_secs(5));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 5 + 1, "{lines:#?}");
        assert_eq!(lines[0], "pushing x: 2.0 MiB of 10.0 MiB (2.0 MiB/s)");
        assert_eq!(lines[5], "pushing x: 9.8 MiB in 5.0 s (2.0 MiB/s)");
    }

    #[test]
    fn builds_count_files_too() {
        let (p, lines) = captured();
        let t0 = Instant::now();
        p.start_at("layer app", 4 << 20, t0);
        for _ in 0..3 {
            p.advance_file();
        }
        p.advance_at(2 << 20, t0 + Duration::from_millis(1500));
        assert_eq!(
            lines.lock().unwrap()[0],
            "layer app: 3 files, 2.0 MiB of 4.0 MiB (1.3 MiB/s)"
        );
    }

    #[test]
    fn logs_only_passes_log_lines_and_no_progress() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let p = Progress::logs_only(move |l: &str| sink.lock().unwrap().push(l.to_string()));
        let t0 = Instant::now();
        p.start_at("pushing x", 10, t0);
        p.advance_at(5, t0 + Duration::from_secs(3));
        p.log("a log line");
        p.finish_at(t0 + Duration::from_secs(4));
        assert_eq!(*lines.lock().unwrap(), ["a log line"]);
    }

    #[test]
    fn an_unknown_total_is_left_out() {
        let (p, lines) = captured();
        let t0 = Instant::now();
        p.start_at("reading base layers", 0, t0);
        p.advance_at(3 << 20, t0 + Duration::from_secs(2));
        assert_eq!(
            lines.lock().unwrap()[0],
            "reading base layers: 3.0 MiB (1.5 MiB/s)"
        );
    }

    #[test]
    fn quiet_is_silent_and_sizes_read_well() {
        let p = Progress::quiet();
        p.start("x", 1);
        p.advance(1);
        p.log("nothing");
        p.finish();
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
