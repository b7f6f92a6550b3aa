//! What a build reports while it runs. The library never prints: it tells a [`BuildObserver`]
//! (the CLI's progress bars, plain lines or JSON events) what happened, how far long work has
//! come, and what in the recipe looks wrong without being an error.

use std::io::{self, Write};

use crate::digest::Sha256Digest;

/// Receives a build's events; the CLI implements it, the library calls it.
pub trait BuildObserver {
    fn event(&self, event: BuildEvent<'_>);
    /// `bytes` more bytes of `work` were processed (bytes of a `path` input hashed for its
    /// digest, or tar bytes written into a layer). Called every [`METER_STEP`] bytes or so: keep it cheap.
    fn progress(&self, _work: Work<'_>, _bytes: u64) {}
    /// Where download progress goes, if anywhere.
    fn transfer_progress(&self) -> Option<Box<dyn crate::fetch::Progress>> {
        None
    }
    /// Where registry blob transfers (a `docker://` base) report progress.
    fn registry_progress(&self) -> Option<Box<dyn crate::registry::Progress + Send + Sync>> {
        None
    }
}

/// The long pieces of work a build reports progress for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work<'a> {
    /// Hashing an input given by `path`: a file, or a directory's deterministic tar.
    Input(&'a str),
    /// Writing layer `index` (0-based, among the recipe's layers).
    Layer(usize),
}

pub enum BuildEvent<'a> {
    /// An input's bytes are verified. `cached`: they came from the store (or, for a directory,
    /// its digest from the fingerprint cache) without being downloaded or hashed again.
    /// `size`: the file's size, or a directory's tar size when it was hashed in this build.
    InputReady {
        name: &'a str,
        digest: &'a Sha256Digest,
        size: Option<u64>,
        cached: bool,
    },
    BaseReady {
        reference: &'a str,
        digest: &'a Sha256Digest,
    },
    /// Layer `index` is being built: it was not in the layer cache.
    LayerStarted { index: usize, total: usize },
    /// Layer `index` is in the store, built now or taken from the layer cache (`cached`).
    /// `entries`: the tar entries written (unknown for a cached layer).
    LayerDone {
        index: usize,
        total: usize,
        /// The layer's cache key, from the build plan.
        key: &'a Sha256Digest,
        digest: &'a Sha256Digest,
        diff_id: &'a Sha256Digest,
        size: u64,
        entries: Option<u64>,
        cached: bool,
        /// The remote cache (`HOST/REPO`) the layer was taken from, if it was.
        remote: Option<&'a str>,
    },
    /// A `run` step starts (`location` is `file:line:column` in the recipe).
    StepStarted {
        location: &'a str,
        argv: &'a [String],
    },
    /// One line the running step wrote (without its newline), as it arrives.
    StepOutput {
        stream: OutputStream,
        line: &'a [u8],
    },
    /// Something in the recipe is probably a mistake, but the image is still well-formed.
    Warning(&'a BuildWarning),
}

/// Which output stream of a `run` step a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A recipe that builds, but probably not into what its author meant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildWarning {
    /// A whiteout for a path that no layer below has: harmless to the image, but usually a
    /// typo, or a path the base image no longer ships.
    #[error("{location}: `remove = \"{path}\"` removes nothing: no layer below this one has `/{key}`, so the layer only records a whiteout")]
    RemoveOfMissing {
        location: String,
        path: String,
        key: String,
    },
    /// A remote layer cache (`--cache-from`) could not be used, for one layer (from 1) or at
    /// all: the build goes on locally.
    #[error("remote cache: {}{message}; building locally", layer.map(|n| format!("layer {n}: ")).unwrap_or_default())]
    RemoteCache {
        layer: Option<usize>,
        message: String,
    },
    /// `[config] user` names a user whose existence could not be checked.
    #[error("{location}: could not check `[config] user = {user:?}`: {reason}")]
    UserUnchecked {
        location: String,
        user: String,
        reason: String,
    },
}

impl BuildWarning {
    /// What the user can do about it, when kiln knows.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::RemoveOfMissing { .. } => {
                Some("check the path; drop the step if the base no longer ships it")
            }
            Self::RemoteCache { .. } | Self::UserUnchecked { .. } => None,
        }
    }
}

/// How many bytes a [`Metered`] writer lets pass between two progress reports.
pub const METER_STEP: u64 = 1 << 20;

/// A writer that reports the bytes passing through it to an observer as [`Work`] progress.
pub struct Metered<'a, W> {
    inner: W,
    observer: &'a dyn BuildObserver,
    work: Work<'a>,
    unreported: u64,
}

impl<'a, W: Write> Metered<'a, W> {
    pub fn new(inner: W, observer: &'a dyn BuildObserver, work: Work<'a>) -> Self {
        Self {
            inner,
            observer,
            work,
            unreported: 0,
        }
    }

    /// Reports what is left and returns the inner writer.
    pub fn into_inner(mut self) -> W {
        self.report();
        self.inner
    }

    fn report(&mut self) {
        if self.unreported > 0 {
            self.observer.progress(self.work, self.unreported);
            self.unreported = 0;
        }
    }
}

impl<W: Write> Write for Metered<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.unreported += n as u64;
        if self.unreported >= METER_STEP {
            self.report();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<u64>>);
    impl BuildObserver for Record {
        fn event(&self, _: BuildEvent<'_>) {}
        fn progress(&self, work: Work<'_>, bytes: u64) {
            assert_eq!(work, Work::Layer(2));
            self.0.lock().unwrap().push(bytes);
        }
    }

    #[test]
    fn metered_reports_every_mebibyte_and_the_rest_at_the_end() {
        let record = Record::default();
        let mut m = Metered::new(Vec::new(), &record, Work::Layer(2));
        for _ in 0..5 {
            m.write_all(&[7; 600 << 10]).unwrap();
        }
        let out = m.into_inner();
        assert_eq!(out.len(), 3000 << 10);
        let reports = record.0.into_inner().unwrap();
        assert_eq!(reports, vec![1200 << 10, 1200 << 10, 600 << 10]);
    }
}
