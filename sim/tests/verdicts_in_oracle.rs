//! Architecture invariant: verdicts are only made in `sim/src/check/`.
//!
//! The workload and the world observe; the oracle decides (ARCHITECTURE.md,
//! "Which observation reaches which invariant"). `Oracle::violate` is
//! private to `check/`, so a call elsewhere does not compile; this scan
//! also keeps any other judge from growing outside the oracle.

use std::path::{Path, PathBuf};

/// Files outside `check/` allowed to say `violate(`, each with its reason.
const EXEMPT: &[(&str, &str)] = &[];

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

/// The places outside `check/` (and the exemptions) that make a verdict.
fn verdicts_outside_the_oracle(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("under the crate");
        let name = relative.to_string_lossy().replace('\\', "/");
        if name.starts_with("src/check/") || EXEMPT.iter().any(|(path, _)| *path == name) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            if line.contains("violate(") {
                found.push(format!("{name}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn no_verdict_is_made_outside_the_oracle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = verdicts_outside_the_oracle(root);
    assert!(
        found.is_empty(),
        "verdicts are only made in sim/src/check/ (report an observation with an Oracle::on_* method instead):\n{}",
        found.join("\n")
    );
    for (path, _) in EXEMPT {
        assert!(
            root.join(path).exists(),
            "exempt file {path} no longer exists: drop it"
        );
    }
}

#[test]
fn the_scan_finds_a_verdict_planted_outside_the_oracle() {
    let root = std::env::temp_dir().join(format!("crosstalk-verdicts-{}", std::process::id()));
    let workload = root.join("src/workload");
    std::fs::create_dir_all(&workload).expect("a scratch crate");
    std::fs::create_dir_all(root.join("src/check")).expect("a scratch crate");
    let planted =
        "fn judge(o: &mut Oracle) { o.violate(Invariant::Liveness, 0, None, None, d); }\n";
    std::fs::write(workload.join("person.rs"), planted).expect("write");
    std::fs::write(root.join("src/check/mod.rs"), planted).expect("write");
    let found = verdicts_outside_the_oracle(&root);
    std::fs::remove_dir_all(&root).ok();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("src/workload/person.rs:1:"),
        "{found:?}"
    );
}
