//! Progress bars on stderr and the summary line that ends each stage.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` items, drawn only when stderr is a terminal (indicatif's default).
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A spinner for steps of unknown length (reading, writing).
pub fn spinner(what: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    spinner.set_message(what.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Times a stage; [`Stopwatch::summary`] prints what it wrote, the wall time and peak memory.
pub struct Stopwatch {
    start: Instant,
    stage: &'static str,
}

impl Stopwatch {
    pub fn start(stage: &'static str) -> Self {
        Stopwatch { start: Instant::now(), stage }
    }

    /// One line on stderr, e.g. `centre: wrote 3 tables (60000 + 10000 rows) in 1.2 s, peak memory 402 MiB`.
    /// `just bench` reads the peak memory from it.
    pub fn summary(&self, what: &str) {
        let peak = peak_memory_mib().map(|m| format!(", peak memory {m:.0} MiB")).unwrap_or_default();
        eprintln!("{}: {what} in {:.2} s{peak}", self.stage, self.start.elapsed().as_secs_f64());
    }
}

/// The process's peak resident memory (Linux `VmHWM`), in MiB; `None` where it is not available.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
