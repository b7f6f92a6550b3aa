//! Build and download progress: bars when stderr is a terminal, plain lines otherwise (CI logs
//! stay readable), and JSON events on stdout for `kiln build --json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::printer::{human_size, outln, status};
use crate::build::{BuildEvent, BuildObserver, BuildWarning, OutputStream, Work};
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

/// How `kiln build` reports while it works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildOutput {
    /// Progress bars on stderr (stderr is a terminal).
    Bars,
    /// Plain lines on stderr, one per event (logs, pipes).
    Lines,
    /// One JSON object per line on stdout, for machines; downloads and step output stay on
    /// stderr as plain lines.
    Json,
}

/// The CLI's [`BuildObserver`]: bars, plain lines or JSON events. Plain lines and JSON carry
/// no clock readings (rates and times), so a log is the same for the same build; the bars
/// show rates.
pub struct BuildReporter {
    output: BuildOutput,
    bars: MultiProgress,
    /// The bar of each input being hashed and each layer being written.
    active: Mutex<BTreeMap<String, ProgressBar>>,
}

impl BuildReporter {
    pub fn new(json: bool) -> Self {
        let output = if json {
            BuildOutput::Json
        } else if std::io::stderr().is_terminal() {
            BuildOutput::Bars
        } else {
            BuildOutput::Lines
        };
        Self {
            output,
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            active: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn output(&self) -> BuildOutput {
        self.output
    }

    /// A line on stderr that does not tear the bars.
    pub fn line(&self, text: &str) {
        if self.output == BuildOutput::Bars {
            let _ = self.bars.println(text);
        } else {
            status(text);
        }
    }

    /// One JSON event on stdout (`--json`); nothing otherwise.
    pub fn json(&self, event: serde_json::Value) {
        if self.output == BuildOutput::Json {
            outln!("{event}");
        }
    }

    fn bar_for(&self, key: String, label: String) {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>16} {spinner} {bytes} ({bytes_per_sec}, {elapsed})",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar.set_message(label);
        self.lock().insert(key, bar);
    }

    fn end_bar(&self, key: &str) {
        if let Some(bar) = self.lock().remove(key) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ProgressBar>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn warning(&self, warning: &BuildWarning) {
        let message = warning.to_string();
        let hint = warning.hint();
        self.json(json!({"event": "warning", "message": message, "hint": hint}));
        if self.output != BuildOutput::Json {
            self.line(&format!("warning: {message}"));
            if let Some(h) = hint {
                self.line(&format!("hint: {h}"));
            }
        }
    }
}

fn input_key(name: &str) -> String {
    format!("input {name}")
}

fn layer_key(index: usize) -> String {
    format!("layer {index}")
}

impl BuildObserver for BuildReporter {
    fn event(&self, event: BuildEvent<'_>) {
        match event {
            BuildEvent::InputReady {
                name,
                digest,
                size,
                cached,
            } => {
                self.end_bar(&input_key(name));
                self.json(
                    json!({"event": "input", "name": name, "sha256": digest.to_string(),
                                 "size": size, "cached": cached}),
                );
                let size = size
                    .map(|s| format!(", {}", human_size(s)))
                    .unwrap_or_default();
                let cached = if cached { ", cached" } else { "" };
                if self.output != BuildOutput::Json {
                    self.line(&format!("input {name}: {digest}{size}{cached}"));
                }
            }
            BuildEvent::BaseReady { reference, digest } => {
                self.json(json!({"event": "base", "reference": reference,
                                 "digest": digest.to_string()}));
                if self.output != BuildOutput::Json {
                    self.line(&format!("base {reference}: {digest}"));
                }
            }
            BuildEvent::LayerStarted { index, total } => match self.output {
                BuildOutput::Bars => {
                    self.bar_for(layer_key(index), format!("layer {}/{total}", index + 1))
                }
                BuildOutput::Lines => status(&format!("layer {}/{total}: building", index + 1)),
                BuildOutput::Json => {}
            },
            BuildEvent::LayerDone {
                index,
                total,
                key,
                digest,
                diff_id,
                size,
                entries,
                cached,
                remote,
            } => {
                self.end_bar(&layer_key(index));
                self.json(
                    json!({"event": "layer", "index": index, "key": key.to_string(),
                                 "digest": digest.to_string(),
                                 "diff_id": diff_id.to_string(), "size": size,
                                 "entries": entries, "cached": cached, "remote": remote}),
                );
                if self.output != BuildOutput::Json {
                    let what = match entries {
                        Some(n) => format!("{}, {n} entries", human_size(size)),
                        None => human_size(size),
                    };
                    let verb = match (remote, cached) {
                        (Some(cache), _) => format!("remote cache hit {cache} "),
                        (None, true) => "cached ".to_string(),
                        (None, false) => String::new(),
                    };
                    self.line(&format!(
                        "layer {}/{total}: {verb}{digest} ({what})",
                        index + 1
                    ));
                }
            }
            BuildEvent::StepStarted { location, argv } => {
                self.line(&format!("run {location}: {}", shell_words(argv)))
            }
            BuildEvent::StepOutput { stream, line } => {
                let prefix = match stream {
                    OutputStream::Stdout => "  | ",
                    OutputStream::Stderr => "  ! ",
                };
                self.line(&format!("{prefix}{}", String::from_utf8_lossy(line)))
            }
            BuildEvent::Warning(w) => self.warning(w),
        }
    }

    fn progress(&self, work: Work<'_>, bytes: u64) {
        if self.output != BuildOutput::Bars {
            return;
        }
        let key = match work {
            Work::Input(name) => input_key(name),
            Work::Layer(index) => layer_key(index),
        };
        if let Work::Input(name) = work {
            if !self.lock().contains_key(&key) {
                self.bar_for(key.clone(), format!("hashing {name}"));
            }
        }
        if let Some(bar) = self.lock().get(&key) {
            bar.inc(bytes);
        }
    }

    fn transfer_progress(&self) -> Option<Box<dyn crate::fetch::Progress>> {
        Some(Box::new(TransferProgress::new()))
    }

    fn registry_progress(&self) -> Option<Box<dyn crate::registry::Progress + Send + Sync>> {
        Some(Box::new(super::copy::StderrProgress::default()))
    }
}

/// argv as one readable line (arguments with spaces or quotes are shown quoted).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
