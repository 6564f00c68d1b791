//! Progress while the benchmark runs: one bar per workload (its rows done,
//! the row running and its live rate), drawn only on a terminal.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of a run.
#[derive(Debug)]
pub(crate) struct Progress {
    bars: MultiProgress,
}

impl Progress {
    /// Bars on standard error when it is a terminal (`shown`), none
    /// otherwise.
    pub(crate) fn new(shown: bool) -> Self {
        let target = if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            bars: MultiProgress::with_draw_target(target),
        }
    }

    /// A bar for `workload`, which has `rows` rows.
    pub(crate) fn workload(&self, workload: &str, rows: usize) -> Live {
        let style = ProgressStyle::with_template("{prefix:>10} [{bar:20}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = self.bars.add(ProgressBar::new(rows as u64));
        bar.set_style(style);
        bar.set_prefix(workload.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        Live {
            bar,
            case: String::new(),
        }
    }
}

/// One workload's bar.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    bar: ProgressBar,
    case: String,
}

impl Live {
    /// The row now running.
    pub(crate) fn case(&mut self, case: &str) {
        case.clone_into(&mut self.case);
        self.bar.set_message(case.to_owned());
    }

    /// The live rate of the row running.
    pub(crate) fn rate(&self, per_second: f64) {
        self.bar
            .set_message(format!("{}: {}/s", self.case, si(per_second)));
    }

    /// A row finished.
    pub(crate) fn row_done(&self) {
        self.bar.inc(1);
    }

    /// The workload finished.
    pub(crate) fn finish(&self) {
        self.bar.finish_with_message("done");
    }
}

/// `n` with a k/M suffix.
pub(crate) fn si(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}
