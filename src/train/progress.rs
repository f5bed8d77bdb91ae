//! Progress of a training run: a bar on a terminal, a plain line every 10 s elsewhere (CI, nohup),
//! and the evaluation lines printed above the bar.

use std::io::IsTerminal;
use std::time::Instant;

/// Progress display of one run.
pub struct Progress {
    bar: indicatif::ProgressBar,
    steps: usize,
    last_line: Instant,
}

impl Progress {
    /// A bar over `steps` steps, starting at `position` (a resumed run).
    pub fn new(steps: usize, position: usize) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(steps as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}, {per_sec}] {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_position(position as u64);
        Progress {
            bar,
            steps,
            last_line: Instant::now(),
        }
    }

    /// Step `done` finished with `message` (e.g. `loss 0.1234 acc 0.567`).
    pub fn step(&mut self, done: usize, message: String) {
        if self.bar.is_hidden() && self.last_line.elapsed().as_secs() >= 10 {
            // Not a terminal: a plain line every 10 s instead of a bar.
            println!("step {done}/{}: {message}", self.steps);
            self.last_line = Instant::now();
        }
        self.bar.set_message(message);
        self.bar.inc(1);
    }

    /// Prints `line` above the bar.
    pub fn println(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
