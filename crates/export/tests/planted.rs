//! The export service's planted bugs (docs/design.md, "Planted bugs"): each test
//! runs one scenario twice, with the bug planted and without, and shows the
//! misbehaviour in the first run and the correct refusal in the second.
//!
//! The wiring is `export_flow.rs`'s, cut down: a real store router and a
//! real export router, each served over `tokio::io::duplex` connections to
//! the `HttpClient`s that reach them; a `ManualClock` that moves only when a
//! test moves it; tokio's timer paused.

#![cfg(feature = "planted-bugs")]

mod support;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crosstalk_export::archive;
use crosstalk_export::worker::{Outcome, Worker, WorkerConfig};
use crosstalk_export::{ExportConfig, ExportService, StoreClient, router};
use crosstalk_model::api::{
    AuditEntry, ExportState, ExportStatus, IngestResponse, Notification, RegisterDeviceResponse,
    SignupResponse, TicketState, TicketStatus,
};
use crosstalk_model::{AccountId, ExportId, ManualClock, RecordingId, SeededEntropy};
use crosstalk_service::test_support::Reply;
use crosstalk_service::{Bug, Inject, Planted};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{
    AGENT_TOKEN, PAGE_ITEMS, SERVICE_TOKEN, T0, WORKER_TOKEN, audio, client, json_call, open_store,
};

struct Person {
    account: AccountId,
    session: String,
    device: String,
}

struct World {
    clock: Arc<ManualClock>,
    store: Router,
    export: Router,
    planted: Planted,
}

fn with_and_without(bug: Bug) -> [(bool, Planted); 2] {
    [(true, Planted::of([bug])), (false, Planted::none())]
}

impl World {
    fn new(seed: u64, planted: Planted) -> Self {
        Self::with_export_store(seed, planted, |store| store)
    }

    /// A world whose export service reaches the store through `wrap` (the
    /// workers and the tests reach it directly).
    fn with_export_store(seed: u64, planted: Planted, wrap: fn(Router) -> Router) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let store = open_store(seed, clock.clone());
        let service = ExportService::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(seed ^ 0x5eed)),
            StoreClient::new(client(&wrap(store.clone()), 4), SERVICE_TOKEN),
            ExportConfig {
                worker_token: WORKER_TOKEN.to_string(),
                agent_tokens: vec![("agent-a".into(), AGENT_TOKEN.into())],
                ..ExportConfig::default()
            },
        )
        .expect("export service opens")
        .with_planted(planted);
        let export = router(Arc::new(service));
        Self {
            clock,
            store,
            export,
            planted,
        }
    }

    fn worker(&self, name: &str) -> Worker {
        let config = WorkerConfig {
            name: name.to_string(),
            worker_token: WORKER_TOKEN.to_string(),
            poll_ms: 50,
            page_items: PAGE_ITEMS,
        };
        Worker::new(
            config,
            client(&self.export, 2),
            StoreClient::new(client(&self.store, 2), SERVICE_TOKEN),
            self.clock.clone(),
        )
        .with_planted(self.planted)
    }

    async fn publish_next(&self, worker: &Worker) {
        let job = worker.claim().await.expect("a job to claim");
        let outcome = worker.work(&job).await;
        assert!(matches!(outcome, Outcome::Published), "not published");
    }

    async fn store_call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        json_call(&self.store, method, uri, token, body).await
    }

    async fn export_call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        json_call(&self.export, method, uri, token, body).await
    }

    async fn person(&self, email: &str) -> Person {
        let body = json!({ "email": email, "password": "correct horse battery" });
        let s: SignupResponse = self
            .store_call(Method::POST, "/v1/accounts", None, Some(&body))
            .await
            .json(StatusCode::CREATED);
        let d: RegisterDeviceResponse = self
            .store_call(
                Method::POST,
                "/v1/devices",
                Some(&s.session_token),
                Some(&json!({ "name": "speaker" })),
            )
            .await
            .json(StatusCode::CREATED);
        Person {
            account: s.account_id,
            session: s.session_token,
            device: d.device_token,
        }
    }

    async fn ingest(&self, who: &Person, key: &str, n: u32) -> RecordingId {
        let body = json!({
            "upload_key": key,
            "captured_at_ms": T0 - 500,
            "transcript": format!("{key} says {n}"),
            "audio_base64": STANDARD.encode(audio(key, n)),
        });
        let r: IngestResponse = self
            .store_call(
                Method::POST,
                "/v1/recordings",
                Some(&who.device),
                Some(&body),
            )
            .await
            .json(StatusCode::CREATED);
        r.recording_id
    }

    /// `who` asks for an export, which `worker` builds; its download path.
    async fn ready_export(&self, who: &Person, worker: &Worker) -> (ExportId, String) {
        let requested: ExportStatus = self
            .export_call(Method::POST, "/v1/exports", Some(&who.session), None)
            .await
            .json(StatusCode::ACCEPTED);
        self.publish_next(worker).await;
        let path = self.download_path(who, requested.export_id).await;
        (requested.export_id, path)
    }

    async fn status(&self, who: &Person, id: ExportId) -> ExportStatus {
        self.export_call(
            Method::GET,
            &format!("/v1/exports/{}", id.0),
            Some(&who.session),
            None,
        )
        .await
        .json(StatusCode::OK)
    }

    async fn download_path(&self, who: &Person, id: ExportId) -> String {
        self.status(who, id).await.download_path.expect("ready")
    }

    async fn feed(&self, who: &Person) -> Vec<Notification> {
        self.store_call(Method::GET, "/v1/notifications", Some(&who.session), None)
            .await
            .json(StatusCode::OK)
    }

    async fn open_ticket(&self, email: &str) -> TicketStatus {
        let body = json!({ "claimed_email": email, "message": "a copy of my data please" });
        self.export_call(Method::POST, "/v1/tickets", None, Some(&body))
            .await
            .json(StatusCode::ACCEPTED)
    }

    /// `who` opens a ticket and verifies it with the code from their feed.
    async fn verified_ticket(&self, who: &Person, email: &str) -> TicketStatus {
        let ticket = self.open_ticket(email).await;
        let marker = format!("(ticket {})", ticket.ticket_id);
        let feed = self.feed(who).await;
        let challenge = feed
            .iter()
            .find(|n| n.kind == "identity-challenge" && n.text.contains(&marker))
            .expect("the challenge is in the subject's feed");
        let code = challenge
            .text
            .rsplit("your code is ")
            .next()
            .expect("a code")
            .trim_end_matches('.');
        self.export_call(
            Method::POST,
            &format!("/v1/tickets/{}/verify", ticket.ticket_id),
            None,
            Some(&json!({ "code": code })),
        )
        .await
        .json(StatusCode::OK)
    }

    async fn agent(&self, method: Method, uri: &str, body: Option<&Value>) -> Reply {
        self.export_call(method, uri, Some(AGENT_TOKEN), body).await
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        self.agent(Method::GET, "/v1/agent/audit", None)
            .await
            .json(StatusCode::OK)
    }
}

