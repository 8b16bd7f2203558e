//! The must-hit gate over the services' code probes.
//!
//! Every `probe!` in the recording store and the export service marks a
//! decision a scenario must reach (a refusal, a revocation, a recovery, a
//! cache hit); the services list them in their `PROBES` constants, so the
//! set is learned from them, not copied here. `crosstalk run` over a
//! directory tallies the hits of every seed and prints the probes that no
//! seed reached. When every scenario ran at least [`MIN_SEEDS_PER_SCENARIO`]
//! seeds, a probe never hit fails the run ("unhit probes", exit 1) unless
//! the reviewed allow-list ([`ALLOW_LIST_FILE`] in that directory) names it
//! with a reason; a shorter run only prints them.

use std::collections::BTreeMap;
use std::path::Path;

/// The allow-list's file name inside a scenario directory (it is not a
/// scenario).
pub const ALLOW_LIST_FILE: &str = "probes-allowed.toml";
/// Seeds every scenario must run before unhit probes fail the run.
pub const MIN_SEEDS_PER_SCENARIO: u64 = 20;

/// Every probe of the services, by name.
pub fn service_probes() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = crosstalk_store::PROBES
        .iter()
        .chain(crosstalk_export::PROBES)
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Probe hits over many seeds, and how many seeds each scenario ran.
#[derive(Debug, Default, Clone)]
pub struct ProbeTally {
    pub hits: BTreeMap<String, u64>,
    pub seeds_by_scenario: BTreeMap<String, u64>,
}

impl ProbeTally {
    /// Count one seed of `scenario` and its probe hits.
    pub fn record(&mut self, scenario: &str, probes: &BTreeMap<String, u64>) {
        *self
            .seeds_by_scenario
            .entry(scenario.to_string())
            .or_default() += 1;
        for (name, hits) in probes {
            *self.hits.entry(name.clone()).or_default() += hits;
        }
    }

    /// Count probe hits of a seed whose scenario runs only a few capped seeds
    /// (`max_seeds`): its hits count, its seeds are not held against
    /// [`MIN_SEEDS_PER_SCENARIO`].
    pub fn record_hits(&mut self, probes: &BTreeMap<String, u64>) {
        for (name, hits) in probes {
            *self.hits.entry(name.clone()).or_default() += hits;
        }
    }

    /// Whether every scenario ran enough seeds for the gate to judge.
    pub fn enough_seeds(&self, min_seeds: u64) -> bool {
        !self.seeds_by_scenario.is_empty()
            && self.seeds_by_scenario.values().all(|&n| n >= min_seeds)
    }
}

/// Probes allowed to stay unhit, each with the reviewed reason.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    #[serde(default)]
    pub allowed: BTreeMap<String, String>,
}

