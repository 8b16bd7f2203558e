//! The crate's `PROBES` list is exactly the `probe!` sites in its source:
//! a probe added, renamed or removed without the list (or the other way
//! round) fails here, so the simulator always knows every probe.

#[test]
fn the_probe_list_matches_the_source() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut in_source =
        crosstalk_service::probes::names_in_source(&src).expect("the crate's source is readable");
    let sites = in_source.len();
    in_source.sort();
    in_source.dedup();
    assert_eq!(
        sites,
        in_source.len(),
        "each probe name marks exactly one site"
    );
    let mut listed: Vec<String> = crosstalk_store::PROBES
        .iter()
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        listed, in_source,
        "crosstalk_store::PROBES and the probe! sites in src/ differ"
    );
    assert!(!listed.is_empty());
}
