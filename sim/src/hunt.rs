//! `crosstalk hunt`: the detection benchmark. Plant one bug of the catalogue
//! (`crosstalk_service::planted`), run a shipped scenario's seeds from 0 up
//! until the oracle reports a violation, and report how many seeds and how
//! much wall time that took. `--all` does it for the whole catalogue and
//! checks the budget: the median bug caught within 20 seeds, none above 200.
//!
//! Seeds run in parallel on the shared [`crate::runner`], which reports them
//! in seed order, so the bug counts as caught at the *lowest* violating seed
//! and the numbers do not depend on scheduling.

use crate::plan::{Plan, Regression};
use crate::runner::{Flow, Progress};
use crate::scenario::{Scenario, ScenarioError};
use crate::world::{RunOutcome, run_plan};
use crosstalk_service::Bug;
use std::path::{Path, PathBuf};

/// The shipped scenario that hunts each bug by default: the one modelled on
/// the same incident, or the one whose workload walks the defect's path.
pub fn default_scenario(bug: Bug) -> &'static str {
    match bug {
        Bug::AgentFreeRecipient => "gdpr-wrong-customer",
        Bug::PoolCancelDesync => "gdpr-wrong-customer",
        Bug::FingerprintCache => "broadcast-dollhouse",
        Bug::ClockIdCollision => "broadcast-dollhouse",
        Bug::ResaleHistory => "device-resale",
        Bug::UnscopedCursor => "smoke",
        Bug::SharedTempPath => "gdpr-wrong-customer",
        Bug::UnboundLink => "smoke",
        Bug::DeleteExportRace => "deletion-vs-export",
        // A download whose erasure check cannot reach the store.
        Bug::LiveCheckFailsOpen => "deletion-vs-export",
        Bug::CacheMissingTenant => "smoke",
        Bug::ContactFuzzyMatch => "portland-message",
        Bug::RecycledAccountId => "recycled-identity",
        Bug::DuplicateRequestBypass => "gdpr-wrong-customer",
        Bug::WeakIdentity => "gdpr-wrong-customer",
        // Races inside one request: only real threads interleave them.
        Bug::StaleCacheFill => "threads",
        Bug::CloseMissesLateUpload => "threads",
    }
}

/// What one hunt found.
pub struct Hunt {
    pub bug: Bug,
    pub scenario: PathBuf,
    /// The first violating seed and its outcome, if any within the budget.
    pub caught: Option<(u64, RunOutcome)>,
    pub seeds_run: u64,
    pub wall_seconds: f64,
    /// Seeds that ended in an infrastructure error without a violation.
    pub errors: u64,
    /// Of the seeds run, how many caught the bug (with `--rate`, the hunt
    /// goes on past the first catch to measure this).
    pub seeds_caught: u64,
}

impl Hunt {
    /// Seeds needed to detect: the first violating seed's position (1-based).
    pub fn seeds_to_detect(&self) -> Option<u64> {
        self.caught.as_ref().map(|(seed, _)| seed + 1)
    }

    pub fn invariant(&self) -> String {
        match &self.caught {
            Some((_, outcome)) => {
                let mut names: Vec<&str> = outcome
                    .violations
                    .iter()
                    .map(|v| v.invariant.short())
                    .collect();
                names.dedup();
                names.sort_unstable();
                names.dedup();
                names.join(", ")
            }
            None => "-".into(),
        }
    }

    pub fn replay(&self) -> Option<String> {
        self.caught.as_ref().map(|(seed, _)| {
            format!(
                "cargo sim-planted replay --scenario {} --seed {seed} --plant {}",
                self.scenario.display(),
                self.bug.name()
            )
        })
    }
}

/// The plan of `seed` with `bug` planted.
pub fn planted_plan(scenario: &Scenario, seed: u64, bug: Bug) -> Plan {
    let mut plan = Plan::generate(scenario, seed);
    plan.planted = vec![bug.name().to_string()];
    plan
}

