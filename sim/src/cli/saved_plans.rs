//! Plans kept on disk: every failing plan is saved under
//! [`FAILURES_DIR`] (named after its scenario and seed, or as the caller
//! names it) so that `crosstalk replay --plan` can run it again, and shrunk
//! plans and regressions are written as pretty JSON beside their source.

use super::CliError;
use crate::plan::{Plan, Regression};
use std::path::{Path, PathBuf};

/// Where failing plans are saved.
pub const FAILURES_DIR: &str = "target/crosstalk/failures";

/// Save a failing plan as `<scenario>-<seed>.json`.
pub(super) fn save_plan(plan: &Plan) -> Result<PathBuf, CliError> {
    save_plan_as(plan, &format!("{}-{}.json", plan.scenario, plan.seed))
}

/// Save a plan under [`FAILURES_DIR`] as `name`.
pub(super) fn save_plan_as(plan: &Plan, name: &str) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(FAILURES_DIR).map_err(|e| CliError::Create {
        path: PathBuf::from(FAILURES_DIR),
        source: e,
    })?;
    let path = Path::new(FAILURES_DIR).join(name);
    let json = serde_json::to_string_pretty(plan).map_err(CliError::Json)?;
    std::fs::write(&path, json).map_err(|e| CliError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(path)
}

/// Write `value` as pretty JSON (and a final newline) to `path`, creating
/// its folder.
pub(super) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), CliError> {
    let json = serde_json::to_string_pretty(value).map_err(CliError::Json)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Create {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    std::fs::write(path, json + "\n").map_err(|e| CliError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Read a saved plan or regression: the plan and its postmortem, if any.
pub(super) fn load_plan(path: &Path) -> Result<(Plan, Option<String>), CliError> {
    let text = read(path)?;
    crate::plan::load_plan_file(&text).map_err(|reason| CliError::NotAPlan {
        path: path.to_path_buf(),
        reason,
    })
}

/// Read a saved plan or regression as a regression (a bare plan has an
/// empty postmortem).
pub(super) fn load_regression(path: &Path) -> Result<Regression, CliError> {
    let text = read(path)?;
    crate::plan::load_regression_file(&text).map_err(|reason| CliError::NotAPlan {
        path: path.to_path_buf(),
        reason,
    })
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Plant each bug of `names` (of the catalogue) in `plan` unless it is
/// already planted; returns the names newly planted.
pub(super) fn plant_bugs<'a>(
    plan: &mut Plan,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<Vec<String>, CliError> {
    let mut added = Vec::new();
    for name in names {
        name.parse::<crosstalk_service::Bug>()
            .map_err(CliError::Flag)?;
        if !plan.planted.contains(name) {
            plan.planted.push(name.clone());
            added.push(name.clone());
        }
    }
    Ok(added)
}
