//! The live line on stderr: rate, p50/p99 and errors of the last interval, and the share
//! of answers each region served. Rewritten in place every second on a terminal; a plain
//! line every 5 s otherwise (logs, CI).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::stats::{histogram, micros, record, Sample};

/// Where and how often progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// One line rewritten every second.
    Terminal,
    /// A new line every `every`.
    Lines {
        every: Duration,
    },
}

impl Progress {
    /// Terminal when stderr is one, else a line every 5 s.
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            Progress::Terminal
        } else {
            Progress::Lines { every: Duration::from_secs(5) }
        }
    }

    pub fn interval(self) -> Option<Duration> {
        match self {
            Progress::Off => None,
            Progress::Terminal => Some(Duration::from_secs(1)),
            Progress::Lines { every } => Some(every),
        }
    }
}

/// What happened since the last line.
#[derive(Debug)]
pub struct Window {
    latency: Histogram<u64>,
    requests: u64,
    errors: u64,
    errors_total: u64,
    served: BTreeMap<String, u64>,
}

impl Default for Window {
    fn default() -> Self {
        Window { latency: histogram(2), requests: 0, errors: 0, errors_total: 0, served: BTreeMap::new() }
    }
}

impl Window {
    pub fn record(&mut self, s: &Sample) {
        self.requests += 1;
        if let Some(r) = &s.outcome.served_by {
            *self.served.entry(r.clone()).or_default() += 1;
        }
        if s.outcome.is_ok() {
            record(&mut self.latency, micros(s.latency));
        } else {
            self.errors += 1;
            self.errors_total += 1;
        }
    }

    /// The line for an interval of `len`, ending `elapsed` into the run; resets the window.
    pub fn line(&mut self, elapsed: Duration, len: Duration) -> String {
        let rate = self.requests as f64 / len.as_secs_f64().max(1e-3);
        let served: u64 = self.served.values().sum();
        let shares = self
            .served
            .iter()
            .map(|(r, n)| format!("{r} {:.0}%", 100.0 * *n as f64 / served.max(1) as f64))
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!(
            "[{:>5.1}s] {rate:>7.1} req/s  p50 {}  p99 {}  errors {} ({} total)  {shares}",
            elapsed.as_secs_f64(),
            ms(self.latency.value_at_quantile(0.5)),
            ms(self.latency.value_at_quantile(0.99)),
            self.errors,
            self.errors_total,
        );
        let total = self.errors_total;
        *self = Window { errors_total: total, ..Window::default() };
        line
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// Print `line` in the given style.
pub fn show(progress: Progress, line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = match progress {
        Progress::Off => Ok(()),
        Progress::Terminal => write!(err, "\r\x1b[2K{line}"),
        Progress::Lines { .. } => writeln!(err, "{line}"),
    };
    let _ = err.flush();
}

/// End the rewritten line so what follows starts on a fresh one.
pub fn finish(progress: Progress) {
    if progress == Progress::Terminal {
        let _ = writeln!(std::io::stderr());
    }
}
