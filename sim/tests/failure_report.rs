//! From a failing seed to an understood bug: the canary leak shrinks to a
//! smaller plan that still fails with isolation, and its HTML report renders
//! the violation and the provenance chain in a real headless Chromium (the
//! screenshot stays in `target/crosstalk/ci/report.png` as a CI artifact).

use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::shrink::shrink;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::{Path, PathBuf};
use std::process::Command;

fn canary_failure() -> (Plan, RunOutcome) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/canary-leak.toml");
    let scenario = Scenario::load(&path).expect("canary scenario loads");
    (0..10)
        .map(|seed| Plan::generate(&scenario, seed))
        .map(|plan| {
            let outcome = run_plan(&plan);
            (plan, outcome)
        })
        .find(|(_, outcome)| !outcome.violations.is_empty())
        .expect("the canary leak fails within 10 seeds")
}

/// The workspace's `target/crosstalk/ci/`, where CI picks up artifacts.
fn ci_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/crosstalk/ci");
    std::fs::create_dir_all(&dir).expect("ci dir");
    dir
}

#[test]
fn the_canary_leak_shrinks_and_still_fails_with_isolation() {
    let (plan, outcome) = canary_failure();
    assert_eq!(outcome.violations[0].invariant, Invariant::Isolation);
    let mut steps = 0;
    let shrunk = shrink(&plan, 200, &mut |_| steps += 1).expect("a failing plan shrinks");
    assert_eq!(shrunk.invariant, Invariant::Isolation);
    assert!(shrunk.replays <= 200 && steps as u32 == shrunk.replays);
    assert!(
        shrunk.after.people < shrunk.before.people / 2
            && shrunk.after.actions < shrunk.before.actions / 2
            && shrunk.after.trace_events < shrunk.before.trace_events,
        "not smaller: {} -> {}",
        shrunk.before,
        shrunk.after
    );
    // The shrunk plan, replayed on its own, fails the same way.
    let again = run_plan(&shrunk.plan);
    assert_eq!(again.violations[0].invariant, Invariant::Isolation);
    assert_eq!(again.trace_hash, shrunk.outcome.trace_hash);
    // Shrinking is deterministic: the same input gives the same plan.
    let twice = shrink(&plan, 200, &mut |_| {}).expect("shrinks again");
    assert_eq!(twice.plan, shrunk.plan);
}

#[test]
fn a_passing_plan_has_nothing_to_shrink() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    let scenario = Scenario::load(&path).expect("smoke loads");
    let full = Plan::generate(&scenario, 0);
    let plan = crosstalk_sim::shrink::remove_people(&full, 2..full.accounts.len());
    let error = shrink(&plan, 10, &mut |_| {})
        .err()
        .expect("nothing to shrink");
    assert!(error.contains("passes"), "{error}");
}

/// A Debian-packaged Chromium, or why there is none.
fn chromium() -> Result<PathBuf, String> {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let candidate = Path::new(dir).join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no chromium on PATH (apt-get install chromium)".to_string())
}

