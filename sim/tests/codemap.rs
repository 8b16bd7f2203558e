//! ARCHITECTURE.md's codemap names every source file: a file nobody
//! described is a file a newcomer cannot place. A file is named when one of
//! its path's tails (`hosts.rs`, `world/hosts.rs`, ...) appears in
//! backticks; `mod.rs`, `lib.rs` and `main.rs` are named by their folder.

use std::path::{Path, PathBuf};

/// The source files under `roots` (relative to `repo`) that `codemap`
/// does not name.
fn unnamed(repo: &Path, roots: &[&str], codemap: &str) -> Vec<String> {
    let mut files = Vec::new();
    for root in roots {
        collect(&repo.join(root), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file
                .strip_prefix(repo)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            let parts: Vec<&str> = relative.split('/').collect();
            let name = *parts.last()?;
            if matches!(name, "mod.rs" | "lib.rs" | "main.rs") {
                return None;
            }
            let named = (0..parts.len())
                .map(|from| parts[from..].join("/"))
                .any(|tail| codemap.contains(&format!("`{tail}")));
            (!named).then_some(relative)
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const ROOTS: &[&str] = &[
    "sim/src",
    "crates/model/src",
    "crates/service/src",
    "crates/store/src",
    "crates/export/src",
    "fuzz/fuzz_targets",
];

#[test]
fn the_codemap_names_every_source_file() {
    let codemap = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let missing = unnamed(&repo(), ROOTS, &codemap);
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's codemap does not name: {missing:?}"
    );
}

#[test]
fn a_file_the_codemap_does_not_name_is_found() {
    // Positive control: the codemap with one file's names taken out.
    let codemap = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let without = codemap.replace("`world/`", "").replace("hosts.rs", "");
    let missing = unnamed(&repo(), ROOTS, &without);
    assert_eq!(missing, vec!["sim/src/world/hosts.rs".to_string()]);
    // A nested file is named by any tail of its path.
    assert!(unnamed(&repo(), &["sim/src/world"], "`world/hosts.rs` `config.rs`").is_empty());
}
