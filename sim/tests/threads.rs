//! The real-threads harness (`sim/src/threads/`): the correct store passes
//! the shipped threads scenario on many seeds with its positive controls
//! counted (requests that raced a deletion, quiescent probes); a store
//! whose playback answers never forget a deleted recording (a canary in
//! front of it) fails it by erasure; and, in a planted build, both race
//! bugs of the catalogue are caught within a few seeds.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::{Harness, Scenario};
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn threads_scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/threads.toml");
    Scenario::load(&path).expect("scenario loads")
}

fn describe(outcome: &RunOutcome) -> String {
    format!("{:?} {:?}", outcome.violations, outcome.infra_errors)
}

#[test]
fn the_shipped_threads_scenario_runs_under_real_threads() {
    let scenario = threads_scenario();
    assert_eq!(scenario.harness, Harness::Threads);
    let plan = Plan::generate(&scenario, 3);
    assert!(
        plan.threads.is_some(),
        "a threads plan carries its workload"
    );
    assert!(plan.accounts.is_empty(), "and no simulator plan");
    assert_eq!(
        Plan::generate(&scenario, 3),
        plan,
        "the seed alone fixes the workload"
    );
}

#[test]
fn the_correct_store_passes_with_races_and_quiescent_probes_counted() {
    let scenario = threads_scenario();
    let (mut raced, mut quiescent, mut verified, mut after_ack) = (0, 0, 0, 0);
    for seed in 0..60 {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        assert!(outcome.passed(), "seed {seed}: {}", describe(&outcome));
        let c = &outcome.controls;
        assert!(c.quiescent_probes > 0, "seed {seed}: no quiescent probe");
        // Whether one seed's requests overlapped is the OS's choice; over
        // sixty seeds some must have.
        raced += c.requests_raced;
        after_ack += c.requests_after_deletion_acked;
        quiescent += c.quiescent_probes;
        verified += c.deletions_verified + c.recordings_verified_durable;
    }
    assert!(raced > 0, "nothing raced in 60 seeds");
    assert!(
        after_ack > 0,
        "no playback after a deletion's acknowledgement"
    );
    assert!(quiescent > 0 && verified > 0);
}

#[test]
fn playback_that_never_forgets_a_deletion_fails_by_erasure() {
    let scenario = threads_scenario();
    let caught = (0..10).any(|seed| {
        let mut plan = Plan::generate(&scenario, seed);
        plan.canary_break = Some(CanaryBreak::StaleAudio);
        let outcome = run_plan(&plan);
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Erasure)
    });
    assert!(caught, "a response cache that never evicts went unnoticed");
}

/// A playback answered while its recording's deletion was in flight, kept
/// and served again (a cache evicted before the deletion committed and
/// refilled from the old snapshot): the deletion storms catch it within a
/// few seeds.
#[test]
fn a_cache_refilled_during_a_deletion_is_caught_by_the_deletion_storms() {
    let scenario = threads_scenario();
    let caught = (0..4).find(|&seed| {
        let mut plan = Plan::generate(&scenario, seed);
        assert!(plan.threads.as_ref().is_some_and(|t| t.deletion_storm > 0));
        plan.canary_break = Some(CanaryBreak::RefilledDuringDeletion);
        let outcome = run_plan(&plan);
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Erasure)
    });
    assert!(
        caught.is_some(),
        "a cache refilled during a deletion went unnoticed"
    );
}

#[cfg(feature = "planted-bugs")]
#[test]
fn both_race_bugs_are_caught_within_a_few_seeds() {
    use crosstalk_service::Bug;
    let scenario = threads_scenario();
    for bug in [Bug::StaleCacheFill, Bug::CloseMissesLateUpload] {
        let caught = (0..20).find(|&seed| {
            let outcome = run_plan(&crosstalk_sim::hunt::planted_plan(&scenario, seed, bug));
            outcome
                .violations
                .iter()
                .any(|v| v.invariant == Invariant::Erasure)
        });
        assert!(caught.is_some(), "{bug} was not caught in 20 seeds");
    }
}

/// The store's cache fill against a deletion that commits exactly between
/// its database read and its fill, made deterministic: the interleave point
/// itself runs the deletion (on the same thread). The next playback must
/// not find the deleted audio; with `stale-cache-fill` planted it does.
mod fill_races_deletion {
    use crosstalk_model::{AccountId, ManualClock, RecordingId, SeededEntropy};
    use crosstalk_service::fault_points::FaultPoints;
    use crosstalk_service::{Inject, Planted};
    use crosstalk_store::{DeleteSelection, NewRecording, Store, StoreConfig};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    use tower::ServiceExt;

    /// Deletes `target` once, at the response cache's fill point.
    #[derive(Default)]
    struct DeleteAtFill {
        store: OnceLock<Weak<Store>>,
        target: Mutex<Option<(AccountId, RecordingId)>>,
        fired: AtomicBool,
    }

    impl FaultPoints for DeleteAtFill {
        fn fire(&self, _point: &'static str) -> bool {
            false
        }

        fn interleave(&self, point: &'static str) {
            if point != "store.response.before_fill" || self.fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let target = *self.target.lock().unwrap();
            let store = self.store.get().and_then(Weak::upgrade);
            if let (Some((account, id)), Some(store)) = (target, store) {
                store.delete(account, DeleteSelection::One(id)).unwrap();
            }
        }
    }

    async fn play(store: &Arc<Store>, session: &str, id: RecordingId) -> http::StatusCode {
        let request = http::Request::get(format!("/v1/recordings/{}/audio", id.0))
            .header(http::header::AUTHORIZATION, format!("Bearer {session}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = crosstalk_store::router(store.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let _ = response.into_body().collect().await;
        status
    }

    /// Play a recording while its deletion commits mid-request; the status
    /// of the playback after that.
    async fn playback_after_the_race(planted: Planted) -> http::StatusCode {
        let points = Arc::new(DeleteAtFill::default());
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
        .with_planted(planted)
        .with_fault_points(points.clone());
        let store = Arc::new(store);
        let _ = points.store.set(Arc::downgrade(&store));
        let (account, session) = store
            .signup("ann@example.com", "correct horse battery")
            .unwrap();
        let (_, token) = store.register_device(account, "speaker").unwrap();
        let device = store.authenticate_device(&token).unwrap();
        let upload = NewRecording {
            upload_key: "a".into(),
            captured_at_ms: crosstalk_sim::net::EPOCH_MS,
            transcript: "what's the weather".into(),
            audio: b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\x01\x02".to_vec(),
            ownership_epoch: None,
            intent: None,
        };
        let (id, _) = store.ingest(&device, upload).unwrap();
        *points.target.lock().unwrap() = Some((account, id));
        // The read came before the deletion: this answer may carry the audio.
        play(&store, &session, id).await;
        assert!(
            points.fired.load(Ordering::SeqCst),
            "the interleave point ran"
        );
        play(&store, &session, id).await
    }

    #[tokio::test]
    async fn a_fill_that_read_before_a_deletion_is_dropped() {
        assert_eq!(
            playback_after_the_race(Planted::none()).await,
            http::StatusCode::NOT_FOUND
        );
    }

    #[cfg(feature = "planted-bugs")]
    #[tokio::test]
    async fn with_stale_cache_fill_planted_the_deleted_audio_is_served_again() {
        let planted = Planted::of([crosstalk_service::Bug::StaleCacheFill]);
        assert_eq!(playback_after_the_race(planted).await, http::StatusCode::OK);
    }
}
