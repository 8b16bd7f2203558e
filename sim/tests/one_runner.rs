//! Architecture invariant: `sim/src/runner.rs` is the only parallel runner.
//!
//! `run`, `hunt` and `regressions` run their seeds on `runner::run_ordered`
//! (at most `--jobs` threads, results in seed order); a second runner (one
//! thread per seed, or its own ordering) would drift from it. This scan
//! fails on any thread started anywhere else in `sim/src`.

mod source_scan;

use std::path::Path;

/// What starts a thread.
const THREAD_STARTS: &[&str] = &["thread::spawn", "thread::scope", "thread::Builder"];

/// The lines outside `src/runner.rs` that start a thread.
fn threads_outside_the_runner(root: &Path) -> Vec<String> {
    source_scan::lines_containing(root, THREAD_STARTS, |name| name == "src/runner.rs")
}

#[test]
fn no_thread_is_started_outside_the_runner() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(root.join("src/runner.rs").exists(), "the runner moved");
    let found = threads_outside_the_runner(root);
    assert!(
        found.is_empty(),
        "seeds run in parallel only on sim/src/runner.rs (use runner::run_ordered):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_finds_a_second_runner() {
    let root = std::env::temp_dir().join(format!("crosstalk-one-runner-{}", std::process::id()));
    let cli = root.join("src/cli");
    std::fs::create_dir_all(&cli).expect("a scratch crate");
    let spawning =
        "fn each(seeds: Vec<u64>) { for s in seeds { std::thread::spawn(move || s); } }\n";
    std::fs::write(cli.join("hunt.rs"), spawning).expect("write");
    std::fs::write(root.join("src/runner.rs"), spawning).expect("write");
    let found = threads_outside_the_runner(&root);
    std::fs::remove_dir_all(&root).ok();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/cli/hunt.rs:1:"), "{found:?}");
}
