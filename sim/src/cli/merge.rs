//! `crosstalk report merge A.json B.json …`: join the `--json` results of
//! shards into one summary judged exactly like a run (the same per-scenario
//! vacuity and exit codes; a shard missing or merged twice is an error).
//! The result format and the joining are [`crate::report`]'s.

use super::args::MergeArgs;
use super::verdict::finish_run;
use super::{CliError, EXIT_USAGE};
use crate::report::{RunReport, merge, missing_shards};

/// `crosstalk report merge`: join shard results and judge them like a run.
pub(super) fn command(args: &MergeArgs) -> Result<i32, CliError> {
    let reports = args
        .files
        .iter()
        .map(|f| RunReport::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = merge(reports)?;
    println!(
        "crosstalk report merge: {} result(s), shards [{}], {} scenario(s)",
        args.files.len(),
        merged.shards.join(", "),
        merged.scenarios.len()
    );
    print_merged(&merged);
    let missing = missing_shards(&merged.shards);
    if let Some(missing) = &missing {
        println!("error: incomplete merge: {missing}");
    }
    let code = finish_run(&merged, args.json.as_deref(), args.junit.as_deref(), None);
    if missing.is_some() {
        return Ok(code.max(EXIT_USAGE));
    }
    Ok(code)
}

/// Print a merged result: each seed that did not pass, the totals per
/// scenario, the controls, and the verdict.
fn print_merged(report: &RunReport) {
    for r in report.seeds.iter().filter(|r| r.verdict != "pass") {
        let first = r
            .violations
            .first()
            .map(|v| format!("{}: {}", v.invariant, v.detail))
            .or_else(|| r.infra_errors.first().cloned())
            .unwrap_or_else(|| format!("trace {}", r.trace_hash));
        println!(
            "{} seed {} [{}]: {first}",
            r.verdict.to_uppercase(),
            r.seed,
            r.scenario
        );
        println!("  replay: {}", r.replay);
    }
    println!("== summary ==");
    let c = &report.counts;
    println!(
        "seeds run {}, passed {}, failed {}{}{}",
        c.seeds,
        c.passed,
        c.failed,
        if c.nondeterministic > 0 {
            format!(", NONDETERMINISTIC {}", c.nondeterministic)
        } else {
            String::new()
        },
        if c.infra > 0 {
            format!(", infrastructure errors {}", c.infra)
        } else {
            String::new()
        },
    );
    for t in &report.scenarios {
        println!(
            "scenario {}: seeds {}, passed {}, failed {}{}",
            t.name,
            t.counts.seeds,
            t.counts.passed,
            t.counts.failed,
            if t.vacuous.is_empty() {
                String::new()
            } else {
                format!("; VACUOUS: no {}", t.vacuous.join(", "))
            }
        );
    }
    let controls: Vec<String> = report
        .controls
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("positive controls: {}", controls.join(", "));
}
