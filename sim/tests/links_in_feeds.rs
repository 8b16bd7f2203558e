//! Every download link in a person's notification feed is judged their
//! own, whether or not they follow it (`Oracle::link_delivered`, fed by the
//! workload's every feed read). Proved by a store that files export-ready
//! notifications under the next account: the misdelivered link fails the
//! run as link binding even though its download would be refused.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan_with};
use std::rc::Rc;
use support::{Fut, first_failure, layered, scenario, split};

/// The account a service notification is filed under, and the rest of its
/// path: `/v1/service/accounts/{account}/notifications`.
fn notified_account(path: &str) -> Option<u64> {
    path.strip_prefix("/v1/service/accounts/")?
        .strip_suffix("/notifications")?
        .parse()
        .ok()
}

/// Notifications that carry a download link go to the next account.
fn links_to_the_next_account(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let Some(account) = notified_account(request.uri().path()) else {
            return next.run(request).await;
        };
        let (mut parts, bytes) = split(request).await;
        if String::from_utf8_lossy(&bytes).contains("/v1/downloads/") {
            let path = format!("/v1/service/accounts/{}/notifications", account + 1);
            if let Ok(uri) = path.parse() {
                parts.uri = uri;
            }
        }
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

#[test]
fn a_link_filed_in_someone_elses_feed_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 6, |_| Wrappers {
        store: Some(Rc::new(|inner| {
            layered(inner, (), links_to_the_next_account)
        })),
        export: None,
    });
    assert!(
        outcome.violations.iter().any(|v| {
            v.invariant == Invariant::LinkBinding && v.detail.contains("was handed a download link")
        }),
        "{:#?}",
        outcome.violations
    );
}

#[test]
fn the_correct_build_judges_every_link_in_feeds() {
    let outcome = run_plan_with(&Plan::generate(&scenario("smoke"), 1), &Wrappers::default());
    assert!(outcome.passed(), "{:#?}", outcome.violations);
    assert!(outcome.controls.links_delivered_judged > 0);
}
