//! The project's design document (`docs/design.md`) against the code: its
//! planted-bug table names exactly the catalogue the services compile, each
//! with the incident and defect the catalogue gives.

use crosstalk_service::Bug;

fn design() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/design.md");
    std::fs::read_to_string(path).expect("docs/design.md is readable")
}

/// The table rows of the planted-bug section: (name, incident, defect).
fn catalogue_rows(text: &str) -> Vec<(String, String, String)> {
    let section = text
        .split("## Planted bugs")
        .nth(1)
        .expect("docs/design.md has a planted-bug section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| name "))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 3, "a row of three cells: {l}");
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

#[test]
fn the_design_document_lists_exactly_the_planted_bug_catalogue() {
    let rows = catalogue_rows(&design());
    let expected: Vec<(String, String, String)> = Bug::ALL
        .iter()
        .map(|b| (b.name().into(), b.incident().into(), b.defect().into()))
        .collect();
    assert_eq!(rows, expected);
}
