//! The one parallel runner of the `crosstalk` command: `run`, `hunt` and
//! `regressions` hand it a numbered sequence of work items, and it runs them
//! on at most `jobs` threads and reports each result in index order, whatever
//! finishes first. Each simulation is single-threaded and owns all its
//! state, so items are independent and the reported results do not depend
//! on the scheduling.
//!
//! The sequence may be open-ended (`run --for`): the caller's `more` decides,
//! before each item is taken, whether to start another, and the indices
//! started are always a gap-free prefix `0..K`, all of which are reported.
//! A report may also stop the run (`hunt` stops at the lowest violating
//! seed); results of items past the stopping one are then dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a report asks of the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on; `failed` counts the item as a failure on the progress bar.
    Continue { failed: bool },
    /// Report nothing after this item and start no new one.
    Stop,
}

/// How the progress bar (on stderr, hidden when it is not a terminal) looks.
pub enum Progress {
    /// No bar (the command prints its own lines).
    Hidden,
    /// A bar of this many items.
    Bounded(u64),
    /// A spinner for an open-ended run (seeds, failures and rate).
    Open,
}

fn progress_bar(progress: Progress) -> indicatif::ProgressBar {
    let (bar, template) = match progress {
        Progress::Hidden => return indicatif::ProgressBar::hidden(),
        Progress::Bounded(len) => (
            indicatif::ProgressBar::new(len),
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds {msg}({per_sec}, eta {eta})",
        ),
        Progress::Open => (
            indicatif::ProgressBar::no_length(),
            "{spinner} [{elapsed_precise}] {pos} seeds {msg}({per_sec})",
        ),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Run items `0, 1, 2, …` while `item(index)` yields one and `more()` says
/// to go on, `work` on each on up to `jobs` threads, and hand every result
/// to `report` in index order.
pub fn run_ordered<W: Send, R: Send>(
    jobs: usize,
    progress: Progress,
    item: impl Fn(u64) -> Option<W> + Sync,
    more: impl Fn() -> bool + Sync,
    work: impl Fn(&W) -> R + Sync,
    mut report: impl FnMut(u64, W, R) -> Flow,
) {
    let bar = progress_bar(progress);
    let next = AtomicU64::new(0);
    let stopped = AtomicBool::new(false);
    let (sender, receiver) = std::sync::mpsc::channel::<(u64, W, R)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let sender = sender.clone();
            let (next, stopped, item, more, work) = (&next, &stopped, &item, &more, &work);
            scope.spawn(move || {
                // `more` is asked before an index is taken, so that every
                // index taken is also run: the started indices stay a prefix.
                while !stopped.load(Ordering::SeqCst) && more() {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(w) = item(index) else { break };
                    let result = work(&w);
                    if sender.send((index, w, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let (mut waiting, mut expected, mut failures) = (BTreeMap::new(), 0u64, 0u64);
        for (index, w, result) in receiver {
            if stopped.load(Ordering::SeqCst) {
                continue;
            }
            waiting.insert(index, (w, result));
            while let Some((w, result)) = waiting.remove(&expected) {
                bar.inc(1);
                match bar.suspend(|| report(expected, w, result)) {
                    Flow::Continue { failed } => {
                        failures += u64::from(failed);
                        if failures > 0 {
                            bar.set_message(format!("{failures} failed "));
                        }
                    }
                    Flow::Stop => {
                        stopped.store(true, Ordering::SeqCst);
                        waiting.clear();
                        break;
                    }
                }
                expected += 1;
            }
        }
    });
    bar.finish_and_clear();
}

/// The default number of jobs: the machine's cores.
pub fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
    .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn results_arrive_in_index_order_whatever_the_scheduling() {
        let mut seen = Vec::new();
        run_ordered(
            4,
            Progress::Hidden,
            |i| (i < 50).then_some(i),
            || true,
            // Later items finish first.
            |&i| {
                std::thread::sleep(std::time::Duration::from_micros((50 - i) * 20));
                i * 2
            },
            |index, w, r| {
                assert_eq!(index, w);
                seen.push(r);
                Flow::Continue { failed: false }
            },
        );
        assert_eq!(seen, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_stop_reports_nothing_after_the_stopping_item() {
        let mut seen = Vec::new();
        run_ordered(
            3,
            Progress::Hidden,
            Some,
            || true,
            |&i| i,
            |_, _, r| {
                seen.push(r);
                if r == 7 {
                    Flow::Stop
                } else {
                    Flow::Continue { failed: false }
                }
            },
        );
        assert_eq!(seen, (0..=7).collect::<Vec<_>>());
    }

    #[test]
    fn an_open_run_reports_a_gap_free_prefix_when_more_says_stop() {
        let started = AtomicU64::new(0);
        let mut seen = Vec::new();
        run_ordered(
            2,
            Progress::Hidden,
            Some,
            || started.fetch_add(1, Ordering::SeqCst) < 30,
            |&i| i,
            |index, _, _| {
                seen.push(index);
                Flow::Continue { failed: false }
            },
        );
        assert_eq!(seen, (0..30).collect::<Vec<_>>());
    }
}
