//! Why a command could not do what it was asked: a value on the command
//! line, a file that cannot be read, written or understood, a build without
//! the planted bugs a plan needs, or the harness itself failing. Each
//! subcommand returns these; only [`super::main`] turns one into the
//! `error: …` line and exit code 2 (`EXIT_USAGE`).

use crate::guard::HarnessFailure;
use crate::report::ReportError;
use crate::scenario::ScenarioError;
use std::fmt;
use std::path::PathBuf;

/// A command that could not run as asked (exit 2).
#[derive(Debug)]
pub enum CliError {
    /// A value of a flag that does not parse (`--seeds`, `--shard`, `--for`,
    /// a bug's name), as the parser explains it.
    Flag(String),
    /// A scenario file that cannot be read or is not a valid scenario.
    Scenario(ScenarioError),
    /// Two scenario files of one run carry the same name.
    DuplicateScenario(String),
    /// A file or folder that cannot be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A folder that cannot be created.
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that cannot be written.
    Write { path: PathBuf, reason: String },
    /// A value that does not serialize as JSON.
    Json(serde_json::Error),
    /// A file that was read but is not a plan.
    NotAPlan { path: PathBuf, reason: String },
    /// A file of a folder of regressions that cannot be read or parsed.
    Regression { path: PathBuf, reason: String },
    /// A folder that holds no regression.
    NoRegressions(PathBuf),
    /// A result file that cannot be read, or results that do not merge.
    Report(ReportError),
    /// Anything else a loader refused, in its own words (a fuzz input that
    /// is no plan, a plan that does not shrink).
    Refused(String),
    /// `replay` without a scenario and seed, or a plan.
    NothingToReplay,
    /// This build has no planted bugs, and what needs them (`the plan
    /// plants unbound-link`), if it is not the command itself.
    NoPlantedBugs { needed_by: Option<String> },
    /// The harness itself failed (a panic inside turmoil): its one line.
    Harness(HarnessFailure),
}

impl CliError {
    /// Whether the error's line goes out bare (the harness's own failure
    /// line) rather than after `error: `.
    pub fn is_bare(&self) -> bool {
        matches!(self, CliError::Harness(_))
    }
}

/// The message the build without planted bugs gives.
const NO_PLANTED_BUGS: &str = "this build has no planted bugs: build with the planted-bugs feature, e.g. `cargo sim-planted hunt ...` \
     (= cargo run --release -p crosstalk-sim --features planted-bugs --)";

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Flag(reason) | CliError::Refused(reason) => f.write_str(reason),
            CliError::Scenario(e) => write!(f, "{e}"),
            CliError::Report(e) => write!(f, "{e}"),
            CliError::DuplicateScenario(name) => {
                write!(f, "two scenario files are named {name:?}")
            }
            CliError::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
            CliError::Create { path, source } => {
                write!(f, "creating {}: {source}", path.display())
            }
            CliError::Write { path, reason } => write!(f, "writing {}: {reason}", path.display()),
            CliError::Json(e) => write!(f, "{e}"),
            CliError::NotAPlan { path, reason } => {
                write!(f, "{} is not a plan: {reason}", path.display())
            }
            CliError::Regression { path, reason } => write!(f, "{}: {reason}", path.display()),
            CliError::NoRegressions(dir) => {
                write!(f, "{} holds no regression (*.json)", dir.display())
            }
            CliError::NothingToReplay => {
                f.write_str("replay needs --scenario FILE --seed N, or --plan FILE")
            }
            CliError::NoPlantedBugs { needed_by: None } => f.write_str(NO_PLANTED_BUGS),
            CliError::NoPlantedBugs {
                needed_by: Some(what),
            } => write!(f, "{what}; {NO_PLANTED_BUGS}"),
            CliError::Harness(failure) => write!(f, "{failure}"),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Scenario(e) => Some(e),
            CliError::Report(e) => Some(e),
            CliError::Read { source, .. } | CliError::Create { source, .. } => Some(source),
            CliError::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ScenarioError> for CliError {
    fn from(e: ScenarioError) -> Self {
        CliError::Scenario(e)
    }
}

impl From<ReportError> for CliError {
    fn from(e: ReportError) -> Self {
        CliError::Report(e)
    }
}

impl From<HarnessFailure> for CliError {
    fn from(failure: HarnessFailure) -> Self {
        CliError::Harness(failure)
    }
}

/// Whether this build can plant bugs; if not, the error, saying what
/// needs them (`needed_by`) when that is not the command itself.
pub fn require_planted_build(needed_by: Option<String>) -> Result<(), CliError> {
    if crosstalk_service::Planted::AVAILABLE {
        Ok(())
    } else {
        Err(CliError::NoPlantedBugs { needed_by })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use std::path::Path;

    /// The lines users and scripts read stay as they were before the errors
    /// were typed.
    #[test]
    fn each_error_reads_as_the_line_it_replaced() {
        let missing = Scenario::load(Path::new("nowhere.toml")).unwrap_err();
        assert_eq!(
            CliError::from(missing).to_string(),
            "reading nowhere.toml: No such file or directory (os error 2)"
        );
        let lonely = Scenario::parse("name = \"s\"\n[world]\naccounts = [1, 1]\n").unwrap_err();
        assert_eq!(
            lonely.to_string(),
            "world.accounts: at least 2 accounts are needed to test isolation"
        );
        assert_eq!(
            CliError::NothingToReplay.to_string(),
            "replay needs --scenario FILE --seed N, or --plan FILE"
        );
        let not_a_plan = CliError::NotAPlan {
            path: PathBuf::from("x.toml"),
            reason: "expected value".into(),
        };
        assert_eq!(
            not_a_plan.to_string(),
            "x.toml is not a plan: expected value"
        );
        let needed_by = Some("the plan plants unbound-link".to_string());
        let planted = CliError::NoPlantedBugs { needed_by }.to_string();
        assert!(
            planted.starts_with("the plan plants unbound-link; this build has no planted bugs")
        );
        assert_eq!(
            super::super::parse_seeds("5..2").unwrap_err().to_string(),
            "--seeds \"5..2\": the range is empty"
        );
    }

    #[test]
    fn only_the_harness_failure_goes_out_bare() {
        let failure = HarnessFailure {
            scenario: "smoke".into(),
            seed: 3,
            cause: "panicked".into(),
        };
        let harness = CliError::from(failure);
        assert!(harness.is_bare());
        assert_eq!(
            harness.to_string(),
            "harness failure: scenario smoke seed 3: panicked"
        );
        assert!(!CliError::NothingToReplay.is_bare());
    }
}
