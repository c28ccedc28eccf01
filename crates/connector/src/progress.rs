//! The progress bar a run shows on a terminal: windows done of planned, rows, ETA.
//!
//! Only when stderr is a terminal and logs are text: a scheduler's log file gets log lines,
//! not redraws. Log lines are printed above the bar ([`LogWriter`] suspends it while writing).

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Whether a bar may be drawn at all; set once at start-up from the flags.
static ENABLED: OnceLock<bool> = OnceLock::new();

/// Allows a bar when stderr is a terminal and `text_logs` is true.
pub fn enable(text_logs: bool) {
    let _ = ENABLED.set(text_logs && std::io::stderr().is_terminal());
}

/// A bar for `total` (account, window) cells, if bars are enabled.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn start(total: u64) -> Self {
        if !ENABLED.get().copied().unwrap_or(false) || total == 0 {
            return Self(None);
        }
        let bar = BAR.get_or_init(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()));
        bar.set_length(total);
        bar.set_position(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} windows  {msg}  {elapsed_precise} (ETA {eta})")
                .expect("a valid template"),
        );
        Self(Some(bar.clone()))
    }

    /// One more cell done (written, failed or skipped); `rows` written so far.
    pub fn cell_done(&self, rows: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
            bar.set_message(format!("{rows} rows"));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// stderr for log lines, drawn above the bar when one is showing.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(bar) if !bar.is_finished() => bar.suspend(|| std::io::stderr().write(buf)),
            _ => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
