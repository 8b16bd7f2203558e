//! Architecture invariant: verdicts are only made in `sim/src/check/`.
//!
//! The workload and the world observe; the oracle decides (ARCHITECTURE.md,
//! "Which observation reaches which invariant"). `Oracle::violate` is
//! private to `check/`, so a call elsewhere does not compile; this scan
//! also keeps any other judge from growing outside the oracle.

mod source_scan;

use std::path::Path;

/// Files outside `check/` allowed to say `violate(`, each with its reason.
const EXEMPT: &[(&str, &str)] = &[];

/// The places outside `check/` (and the exemptions) that make a verdict.
fn verdicts_outside_the_oracle(root: &Path) -> Vec<String> {
    source_scan::lines_containing(root, &["violate("], |name| {
        name.starts_with("src/check/") || EXEMPT.iter().any(|(path, _)| *path == name)
    })
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