/// Hunt `bug` in `scenario` over seeds `0..max_seeds`, `jobs` at a time,
/// until it is caught and at least `rate_seeds` seeds ran.
pub fn hunt(
    bug: Bug,
    scenario_path: &Path,
    max_seeds: u64,
    rate_seeds: u64,
    jobs: usize,
    wall: impl Fn() -> f64,
) -> Result<Hunt, ScenarioError> {
    let scenario = Scenario::load(scenario_path)?;
    let started = wall();
    let mut hunt = Hunt {
        bug,
        scenario: scenario_path.to_path_buf(),
        caught: None,
        seeds_run: 0,
        wall_seconds: 0.0,
        errors: 0,
        seeds_caught: 0,
    };
    let mut first_seconds = None;
    crate::runner::run_ordered(
        jobs,
        Progress::Hidden,
        |seed| (seed < max_seeds).then_some(seed),
        || true,
        |&seed| run_plan(&planted_plan(&scenario, seed, bug)),
        |_, seed, outcome| {
            hunt.seeds_run += 1;
            let caught = !outcome.violations.is_empty();
            if caught {
                hunt.seeds_caught += 1;
                if hunt.caught.is_none() {
                    hunt.caught = Some((seed, outcome));
                    first_seconds = Some(wall() - started);
                }
            } else if !outcome.infra_errors.is_empty() {
                hunt.errors += 1;
            }
            // Once caught, go on only to measure the rate over `rate_seeds`.
            if hunt.caught.is_some() && seed + 1 >= rate_seeds {
                Flow::Stop
            } else {
                Flow::Continue { failed: caught }
            }
        },
    );
    // Seconds to the first detection (what a user waits for), not to the
    // end of the rate measurement.
    hunt.wall_seconds = first_seconds.unwrap_or_else(|| wall() - started);
    Ok(hunt)
}

/// The regression file for a caught bug: the plan as generated (nothing
/// planted: it must pass on a correct build) and the bug it catches.
pub fn regression_for(hunt: &Hunt) -> Option<Regression> {
    let (seed, outcome) = hunt.caught.as_ref()?;
    let mut plan = Plan::generate(&Scenario::load(&hunt.scenario).ok()?, *seed);
    plan.planted.clear();
    let first = outcome
        .violations
        .first()
        .map(|v| v.invariant.short())
        .unwrap_or("?");
    Some(Regression {
        postmortem: format!(
            "planted bug {} ({}): {}; caught by {first} at seed {seed} of {}",
            hunt.bug.name(),
            hunt.bug.incident(),
            hunt.bug.defect(),
            hunt.scenario.display()
        ),
        plan,
        catches: Some(hunt.bug.name().to_string()),
        caught_by: None,
    })
}

/// Median of the seeds-to-detect (a bug not caught counts as above every
/// budget).
pub fn median_seeds(hunts: &[Hunt]) -> u64 {
    let mut seeds: Vec<u64> = hunts
        .iter()
        .map(|h| h.seeds_to_detect().unwrap_or(u64::MAX))
        .collect();
    seeds.sort_unstable();
    match seeds.len() {
        0 => 0,
        n if n % 2 == 1 => seeds[n / 2],
        n => {
            let (a, b) = (seeds[n / 2 - 1], seeds[n / 2]);
            if a == u64::MAX || b == u64::MAX {
                u64::MAX
            } else {
                (a + b).div_ceil(2)
            }
        }
    }
}

/// The README table row for one hunt.
pub fn table_row(hunt: &Hunt) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {}/{} | {:.1} |",
        hunt.bug.name(),
        hunt.bug.incident(),
        hunt.bug.defect(),
        hunt.scenario
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        hunt.invariant(),
        hunt.seeds_to_detect()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "not caught".into()),
        hunt.seeds_caught,
        hunt.seeds_run,
        hunt.wall_seconds,
    )
}

pub const TABLE_HEADER: &str = "| bug | incident | defect | scenario | caught by | seeds to detect | seeds that catch it | seconds to detect |\n|---|---|---|---|---|---|---|---|";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_hunts_in_a_shipped_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for bug in Bug::ALL {
            let path = root.join(format!("scenarios/{}.toml", default_scenario(bug)));
            assert!(
                Scenario::load(&path).is_ok(),
                "{bug}: {} does not load",
                path.display()
            );
        }
    }

    fn with(seeds: &[Option<u64>]) -> Vec<Hunt> {
        seeds
            .iter()
            .map(|s| Hunt {
                bug: Bug::UnboundLink,
                scenario: PathBuf::from("scenarios/smoke.toml"),
                caught: s.map(|n| {
                    let plan = Plan::generate(
                        &Scenario::load(Path::new(concat!(
                            env!("CARGO_MANIFEST_DIR"),
                            "/../scenarios/smoke.toml"
                        )))
                        .unwrap(),
                        0,
                    );
                    (n - 1, crate::world::RunOutcome::empty_for(&plan))
                }),
                seeds_run: 0,
                wall_seconds: 0.0,
                errors: 0,
                seeds_caught: 0,
            })
            .collect()
    }

    #[test]
    fn the_median_counts_a_missed_bug_as_over_budget() {
        assert_eq!(median_seeds(&with(&[Some(1), Some(3), Some(50)])), 3);
        assert_eq!(median_seeds(&with(&[Some(1), Some(4)])), 3);
        assert_eq!(median_seeds(&with(&[Some(1), None])), u64::MAX);
        assert_eq!(median_seeds(&with(&[None, None, Some(2)])), u64::MAX);
    }
}
