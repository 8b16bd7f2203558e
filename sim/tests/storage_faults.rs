//! The store under the faults a real disk and a real attacker bring, each
//! with a canary that breaks the store the way a realistic defect would,
//! and the correct build passing with the check's positive control counted:
//!
//! - a disk that fails a sync and then loses power (`Crash::sync_error`,
//!   fsyncgate): a store that takes the failed sync for success
//!   (`CanaryBreak::SyncErrorsSwallowed`) acknowledges writes the power loss
//!   takes away, and fails by durability or erasure;
//! - a listed recording whose audio is gone (a crash between an index commit
//!   and its audio's; `CanaryBreak::AudioMissing`): the final audit's
//!   playback of every listed recording fails it by durability;
//! - the store's service routes called with a user's own credentials
//!   (`CanaryBreak::ServiceRoutesOpen`): the curious user reads someone
//!   else's recording through them, and the run fails by access control.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).expect("scenario loads")
}

fn run(scenario: &Scenario, seed: u64, how: Option<CanaryBreak>) -> RunOutcome {
    let mut plan = Plan::generate(scenario, seed);
    plan.canary_break = how;
    run_plan(&plan)
}

fn describe(outcome: &RunOutcome) -> String {
    format!("{:?} {:?}", outcome.violations, outcome.infra_errors)
}

/// The first of seeds `0..seeds` on which `how` fails `scenario` with one
/// of `invariants`, in a violation whose detail contains `detail`.
fn caught(
    name: &str,
    how: CanaryBreak,
    seeds: u64,
    invariants: &[Invariant],
    detail: &str,
) -> Option<u64> {
    let scenario = scenario(name);
    (0..seeds).find(|&seed| {
        run(&scenario, seed, Some(how))
            .violations
            .iter()
            .any(|v| invariants.contains(&v.invariant) && v.detail.contains(detail))
    })
}

#[test]
fn the_correct_store_passes_failed_syncs_and_listed_playbacks_with_controls_counted() {
    let scenario = scenario("store-crash.toml");
    let (mut losses, mut played) = (0, 0);
    for seed in 0..3 {
        let plan = Plan::generate(&scenario, seed);
        assert!(
            plan.crashes.iter().any(|c| c.sync_error),
            "seed {seed}: store-crash plans a failing sync"
        );
        let outcome = run_plan(&plan);
        assert!(outcome.passed(), "seed {seed}: {}", describe(&outcome));
        losses += outcome.controls.store_power_losses_after_failed_sync;
        played += outcome.controls.listed_recordings_played_back;
    }
    assert!(losses > 0, "no power loss after a failed sync in 3 seeds");
    assert!(played > 0, "no listed recording played back in 3 seeds");
}

#[test]
fn a_store_that_takes_a_failed_sync_for_success_loses_what_it_acknowledged() {
    let seed = caught(
        "store-crash.toml",
        CanaryBreak::SyncErrorsSwallowed,
        8,
        &[Invariant::Durability, Invariant::Erasure],
        "",
    );
    assert!(
        seed.is_some(),
        "a swallowed sync error went unnoticed in 8 seeds"
    );
}

#[test]
fn a_listed_recording_without_its_audio_is_lost() {
    let seed = caught(
        "store-crash.toml",
        CanaryBreak::AudioMissing,
        4,
        &[Invariant::Durability],
        "without its audio",
    );
    assert!(
        seed.is_some(),
        "a listed recording without audio went unnoticed"
    );
}

#[test]
fn service_routes_refuse_a_users_own_credentials() {
    let scenario = scenario("smoke.toml");
    let mut refused = 0;
    for seed in 0..3 {
        let outcome = run(&scenario, seed, None);
        assert!(outcome.passed(), "seed {seed}: {}", describe(&outcome));
        refused += outcome
            .controls
            .probes
            .get("service route with a user's credentials")
            .map_or(0, |p| p.refused);
    }
    assert!(
        refused > 0,
        "no service route probed with a user's credentials"
    );
    let seed = caught(
        "smoke.toml",
        CanaryBreak::ServiceRoutesOpen,
        4,
        &[Invariant::AccessControl],
        "service route with a user's credentials",
    );
    assert!(seed.is_some(), "open service routes went unnoticed");
}

/// The store's availability fault on a subject's collection reads answers
/// only the service principal: a user's own session, no token, or a wrong
/// one is refused by authentication first (401/403), never told 503 about
/// the subject's backend (which also counted as the export job's refused
/// reads). The worker's own read is still refused 503.
mod collection_fault_after_authentication {
    use crosstalk_model::{ManualClock, SeededEntropy};
    use crosstalk_service::Inject;
    use crosstalk_service::fault_points::FaultPoints;
    use crosstalk_store::{Store, StoreConfig};
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// Every subject's collection reads are unavailable.
    struct AllSubjectsDown;

    impl FaultPoints for AllSubjectsDown {
        fn fire(&self, _point: &'static str) -> bool {
            false
        }
        fn fire_for(&self, point: &'static str, _key: u64) -> bool {
            point == "store.service.subject_unavailable"
        }
    }

    async fn status(router: &axum::Router, path: &str, token: Option<&str>) -> u16 {
        let mut request = http::Request::builder().uri(path);
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        status
    }

    #[tokio::test]
    async fn a_user_is_refused_by_authentication_and_the_worker_by_the_fault() {
        let store = Store::open(
            redb::backends::InMemoryBackend::new(),
            Arc::new(ManualClock::new(crosstalk_sim::net::EPOCH_MS)),
            Arc::new(SeededEntropy::from_seed_u64(7)),
            StoreConfig {
                service_token: "svc".into(),
                password_iterations: 1,
                limits: Default::default(),
                hold_ms: crosstalk_sim::plan::STORE_HOLD_MS,
            },
        )
        .unwrap()
        .with_fault_points(Arc::new(AllSubjectsDown));
        let (account, session) = store
            .signup("ann@example.com", "correct horse battery")
            .unwrap();
        let router = crosstalk_store::router(Arc::new(store));
        let base = format!("/v1/service/accounts/{}/recordings", account.0);
        for path in [format!("{base}?limit=5"), format!("{base}/1/audio")] {
            assert_eq!(status(&router, &path, None).await, 401, "{path}");
            assert_eq!(status(&router, &path, Some(&session)).await, 403, "{path}");
            assert_eq!(status(&router, &path, Some("svc0")).await, 403, "{path}");
            assert_eq!(status(&router, &path, Some("svc")).await, 503, "{path}");
        }
    }
}
