//! The store's planted bugs (docs/design.md, "Planted bugs"): for each one, the
//! leak it causes when planted, and the same steps on a store with nothing
//! planted, which must not leak. Built only with the `planted-bugs` feature
//! (`cargo test -p crosstalk-store --features planted-bugs`).

#![cfg(feature = "planted-bugs")]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crosstalk_model::api::{Intent, MessageState};
use crosstalk_model::{AccountId, ManualClock, RecordingId, SeededEntropy};
use crosstalk_service::{Bug, Inject, Planted};
use crosstalk_store::{DeviceRecord, ListScope, NewRecording, Store, StoreConfig, router};
use http_body_util::BodyExt;
use redb::backends::InMemoryBackend;
use std::sync::Arc;
use tower::ServiceExt;

const NOW_MS: u64 = 1_700_000_000_000;

fn open(planted: Planted) -> Store {
    Store::open(
        InMemoryBackend::new(),
        Arc::new(ManualClock::new(NOW_MS)),
        Arc::new(SeededEntropy::from_seed_u64(7)),
        StoreConfig {
            service_token: "svc".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .expect("store opens")
    .with_planted(planted)
}

/// Both sides of each test: the bug planted, and nothing planted.
fn both(bug: Bug) -> [(bool, Store); 2] {
    [
        (true, open(Planted::of([bug]))),
        (false, open(Planted::none())),
    ]
}

fn wav(samples: &[i16]) -> Vec<u8> {
    let mut out = b"RIFF\0\0\0\0WAVEdata".to_vec();
    out.extend_from_slice(&((samples.len() * 2) as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// 300 samples of "speech" followed by a tail of its own: captures with the
/// same `speech` share their leading audio (and so their fingerprint), and
/// differ in every byte of the tail.
fn capture(speech: i32, tail: i16) -> Vec<u8> {
    let mut samples: Vec<i16> = (0..300)
        .map(|i| ((i * speech) % 20_000 - 10_000) as i16)
        .collect();
    samples.extend(std::iter::repeat_n(tail, 64));
    wav(&samples)
}

struct Person {
    account: AccountId,
    session: String,
    email: String,
    device: DeviceRecord,
    device_token: String,
}

fn person(store: &Store, name: &str) -> Person {
    let email = format!("{name}@example.com");
    let (account, session) = store.signup(&email, "correct horse battery").unwrap();
    let (_, device_token) = store.register_device(account, "speaker").unwrap();
    Person {
        account,
        session,
        email,
        device: store.authenticate_device(&device_token).unwrap(),
        device_token,
    }
}

fn upload(key: &str, captured_at_ms: u64, audio: Vec<u8>) -> NewRecording {
    NewRecording {
        upload_key: key.into(),
        captured_at_ms,
        transcript: format!("transcript of {key}"),
        audio,
        ownership_epoch: None,
        intent: None,
    }
}

fn record(store: &Store, who: &Person, key: &str, audio: Vec<u8>) -> RecordingId {
    store
        .ingest(&who.device, upload(key, NOW_MS, audio))
        .unwrap()
        .0
}

async fn get_audio(
    store: &Arc<Store>,
    session: Option<&str>,
    id: RecordingId,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::get(format!("/v1/recordings/{}/audio", id.0));
    if let Some(session) = session {
        request = request.header(header::AUTHORIZATION, format!("Bearer {session}"));
    }
    let response = router(store.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

#[test]
fn fingerprint_cache_serves_another_households_capture_of_the_same_broadcast() {
    for (planted, store) in both(Bug::FingerprintCache) {
        let (ann, bob) = (person(&store, "ann"), person(&store, "bob"));
        let ann_audio = capture(997, 1);
        let bob_audio = capture(997, 2);
        let ann_rec = record(&store, &ann, "tv", ann_audio.clone());
        let bob_rec = record(&store, &bob, "tv", bob_audio.clone());
        assert_eq!(store.audio(ann.account, ann_rec).unwrap(), ann_audio);
        let served = store.audio(bob.account, bob_rec).unwrap();
        if planted {
            assert_eq!(served, ann_audio, "bob is served ann's capture");
        } else {
            assert_eq!(served, bob_audio, "each household hears its own capture");
        }
        // Another household's recording id stays refused either way.
        assert_eq!(
            store.audio(bob.account, ann_rec).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }
}

#[test]
fn clock_id_collision_overwrites_a_simultaneous_capture() {
    for (planted, store) in both(Bug::ClockIdCollision) {
        let (ann, bob) = (person(&store, "ann"), person(&store, "bob"));
        let ann_audio = capture(331, 1);
        let bob_audio = capture(557, 2);
        let ann_rec = record(&store, &ann, "a", ann_audio.clone());
        let bob_rec = record(&store, &bob, "b", bob_audio.clone());
        let ann_plays = store.audio(ann.account, ann_rec).unwrap();
        if planted {
            assert_eq!(ann_rec, RecordingId(NOW_MS), "the id is the capture time");
            assert_eq!(ann_rec, bob_rec);
            assert_eq!(
                ann_plays, bob_audio,
                "ann's recording now plays bob's audio"
            );
        } else {
            assert_ne!(ann_rec, bob_rec);
            assert_eq!(ann_plays, ann_audio);
            assert_eq!(store.audio(bob.account, bob_rec).unwrap(), bob_audio);
        }
    }
}

#[test]
fn resale_history_files_a_capture_from_before_the_sale_under_the_buyer() {
    for (planted, store) in both(Bug::ResaleHistory) {
        let (seller, buyer) = (person(&store, "seller"), person(&store, "buyer"));
        let credentials = store
            .transfer_device(seller.account, seller.device.id, &buyer.email)
            .unwrap();
        assert_ne!(credentials.device_token, seller.device_token);
        // The device heard this in the seller's home (epoch 0) and uploads
        // it only now, in the buyer's hands.
        let device = store
            .authenticate_device(&credentials.device_token)
            .unwrap();
        let mut late = upload("before-sale", NOW_MS, capture(331, 1));
        late.ownership_epoch = Some(0);
        let rec = store.ingest(&device, late).unwrap().0;
        let ids = |who: &Person| -> Vec<RecordingId> {
            let page = store.list(ListScope::Owner, who.account, None, 50).unwrap();
            page.items.iter().map(|r| r.id).collect()
        };
        if planted {
            assert_eq!(
                ids(&buyer),
                vec![rec],
                "the buyer sees the seller's capture"
            );
            assert!(ids(&seller).is_empty());
        } else {
            assert_eq!(ids(&seller), vec![rec]);
            assert!(ids(&buyer).is_empty());
        }
    }
}

#[test]
fn unscoped_cursor_runs_into_the_next_accounts_recordings() {
    for (planted, store) in both(Bug::UnscopedCursor) {
        let (ann, bob) = (person(&store, "ann"), person(&store, "bob"));
        let mut ann_recs = Vec::new();
        for i in 0..7 {
            ann_recs.push(record(&store, &ann, &format!("a{i}"), capture(331, i)));
        }
        for i in 0..3 {
            record(&store, &bob, &format!("b{i}"), capture(557, i));
        }
        let first = store.list(ListScope::Owner, ann.account, None, 5).unwrap();
        assert_eq!(first.items.len(), 5);
        let cursor = first.next_cursor.expect("a second page");
        let second = store
            .list(ListScope::Owner, ann.account, Some(&cursor), 5)
            .unwrap();
        assert_eq!(second.account_id, ann.account);
        let listed: Vec<RecordingId> = first
            .items
            .iter()
            .chain(&second.items)
            .map(|r| r.id)
            .collect();
        if planted {
            assert_eq!(listed.len(), 10, "the last page is filled from bob's");
            assert_eq!(&listed[..7], &ann_recs[..]);
        } else {
            assert_eq!(listed, ann_recs, "exactly ann's, each once");
            assert_eq!(second.next_cursor, None);
            // The correct cursor is bound to the account.
            assert!(
                store
                    .list(ListScope::Owner, bob.account, Some(&cursor), 5)
                    .is_err()
            );
        }
    }
}

#[tokio::test]
async fn cache_missing_tenant_plays_a_cached_recording_to_whoever_asks_for_its_path() {
    for (planted, store) in both(Bug::CacheMissingTenant) {
        let store = Arc::new(store);
        let (ann, bob) = (person(&store, "ann"), person(&store, "bob"));
        let ann_audio = capture(331, 1);
        let ann_rec = record(&store, &ann, "a", ann_audio.clone());
        assert_eq!(
            get_audio(&store, Some(&ann.session), ann_rec).await,
            (StatusCode::OK, ann_audio.clone())
        );
        let (status, body) = get_audio(&store, Some(&bob.session), ann_rec).await;
        if planted {
            assert_eq!(
                status,
                StatusCode::OK,
                "bob guessed the id and got ann's audio"
            );
            assert_eq!(body, ann_audio);
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        // A session is still required.
        assert_eq!(
            get_audio(&store, None, ann_rec).await.0,
            StatusCode::UNAUTHORIZED
        );
        // One's own playback is one's own either way.
        let bob_audio = capture(557, 2);
        let bob_rec = record(&store, &bob, "b", bob_audio.clone());
        assert_eq!(
            get_audio(&store, Some(&bob.session), bob_rec).await,
            (StatusCode::OK, bob_audio)
        );
    }
}

#[test]
fn contact_fuzzy_match_sends_to_a_sound_alike_contact_at_once() {
    for (planted, store) in both(Bug::ContactFuzzyMatch) {
        let sender = person(&store, "sender");
        let (ann, anne) = (person(&store, "ann"), person(&store, "anne"));
        store
            .add_contact(sender.account, "Ann", &ann.email)
            .unwrap();
        store
            .add_contact(sender.account, "Anne", &anne.email)
            .unwrap();
        let rec = record(&store, &sender, "typed", capture(331, 1));
        let sent = store.send_message(sender.account, rec, "Anne").unwrap();
        if planted {
            assert_eq!(
                sent.resolved_contact.email, ann.email,
                "\"Anne\" went to Ann"
            );
            assert_eq!(sent.state, MessageState::Delivered, "without confirmation");
            let inbox = store.inbox(ann.account).unwrap();
            assert_eq!(inbox.len(), 1);
            assert_eq!(inbox[0].recording.id, rec);
        } else {
            assert_eq!(sent.resolved_contact.email, anne.email);
            assert_eq!(sent.state, MessageState::Pending);
            assert!(store.inbox(ann.account).unwrap().is_empty());
            assert!(store.inbox(anne.account).unwrap().is_empty());
        }
        // Spoken: resolved the same way, but still held.
        let mut spoken = upload("spoken", NOW_MS, capture(557, 2));
        spoken.intent = Some(Intent::Message {
            contact_name: "Anne".into(),
        });
        store.ingest(&sender.device, spoken).unwrap();
        let outgoing = store.outgoing_messages(sender.account).unwrap();
        let held = outgoing.last().unwrap();
        assert_eq!(held.state, MessageState::Held);
        let expected = if planted { &ann.email } else { &anne.email };
        assert_eq!(&held.resolved_contact.email, expected);
    }
}

#[test]
fn recycled_account_id_hands_the_old_holders_inbox_to_a_new_sign_up() {
    for (planted, store) in both(Bug::RecycledAccountId) {
        let (sender, old) = (person(&store, "sender"), person(&store, "old"));
        store
            .add_contact(sender.account, "Old", &old.email)
            .unwrap();
        let rec = record(&store, &sender, "for-old", capture(331, 1));
        let message = store.send_message(sender.account, rec, "Old").unwrap();
        store
            .confirm_message(sender.account, message.message_id, &old.email)
            .unwrap();
        assert_eq!(store.inbox(old.account).unwrap().len(), 1);
        store.close_account(old.account).unwrap();
        let (newcomer, _) = store
            .signup("newcomer@example.com", "correct horse battery")
            .unwrap();
        let inbox = store.inbox(newcomer).unwrap();
        if planted {
            assert_eq!(newcomer, old.account, "the closed id was reused");
            assert_eq!(inbox.len(), 1, "and the old holder's message came with it");
            assert_eq!(inbox[0].recording.id, rec);
        } else {
            assert_ne!(newcomer, old.account);
            assert!(inbox.is_empty());
        }
    }
}
