//! A scan of a crate's sources for the architecture-invariant tests
//! (`one_runner.rs`, `verdicts_in_oracle.rs`): every line under `src/` that
//! contains one of some needles, outside the files a test exempts.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of `root/src/**/*.rs` that contain any of `needles`, as
/// `src/path.rs:line: text`, in path order; files for which `exempt` (given
/// the path relative to `root`, with `/` separators) is true are skipped.
pub fn lines_containing(
    root: &Path,
    needles: &[&str],
    exempt: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("under the crate");
        let name = relative.to_string_lossy().replace('\\', "/");
        if exempt(&name) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{name}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    found
}