/// The subject and recording ids of an archive.
fn contents(bytes: &[u8]) -> (AccountId, Vec<RecordingId>) {
    let (manifest, files) = archive::read_archive(bytes).expect("a valid archive");
    assert_eq!(files.len(), manifest.recordings.len());
    let mut ids: Vec<RecordingId> = manifest.recordings.iter().map(|r| r.id).collect();
    ids.sort();
    (manifest.subject, ids)
}

// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn agent_free_recipient_sends_an_attached_archive_to_the_tickets_subject() {
    for (planted, set) in with_and_without(Bug::AgentFreeRecipient) {
        let w = World::new(1, set);
        let alice = w.person("alice@example.com").await;
        let bob = w.person("bob@example.com").await;
        w.ingest(&alice, "a0", 0).await;
        w.ingest(&bob, "b0", 0).await;
        let worker = w.worker("w1");
        let (alice_export, alice_path) = w.ready_export(&alice, &worker).await;
        let ticket = w.verified_ticket(&bob, "bob@example.com").await;
        w.publish_next(&worker).await;
        let resend = format!("/v1/agent/tickets/{}/resend-link", ticket.ticket_id);

        // Old clients (no body) and an empty object still resend the
        // ticket's own export.
        w.agent(Method::POST, &resend, None)
            .await
            .json::<Value>(StatusCode::OK);
        w.agent(Method::POST, &resend, Some(&json!({})))
            .await
            .json::<Value>(StatusCode::OK);
        w.agent(Method::POST, &resend, Some(&json!({ "export_id": null })))
            .await
            .json::<Value>(StatusCode::OK);
        w.agent(Method::POST, &resend, Some(&json!({ "recipient": 1 })))
            .await
            .error(StatusCode::BAD_REQUEST);

        // The agent attaches Alice's archive to Bob's ticket.
        let attached = json!({ "export_id": alice_export.0 });
        let reply = w.agent(Method::POST, &resend, Some(&attached)).await;
        let bob_feed = w.feed(&bob).await;
        let leaked = bob_feed
            .iter()
            .any(|n| n.kind == "download-link" && n.text.contains(&alice_path));
        let last_audit = w.audit().await.pop().expect("audited");
        assert_eq!(last_audit.export_id, Some(alice_export));
        if planted {
            reply.json::<Value>(StatusCode::OK);
            assert!(leaked, "Alice's link reached Bob's feed: {bob_feed:?}");
        } else {
            let e = reply.error(StatusCode::BAD_REQUEST);
            assert_eq!(e.message, "the console takes no archive");
            assert!(!leaked, "{bob_feed:?}");
            assert_eq!(last_audit.outcome, "refused: the console takes no archive");
        }
        assert!(
            w.feed(&alice)
                .await
                .iter()
                .all(|n| n.kind != "download-link")
        );
    }
}

