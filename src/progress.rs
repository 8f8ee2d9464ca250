//! Progress for stderr, for builds and transfers: files and bytes done,
//! total and rate, at most one line a second, and only for work long enough
//! to need it. The
//! sink is handed in (cli.rs writes to stderr unless `--quiet`), so the
//! result on stdout stays alone and tests can capture the lines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least time between two progress lines; the first line waits this
/// long too, so work shorter than this prints nothing.
const INTERVAL: Duration = Duration::from_secs(1);

type Sink = Box<dyn Fn(&str) + Send>;

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.is_some() {
            "Progress"
        } else {
            "Progress(quiet)"
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
}

impl Progress {
    /// Reports through `sink`, one line per call.
    pub fn new(sink: impl Fn(&str) + Send + 'static) -> Progress {
        Progress {
            inner: Some(Arc::new(Mutex::new(State {
                sink: Box::new(sink),
                what: String::new(),
                total: 0,
                done: 0,
                files: 0,
                started: Instant::now(),
                last_line: None,
            }))),
        }
    }

    pub fn quiet() -> Progress {
        Progress { inner: None }
    }

    /// Starts a transfer of `total` bytes described as `what`
    /// ("pushing docker://…").
    pub fn start(&self, what: &str, total: u64) {
        self.start_at(what, total, Instant::now());
    }

    /// Adds `n` bytes to the total: work found while it is under way.
    pub fn add_total(&self, n: u64) {
        if let Some(state) = &self.inner {
            state.lock().unwrap_or_else(|e| e.into_inner()).total += n;
        }
    }

    /// Counts `n` more bytes done.
    pub fn advance(&self, n: u64) {
        self.advance_at(n, Instant::now());
    }

    /// Counts one more file done (builds count files as well as bytes).
    pub fn advance_file(&self) {
        if let Some(state) = &self.inner {
            state.lock().unwrap_or_else(|e| e.into_inner()).files += 1;
        }
    }

    /// Ends the transfer: a closing line if any progress line was printed.
    pub fn finish(&self) {
        self.finish_at(Instant::now());
    }

    /// Prints one line now, whatever the interval (a log line).
    pub fn log(&self, line: &str) {
        if let Some(state) = &self.inner {
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            (state.sink)(line);
        }
    }

    fn start_at(&self, what: &str, total: u64, now: Instant) {
        if let Some(state) = &self.inner {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.what = what.to_string();
            s.total = total;
            s.done = 0;
            s.files = 0;
            s.started = now;
            s.last_line = None;
        }
    }

    fn advance_at(&self, n: u64, now: Instant) {
        let Some(state) = &self.inner else {
            return;
        };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.done += n;
        let since = now.saturating_duration_since(s.last_line.unwrap_or(s.started));
        if since >= INTERVAL {
            s.last_line = Some(now);
            let files = match s.files {
                0 => String::new(),
                n => format!("{n} files, "),
            };
            let line = format!(
                "{}: {files}{} of {} ({})",
                s.what,
                bytes(s.done),
                bytes(s.total),
                rate(s.done, now.saturating_duration_since(s.started))
            );
            (s.sink)(&line);
        }
    }

    fn finish_at(&self, now: Instant) {
        let Some(state) = &self.inner else {
            return;
        };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.last_line.take().is_some() {
            let took = now.saturating_duration_since(s.started);
            let line = format!(
                "{}: {} in {:.1} s ({})",
                s.what,
                bytes(s.done),
                took.as_secs_f64(),
                rate(s.done, took)
            );
            (s.sink)(&line);
        }
    }
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
