//! Download progress: a bar per transfer when stderr is a terminal, one line at the start and
//! one at the end otherwise (CI logs stay readable).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use super::printer::{human_size, status};
use crate::fetch::Progress;

pub struct TransferProgress {
    terminal: bool,
    bar: Mutex<Option<(ProgressBar, u64)>>,
}

impl TransferProgress {
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }
}

impl Progress for TransferProgress {
    fn started(&self, what: &str, total: Option<u64>) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if self.terminal {
            let bar = match total {
                Some(n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template(
                        "{msg:>16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{msg:>16} {spinner} {bytes} {bytes_per_sec}")
                        .expect("a valid template"),
                ),
            };
            bar.set_message(what.to_string());
            *slot = Some((bar, 0));
        } else {
            let size = total
                .map(|n| format!(" ({})", human_size(n)))
                .unwrap_or_default();
            status(&format!("fetching {what}{size}"));
            *slot = Some((ProgressBar::hidden(), 0));
        }
    }

    fn advanced(&self, bytes: u64) {
        if let Some((bar, seen)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            *seen += bytes;
            bar.inc(bytes);
        }
    }

    fn finished(&self, what: &str) {
        if let Some((bar, seen)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
            status(&format!("fetched {what} ({})", human_size(seen)));
        }
    }
}