impl AllowList {
    /// Parse an allow-list; every entry needs a reason.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let list: AllowList = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some((name, _)) = list.allowed.iter().find(|(_, why)| why.trim().is_empty()) {
            return Err(format!("{name}: an allowed probe needs a reason"));
        }
        Ok(list)
    }

    /// The allow-list of a scenario directory (none: empty).
    pub fn for_dir(dir: &Path) -> Result<AllowList, String> {
        let path = dir.join(ALLOW_LIST_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AllowList::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// What the gate found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProbeVerdict {
    pub known: usize,
    pub hit: usize,
    /// Never hit and not allowed.
    pub unhit: Vec<String>,
    /// Never hit, allowed with a reason.
    pub allowed_unhit: Vec<String>,
    /// Allow-list entries that are no probe of the services.
    pub unknown_allowed: Vec<String>,
    /// Whether enough seeds ran for the verdict to count.
    pub enforced: bool,
}

impl ProbeVerdict {
    /// Whether the gate fails the run.
    pub fn fails(&self) -> bool {
        self.enforced && (!self.unhit.is_empty() || !self.unknown_allowed.is_empty())
    }
}

/// Judge `tally` against the `known` probes and the allow-list.
pub fn judge(
    known: &[&str],
    tally: &ProbeTally,
    allow: &AllowList,
    min_seeds: u64,
) -> ProbeVerdict {
    let mut verdict = ProbeVerdict {
        known: known.len(),
        enforced: tally.enough_seeds(min_seeds),
        ..ProbeVerdict::default()
    };
    for name in known {
        if tally.hits.get(*name).is_some_and(|&n| n > 0) {
            verdict.hit += 1;
        } else if allow.allowed.contains_key(*name) {
            verdict.allowed_unhit.push(name.to_string());
        } else {
            verdict.unhit.push(name.to_string());
        }
    }
    verdict.unknown_allowed = allow
        .allowed
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .cloned()
        .collect();
    verdict
}

/// Print the probe section of a run's summary.
pub fn print(verdict: &ProbeVerdict, tally: &ProbeTally, allow: &AllowList) {
    let total: u64 = tally.hits.values().sum();
    println!(
        "code probes: {} of {} hit ({total} hits), {} allowed unhit, {} unhit",
        verdict.hit,
        verdict.known,
        verdict.allowed_unhit.len(),
        verdict.unhit.len()
    );
    for name in &verdict.unhit {
        println!("  unhit probe: {name}");
    }
    for name in &verdict.allowed_unhit {
        let why = allow.allowed.get(name).map_or("", String::as_str);
        println!("  allowed unhit: {name} ({why})");
    }
    for name in allow.allowed.keys() {
        if tally.hits.get(name).is_some_and(|&n| n > 0) {
            println!("  {ALLOW_LIST_FILE} allows {name}, which was hit: remove the entry");
        }
    }
    for name in &verdict.unknown_allowed {
        println!("  {ALLOW_LIST_FILE} names {name}, which is no probe of the services");
    }
    if !verdict.enforced && !verdict.unhit.is_empty() {
        println!("  (not judged: fewer than {MIN_SEEDS_PER_SCENARIO} seeds of some scenario ran)");
    }
}

/// The probe section of `crosstalk run PATH`: over a directory, the unhit
/// probes are listed and judged; over one file, only counted. `Err` is the
/// result line of a run the gate fails (or whose allow-list is unreadable).
pub fn finish_run(path: &Path, tally: &ProbeTally) -> Result<(), String> {
    let known = service_probes();
    if !path.is_dir() {
        let verdict = judge(&known, tally, &AllowList::default(), u64::MAX);
        let total: u64 = tally.hits.values().sum();
        println!(
            "code probes: {} of {} hit ({total} hits; run a directory for the unhit list)",
            verdict.hit, verdict.known
        );
        return Ok(());
    }
    let allow = AllowList::for_dir(path)?;
    let verdict = judge(&known, tally, &allow, MIN_SEEDS_PER_SCENARIO);
    print(&verdict, tally, &allow);
    if verdict.fails() {
        return Err(format!(
            "FAIL, unhit probes: {} probe(s) no seed reached and {} unknown allow-list entr(ies) (see {ALLOW_LIST_FILE})",
            verdict.unhit.len(),
            verdict.unknown_allowed.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test service's decision: one branch the scenario takes, one it never does.
    fn test_service(request: u32) -> u32 {
        if request < 1_000 {
            crosstalk_service::probe!("test.reached");
            request
        } else {
            crosstalk_service::probe!("test.never_reached");
            0
        }
    }

    const TEST_PROBES: &[&str] = &["test.never_reached", "test.reached"];

    /// Run the "scenario" (small requests only) for `seeds` seeds.
    fn tally_of(seeds: u64) -> ProbeTally {
        let mut tally = ProbeTally::default();
        for seed in 0..seeds {
            crosstalk_service::probes::reset();
            test_service(seed as u32);
            let hits = crosstalk_service::probes::take()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            tally.record("test", &hits);
        }
        tally
    }

    #[test]
    fn a_capped_worlds_hits_count_without_holding_the_gate_back() {
        let mut tally = tally_of(MIN_SEEDS_PER_SCENARIO);
        let city: BTreeMap<String, u64> = [("test.never_reached".to_string(), 2)].into();
        tally.record_hits(&city);
        assert!(tally.enough_seeds(MIN_SEEDS_PER_SCENARIO));
        let verdict = judge(
            TEST_PROBES,
            &tally,
            &AllowList::default(),
            MIN_SEEDS_PER_SCENARIO,
        );
        assert!(verdict.unhit.is_empty(), "{verdict:?}");
        assert!(!verdict.fails());
    }

    #[test]
    fn the_test_service_probes_are_in_its_source() {
        let names = crosstalk_service::probes::names_in_text(include_str!("probe_gate.rs"));
        for probe in TEST_PROBES {
            assert!(names.iter().any(|n| n == probe), "{probe}");
        }
    }

    #[test]
    fn a_probe_the_scenario_never_reaches_fails_the_gate() {
        let tally = tally_of(MIN_SEEDS_PER_SCENARIO);
        assert_eq!(
            tally.hits.get("test.reached"),
            Some(&MIN_SEEDS_PER_SCENARIO)
        );
        let verdict = judge(
            TEST_PROBES,
            &tally,
            &AllowList::default(),
            MIN_SEEDS_PER_SCENARIO,
        );
        assert_eq!(verdict.unhit, ["test.never_reached"]);
        assert_eq!(verdict.hit, 1);
        assert!(verdict.fails());
    }

    #[test]
    fn an_allow_listed_probe_does_not_fail_it() {
        let tally = tally_of(MIN_SEEDS_PER_SCENARIO);
        let allow = AllowList::parse(
            "[allowed]\n\"test.never_reached\" = \"requests this large are refused upstream\"\n",
        )
        .expect("parses");
        let verdict = judge(TEST_PROBES, &tally, &allow, MIN_SEEDS_PER_SCENARIO);
        assert!(verdict.unhit.is_empty());
        assert_eq!(verdict.allowed_unhit, ["test.never_reached"]);
        assert!(!verdict.fails());
    }

    #[test]
    fn a_short_run_only_reports() {
        let tally = tally_of(MIN_SEEDS_PER_SCENARIO - 1);
        let verdict = judge(
            TEST_PROBES,
            &tally,
            &AllowList::default(),
            MIN_SEEDS_PER_SCENARIO,
        );
        assert_eq!(verdict.unhit, ["test.never_reached"]);
        assert!(!verdict.fails());
    }

    #[test]
    fn an_allow_list_needs_reasons_and_known_names() {
        assert!(AllowList::parse("[allowed]\n\"x\" = \"  \"\n").is_err());
        assert!(AllowList::parse("[other]\n").is_err());
        let allow = AllowList::parse("[allowed]\n\"gone.probe\" = \"renamed\"\n").expect("parses");
        let tally = tally_of(MIN_SEEDS_PER_SCENARIO);
        let verdict = judge(&["test.reached"], &tally, &allow, MIN_SEEDS_PER_SCENARIO);
        assert_eq!(verdict.unknown_allowed, ["gone.probe"]);
        assert!(verdict.fails(), "a stale allow-list entry fails the gate");
    }

    #[test]
    fn the_services_probes_are_known() {
        let all = service_probes();
        assert!(all.len() >= 40, "{}", all.len());
        assert!(all.contains(&"export.request.duplicate_joined"));
        assert!(all.contains(&"store.message.confirm_wrong_contact_refused"));
    }
}
