//! Several blob transfers at once on a few std threads. Registry transfers are I/O bound, so a
//! handful of blocking threads keeps the link busy without an async runtime.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How many transfers run at once by default (what skopeo and containerd use, roughly).
pub const DEFAULT_PARALLELISM: usize = 4;

/// Runs `f` on every job with at most `threads` at a time and returns the results in job order.
/// After the first error no new job starts; the error of the earliest failed job is returned.
pub fn run_parallel<T, R, E, F>(jobs: Vec<T>, threads: usize, f: F) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
    F: Fn(T) -> Result<R, E> + Sync,
{
    let n = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<Result<R, E>>>> = Mutex::new((0..n).map(|_| None).collect());
    let failed = AtomicBool::new(false);
    let workers = threads.clamp(1, n.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some((i, job)) = next else { return };
                let r = f(job);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(n);
    let mut first_err = None;
    for r in results.into_iter().flatten() {
        match r {
            Ok(v) => out.push(v),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn runs_concurrently_and_keeps_order() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = run_parallel((0..12).collect(), 3, |i: u32| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, ()>(i * 2)
        })
        .unwrap();
        assert_eq!(out, (0..12).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn stops_starting_jobs_after_an_error() {
        let started = AtomicUsize::new(0);
        let r = run_parallel((0..100).collect(), 1, |i: u32| {
            started.fetch_add(1, Ordering::SeqCst);
            if i == 2 {
                Err(format!("job {i} failed"))
            } else {
                Ok(i)
            }
        });
        assert_eq!(r.unwrap_err(), "job 2 failed");
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert_eq!(
            run_parallel(Vec::<u32>::new(), 4, Ok::<_, ()>).unwrap(),
            Vec::<u32>::new()
        );
    }
}
