//! Every committed fuzz corpus input replays as an ordinary test, so the
//! normal test run exercises the fuzz targets' logic without libFuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 3,
        "the {target} corpus holds at least three inputs"
    );
    for input in inputs {
        let bytes = std::fs::read(&input).expect("corpus input reads");
        run(&bytes);
    }
}

#[test]
fn link_token_corpus() {
    replay("link_token", crosstalk_export::fuzzing::link_token);
}

#[test]
fn archive_corpus() {
    replay("archive", crosstalk_export::fuzzing::archive);
}

#[test]
fn archive_bytes_corpus() {
    replay("archive_bytes", crosstalk_export::fuzzing::archive_bytes);
}

#[test]
fn corpus_reaches_the_accepting_paths() {
    // The corpus must exercise acceptance, not only refusal: a minted token
    // verifies and a well-formed archive parses.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let minted = std::fs::read(root.join("link_token/minted-0")).unwrap();
    let token = String::from_utf8(minted[72..].to_vec()).unwrap();
    assert!(crosstalk_export::link::verify(&minted[..32], &token).is_ok());
    let archive = std::fs::read(root.join("archive_bytes/two-recordings")).unwrap();
    let (manifest, files) = crosstalk_export::archive::read_archive(&archive).unwrap();
    assert_eq!((manifest.recordings.len(), files.len()), (2, 2));
}
