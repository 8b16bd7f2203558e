//! How `run` and `report merge` end: the vacuity note, the result files
//! (`--json`, `--junit`), the code-probe gate's verdict, the `result:` line
//! and the exit code. The result word and code come from
//! [`crate::report::conclusion`] (nondeterminism, then violations, then
//! infrastructure errors, then vacuity); a result file that cannot be
//! written makes the run an error.

use super::{EXIT_PASS, EXIT_USAGE, EXIT_VIOLATION};
use crate::report::{ReportError, RunReport, result_line};
use std::path::Path;

/// Print the vacuity note and the result line, write the result files, and
/// return the exit code (a file that cannot be written is an error).
/// `probe_failure`: the code-probe gate's verdict when it failed (a run that
/// otherwise passed then fails with it).
pub fn finish_run(
    result: &RunReport,
    json: Option<&Path>,
    junit: Option<&Path>,
    probe_failure: Option<String>,
) -> i32 {
    let vacuity = result.vacuity();
    if let Some(note) = vacuity.note() {
        println!("{note}");
    }
    let code = result.exit_code.max(write_results(result, json, junit));
    match probe_failure {
        Some(failure) if code == EXIT_PASS => {
            println!("result: {failure}");
            EXIT_VIOLATION
        }
        _ => {
            println!("{}", result_line(&result.counts, &vacuity));
            code
        }
    }
}

/// Write the result files asked for; `EXIT_USAGE` if one could not be.
fn write_results(result: &RunReport, json: Option<&Path>, junit: Option<&Path>) -> i32 {
    let mut code = EXIT_PASS;
    for (path, write) in [
        (
            json,
            RunReport::write_json as fn(&RunReport, &Path) -> Result<(), ReportError>,
        ),
        (junit, crate::report::write_junit),
    ] {
        if let Some(path) = path {
            match write(result, path) {
                Ok(()) => println!("written: {}", path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = EXIT_USAGE;
                }
            }
        }
    }
    code
}
