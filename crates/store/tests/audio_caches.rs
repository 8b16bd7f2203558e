//! The store's audio caches (the playback cache behind `Store::audio` and
//! the response cache in front of `GET /v1/recordings/{id}/audio`) in the
//! correct build: they never serve one account's audio to another, not
//! even for captures of the same broadcast, and a deletion evicts them
//! before it is acknowledged. Also the `store.reply.stall` fault point.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crosstalk_model::{AccountId, ManualClock, RecordingId, SeededEntropy};
use crosstalk_service::Inject;
use crosstalk_service::fault_points::{FaultPoints, fires};
use crosstalk_store::{DeleteSelection, DeviceRecord, NewRecording, Store, StoreConfig, router};
use http_body_util::BodyExt;
use redb::backends::InMemoryBackend;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const NOW_MS: u64 = 1_700_000_000_000;

fn open() -> Arc<Store> {
    Arc::new(
        Store::open(
            InMemoryBackend::new(),
            Arc::new(ManualClock::new(NOW_MS)),
            Arc::new(SeededEntropy::from_seed_u64(11)),
            StoreConfig {
                service_token: "svc".into(),
                password_iterations: 1,
                limits: Default::default(),
                hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
            },
        )
        .expect("store opens"),
    )
}

/// Same leading "speech" (so the same acoustic fingerprint), own tail.
fn capture(speech: i32, tail: i16) -> Vec<u8> {
    let mut samples: Vec<i16> = (0..300)
        .map(|i| ((i * speech) % 20_000 - 10_000) as i16)
        .collect();
    samples.extend(std::iter::repeat_n(tail, 64));
    let mut out = b"RIFF\0\0\0\0WAVEdata".to_vec();
    out.extend_from_slice(&((samples.len() * 2) as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

struct Home {
    account: AccountId,
    session: String,
    device: DeviceRecord,
}

fn home(store: &Store, name: &str) -> Home {
    let (account, session) = store
        .signup(&format!("{name}@example.com"), "correct horse battery")
        .unwrap();
    let (_, token) = store.register_device(account, "speaker").unwrap();
    Home {
        account,
        session,
        device: store.authenticate_device(&token).unwrap(),
    }
}

fn record(store: &Store, home: &Home, key: &str, audio: Vec<u8>) -> RecordingId {
    let upload = NewRecording {
        upload_key: key.into(),
        captured_at_ms: NOW_MS,
        transcript: format!("transcript of {key}"),
        audio,
        ownership_epoch: None,
        intent: None,
    };
    store.ingest(&home.device, upload).unwrap().0
}

async fn get(store: &Arc<Store>, path: &str, bearer: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .body(Body::empty())
        .unwrap();
    let response = router(store.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

async fn play(store: &Arc<Store>, home: &Home, id: RecordingId) -> (StatusCode, Vec<u8>) {
    get(
        store,
        &format!("/v1/recordings/{}/audio", id.0),
        &home.session,
    )
    .await
}

#[tokio::test]
async fn cached_audio_is_only_ever_its_owners() {
    let store = open();
    let homes: Vec<Home> = ["ann", "bob", "cy"]
        .iter()
        .map(|n| home(&store, n))
        .collect();
    // One broadcast, heard in three homes: same leading audio, own bytes.
    let audio: Vec<Vec<u8>> = (0..3).map(|i| capture(997, i as i16)).collect();
    let recs: Vec<RecordingId> = homes
        .iter()
        .zip(&audio)
        .map(|(h, a)| record(&store, h, "tv", a.clone()))
        .collect();
    for round in 0..2 {
        for (i, home) in homes.iter().enumerate() {
            assert_eq!(
                play(&store, home, recs[i]).await,
                (StatusCode::OK, audio[i].clone()),
                "round {round}: own playback over HTTP"
            );
            assert_eq!(store.audio(home.account, recs[i]).unwrap(), audio[i]);
            // The export's path reads through the playback cache too.
            let (status, body) = get(
                &store,
                &format!(
                    "/v1/service/accounts/{}/recordings/{}/audio",
                    home.account.0, recs[i].0
                ),
                "svc",
            )
            .await;
            assert_eq!((status, body), (StatusCode::OK, audio[i].clone()));
            for (j, other) in recs.iter().enumerate() {
                if i != j {
                    assert_eq!(play(&store, home, *other).await.0, StatusCode::NOT_FOUND);
                    assert_eq!(
                        store.audio(home.account, *other).unwrap_err().status,
                        StatusCode::NOT_FOUND
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn deletion_evicts_cached_audio_before_it_is_acknowledged() {
    let store = open();
    let ann = home(&store, "ann");
    let kept = record(&store, &ann, "kept", capture(331, 1));
    let one = record(&store, &ann, "one", capture(557, 2));
    let other = record(&store, &ann, "other", capture(773, 3));
    for id in [kept, one, other] {
        assert_eq!(play(&store, &ann, id).await.0, StatusCode::OK);
        store.audio(ann.account, id).unwrap();
    }
    store
        .delete(ann.account, DeleteSelection::One(one))
        .unwrap();
    assert_eq!(play(&store, &ann, one).await.0, StatusCode::NOT_FOUND);
    assert!(store.audio(ann.account, one).is_err());
    assert_eq!(play(&store, &ann, other).await.0, StatusCode::OK);
    store.delete(ann.account, DeleteSelection::All).unwrap();
    for id in [kept, other] {
        assert_eq!(play(&store, &ann, id).await.0, StatusCode::NOT_FOUND);
        assert!(store.audio(ann.account, id).is_err());
    }
    // Closing evicts too: the export's service path reads by account.
    let bob = home(&store, "bob");
    let bobs = record(&store, &bob, "b", capture(331, 4));
    assert_eq!(store.audio(bob.account, bobs).unwrap(), capture(331, 4));
    store.close_account(bob.account).unwrap();
    assert!(store.audio(bob.account, bobs).is_err());
}

/// Fires at `store.reply.stall` only: holds every service request.
struct Always;

impl FaultPoints for Always {
    fn fire(&self, point: &'static str) -> bool {
        point == "store.reply.stall"
    }
}

/// Refuses collection reads: everyone's now and then (`everyone`), or one
/// account's persistently.
struct Refuses {
    everyone: bool,
    account: u64,
}

impl FaultPoints for Refuses {
    fn fire(&self, point: &'static str) -> bool {
        self.everyone && point == "store.service.unavailable"
    }

    fn fire_for(&self, point: &'static str, key: u64) -> bool {
        point == "store.service.subject_unavailable" && key == self.account
    }
}

fn refusing(everyone: bool, account: u64) -> Arc<Store> {
    let store = Store::open(
        InMemoryBackend::new(),
        Arc::new(ManualClock::new(NOW_MS)),
        Arc::new(SeededEntropy::from_seed_u64(13)),
        StoreConfig {
            service_token: "svc".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .unwrap()
    .with_fault_points(Arc::new(Refuses { everyone, account }));
    Arc::new(store)
}

#[tokio::test]
async fn refused_collection_reads_answer_503_with_a_json_body_and_nothing_else_is_refused() {
    // Accounts are numbered from 1: the first sign-up is account 1.
    let on = fires(
        &Refuses {
            everyone: true,
            account: 0,
        },
        "store.service.unavailable",
    );
    for (everyone, account) in [(true, 0), (false, 1)] {
        let store = refusing(everyone, account);
        let ann = home(&store, "ann");
        assert_eq!(ann.account.0, 1);
        let id = record(&store, &ann, "one", capture(7, 1));
        let reads = [
            "/v1/service/accounts/1/recordings".to_string(),
            format!("/v1/service/accounts/1/recordings/{}/audio", id.0),
        ];
        for path in &reads {
            let (status, body) = get(&store, path, "svc").await;
            if !on {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{path}: nothing fires without fault-points"
                );
                continue;
            }
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(error["error"], "unavailable", "{path}: {error}");
        }
        // The person's own reads are never refused.
        let (status, _) = play(&store, &ann, id).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get(&store, "/v1/recordings", &ann.session).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Another account's reads are not refused by a subject's fault.
    let store = refusing(false, 2);
    home(&store, "ann");
    let (status, _) = get(&store, "/v1/service/accounts/1/recordings", "svc").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reply_stall_holds_only_service_requests_and_only_when_fault_points_are_on() {
    let store = Store::open(
        InMemoryBackend::new(),
        Arc::new(ManualClock::new(NOW_MS)),
        Arc::new(SeededEntropy::from_seed_u64(12)),
        StoreConfig {
            service_token: "svc".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .unwrap()
    .with_fault_points(Arc::new(Always));
    let store = Arc::new(store);
    let ann = home(&store, "ann");
    let path = format!("/v1/service/accounts/{}/recordings", ann.account.0);
    let service = get(&store, &path, "svc");
    let answered = tokio::time::timeout(Duration::from_millis(200), service).await;
    // Without the `fault-points` feature nothing fires, whatever is injected.
    let stalls = fires(&Always, "store.reply.stall");
    assert_eq!(
        answered.is_err(),
        stalls,
        "service requests stall iff fault points are on"
    );
    if let Ok((status, _)) = answered {
        assert_eq!(status, StatusCode::OK);
    }
    let own = tokio::time::timeout(
        Duration::from_millis(200),
        get(&store, "/v1/recordings", &ann.session),
    )
    .await;
    assert_eq!(
        own.map(|r| r.0).ok(),
        Some(StatusCode::OK),
        "people's routes never stall"
    );
}
