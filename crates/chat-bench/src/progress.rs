//! Progress bars on stderr for the long phases (indicatif hides them when
//! stderr is not a terminal, and `--no-progress` hides them always).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Makes progress bars, or hidden ones.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Bars shown when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    /// A bar counting to `len`, labelled `label`.
    pub fn bar(&self, label: &str, len: u64) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(
            "{prefix:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::new(len).with_style(style);
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
