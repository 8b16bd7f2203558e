//! Machine-readable results of `crosstalk run`: `--json FILE` (every seed's
//! verdict, violations, trace hash and controls; totals and controls per
//! scenario; the command line and the build) and `--junit FILE` (one test
//! case per scenario and seed), and `crosstalk report merge`, which joins
//! the JSON results of shards into one summary judged like a run: the same
//! per-scenario vacuity rules and the same exit codes.

use crate::check::Controls;
use crate::scenario::Scenario;
use crate::vacuity::{ControlCounts, Vacuity, add_counts, control_counts};
use crate::world::RunOutcome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `format` field of a result file.
pub const FORMAT: &str = "crosstalk-run-result/1";

/// One violation, as the oracle reported it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ViolationRecord {
    /// The invariant's short name.
    pub invariant: String,
    pub description: String,
    pub at_ms: u64,
    pub detail: String,
}

/// One seed of one scenario.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeedRecord {
    pub scenario: String,
    pub seed: u64,
    /// `pass`, `fail` (a violation), `error` (infrastructure) or
    /// `nondeterministic`.
    pub verdict: String,
    pub passed: bool,
    pub nondeterministic: bool,
    pub violations: Vec<ViolationRecord>,
    pub infra_errors: Vec<String>,
    pub trace_hash: String,
    pub trace_events: u64,
    pub simulated_ms: u64,
    pub sut_requests: u64,
    pub controls: ControlCounts,
    pub replay: String,
}

impl SeedRecord {
    /// The record of a seed's run (`again`: its second run, if any).
    pub fn of(
        scenario: &str,
        outcome: &RunOutcome,
        again: Option<&RunOutcome>,
        replay: String,
    ) -> SeedRecord {
        let nondeterministic = again.is_some_and(|a| a.trace_hash != outcome.trace_hash);
        let verdict = if nondeterministic {
            "nondeterministic"
        } else if outcome.passed() {
            "pass"
        } else if outcome.violations.is_empty() {
            "error"
        } else {
            "fail"
        };
        SeedRecord {
            scenario: scenario.to_string(),
            seed: outcome.seed,
            verdict: verdict.into(),
            passed: outcome.passed(),
            nondeterministic,
            violations: outcome
                .violations
                .iter()
                .map(|v| ViolationRecord {
                    invariant: v.invariant.short().into(),
                    description: v.invariant.describe().to_string(),
                    at_ms: v.at_ms,
                    detail: v.detail.clone(),
                })
                .collect(),
            infra_errors: outcome.infra_errors.clone(),
            trace_hash: outcome.trace_hash.clone(),
            trace_events: outcome.trace_events,
            simulated_ms: outcome.simulated_ms,
            sut_requests: outcome.sut_requests,
            controls: control_counts(&outcome.controls),
            replay,
        }
    }

    fn infra(&self) -> bool {
        !self.passed && self.violations.is_empty() && !self.infra_errors.is_empty()
    }
}

/// Seed counts, as the summary line and the exit code use them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub seeds: u64,
    pub passed: u64,
    /// Seeds that did not pass (violations or infrastructure errors).
    pub failed: u64,
    pub nondeterministic: u64,
    /// Failed seeds with infrastructure errors and no violation.
    pub infra: u64,
}

impl Counts {
    fn add(&mut self, record: &SeedRecord) {
        self.seeds += 1;
        self.passed += u64::from(record.passed && !record.nondeterministic);
        self.failed += u64::from(!record.passed);
        self.nondeterministic += u64::from(record.nondeterministic);
        self.infra += u64::from(record.infra());
    }
}

/// One scenario's totals: its spec (to judge vacuity again on a merge), its
/// counts and its controls summed over its seeds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScenarioTotals {
    pub name: String,
    pub spec: Scenario,
    pub counts: Counts,
    pub controls: ControlCounts,
    /// Features this scenario enables that its controls never saw.
    pub vacuous: Vec<String>,
}

