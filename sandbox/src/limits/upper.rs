//! The written-bytes limit, seen from outside: the sum of the sizes of the regular files in
//! the upper directory (apparent sizes: a sparse file becomes that many bytes in the layer).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the regular files under a directory hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The sum of their sizes.
    pub total: u64,
    /// The size of the largest.
    pub largest: u64,
}

/// Sums the sizes of the regular files under `dir`, stopping early once past `max`. Walks
/// with an explicit stack (a step can nest directories deeper than any call stack) and skips
/// what vanishes or cannot be read meanwhile.
pub(crate) fn written_bytes(dir: &Path, max: u64) -> Usage {
    let mut usage = Usage::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(md) = entry.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(entry.path());
            } else if md.is_file() {
                usage.total = usage.total.saturating_add(md.size());
                usage.largest = usage.largest.max(md.size());
                if usage.total > max {
                    return usage;
                }
            }
        }
    }
    usage
}

/// When to look at the upper directory again: a scan never takes more than a fifth of the
/// time, and none is more than 2 s after the last.
pub(crate) struct ScanClock {
    pub next: Instant,
}

impl ScanClock {
    pub(crate) fn new(now: Instant) -> Self {
        ScanClock {
            next: now + Duration::from_millis(100),
        }
    }

    pub(crate) fn scanned(&mut self, started: Instant, ended: Instant) {
        let took = ended - started;
        self.next = ended + (took * 4).clamp(Duration::from_millis(100), Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_regular_files_at_any_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let mut deep = tmp.path().to_path_buf();
        for _ in 0..50 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), [0u8; 1000]).unwrap();
        std::fs::write(tmp.path().join("g"), [0u8; 24]).unwrap();
        let sparse = std::fs::File::create(tmp.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("l")).unwrap();
        assert_eq!(
            written_bytes(tmp.path(), u64::MAX),
            Usage {
                total: 1024 + (1 << 30),
                largest: 1 << 30
            }
        );
        assert!(written_bytes(tmp.path(), 10).total > 10);
    }

    #[test]
    fn scans_back_off_with_their_cost() {
        let t0 = Instant::now();
        let mut clock = ScanClock::new(t0);
        assert_eq!(clock.next, t0 + Duration::from_millis(100));
        clock.scanned(t0, t0 + Duration::from_millis(100));
        assert_eq!(clock.next, t0 + Duration::from_millis(500));
        clock.scanned(t0, t0 + Duration::from_secs(10));
        assert_eq!(clock.next, t0 + Duration::from_secs(12));
    }
}