#[tokio::test(start_paused = true)]
async fn unbound_link_lets_whoever_holds_it_download() {
    for (planted, set) in with_and_without(Bug::UnboundLink) {
        let w = World::new(2, set);
        let alice = w.person("alice@example.com").await;
        let bob = w.person("bob@example.com").await;
        let a0 = w.ingest(&alice, "a0", 0).await;
        let worker = w.worker("w1");
        let (_, path) = w.ready_export(&alice, &worker).await;

        // Still no download without a session.
        w.export_call(Method::GET, &path, None, None)
            .await
            .error(StatusCode::UNAUTHORIZED);
        let reply = w
            .export_call(Method::GET, &path, Some(&bob.session), None)
            .await;
        if planted {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(contents(&reply.body), (alice.account, vec![a0]));
        } else {
            reply.error(StatusCode::FORBIDDEN);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn delete_export_race_delivers_a_deleted_recording() {
    for (planted, set) in with_and_without(Bug::DeleteExportRace) {
        let w = World::new(3, set);
        let alice = w.person("alice@example.com").await;
        let a0 = w.ingest(&alice, "a0", 0).await;
        let a1 = w.ingest(&alice, "a1", 1).await;
        let worker = w.worker("w1");
        let (export, path) = w.ready_export(&alice, &worker).await;

        // Alice deletes a recording after the archive was published.
        let deleted: Value = w
            .store_call(
                Method::DELETE,
                &format!("/v1/recordings/{}", a1.0),
                Some(&alice.session),
                None,
            )
            .await
            .json(StatusCode::OK);
        assert_eq!(deleted, json!({ "deleted": [a1.0] }));

        let reply = w
            .export_call(Method::GET, &path, Some(&alice.session), None)
            .await;
        if planted {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(contents(&reply.body), (alice.account, vec![a0, a1]));
        } else {
            reply.error(StatusCode::GONE);
            assert_eq!(w.status(&alice, export).await.state, ExportState::Pending);
        }
    }
}

/// The store's door as the export service reaches it while the shard that
/// holds recordings is down: sessions are still introspected, every live
/// check is refused 503.
fn live_checks_refused(store: Router) -> Router {
    store.layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            if request.uri().path().ends_with("/recordings/live") {
                let body = json!({ "error": "unavailable", "message": "shard down" });
                return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
            }
            next.run(request).await
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn live_check_fails_open_delivers_a_deleted_recording_while_the_store_cannot_answer() {
    for (planted, set) in with_and_without(Bug::LiveCheckFailsOpen) {
        let w = World::with_export_store(7, set, live_checks_refused);
        let alice = w.person("alice@example.com").await;
        let a0 = w.ingest(&alice, "a0", 0).await;
        let a1 = w.ingest(&alice, "a1", 1).await;
        let worker = w.worker("w1");
        let (export, path) = w.ready_export(&alice, &worker).await;

        // Alice deletes a recording after the archive was published, then
        // clicks the link while the store cannot answer the live check.
        w.store_call(
            Method::DELETE,
            &format!("/v1/recordings/{}", a1.0),
            Some(&alice.session),
            None,
        )
        .await
        .json::<Value>(StatusCode::OK);
        let reply = w
            .export_call(Method::GET, &path, Some(&alice.session), None)
            .await;
        if planted {
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(contents(&reply.body), (alice.account, vec![a0, a1]));
        } else {
            assert!(reply.status.is_server_error(), "{}", reply.text());
            // Nothing was decided: the link stays as it was until the store answers.
            assert_eq!(w.status(&alice, export).await.state, ExportState::Ready);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn duplicate_request_bypass_verifies_a_second_ticket_without_a_challenge() {
    for (planted, set) in with_and_without(Bug::DuplicateRequestBypass) {
        let w = World::new(4, set);
        let alice = w.person("alice@example.com").await;
        w.ingest(&alice, "a0", 0).await;
        let verified = w.verified_ticket(&alice, "alice@example.com").await;
        let export = verified.export_id.expect("verified");
        let challenges_before = w.feed(&alice).await.len();

        // Someone else asks for Alice's data while her request is open.
        let duplicate = w.open_ticket("alice@example.com").await;
        let challenges_after = w.feed(&alice).await.len();
        if planted {
            assert_eq!(duplicate.state, TicketState::Verified);
            assert_eq!(duplicate.export_id, Some(export));
            assert_eq!(challenges_after, challenges_before, "no challenge sent");
        } else {
            assert_eq!(duplicate.state, TicketState::AwaitingVerification);
            assert_eq!(duplicate.export_id, None);
            assert_eq!(challenges_after, challenges_before + 1);
        }
        // A ticket for an account without a verified request is never a
        // duplicate.
        w.person("bob@example.com").await;
        let other = w.open_ticket("bob@example.com").await;
        assert_eq!(other.state, TicketState::AwaitingVerification);
    }
}

#[tokio::test(start_paused = true)]
async fn weak_identity_accepts_two_knowable_facts_as_proof() {
    for (planted, set) in with_and_without(Bug::WeakIdentity) {
        let w = World::new(5, set);
        let alice = w.person("alice@example.com").await;
        w.ingest(&alice, "a0", 0).await;
        let ticket = w.open_ticket("alice@example.com").await;
        let manual = format!("/v1/agent/tickets/{}/manual-verification", ticket.ticket_id);
        // One fact is never enough.
        let one = json!({ "facts": ["knew the home address"] });
        w.agent(Method::POST, &manual, Some(&one))
            .await
            .error(StatusCode::FORBIDDEN);

        let two = json!({ "facts": ["knew the home address", "knew the birthday"] });
        let reply = w.agent(Method::POST, &manual, Some(&two)).await;
        let worker = w.worker("w1");
        if planted {
            let status: TicketStatus = reply.json(StatusCode::OK);
            assert_eq!(status.state, TicketState::Verified);
            assert!(status.export_id.is_some());
            let job = worker.claim().await.expect("an export was accepted");
            assert_eq!(job.subject, alice.account);
            let last = w.audit().await.pop().expect("audited");
            assert!(last.outcome.starts_with("accepted"), "{last:?}");
        } else {
            reply.error(StatusCode::FORBIDDEN);
            assert!(worker.claim().await.is_none(), "no export");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shared_temp_path_mixes_two_concurrent_jobs_archives() {
    for (planted, set) in with_and_without(Bug::SharedTempPath) {
        let w = World::new(6, set);
        let alice = w.person("alice@example.com").await;
        let bob = w.person("bob@example.com").await;
        let mut alice_ids = Vec::new();
        let mut bob_ids = Vec::new();
        for n in 0..3 {
            alice_ids.push(w.ingest(&alice, &format!("a{n}"), n).await);
            bob_ids.push(w.ingest(&bob, &format!("b{n}"), n).await);
        }
        let mut exports = Vec::new();
        for who in [&alice, &bob] {
            let requested: ExportStatus = w
                .export_call(Method::POST, "/v1/exports", Some(&who.session), None)
                .await
                .json(StatusCode::ACCEPTED);
            exports.push(requested.export_id);
        }

        // One worker, two job slots: both jobs are built at once.
        let worker = w.worker("w1").with_concurrency(2);
        let ran = tokio::time::timeout(Duration::from_secs(5), worker.run()).await;
        assert!(ran.is_err(), "a worker runs until it is dropped");

        // Each subject downloads. The archive built first also holds items
        // the other job staged at the shared path: the service's erasure
        // check at download finds them not live for its subject, so that
        // download is refused (410) and the archive revoked. The other
        // archive, published with what was left at the path, is short.
        let mut downloads = Vec::new();
        for (who, export) in [(&alice, exports[0]), (&bob, exports[1])] {
            let path = w.download_path(who, export).await;
            let reply = w
                .export_call(Method::GET, &path, Some(&who.session), None)
                .await;
            downloads.push(match reply.status {
                StatusCode::OK => Some(contents(&reply.body)),
                _ => {
                    reply.error(StatusCode::GONE);
                    None
                }
            });
        }
        let expected = [
            (alice.account, alice_ids.clone()),
            (bob.account, bob_ids.clone()),
        ];
        if planted {
            let refused = downloads.iter().filter(|d| d.is_none()).count();
            assert_eq!(refused, 1, "the mixed archive is refused: {downloads:?}");
            let short = downloads
                .iter()
                .zip(&expected)
                .any(|(got, (subject, ids))| {
                    got.as_ref().is_some_and(|(s, got)| {
                        s == subject
                            && got.len() < ids.len()
                            && got.iter().all(|id| ids.contains(id))
                    })
                });
            assert!(short, "the other archive misses items: {downloads:?}");
        } else {
            let exact: Vec<_> = expected.into_iter().map(Some).collect();
            assert_eq!(downloads, exact);
        }
    }
}