/// A whole result file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunReport {
    pub format: String,
    pub crosstalk_version: String,
    pub commit: Option<String>,
    pub command_line: Vec<String>,
    /// The shards this result covers (`I/N`), or empty for a whole run.
    pub shards: Vec<String>,
    pub counts: Counts,
    pub controls: ControlCounts,
    pub scenarios: Vec<ScenarioTotals>,
    pub seeds: Vec<SeedRecord>,
    /// `pass`, `fail`, `vacuous`, `error` or `nondeterministic`.
    pub result: String,
    pub exit_code: i32,
}

/// The commit this binary runs from, if known: `CROSSTALK_COMMIT` or
/// `GITHUB_SHA` from the environment, else `git rev-parse HEAD`.
fn commit() -> Option<String> {
    for var in ["CROSSTALK_COMMIT", "GITHUB_SHA"] {
        if let Ok(value) = std::env::var(var)
            && !value.is_empty()
        {
            return Some(value);
        }
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Running totals of a run: overall and per scenario.
#[derive(Debug, Default)]
pub struct Tally {
    per_scenario: BTreeMap<String, (Counts, ControlCounts)>,
    pub counts: Counts,
    pub controls: ControlCounts,
}

impl Tally {
    pub fn add(&mut self, record: &SeedRecord) {
        let entry = self
            .per_scenario
            .entry(record.scenario.clone())
            .or_default();
        entry.0.add(record);
        add_counts(&mut entry.1, &record.controls);
        self.counts.add(record);
        add_counts(&mut self.controls, &record.controls);
    }

    /// Each of `scenarios` (in that order) with its totals and vacuity.
    pub fn scenario_totals(&self, scenarios: &[Scenario]) -> Vec<ScenarioTotals> {
        let empty = (Counts::default(), control_counts(&Controls::default()));
        let mut totals: Vec<ScenarioTotals> = scenarios
            .iter()
            .map(|s| {
                let (c, k) = self.per_scenario.get(&s.name).unwrap_or(&empty);
                ScenarioTotals {
                    name: s.name.clone(),
                    spec: s.clone(),
                    counts: c.clone(),
                    controls: k.clone(),
                    vacuous: Vec::new(),
                }
            })
            .collect();
        for (name, labels) in judge(&totals).missing {
            if let Some(t) = totals.iter_mut().find(|t| t.name == name) {
                t.vacuous = labels.iter().map(|l| l.to_string()).collect();
            }
        }
        totals
    }
}

/// The per-scenario vacuity verdict of scenario totals.
pub fn judge(totals: &[ScenarioTotals]) -> Vacuity {
    Vacuity::judge(
        totals
            .iter()
            .map(|t| (&t.spec, t.counts.seeds, &t.controls)),
    )
}

impl RunReport {
    /// Total and judge `seeds` of `scenarios` (in the order given).
    pub fn build(scenarios: &[Scenario], seeds: Vec<SeedRecord>, shards: Vec<String>) -> RunReport {
        let mut tally = Tally::default();
        for record in &seeds {
            tally.add(record);
        }
        RunReport::from_tally(scenarios, &tally, seeds, shards)
    }

    /// The result of a run whose seeds were tallied in `tally`.
    pub fn from_tally(
        scenarios: &[Scenario],
        tally: &Tally,
        seeds: Vec<SeedRecord>,
        shards: Vec<String>,
    ) -> RunReport {
        let totals = tally.scenario_totals(scenarios);
        let (result, exit_code) = conclusion(&tally.counts, &judge(&totals));
        RunReport {
            format: FORMAT.into(),
            crosstalk_version: env!("CARGO_PKG_VERSION").into(),
            commit: commit(),
            command_line: std::env::args().collect(),
            shards,
            counts: tally.counts.clone(),
            controls: tally.controls.clone(),
            scenarios: totals,
            seeds,
            result: result.into(),
            exit_code,
        }
    }

    /// The per-scenario vacuity verdict again (from the stored totals).
    pub fn vacuity(&self) -> Vacuity {
        judge(&self.scenarios)
    }

    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let json = serde_json::to_string_pretty(self).map_err(ReportError::Json)?;
        write_file(path, &(json + "\n"))
    }

    pub fn load(path: &Path) -> Result<RunReport, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let report: RunReport =
            serde_json::from_str(&text).map_err(|source| ReportError::NotAResult {
                path: path.to_path_buf(),
                source,
            })?;
        if report.format != FORMAT {
            return Err(ReportError::Format {
                path: path.to_path_buf(),
                found: report.format,
            });
        }
        Ok(report)
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Why a result file cannot be read or written, or results do not merge.
#[derive(Debug)]
pub enum ReportError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not JSON of the result format.
    NotAResult {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A result of another format version.
    Format {
        path: PathBuf,
        found: String,
    },
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    Json(serde_json::Error),
    /// A scenario whose spec differs between the merged results.
    ScenarioDiffers(String),
    /// A seed of a scenario in more than one merged result.
    SeedTwice {
        scenario: String,
        seed: u64,
    },
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
            ReportError::NotAResult { path, source } => {
                write!(f, "{} is not a crosstalk result: {source}", path.display())
            }
            ReportError::Format { path, found } => write!(
                f,
                "{}: format {found:?}, this crosstalk reads {FORMAT:?}",
                path.display()
            ),
            ReportError::Create { path, source } => {
                write!(f, "creating {}: {source}", path.display())
            }
            ReportError::Write { path, source } => {
                write!(f, "writing {}: {source}", path.display())
            }
            ReportError::Json(e) => write!(f, "{e}"),
            ReportError::ScenarioDiffers(name) => {
                write!(f, "scenario {name} differs between the results")
            }
            ReportError::SeedTwice { scenario, seed } => write!(
                f,
                "seed {seed} of {scenario} is in more than one result (overlapping shards?)"
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// The result word and exit code of a run, in the order `run` always used:
/// nondeterminism, then violations, then infrastructure errors, then
/// vacuity.
pub fn conclusion(counts: &Counts, vacuity: &Vacuity) -> (&'static str, i32) {
    use crate::cli::{EXIT_NONDETERMINISM, EXIT_PASS, EXIT_USAGE, EXIT_VIOLATION};
    if counts.nondeterministic > 0 {
        ("nondeterministic", EXIT_NONDETERMINISM)
    } else if counts.failed > counts.infra {
        ("fail", EXIT_VIOLATION)
    } else if counts.infra > 0 {
        ("error", EXIT_USAGE)
    } else if !vacuity.missing.is_empty() {
        ("vacuous", EXIT_VIOLATION)
    } else {
        ("pass", EXIT_PASS)
    }
}

/// The `result:` line `run` prints for a conclusion.
pub fn result_line(counts: &Counts, vacuity: &Vacuity) -> String {
    match conclusion(counts, vacuity).0 {
        "nondeterministic" => format!(
            "result: NONDETERMINISM in {} seed(s)",
            counts.nondeterministic
        ),
        "fail" => format!(
            "result: FAIL, invariant violated in {} seed(s)",
            counts.failed - counts.infra
        ),
        "error" => format!(
            "result: ERROR, {} seed(s) could not run as planned",
            counts.infra
        ),
        "vacuous" => format!(
            "result: FAIL, vacuous run: no positive control for {}",
            vacuity.describe()
        ),
        _ => "result: PASS".into(),
    }
}

/// Join shard results: every seed once, scenarios in first-seen order, each
/// scenario's spec the same in every file.
pub fn merge(reports: Vec<RunReport>) -> Result<RunReport, ReportError> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut seeds: Vec<SeedRecord> = Vec::new();
    let mut shards = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for report in reports {
        for t in report.scenarios {
            match scenarios.iter().find(|s| s.name == t.name) {
                Some(s) if *s != t.spec => {
                    return Err(ReportError::ScenarioDiffers(t.name));
                }
                Some(_) => {}
                None => scenarios.push(t.spec),
            }
        }
        for record in report.seeds {
            if !seen.insert((record.scenario.clone(), record.seed)) {
                return Err(ReportError::SeedTwice {
                    scenario: record.scenario,
                    seed: record.seed,
                });
            }
            seeds.push(record);
        }
        shards.extend(report.shards);
    }
    seeds.sort_by(|a, b| {
        let index = |r: &SeedRecord| scenarios.iter().position(|s| s.name == r.scenario);
        (index(a), a.seed).cmp(&(index(b), b.seed))
    });
    Ok(RunReport::build(&scenarios, seeds, shards))
}

/// Escape text for an XML attribute or element (dropping the control
/// characters XML 1.0 cannot carry).
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// The failure element of one seed, if it did not pass.
fn junit_failure(record: &SeedRecord) -> Option<String> {
    let (tag, kind, message) = match record.verdict.as_str() {
        "pass" => return None,
        "nondeterministic" => (
            "failure",
            "nondeterminism",
            "the same seed gave two trace hashes".to_string(),
        ),
        "error" => (
            "error",
            "infrastructure",
            record.infra_errors.first().cloned().unwrap_or_default(),
        ),
        _ => {
            let first = record.violations.first();
            let invariant = first.map(|v| v.invariant.clone()).unwrap_or_default();
            let message = first.map(|v| v.description.clone()).unwrap_or_default();
            ("failure", "", format!("{invariant}: {message}"))
        }
    };
    let kind = if kind.is_empty() { "violation" } else { kind };
    let mut body = String::new();
    for v in &record.violations {
        body.push_str(&format!(
            "{} at simulated {} ms: {}\n  {}\n",
            v.invariant, v.at_ms, v.description, v.detail
        ));
    }
    for e in &record.infra_errors {
        body.push_str(&format!("infrastructure error: {e}\n"));
    }
    body.push_str(&format!(
        "trace hash {}\nreplay: {}\n",
        record.trace_hash, record.replay
    ));
    Some(format!(
        "      <{tag} message=\"{}\" type=\"{kind}\">{}</{tag}>\n",
        xml(&message),
        xml(&body)
    ))
}

/// JUnit XML: a test suite per scenario, a test case per seed (`seed N`)
/// and one more (`positive controls`) failing when the scenario was vacuous.
pub fn junit(report: &RunReport) -> String {
    let failing = |r: &SeedRecord| r.verdict == "fail" || r.verdict == "nondeterministic";
    let mut suites = String::new();
    let (mut tests, mut failures, mut errors) = (0, 0, 0);
    for t in &report.scenarios {
        let records: Vec<&SeedRecord> = report
            .seeds
            .iter()
            .filter(|r| r.scenario == t.name)
            .collect();
        let f = records.iter().filter(|r| failing(r)).count() + usize::from(!t.vacuous.is_empty());
        let e = records.iter().filter(|r| r.verdict == "error").count();
        let n = records.len() + 1;
        (tests, failures, errors) = (tests + n, failures + f, errors + e);
        suites.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{f}\" errors=\"{e}\" skipped=\"0\">\n",
            xml(&t.name)
        ));
        for r in records {
            let case = format!(
                "    <testcase classname=\"{}\" name=\"seed {}\"",
                xml(&t.name),
                r.seed
            );
            match junit_failure(r) {
                Some(failure) => suites.push_str(&format!("{case}>\n{failure}    </testcase>\n")),
                None => suites.push_str(&format!("{case}/>\n")),
            }
        }
        let case = format!(
            "    <testcase classname=\"{}\" name=\"positive controls\"",
            xml(&t.name)
        );
        if t.vacuous.is_empty() {
            suites.push_str(&format!("{case}/>\n"));
        } else {
            let message = format!("vacuous: no positive control for {}", t.vacuous.join(", "));
            suites.push_str(&format!(
                "{case}>\n      <failure message=\"{}\" type=\"vacuity\">{} seeds ran</failure>\n    </testcase>\n",
                xml(&message),
                t.counts.seeds
            ));
        }
        suites.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"crosstalk\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n{suites}</testsuites>\n"
    )
}

pub fn write_junit(report: &RunReport, path: &Path) -> Result<(), ReportError> {
    write_file(path, &junit(report))
}

/// Shards that a set of `I/N` names misses, as a sentence, if any.
pub fn missing_shards(shards: &[String]) -> Option<String> {
    let parsed: Vec<crate::seeds::Shard> = shards
        .iter()
        .filter_map(|s| crate::seeds::Shard::parse(s).ok())
        .collect();
    let count = parsed.first()?.count;
    if parsed.iter().any(|s| s.count != count) {
        return Some(format!(
            "the results are shards of different splits ({})",
            shards.join(", ")
        ));
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !parsed.iter().any(|s| s.index == *i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    (!missing.is_empty()).then(|| format!("shard(s) {} of {count} missing", missing.join(", ")))
}
