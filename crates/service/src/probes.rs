//! Code probes: named markers at the decisions inside the services that
//! matter for leaks and erasure (a refusal, a revocation, a recovery, a
//! cache hit), in the spirit of FoundationDB's `CODE_PROBE`. A simulation
//! counts how often each one was reached, so that a path no scenario ever
//! takes is reported rather than silently untested.
//!
//! `probe!("store.audio.foreign_refused")` costs nothing unless this crate
//! is built with the `probes` feature (the simulator turns it on): then each
//! hit is counted in a registry of the current thread. A simulated run is
//! single-threaded, so the simulator [`reset`]s the registry before a run
//! and [`take`]s it after, and runs on parallel threads do not mix.
//!
//! Each service crate lists its probes in a `PROBES` constant; a test of the
//! crate ([`names_in_source`]) fails if that list and the `probe!` sites in
//! its source differ, so the simulator learns the full set from the
//! services themselves.

use std::collections::BTreeMap;
use std::path::Path;

/// Mark that the code reached the decision `name` (a string literal).
#[macro_export]
macro_rules! probe {
    ($name:literal) => {
        $crate::probes::hit($name)
    };
}

#[cfg(feature = "probes")]
thread_local! {
    static HITS: std::cell::RefCell<BTreeMap<&'static str, u64>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// Whether this build counts probe hits.
pub const COUNTING: bool = cfg!(feature = "probes");

/// Count one hit of `name` (nothing without the `probes` feature).
#[inline]
pub fn hit(name: &'static str) {
    #[cfg(feature = "probes")]
    HITS.with(|hits| *hits.borrow_mut().entry(name).or_insert(0) += 1);
    #[cfg(not(feature = "probes"))]
    let _ = name;
}

/// Forget this thread's hits (before a run).
pub fn reset() {
    #[cfg(feature = "probes")]
    HITS.with(|hits| hits.borrow_mut().clear());
}

/// This thread's hits since the last [`reset`], by probe name; the registry
/// is left empty.
pub fn take() -> BTreeMap<&'static str, u64> {
    #[cfg(feature = "probes")]
    {
        HITS.with(|hits| std::mem::take(&mut *hits.borrow_mut()))
    }
    #[cfg(not(feature = "probes"))]
    {
        BTreeMap::new()
    }
}

/// The names of every `probe!("…")` site in the `*.rs` files under `dir`,
/// in file order, with repeats (for the crates' tests of their `PROBES`).
pub fn names_in_source(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    collect_rust_files(dir, &mut files)?;
    files.sort();
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        names.extend(names_in_text(&text));
    }
    Ok(names)
}

/// Check a crate's `PROBES` list against the `probe!` sites under its
/// source folder `src`: each name marks exactly one site, and the list and
/// the sites are the same set. `Err` says what differs.
pub fn check_list(src: &Path, listed: &[&str]) -> Result<(), String> {
    let mut in_source =
        names_in_source(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    let sites = in_source.len();
    in_source.sort();
    in_source.dedup();
    if sites != in_source.len() {
        return Err(format!(
            "{} probe! sites but {} names: each probe name must mark exactly one site",
            sites,
            in_source.len()
        ));
    }
    let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    listed.sort();
    if listed.is_empty() || listed != in_source {
        return Err(format!(
            "the PROBES list and the probe! sites in {} differ: listed {listed:?}, in the source {in_source:?}",
            src.display()
        ));
    }
    Ok(())
}

fn collect_rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rust_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The names of the `probe!("…")` sites in one source text.
pub fn names_in_text(text: &str) -> Vec<String> {
    const MARK: &str = "probe!(\"";
    let mut names = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find(MARK) {
            let after = &rest[at + MARK.len()..];
            let Some(end) = after.find('"') else { break };
            names.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_found_in_source_text_and_comments_are_not() {
        let text = "fn f() {\n    crate::probe!(\"a.b\");\n    // probe!(\"not.this\")\n    if x { probe!(\"c\"); probe!(\"d\") }\n}";
        assert_eq!(names_in_text(text), ["a.b", "c", "d"]);
    }

    #[test]
    fn a_list_must_match_the_sites_exactly() {
        let dir = std::env::temp_dir().join(format!("crosstalk-probes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let write = |text: &str| std::fs::write(dir.join("lib.rs"), text).expect("write");
        write("probe!(\"a\"); probe!(\"b\");");
        assert_eq!(check_list(&dir, &["b", "a"]), Ok(()));
        assert!(
            check_list(&dir, &["a"]).is_err(),
            "a site missing from the list"
        );
        assert!(
            check_list(&dir, &["a", "b", "c"]).is_err(),
            "a listed name without a site"
        );
        write("probe!(\"a\"); probe!(\"a\");");
        assert!(
            check_list(&dir, &["a"]).is_err(),
            "one name marking two sites"
        );
        write("");
        assert!(
            check_list(&dir, &[]).is_err(),
            "an empty list proves nothing"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hits_are_counted_per_thread_only_with_the_feature() {
        reset();
        crate::probe!("test.counted");
        crate::probe!("test.counted");
        let hits = take();
        if COUNTING {
            assert_eq!(hits.get("test.counted"), Some(&2));
            let other = std::thread::spawn(take).join().expect("thread");
            assert!(other.is_empty(), "another thread's registry is its own");
        } else {
            assert!(hits.is_empty());
        }
        assert!(take().is_empty(), "take empties the registry");
    }
}
