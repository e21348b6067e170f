//! A progress bar on stderr for anything that takes more than a second: drawn only when stderr
//! is a terminal, and only once the work has run for a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Shown after this long.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// Redrawn at most this often.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
const WIDTH: usize = 30;

pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    drawn_at: Option<Instant>,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Self {
        Self {
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            drawn_at: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// `n` more units done.
    pub fn advance(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        if !self.enabled || self.started.elapsed() < SHOW_AFTER {
            return;
        }
        if self.drawn_at.is_some_and(|at| at.elapsed() < REDRAW_EVERY) && self.done < self.total {
            return;
        }
        self.drawn_at = Some(Instant::now());
        eprint!(
            "\r{}",
            bar(&self.label, self.done, self.total, self.started.elapsed())
        );
        let _ = std::io::stderr().flush();
    }

    /// Clears the bar (if it was drawn).
    pub fn finish(self) {
        if self.drawn_at.is_some() {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// One line: `label [#####.....] done/total  12.3s`.
pub fn bar(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let filled = done
        .saturating_mul(WIDTH as u64)
        .checked_div(total)
        .map_or(WIDTH, |n| usize::try_from(n).unwrap_or(WIDTH));
    format!(
        "{label} [{}{}] {done}/{total}  {:.1}s",
        "#".repeat(filled.min(WIDTH)),
        ".".repeat(WIDTH - filled.min(WIDTH)),
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion() {
        assert_eq!(
            bar("warm", 15, 30, Duration::from_millis(1500)),
            format!("warm [{}{}] 15/30  1.5s", "#".repeat(15), ".".repeat(15))
        );
        assert!(bar("x", 0, 0, Duration::ZERO).contains(&"#".repeat(30)));
    }
}
