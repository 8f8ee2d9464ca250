//! Transfer progress for stderr: bytes done, total and rate, at most two
//! lines a second, and only for transfers long enough to need them. The
//! sink is handed in (cli.rs writes to stderr unless `--quiet`), so the
//! result on stdout stays alone and tests can capture the lines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least time between two progress lines; the first line waits this
/// long too, so a quick transfer prints nothing.
const INTERVAL: Duration = Duration::from_millis(500);

type Sink = Box<dyn Fn(&str) + Send>;

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

    /// Counts `n` more bytes done.
    pub fn advance(&self, n: u64) {
        self.advance_at(n, Instant::now());
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
            let line = format!(
                "{}: {} of {} ({})",
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
    fn long_transfers_print_at_most_two_lines_a_second() {
        let (p, lines) = captured();
        let t0 = Instant::now();
        p.start_at("pushing x", 10 << 20, t0);
        // 100 updates over 5 seconds.
        for i in 1..=100u64 {
            p.advance_at(100 << 10, t0 + Duration::from_millis(i * 50));
        }
        p.finish_at(t0 + Duration::from_secs(5));
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 10 + 1, "{lines:#?}");
        assert_eq!(lines[0], "pushing x: 1000.0 KiB of 10.0 MiB (2.0 MiB/s)");
        assert_eq!(lines[10], "pushing x: 9.8 MiB in 5.0 s (2.0 MiB/s)");
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
