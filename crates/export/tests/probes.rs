//! The crate's `PROBES` list is exactly the `probe!` sites in its source:
//! a probe added, renamed or removed without the list (or the other way
//! round) fails here, so the simulator always knows every probe.

#[test]
fn the_probe_list_matches_the_source() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if let Err(e) = crosstalk_service::probes::check_list(&src, crosstalk_export::PROBES) {
        panic!("crosstalk_export: {e}");
    }
}