fn headless(chromium: &Path, extra: &[&str], page: &Path) -> String {
    let profile = std::env::temp_dir().join(format!("crosstalk-chromium-{}", std::process::id()));
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_canary_report_renders_its_violation_and_provenance_in_chromium() {
    let chromium = match chromium() {
        Ok(path) => path,
        Err(why) if std::env::var("CI").is_err() => {
            println!("skipped: {why}; CI=true makes this a failure");
            return;
        }
        Err(why) => panic!("CI needs chromium for the report test: {why}"),
    };
    let (plan, outcome) = canary_failure();
    let dir = ci_dir();
    let page = crosstalk_sim::report_html::write_report(&dir, "report", &plan, &outcome)
        .expect("report written");
    let page = page.canonicalize().expect("absolute path");
    let html = std::fs::read_to_string(&page).expect("report readable");
    for external in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
        assert!(!html.contains(external), "no external assets: {external}");
    }
    // Before any script runs the page holds no rendered violation.
    assert!(!html.contains("class=\"prov-step\""));

    let dom = headless(&chromium, &["--dump-dom"], &page);
    let v = &outcome.violations[0];
    let receiver = v.receiver.clone().expect("a receiver");
    assert!(dom.contains("data-rendered=\"yes\""), "the script ran");
    assert!(dom.contains("Violation: isolation"), "violation rendered");
    assert!(dom.contains("id=\"violation-line\""), "violation marked");
    assert!(
        dom.matches("class=\"prov-step\"").count() >= 3,
        "provenance steps"
    );
    assert!(dom.contains("class=\"chain-arrow\""), "provenance drawn");
    assert!(dom.contains("captured by"), "the capture step");
    assert!(
        dom.contains(&format!("received by {receiver}")),
        "the receiver step"
    );
    assert!(dom.contains("class=\"band") || plan.crashes.is_empty() && plan.net_faults.is_empty());

    let shot = dir.join("report.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &chromium,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
        &page,
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
}

#[test]
fn report_text_is_escaped() {
    let (mut plan, mut outcome) = canary_failure();
    plan.scenario = "<script>alert(1)</script>".to_string();
    outcome.violations[0].detail = "</script><img src=x onerror=alert(2)>".to_string();
    let html = crosstalk_sim::report_html::render(&plan, &outcome);
    assert!(!html.contains("<script>alert(1)"));
    assert!(!html.contains("<img src=x"));
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "only the page's own scripts close"
    );
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_planted_regression_shrinks_and_still_fails_with_its_invariant() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/regressions/planted-unbound-link.json");
    let text = std::fs::read_to_string(&path).expect("regression readable");
    let regression = crosstalk_sim::plan::load_regression_file(&text).expect("a regression");
    let mut plan = regression.plan;
    plan.planted = vec![regression.catches.expect("catches a bug")];
    let shrunk = shrink(&plan, 500, &mut |_| {}).expect("shrinks");
    assert_eq!(shrunk.invariant, Invariant::LinkBinding);
    assert!(
        shrunk.after.people <= 4 && shrunk.after.actions <= 25,
        "{}",
        shrunk.after
    );
    let again = run_plan(&shrunk.plan);
    assert_eq!(again.violations[0].invariant, Invariant::LinkBinding);
    // Without the bug the shrunk plan passes: it is a regression.
    let mut clean = shrunk.plan.clone();
    clean.planted.clear();
    assert!(run_plan(&clean).passed());
}

fn crosstalk(cwd: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_crosstalk"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the crosstalk binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crosstalk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn the_shrink_command_saves_a_smaller_plan_and_both_reports() {
    let cwd = scratch("shrink-command");
    let (plan, _) = canary_failure();
    let saved = cwd.join("canary.json");
    std::fs::write(&saved, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
    let (code, output) = crosstalk(
        &cwd,
        &[
            "shrink",
            "--plan",
            "canary.json",
            "--max-replays",
            "40",
            "--report",
            "pages",
        ],
    );
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("still fails with isolation first"),
        "{output}"
    );
    assert!(
        output.contains("before: ") && output.contains("after:  "),
        "{output}"
    );
    let shrunk = std::fs::read_to_string(cwd.join("canary-shrunk.json")).expect("saved beside");
    let (shrunk, _) = crosstalk_sim::plan::load_plan_file(&shrunk).expect("a plan");
    assert!(shrunk.accounts.len() < plan.accounts.len());
    assert!(
        cwd.join("pages/canary.html").is_file() && cwd.join("pages/canary-shrunk.html").is_file()
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn regressions_refuse_a_plan_caught_by_another_invariant_than_it_pins() {
    let cwd = scratch("pinned-invariant");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/regressions/planted-unbound-link-shrunk.json");
    let text = std::fs::read_to_string(source).expect("the shrunk regression");
    let dir = cwd.join("regressions");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pinned.json"), &text).unwrap();
    let (code, output) = crosstalk(&cwd, &["regressions", "regressions"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("caught (link binding)"), "{output}");
    let mut wrong: serde_json::Value = serde_json::from_str(&text).unwrap();
    wrong["caught_by"] = "isolation".into();
    std::fs::write(dir.join("pinned.json"), wrong.to_string()).unwrap();
    let (code, output) = crosstalk(&cwd, &["regressions", "regressions"]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("not by isolation as the file pins"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&cwd);
}
