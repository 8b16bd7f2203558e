//! A notification feed read whole and then after the reader's cursor
//! (`check/feed.rs`): the correct build passes with both controls counted;
//! a store that takes the cursor for a count of notifications already seen
//! fails the run with request integrity.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::run_plan;
use std::path::Path;

fn smoke_plan(seed: u64) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    Plan::generate(&Scenario::load(&path).expect("scenario loads"), seed)
}

#[test]
fn the_correct_store_passes_with_feeds_read_twice() {
    let outcome = run_plan(&smoke_plan(0));
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.controls.feed_rereads_judged > 0);
    assert!(outcome.controls.feed_items_past_cursor_judged > 0);
}

#[test]
fn a_feed_cursor_taken_for_a_count_fails_with_request_integrity() {
    let mut plan = smoke_plan(0);
    plan.canary_break = Some(CanaryBreak::FeedCursorAsCount);
    let outcome = run_plan(&plan);
    assert!(
        outcome.violations.iter().any(|v| {
            v.invariant == Invariant::RequestIntegrity && v.detail.contains("feed read after seq")
        }),
        "{:?}",
        outcome.violations
    );
}
