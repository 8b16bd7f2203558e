//! The export service end to end, in process.
//!
//! A real store router and a real export router, each served over
//! `tokio::io::duplex` connections to the `HttpClient`s that reach them: the
//! export service's `StoreClient`, and every worker's clients for the export
//! service and the store. Tests drive the routers with `oneshot` and the
//! workers one step at a time (`claim`, then `work`), so leases and fences
//! are deterministic. Time is a `ManualClock` that moves only when a test
//! moves it, randomness a `SeededEntropy`, and tokio's timer is paused.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crosstalk_export::archive::{self, ArchiveItem, build_archive};
use crosstalk_export::link::{LinkClaims, mint};
use crosstalk_export::worker::{Outcome, Worker, WorkerConfig};
use crosstalk_export::{ExportConfig, ExportService, StoreClient, router};
use crosstalk_model::api::{
    AgentTicketView, AuditEntry, ClaimedJob, ExportState, ExportStatus, IngestResponse,
    Notification, RecordingPage, RegisterDeviceResponse, SignupResponse, TicketState, TicketStatus,
};
use crosstalk_model::{
    AccountId, Clock, ExportId, ManualClock, RecordingId, SeededEntropy, sha256_hex,
};
use crosstalk_service::Inject;
use crosstalk_service::fault_points::{self, FaultPoints};
use crosstalk_service::test_support::{Reply, call};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use support::{
    AGENT_TOKEN, PAGE_ITEMS, SERVICE_TOKEN, T0, WORKER_TOKEN, audio, in_process_client, json_call,
    open_store,
};

const AGENT_A: &str = "agent-a";
const AGENT_B: &str = "agent-b";
const AGENT_B_TOKEN: &str = "agent-b-token-fedcba9876543210";

const LINK_TTL_MS: u64 = 60 * 60 * 1000;
const MAX_DOWNLOADS: u32 = 3;
const LEASE_MS: u64 = 30_000;
const MAX_ATTEMPTS: u32 = 3;
const RETRY_BACKOFF_MS: u64 = 1_000;
const MAX_BACKOFF_MS: u64 = 1_500;
const DEADLINE_MS: u64 = 1_000_000_000;
const MAX_EXTENSION_MS: u64 = 2_000_000_000;
const RATE_LIMIT_MAX: u32 = 3;
const RATE_LIMIT_WINDOW_MS: u64 = 600_000;

fn config(worker_token: &str) -> ExportConfig {
    ExportConfig {
        worker_token: worker_token.to_string(),
        agent_tokens: vec![
            (AGENT_A.into(), AGENT_TOKEN.into()),
            (AGENT_B.into(), AGENT_B_TOKEN.into()),
        ],
        link_ttl_ms: LINK_TTL_MS,
        max_downloads: MAX_DOWNLOADS,
        max_verify_attempts: crosstalk_export::tickets::MAX_VERIFY_ATTEMPTS,
        lease_ms: LEASE_MS,
        max_attempts: MAX_ATTEMPTS,
        retry_backoff_ms: RETRY_BACKOFF_MS,
        max_backoff_ms: MAX_BACKOFF_MS,
        deadline_ms: DEADLINE_MS,
        max_extension_ms: MAX_EXTENSION_MS,
        rate_limit_max: RATE_LIMIT_MAX,
        rate_limit_window_ms: RATE_LIMIT_WINDOW_MS,
        limits: Default::default(),
    }
}

// ---------------------------------------------------------------------------
// The harness.
// ---------------------------------------------------------------------------

struct World {
    clock: Arc<ManualClock>,
    store: Router,
    export: Router,
    /// While set, the export service cannot reach the store.
    service_store_down: Arc<AtomicBool>,
}

struct Person {
    account: AccountId,
    session: String,
}

struct Ingested {
    id: RecordingId,
    sha256: String,
    transcript: String,
    audio: Vec<u8>,
}

fn outcome(o: &Outcome) -> String {
    match o {
        Outcome::Published => "published".into(),
        Outcome::FencedOut => "fenced out".into(),
        Outcome::Failed(reason) => format!("failed: {reason}"),
    }
}

impl World {
    fn new(seed: u64) -> Self {
        Self::build(seed, SERVICE_TOKEN, 4)
    }

    /// `store_token` is what the export service presents to the store;
    /// `store_pool` its idle connections (0: every call connects anew).
    fn build(seed: u64, store_token: &str, store_pool: usize) -> Self {
        Self::build_with_faults(seed, store_token, store_pool, fault_points::none())
    }

    /// [`World::build`] with the export service's fault points.
    fn build_with_faults(
        seed: u64,
        store_token: &str,
        store_pool: usize,
        faults: Arc<dyn FaultPoints>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let store = open_store(seed, clock.clone());
        let service_store_down = Arc::new(AtomicBool::new(false));
        let store_client = StoreClient::new(
            in_process_client(&store, &service_store_down, store_pool),
            store_token,
        );
        let service = ExportService::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(seed ^ 0x5eed)),
            store_client,
            config(WORKER_TOKEN),
        )
        .expect("export service opens")
        .with_fault_points(faults);
        let export = router(Arc::new(service));
        Self {
            clock,
            store,
            export,
            service_store_down,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A worker whose store is always reachable.
    fn worker(&self, name: &str) -> Worker {
        self.worker_with_store(name, Arc::new(AtomicBool::new(false)))
    }

    /// A worker whose connections to the store fail while `store_down` is set.
    fn worker_with_store(&self, name: &str, store_down: Arc<AtomicBool>) -> Worker {
        let store = StoreClient::new(
            in_process_client(&self.store, &store_down, 0),
            SERVICE_TOKEN,
        );
        let export = in_process_client(&self.export, &Arc::new(AtomicBool::new(false)), 2);
        let config = WorkerConfig {
            name: name.to_string(),
            worker_token: WORKER_TOKEN.to_string(),
            poll_ms: 50,
            page_items: PAGE_ITEMS,
        };
        Worker::new(config, export, store, self.clock.clone())
    }

    /// `worker` claims the next job and publishes it.
    async fn publish_next(&self, worker: &Worker) -> ClaimedJob {
        let job = worker.claim().await.expect("a job to claim");
        let result = worker.work(&job).await;
        assert!(matches!(result, Outcome::Published), "{}", outcome(&result));
        job
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

    async fn signup(&self, email: &str) -> Person {
        let body = json!({ "email": email, "password": "correct horse battery" });
        let s: SignupResponse = self
            .store_call(Method::POST, "/v1/accounts", None, Some(&body))
            .await
            .json(StatusCode::CREATED);
        Person {
            account: s.account_id,
            session: s.session_token,
        }
    }

    async fn device(&self, session: &str) -> String {
        let body = json!({ "name": "speaker" });
        let d: RegisterDeviceResponse = self
            .store_call(Method::POST, "/v1/devices", Some(session), Some(&body))
            .await
            .json(StatusCode::CREATED);
        d.device_token
    }

    /// Upload one capture; returns what an export must contain for it.
    async fn ingest(
        &self,
        device_token: &str,
        key: &str,
        transcript: &str,
        audio: Vec<u8>,
    ) -> Ingested {
        let body = json!({
            "upload_key": key,
            "captured_at_ms": self.now() - 500,
            "transcript": transcript,
            "audio_base64": STANDARD.encode(&audio),
        });
        let r: IngestResponse = self
            .store_call(
                Method::POST,
                "/v1/recordings",
                Some(device_token),
                Some(&body),
            )
            .await
            .json(StatusCode::CREATED);
        Ingested {
            id: r.recording_id,
            sha256: sha256_hex(&audio),
            transcript: transcript.to_string(),
            audio,
        }
    }

    async fn delete_recording(&self, session: &str, id: RecordingId) {
        let r = self
            .store_call(
                Method::DELETE,
                &format!("/v1/recordings/{}", id.0),
                Some(session),
                None,
            )
            .await;
        let deleted: Value = r.json(StatusCode::OK);
        assert_eq!(deleted, json!({ "deleted": [id.0] }));
    }

    /// What a worker would collect for `subject` now (via the service API).
    async fn collect(&self, subject: AccountId) -> Vec<ArchiveItem> {
        let uri = format!("/v1/service/accounts/{}/recordings?limit=100", subject.0);
        let page: RecordingPage = self
            .store_call(Method::GET, &uri, Some(SERVICE_TOKEN), None)
            .await
            .json(StatusCode::OK);
        assert!(page.next_cursor.is_none());
        let mut items = Vec::new();
        for view in page.items {
            let uri = format!(
                "/v1/service/accounts/{}/recordings/{}/audio",
                subject.0, view.id.0
            );
            let r = self
                .store_call(Method::GET, &uri, Some(SERVICE_TOKEN), None)
                .await;
            assert_eq!(r.status, StatusCode::OK);
            items.push(ArchiveItem {
                recording: view,
                audio: r.body.to_vec(),
            });
        }
        items
    }

    async fn feed(&self, session: &str) -> Vec<Notification> {
        self.store_call(Method::GET, "/v1/notifications", Some(session), None)
            .await
            .json(StatusCode::OK)
    }

    async fn request_export(&self, session: &str) -> Reply {
        self.export_call(Method::POST, "/v1/exports", Some(session), None)
            .await
    }

    async fn status(&self, session: &str, id: ExportId) -> ExportStatus {
        self.export_call(
            Method::GET,
            &format!("/v1/exports/{}", id.0),
            Some(session),
            None,
        )
        .await
        .json(StatusCode::OK)
    }

    async fn download(&self, path: &str, session: Option<&str>) -> Reply {
        self.export_call(Method::GET, path, session, None).await
    }

    async fn open_ticket(&self, email: &str) -> Reply {
        let body = json!({ "claimed_email": email, "message": "please send me a copy of my data" });
        self.export_call(Method::POST, "/v1/tickets", None, Some(&body))
            .await
    }

    async fn verify(&self, ticket: u64, code: &str) -> Reply {
        let body = json!({ "code": code });
        self.export_call(
            Method::POST,
            &format!("/v1/tickets/{ticket}/verify"),
            None,
            Some(&body),
        )
        .await
    }

    async fn agent(&self, token: &str, method: Method, uri: &str, body: Option<&Value>) -> Reply {
        self.export_call(method, uri, Some(token), body).await
    }

    async fn agent_ticket(&self, id: u64) -> AgentTicketView {
        let tickets: Vec<AgentTicketView> = self
            .agent(AGENT_TOKEN, Method::GET, "/v1/agent/tickets", None)
            .await
            .json(StatusCode::OK);
        tickets
            .into_iter()
            .find(|t| t.ticket_id == id)
            .unwrap_or_else(|| panic!("ticket {id} is listed"))
    }

    async fn audit(&self, after: u64) -> Vec<AuditEntry> {
        self.agent(
            AGENT_TOKEN,
            Method::GET,
            &format!("/v1/agent/audit?after={after}"),
            None,
        )
        .await
        .json(StatusCode::OK)
    }

    /// A call on the workers' internal API, as a worker holding `token`.
    async fn internal(&self, token: Option<&str>, path: &str, body: &Value) -> Reply {
        self.export_call(Method::POST, path, token, Some(body))
            .await
    }

    async fn complete(
        &self,
        id: ExportId,
        fence: u64,
        snapshot: u64,
        ids: &[RecordingId],
        archive: &[u8],
    ) -> Reply {
        let body = json!({
            "fence": fence,
            "snapshot_at_ms": snapshot,
            "recording_ids": ids.iter().map(|r| r.0).collect::<Vec<_>>(),
            "archive_base64": STANDARD.encode(archive),
        });
        self.internal(
            Some(WORKER_TOKEN),
            &format!("/v1/internal/jobs/{}/complete", id.0),
            &body,
        )
        .await
    }
}

/// The code of the challenge for `ticket` in a feed (exactly one).
fn code_in(feed: &[Notification], ticket: u64) -> String {
    let marker = format!("(ticket {ticket})");
    let found: Vec<_> = feed
        .iter()
        .filter(|n| n.kind == "identity-challenge" && n.text.contains(&marker))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one challenge for ticket {ticket} in {feed:?}"
    );
    let code = found[0]
        .text
        .rsplit("your code is ")
        .next()
        .expect("the challenge names a code")
        .trim_end_matches('.')
        .to_string();
    assert!(
        code.len() == 16 && code.bytes().all(|b| b.is_ascii_hexdigit()),
        "code {code:?}"
    );
    code
}

fn kinds(feed: &[Notification]) -> Vec<&str> {
    feed.iter().map(|n| n.kind.as_str()).collect()
}

fn ids(items: &[ArchiveItem]) -> Vec<RecordingId> {
    items.iter().map(|i| i.recording.id).collect()
}

/// The archive holds exactly `expected` (ids, digests, transcripts, audio).
fn assert_archive(
    bytes: &[u8],
    subject: AccountId,
    export: ExportId,
    expected: &[&Ingested],
) -> u64 {
    let (manifest, files) = archive::read_archive(bytes).expect("a valid archive");
    assert_eq!(manifest.subject, subject);
    assert_eq!(manifest.export_id, export);
    let got: Vec<_> = manifest
        .recordings
        .iter()
        .map(|e| (e.id, e.sha256.clone(), e.transcript.clone()))
        .collect();
    let want: Vec<_> = expected
        .iter()
        .map(|r| (r.id, r.sha256.clone(), r.transcript.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(files.len(), expected.len());
    for rec in expected {
        let file = files
            .get(&format!("audio/{}.wav", rec.id.0))
            .expect("the recording's audio is archived");
        assert_eq!(file, &rec.audio);
        assert_eq!(sha256_hex(file), rec.sha256);
    }
    manifest.snapshot_at_ms
}

// ---------------------------------------------------------------------------
// Direct requests.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn direct_requests_need_a_session_are_deduplicated_and_rate_limited() {
    let w = World::new(1);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let device = w.device(&a.session).await;
    w.ingest(&device, "a0", "alice", audio("a", 0)).await;

    // Only a store session authenticates a subject.
    let e = w
        .export_call(Method::POST, "/v1/exports", None, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert_eq!(e.error, "unauthorized");
    for token in [
        "garbage",
        &"0".repeat(64),
        &device,
        SERVICE_TOKEN,
        WORKER_TOKEN,
        AGENT_TOKEN,
    ] {
        w.request_export(token)
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    w.export_call(Method::GET, "/v1/exports/1", None, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    w.export_call(Method::GET, "/v1/exports/1", Some("garbage"), None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    w.export_call(Method::GET, "/v1/exports/x", Some(&a.session), None)
        .await
        .error(StatusCode::BAD_REQUEST);
    w.export_call(Method::GET, "/v1/nothing", None, None)
        .await
        .error(StatusCode::NOT_FOUND);
    w.export_call(Method::DELETE, "/v1/exports", Some(&a.session), None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);

    // A request is accepted (202) as a pending job with its legal deadline.
    let first: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    assert_eq!(first.state, ExportState::Pending);
    assert_eq!(first.requested_at_ms, T0);
    assert_eq!(first.due_at_ms, T0 + DEADLINE_MS);
    assert!(!first.overdue);
    assert!(
        first.download_path.is_none()
            && first.expires_at_ms.is_none()
            && first.downloads_left.is_none()
    );
    assert!(
        first.snapshot_at_ms.is_none()
            && first.failure.is_none()
            && first.extension_reason.is_none()
    );

    // A duplicate while it is pending is the same export (200, not 202).
    w.clock.advance(5);
    let dup: ExportStatus = w.request_export(&a.session).await.json(StatusCode::OK);
    assert_eq!(dup.export_id, first.export_id);
    assert_eq!(dup.requested_at_ms, T0);

    // Someone else's export looks exactly like a missing one.
    let other = w
        .export_call(
            Method::GET,
            &format!("/v1/exports/{}", first.export_id.0),
            Some(&b.session),
            None,
        )
        .await;
    let missing = w
        .export_call(Method::GET, "/v1/exports/9999", Some(&b.session), None)
        .await;
    assert_eq!((other.status, &other.body), (missing.status, &missing.body));
    other.error(StatusCode::NOT_FOUND);

    // Rate limit: RATE_LIMIT_MAX accepted requests per window, however
    // quickly they come (the next three land in one millisecond). A
    // duplicate does not count; a finished export lets a new one start.
    let worker = w.worker("w1");
    let job = w.publish_next(&worker).await;
    assert_eq!(job.export_id, first.export_id);
    let mut accepted = vec![first.export_id];
    for _ in 1..RATE_LIMIT_MAX {
        let next: ExportStatus = w
            .request_export(&a.session)
            .await
            .json(StatusCode::ACCEPTED);
        assert!(
            !accepted.contains(&next.export_id),
            "a new export after the last one was ready"
        );
        accepted.push(next.export_id);
        w.publish_next(&worker).await;
    }
    let limited = w.request_export(&a.session).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.error(StatusCode::TOO_MANY_REQUESTS).error,
        "rate_limited"
    );
    assert!(
        worker.claim().await.is_none(),
        "a refused request creates no job"
    );

    // The limit is per subject.
    let b_first: ExportStatus = w
        .request_export(&b.session)
        .await
        .json(StatusCode::ACCEPTED);
    assert!(!accepted.contains(&b_first.export_id));

    // It lifts once the oldest request has left the window.
    w.clock.set(T0 + RATE_LIMIT_WINDOW_MS);
    w.request_export(&a.session)
        .await
        .error(StatusCode::TOO_MANY_REQUESTS);
    w.clock.advance(1);
    let again: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    assert!(!accepted.contains(&again.export_id));
}

/// The store refusing the export service's own token is the service's
/// fault (a 5xx), never reported as the subject's bad session (401).
#[tokio::test(start_paused = true)]
async fn a_misconfigured_service_token_is_a_server_error_not_unauthorized() {
    let w = World::build(2, "not-the-store-token", 4);
    let a = w.signup("alice@example.com").await;
    let e = w
        .request_export(&a.session)
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(e.error, "internal");
    assert!(e.message.contains("store refused"), "{e:?}");
    let e = w
        .open_ticket("alice@example.com")
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(e.message.contains("store refused"), "{e:?}");
}

// ---------------------------------------------------------------------------
// Downloads.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_ready_export_is_downloadable_only_by_its_subject_within_its_limits() {
    let w = World::new(3);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let da1 = w.device(&a.session).await;
    let da2 = w.device(&a.session).await;
    let db = w.device(&b.session).await;

    // A's recordings span several store pages (PAGE_ITEMS = 2), interleaved
    // with B's.
    let mut a_recs = Vec::new();
    let mut b_recs = Vec::new();
    for n in 0..5u32 {
        w.clock.advance(1_000);
        let device = if n % 2 == 0 { &da1 } else { &da2 };
        a_recs.push(
            w.ingest(
                device,
                &format!("a{n}"),
                &format!("alice #{n} — ça va? 🎙"),
                audio("a", n),
            )
            .await,
        );
        b_recs.push(
            w.ingest(&db, &format!("b{n}"), &format!("bob #{n}"), audio("b", n))
                .await,
        );
    }

    let requested_a: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    let requested_b: ExportStatus = w
        .request_export(&b.session)
        .await
        .json(StatusCode::ACCEPTED);
    assert_ne!(requested_a.export_id, requested_b.export_id);

    // The worker takes the oldest job first, for its own subject.
    w.clock.advance(1_000);
    let worker = w.worker("w1");
    let job_a = w.publish_next(&worker).await;
    assert_eq!(
        (job_a.export_id, job_a.subject),
        (requested_a.export_id, a.account)
    );
    let published_at = w.now();
    let job_b = w.publish_next(&worker).await;
    assert_eq!(
        (job_b.export_id, job_b.subject),
        (requested_b.export_id, b.account)
    );

    let ready_a = w.status(&a.session, requested_a.export_id).await;
    assert_eq!(
        ready_a.state,
        ExportState::Ready,
        "failure: {:?}",
        ready_a.failure
    );
    let path_a = ready_a
        .download_path
        .clone()
        .expect("a ready export has a download path");
    assert!(path_a.starts_with("/v1/downloads/"), "{path_a}");
    assert_eq!(ready_a.requested_at_ms, requested_a.requested_at_ms);
    assert_eq!(ready_a.due_at_ms, requested_a.requested_at_ms + DEADLINE_MS);
    assert!(!ready_a.overdue);
    assert_eq!(ready_a.snapshot_at_ms, Some(published_at));
    assert_eq!(ready_a.expires_at_ms, Some(published_at + LINK_TTL_MS));
    assert_eq!(ready_a.downloads_left, Some(MAX_DOWNLOADS));
    assert!(ready_a.failure.is_none());
    let ready_b = w.status(&b.session, requested_b.export_id).await;
    let path_b = ready_b.download_path.clone().expect("b's download path");
    assert_ne!(path_a, path_b);

    // Each subject is told on their own feed, with their own link only.
    let feed_a = w.feed(&a.session).await;
    assert_eq!(kinds(&feed_a), ["export-ready"]);
    assert!(
        feed_a[0].text.contains(&path_a) && !feed_a[0].text.contains(&path_b),
        "{feed_a:?}"
    );
    let feed_b = w.feed(&b.session).await;
    assert_eq!(kinds(&feed_b), ["export-ready"]);
    assert!(
        feed_b[0].text.contains(&path_b) && !feed_b[0].text.contains(&path_a),
        "{feed_b:?}"
    );

    // A's export does not exist for B, exactly like a missing one.
    let other = w
        .export_call(
            Method::GET,
            &format!("/v1/exports/{}", requested_a.export_id.0),
            Some(&b.session),
            None,
        )
        .await;
    let missing = w
        .export_call(Method::GET, "/v1/exports/9999", Some(&b.session), None)
        .await;
    assert_eq!((other.status, &other.body), (missing.status, &missing.body));
    other.error(StatusCode::NOT_FOUND);

    // A downloads a zip with exactly A's recordings, and not one of B's.
    let first = w.download(&path_a, Some(&a.session)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(
        first
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/zip")
    );
    let a_expected: Vec<&Ingested> = a_recs.iter().collect();
    let snapshot = assert_archive(&first.body, a.account, requested_a.export_id, &a_expected);
    assert_eq!(Some(snapshot), ready_a.snapshot_at_ms);
    let (manifest, _) = archive::read_archive(&first.body).expect("archive");
    for rec in &b_recs {
        assert!(
            manifest
                .recordings
                .iter()
                .all(|e| e.id != rec.id && e.sha256 != rec.sha256)
        );
    }
    assert_eq!(
        w.status(&a.session, requested_a.export_id)
            .await
            .downloads_left,
        Some(MAX_DOWNLOADS - 1)
    );
    // ... and B's archive holds exactly B's.
    let bytes_b = w.download(&path_b, Some(&b.session)).await;
    assert_eq!(bytes_b.status, StatusCode::OK);
    let b_expected: Vec<&Ingested> = b_recs.iter().collect();
    assert_archive(&bytes_b.body, b.account, requested_b.export_id, &b_expected);

    // A link is not a credential: B holding A's link gets 403, no session 401.
    let e = w
        .download(&path_a, Some(&b.session))
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(e.error, "forbidden");
    w.download(&path_b, Some(&a.session))
        .await
        .error(StatusCode::FORBIDDEN);
    w.download(&path_a, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    w.download(&path_a, Some("garbage"))
        .await
        .error(StatusCode::UNAUTHORIZED);
    w.download(&path_a, Some(SERVICE_TOKEN))
        .await
        .error(StatusCode::UNAUTHORIZED);

    // Forged, truncated, altered and garbage tokens are all 404.
    let token = path_a.trim_start_matches("/v1/downloads/").to_string();
    let raw = URL_SAFE_NO_PAD.decode(&token).expect("token is base64url");
    let mut bad_tokens = vec![
        token[..token.len() - 1].to_string(),
        token[..token.len() / 2].to_string(),
        format!("{token}A"),
        format!("{token}AAAA"),
        "garbage".to_string(),
        "A".repeat(200),
        "!!!!".to_string(),
        // Signed with some other key.
        mint(
            b"not the service's key",
            &LinkClaims {
                export_id: requested_a.export_id,
                subject: a.account,
                expires_at_ms: u64::MAX,
                nonce: [0; 16],
            },
        ),
    ];
    // Every claim altered under the original tag: export id (to B's),
    // subject (to B), expiry (later), nonce; and the tag itself.
    for (offset, value) in [
        (0usize, requested_b.export_id.0),
        (8, b.account.0),
        (16, u64::MAX),
    ] {
        let mut altered = raw.clone();
        altered[offset..offset + 8].copy_from_slice(&value.to_be_bytes());
        bad_tokens.push(URL_SAFE_NO_PAD.encode(&altered));
    }
    let mut altered = raw.clone();
    altered[30] ^= 0xff;
    bad_tokens.push(URL_SAFE_NO_PAD.encode(&altered));
    let mut altered = raw.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    bad_tokens.push(URL_SAFE_NO_PAD.encode(&altered));
    for bad in &bad_tokens {
        let e = w
            .download(&format!("/v1/downloads/{bad}"), Some(&a.session))
            .await
            .error(StatusCode::NOT_FOUND);
        assert_eq!(e.error, "not_found", "token {bad}");
    }
    // None of the refusals used up a download.
    assert_eq!(
        w.status(&a.session, requested_a.export_id)
            .await
            .downloads_left,
        Some(MAX_DOWNLOADS - 1)
    );

    // A recording that arrives after the snapshot is not added; the stored
    // archive is served unchanged until the download limit, then 410.
    w.clock.advance(1_000);
    w.ingest(&da1, "late", "after the snapshot", audio("a", 99))
        .await;
    for left in (0..MAX_DOWNLOADS - 1).rev() {
        let again = w.download(&path_a, Some(&a.session)).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(
            again.body, first.body,
            "the stored archive is served unchanged"
        );
        assert_eq!(
            w.status(&a.session, requested_a.export_id)
                .await
                .downloads_left,
            Some(left)
        );
    }
    let e = w
        .download(&path_a, Some(&a.session))
        .await
        .error(StatusCode::GONE);
    assert_eq!(e.error, "gone");
    w.download(&path_a, Some(&a.session))
        .await
        .error(StatusCode::GONE);
    // Used up or not, B still gets nothing but 403.
    w.download(&path_a, Some(&b.session))
        .await
        .error(StatusCode::FORBIDDEN);

    // B's link works until just before its expiry, and is gone from then on.
    let expires_b = ready_b.expires_at_ms.expect("b's link expires");
    w.clock.set(expires_b - 1);
    assert_eq!(
        w.download(&path_b, Some(&b.session)).await.status,
        StatusCode::OK
    );
    w.clock.set(expires_b);
    let e = w
        .download(&path_b, Some(&b.session))
        .await
        .error(StatusCode::GONE);
    assert_eq!(e.error, "gone");
    w.clock.advance(LINK_TTL_MS);
    w.download(&path_b, Some(&b.session))
        .await
        .error(StatusCode::GONE);
    w.download(&path_b, Some(&a.session))
        .await
        .error(StatusCode::FORBIDDEN);

    // A ready export is never overdue, even past its due date.
    w.clock.set(ready_a.due_at_ms + 1);
    let late = w.status(&a.session, requested_a.export_id).await;
    assert_eq!(late.state, ExportState::Ready);
    assert!(!late.overdue);
}

#[tokio::test(start_paused = true)]
async fn an_export_of_an_account_without_recordings_is_an_empty_archive() {
    let w = World::new(4);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let db = w.device(&b.session).await;
    w.ingest(&db, "b0", "bob", audio("b", 0)).await;

    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    w.publish_next(&w.worker("w1")).await;
    let ready = w.status(&a.session, requested.export_id).await;
    assert_eq!(ready.state, ExportState::Ready);
    let path = ready.download_path.expect("download path");
    let r = w.download(&path, Some(&a.session)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_archive(&r.body, a.account, requested.export_id, &[]);
}

#[tokio::test(start_paused = true)]
async fn erasure_revokes_the_archive_and_the_rebuild_leaves_the_deleted_recording_out() {
    let w = World::new(5);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let da = w.device(&a.session).await;
    let db = w.device(&b.session).await;
    let mut recs = Vec::new();
    for n in 0..3u32 {
        w.clock.advance(1_000);
        recs.push(
            w.ingest(&da, &format!("a{n}"), &format!("alice {n}"), audio("a", n))
                .await,
        );
    }
    w.ingest(&db, "b0", "bob", audio("b", 0)).await;

    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    let worker = w.worker("w1");
    let first_job = w.publish_next(&worker).await;
    let ready = w.status(&a.session, requested.export_id).await;
    let path1 = ready.download_path.clone().expect("ready");
    let r = w.download(&path1, Some(&a.session)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_archive(
        &r.body,
        a.account,
        requested.export_id,
        &recs.iter().collect::<Vec<_>>(),
    );

    // Deleting a recording that is not in the archive changes nothing.
    w.clock.advance(1_000);
    let late = w
        .ingest(&da, "late", "after the snapshot", audio("a", 50))
        .await;
    w.delete_recording(&a.session, late.id).await;
    assert_eq!(
        w.download(&path1, Some(&a.session)).await.status,
        StatusCode::OK
    );

    // Deleting one that is: the next download is refused (410), the archive
    // is withdrawn and the job is queued again.
    w.delete_recording(&a.session, recs[1].id).await;
    let e = w
        .download(&path1, Some(&a.session))
        .await
        .error(StatusCode::GONE);
    assert_eq!(e.error, "gone");
    let rebuilding = w.status(&a.session, requested.export_id).await;
    assert_eq!(rebuilding.state, ExportState::Pending);
    assert!(
        rebuilding.download_path.is_none()
            && rebuilding.expires_at_ms.is_none()
            && rebuilding.downloads_left.is_none()
    );
    w.download(&path1, Some(&a.session))
        .await
        .error(StatusCode::GONE);
    w.download(&path1, Some(&b.session))
        .await
        .error(StatusCode::FORBIDDEN);
    // A new request joins the rebuild.
    let dup: ExportStatus = w.request_export(&a.session).await.json(StatusCode::OK);
    assert_eq!(dup.export_id, requested.export_id);

    // A worker rebuilds it (a new claim: a higher fence).
    w.clock.advance(1_000);
    let second_job = w.publish_next(&worker).await;
    assert_eq!(second_job.export_id, requested.export_id);
    assert!(second_job.fence > first_job.fence);
    let rebuilt = w.status(&a.session, requested.export_id).await;
    assert_eq!(rebuilt.state, ExportState::Ready);
    assert_eq!(rebuilt.snapshot_at_ms, Some(w.now()));
    assert_eq!(rebuilt.downloads_left, Some(MAX_DOWNLOADS));
    let path2 = rebuilt.download_path.clone().expect("rebuilt");
    assert_ne!(path1, path2);

    // The old link stays dead; the new archive lacks the deleted recording.
    w.download(&path1, Some(&a.session))
        .await
        .error(StatusCode::GONE);
    let r = w.download(&path2, Some(&a.session)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_archive(
        &r.body,
        a.account,
        requested.export_id,
        &[&recs[0], &recs[2]],
    );
    let (manifest, files) = archive::read_archive(&r.body).expect("archive");
    assert!(
        manifest
            .recordings
            .iter()
            .all(|e| e.id != recs[1].id && e.sha256 != recs[1].sha256)
    );
    assert!(files.values().all(|f| f != &recs[1].audio));
    w.download(&path1, Some(&a.session))
        .await
        .error(StatusCode::GONE);

    // The subject was told twice, each time with that build's link.
    let feed = w.feed(&a.session).await;
    assert_eq!(kinds(&feed), ["export-ready", "export-ready"]);
    assert!(
        feed[0].text.contains(&path1) && feed[1].text.contains(&path2),
        "{feed:?}"
    );
    assert!(w.feed(&b.session).await.is_empty());
}

// ---------------------------------------------------------------------------
// Workers: leases, fences, authentication, validation, failure.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_worker_that_lost_its_lease_never_publishes() {
    let w = World::new(6);
    let a = w.signup("alice@example.com").await;
    let da = w.device(&a.session).await;
    let mut recs = Vec::new();
    for n in 0..3u32 {
        w.clock.advance(1_000);
        recs.push(
            w.ingest(&da, &format!("a{n}"), &format!("alice {n}"), audio("a", n))
                .await,
        );
    }
    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    let id = requested.export_id;
    let renew_path = format!("/v1/internal/jobs/{}/renew", id.0);
    let fail_path = format!("/v1/internal/jobs/{}/fail", id.0);
    let wa = w.worker("worker-a");
    let wb = w.worker("worker-b");

    let ja = wa.claim().await.expect("A claims the job");
    assert_eq!((ja.export_id, ja.subject, ja.fence), (id, a.account, 1));
    assert_eq!(ja.lease_expires_at_ms, w.now() + LEASE_MS);
    assert!(
        wb.claim().await.is_none(),
        "a leased job is not handed out twice"
    );

    // Renewing keeps the lease.
    w.clock.advance(LEASE_MS - 1);
    let renewed: Value = w
        .internal(
            Some(WORKER_TOKEN),
            &renew_path,
            &json!({ "fence": ja.fence }),
        )
        .await
        .json(StatusCode::OK);
    assert_eq!(
        renewed,
        json!({ "lease_expires_at_ms": w.now() + LEASE_MS })
    );
    w.clock.advance(LEASE_MS - 1);
    assert!(wb.claim().await.is_none(), "a renewed lease holds");

    // The lease lapses: A is out even before anyone else claims.
    w.clock.advance(1);
    let e = w
        .internal(
            Some(WORKER_TOKEN),
            &renew_path,
            &json!({ "fence": ja.fence }),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(e.error, "conflict");

    // B claims with a higher fence.
    let jb = wb.claim().await.expect("B claims the lapsed job");
    assert_eq!((jb.export_id, jb.subject), (id, a.account));
    assert!(jb.fence > ja.fence);
    assert!(wa.claim().await.is_none());

    // Everything A does with its fence is refused: renew, fail, and a
    // publication of a perfectly good archive.
    let snapshot_a = w.now();
    let items = w.collect(a.account).await;
    let archive_a = build_archive(a.account, id, snapshot_a, &items).expect("archive builds");
    w.internal(
        Some(WORKER_TOKEN),
        &renew_path,
        &json!({ "fence": ja.fence }),
    )
    .await
    .error(StatusCode::CONFLICT);
    w.internal(
        Some(WORKER_TOKEN),
        &fail_path,
        &json!({ "fence": ja.fence, "reason": "gave up" }),
    )
    .await
    .error(StatusCode::CONFLICT);
    w.complete(id, ja.fence, snapshot_a, &ids(&items), &archive_a)
        .await
        .error(StatusCode::CONFLICT);
    // A fence nobody was given is refused too.
    w.complete(id, jb.fence + 1, snapshot_a, &ids(&items), &archive_a)
        .await
        .error(StatusCode::CONFLICT);
    // A working its stale claim is fenced out at its first renewal.
    let result = wa.work(&ja).await;
    assert!(matches!(result, Outcome::FencedOut), "{}", outcome(&result));
    let status = w.status(&a.session, id).await;
    assert_eq!(status.state, ExportState::Pending);
    assert!(status.download_path.is_none());
    assert!(w.feed(&a.session).await.is_empty(), "nothing was published");

    // B publishes.
    w.clock.advance(7);
    let result = wb.work(&jb).await;
    assert!(matches!(result, Outcome::Published), "{}", outcome(&result));
    let snapshot_b = w.now();
    let ready = w.status(&a.session, id).await;
    assert_eq!(ready.state, ExportState::Ready);
    assert_eq!(ready.snapshot_at_ms, Some(snapshot_b));
    let path = ready.download_path.clone().expect("ready");

    // Published exactly once: A's late publication, a replay of B's, and
    // B's renewal are all refused, nothing is left to claim, and the
    // subject was told once.
    w.complete(id, ja.fence, snapshot_a, &ids(&items), &archive_a)
        .await
        .error(StatusCode::CONFLICT);
    let archive_b = build_archive(a.account, id, snapshot_b, &items).expect("archive builds");
    w.complete(id, jb.fence, snapshot_b, &ids(&items), &archive_b)
        .await
        .error(StatusCode::CONFLICT);
    w.internal(
        Some(WORKER_TOKEN),
        &renew_path,
        &json!({ "fence": jb.fence }),
    )
    .await
    .error(StatusCode::CONFLICT);
    w.internal(
        Some(WORKER_TOKEN),
        &fail_path,
        &json!({ "fence": jb.fence, "reason": "late" }),
    )
    .await
    .error(StatusCode::CONFLICT);
    assert!(wa.claim().await.is_none() && wb.claim().await.is_none());
    assert_eq!(kinds(&w.feed(&a.session).await), ["export-ready"]);
    assert_eq!(
        w.status(&a.session, id).await.download_path.as_deref(),
        Some(path.as_str()),
        "the link did not change"
    );

    // What the subject downloads is B's build.
    let r = w.download(&path, Some(&a.session)).await;
    assert_eq!(r.status, StatusCode::OK);
    let snapshot = assert_archive(&r.body, a.account, id, &recs.iter().collect::<Vec<_>>());
    assert_eq!(snapshot, snapshot_b);
    assert_ne!(snapshot, snapshot_a);
    assert_eq!(r.body.as_ref(), archive_b.as_slice());
}

#[tokio::test(start_paused = true)]
async fn the_internal_api_needs_the_worker_token_and_an_archive_that_matches_its_job() {
    let w = World::new(7);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let da = w.device(&a.session).await;
    let db = w.device(&b.session).await;
    for n in 0..2u32 {
        w.clock.advance(1_000);
        w.ingest(&da, &format!("a{n}"), &format!("alice {n}"), audio("a", n))
            .await;
    }
    w.ingest(&db, "b0", "bob", audio("b", 0)).await;
    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    let id = requested.export_id;

    // Without the worker token: 401 without a bearer, 403 with any other.
    let calls = [
        (
            "/v1/internal/jobs/claim".to_string(),
            json!({ "worker": "intruder" }),
        ),
        (
            format!("/v1/internal/jobs/{}/renew", id.0),
            json!({ "fence": 1 }),
        ),
        (
            format!("/v1/internal/jobs/{}/fail", id.0),
            json!({ "fence": 1, "reason": "x" }),
        ),
        (
            format!("/v1/internal/jobs/{}/complete", id.0),
            json!({ "fence": 1, "snapshot_at_ms": 0, "recording_ids": [], "archive_base64": "" }),
        ),
    ];
    for (path, body) in &calls {
        let e = w
            .internal(None, path, body)
            .await
            .error(StatusCode::UNAUTHORIZED);
        assert_eq!(e.error, "unauthorized", "{path}");
        for token in ["wrong-worker-token", AGENT_TOKEN, &a.session, SERVICE_TOKEN] {
            let e = w
                .internal(Some(token), path, body)
                .await
                .error(StatusCode::FORBIDDEN);
            assert_eq!(e.error, "forbidden", "{path}");
        }
    }
    // A worker must name itself.
    w.internal(
        Some(WORKER_TOKEN),
        "/v1/internal/jobs/claim",
        &json!({ "worker": "" }),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    w.internal(
        Some(WORKER_TOKEN),
        "/v1/internal/jobs/claim",
        &json!({ "worker": "w".repeat(65) }),
    )
    .await
    .error(StatusCode::BAD_REQUEST);

    // Nothing was claimed by any of that: the first real claim has fence 1.
    let job: ClaimedJob = w
        .internal(
            Some(WORKER_TOKEN),
            "/v1/internal/jobs/claim",
            &json!({ "worker": "manual" }),
        )
        .await
        .json(StatusCode::OK);
    assert_eq!((job.export_id, job.subject, job.fence), (id, a.account, 1));
    let none = w
        .internal(
            Some(WORKER_TOKEN),
            "/v1/internal/jobs/claim",
            &json!({ "worker": "other" }),
        )
        .await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
    assert!(none.body.is_empty());

    let snapshot = w.now();
    let items_a = w.collect(a.account).await;
    let items_b = w.collect(b.account).await;
    let ids_a = ids(&items_a);
    let ids_b = ids(&items_b);
    assert_eq!((ids_a.len(), ids_b.len()), (2, 1));
    let good = build_archive(a.account, id, snapshot, &items_a).expect("archive builds");
    let mixed_ids = vec![ids_a[0], ids_b[0]];
    let cases: Vec<(&str, Vec<u8>, Vec<RecordingId>, u64)> = vec![
        (
            "another subject's data",
            build_archive(b.account, id, snapshot, &items_b).unwrap(),
            ids_b.clone(),
            snapshot,
        ),
        (
            "the subject's data labelled as another's",
            build_archive(b.account, id, snapshot, &items_a).unwrap(),
            ids_a.clone(),
            snapshot,
        ),
        (
            "another export",
            build_archive(a.account, ExportId(id.0 + 1), snapshot, &items_a).unwrap(),
            ids_a.clone(),
            snapshot,
        ),
        (
            "fewer recordings than reported",
            build_archive(a.account, id, snapshot, &items_a[..1]).unwrap(),
            ids_a.clone(),
            snapshot,
        ),
        (
            "more recordings than reported",
            good.clone(),
            ids_a[..1].to_vec(),
            snapshot,
        ),
        (
            "other recordings than reported",
            good.clone(),
            mixed_ids,
            snapshot,
        ),
        (
            "a different snapshot",
            good.clone(),
            ids_a.clone(),
            snapshot + 1,
        ),
        (
            "not a zip",
            b"PK not really a zip".to_vec(),
            ids_a.clone(),
            snapshot,
        ),
    ];
    for (what, archive, reported, snap) in &cases {
        let e = w
            .complete(id, job.fence, *snap, reported, archive)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.error, "invalid_archive", "{what}");
    }
    let not_base64 = json!({ "fence": job.fence, "snapshot_at_ms": snapshot, "recording_ids": [], "archive_base64": "%%%" });
    w.internal(
        Some(WORKER_TOKEN),
        &format!("/v1/internal/jobs/{}/complete", id.0),
        &not_base64,
    )
    .await
    .error(StatusCode::BAD_REQUEST);

    // Nothing was published, and the lease is still the worker's.
    let status = w.status(&a.session, id).await;
    assert_eq!(status.state, ExportState::Pending);
    assert!(status.download_path.is_none());
    assert!(w.feed(&a.session).await.is_empty());
    let renew_path = format!("/v1/internal/jobs/{}/renew", id.0);
    w.internal(
        Some(WORKER_TOKEN),
        &renew_path,
        &json!({ "fence": job.fence }),
    )
    .await
    .json::<Value>(StatusCode::OK);

    // The matching archive is accepted (the order of the reported ids does
    // not matter) and is exactly what the subject downloads.
    let reversed: Vec<RecordingId> = ids_a.iter().rev().copied().collect();
    let published: ExportStatus = w
        .complete(id, job.fence, snapshot, &reversed, &good)
        .await
        .json(StatusCode::OK);
    assert_eq!(published.state, ExportState::Ready);
    let r = w
        .download(&published.download_path.expect("ready"), Some(&a.session))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), good.as_slice());
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_store_is_unreachable_backs_off_then_fails_with_a_reason() {
    // No pooled connections to the store, so "down" applies to every call.
    let w = World::build(8, SERVICE_TOKEN, 0);
    let a = w.signup("alice@example.com").await;
    let d = w.device(&a.session).await;
    w.ingest(&d, "a0", "alice", audio("a", 0)).await;
    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);

    // While the service cannot reach the store nobody can be authenticated:
    // 503, not 401.
    w.service_store_down.store(true, Ordering::SeqCst);
    let e = w
        .export_call(
            Method::GET,
            &format!("/v1/exports/{}", requested.export_id.0),
            Some(&a.session),
            None,
        )
        .await;
    assert_eq!(
        e.error(StatusCode::SERVICE_UNAVAILABLE).error,
        "unavailable"
    );
    w.service_store_down.store(false, Ordering::SeqCst);

    let store_down = Arc::new(AtomicBool::new(true));
    let flaky = w.worker_with_store("flaky", store_down.clone());
    let healthy = w.worker("healthy");

    // Attempt 1 fails; the job backs off RETRY_BACKOFF_MS for every worker.
    let job = flaky.claim().await.expect("claim 1");
    assert_eq!(job.fence, 1);
    match flaky.work(&job).await {
        Outcome::Failed(reason) => assert!(reason.contains("store is down"), "{reason}"),
        other => panic!("expected a failure, got {}", outcome(&other)),
    }
    let status = w.status(&a.session, requested.export_id).await;
    assert_eq!(status.state, ExportState::Pending);
    assert!(status.failure.is_none());
    assert!(healthy.claim().await.is_none(), "backing off");
    w.clock.advance(RETRY_BACKOFF_MS - 1);
    assert!(healthy.claim().await.is_none(), "still backing off");
    w.clock.advance(1);

    // Attempt 2 fails; the back-off doubles, capped at MAX_BACKOFF_MS.
    let job = flaky.claim().await.expect("claim 2");
    assert_eq!(job.fence, 2);
    assert!(matches!(flaky.work(&job).await, Outcome::Failed(_)));
    let backoff = (RETRY_BACKOFF_MS * 2).min(MAX_BACKOFF_MS);
    w.clock.advance(backoff - 1);
    assert!(healthy.claim().await.is_none(), "backing off again");
    w.clock.advance(1);

    // Attempt 3 (MAX_ATTEMPTS) fails for good.
    let job = flaky.claim().await.expect("claim 3");
    assert!(matches!(flaky.work(&job).await, Outcome::Failed(_)));
    let failed = w.status(&a.session, requested.export_id).await;
    assert_eq!(failed.state, ExportState::Failed);
    let reason = failed.failure.clone().expect("a failed export says why");
    assert!(reason.contains("store is down"), "{reason}");
    assert!(
        failed.download_path.is_none()
            && failed.expires_at_ms.is_none()
            && failed.downloads_left.is_none()
    );
    w.clock.advance(10 * MAX_BACKOFF_MS);
    store_down.store(false, Ordering::SeqCst);
    assert!(
        healthy.claim().await.is_none() && flaky.claim().await.is_none(),
        "a failed job is not retried"
    );

    // With the store back, a new request is a new export that gets built.
    let retry: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    assert_ne!(retry.export_id, requested.export_id);
    w.publish_next(&flaky).await;
    assert_eq!(
        w.status(&a.session, retry.export_id).await.state,
        ExportState::Ready
    );
    assert_eq!(
        w.status(&a.session, requested.export_id).await.state,
        ExportState::Failed
    );
}

// ---------------------------------------------------------------------------
// Tickets.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn tickets_are_verified_only_by_the_code_sent_to_the_account() {
    let w = World::new(9);
    let alice = w.signup("alice@example.com").await;
    let bob = w.signup("bob@example.com").await;
    let da = w.device(&alice.session).await;
    let db = w.device(&bob.session).await;
    let a_recs = [
        w.ingest(&da, "a0", "alice 0", audio("a", 0)).await,
        w.ingest(&da, "a1", "alice 1", audio("a", 1)).await,
    ];
    w.ingest(&db, "b0", "bob 0", audio("b", 0)).await;
    let worker = w.worker("w1");

    // Malformed tickets.
    w.open_ticket("not an address")
        .await
        .error(StatusCode::BAD_REQUEST);
    w.export_call(
        Method::POST,
        "/v1/tickets",
        None,
        Some(&json!({ "claimed_email": "a@b.c", "extra": 1 })),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    w.export_call(Method::POST, "/v1/tickets", None, None)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A ticket for Alice (typed loosely): 202, and the code goes to her feed.
    let r1 = w.open_ticket("  ALICE@Example.com ").await;
    let t1: TicketStatus = r1.json(StatusCode::ACCEPTED);
    assert_eq!(
        (t1.state, t1.export_id),
        (TicketState::AwaitingVerification, None)
    );
    let code1 = code_in(&w.feed(&alice.session).await, t1.ticket_id);
    assert!(w.feed(&bob.session).await.is_empty());

    // A ticket for an email nobody has: the very same answer, and no
    // notification anywhere.
    let r_ghost = w.open_ticket("nobody@example.com").await;
    let ghost: TicketStatus = r_ghost.json(StatusCode::ACCEPTED);
    assert_ne!(ghost.ticket_id, t1.ticket_id);
    let mut shape1: Value = serde_json::from_slice(&r1.body).unwrap();
    let mut shape_ghost: Value = serde_json::from_slice(&r_ghost.body).unwrap();
    shape1["ticket_id"] = json!(0);
    shape_ghost["ticket_id"] = json!(0);
    assert_eq!(shape1, shape_ghost);
    assert_eq!(r1.headers, r_ghost.headers);
    assert_eq!(w.feed(&alice.session).await.len(), 1);
    assert!(w.feed(&bob.session).await.is_empty());

    // Unknown tickets, wrong codes.
    w.verify(9_999, &code1).await.error(StatusCode::NOT_FOUND);
    let e = w
        .verify(t1.ticket_id, "0000000000000000")
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(e.error, "forbidden");
    w.verify(t1.ticket_id, "")
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(
        w.agent_ticket(t1.ticket_id).await.state,
        TicketState::AwaitingVerification
    );

    // The right code verifies it, for an export of exactly Alice's account.
    let verified: TicketStatus = w
        .verify(t1.ticket_id, &format!(" {code1} "))
        .await
        .json(StatusCode::OK);
    assert_eq!(verified.state, TicketState::Verified);
    let e1 = verified.export_id.expect("a verified ticket has an export");
    let again: TicketStatus = w.verify(t1.ticket_id, &code1).await.json(StatusCode::OK);
    assert_eq!(
        (again.state, again.export_id),
        (TicketState::Verified, Some(e1))
    );
    // A verified ticket tells a wrong code nothing, not even that it is verified.
    w.verify(t1.ticket_id, "0000000000000000")
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(
        w.status(&alice.session, e1).await.state,
        ExportState::Pending
    );
    w.export_call(
        Method::GET,
        &format!("/v1/exports/{}", e1.0),
        Some(&bob.session),
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND);
    let job = w.publish_next(&worker).await;
    assert_eq!((job.export_id, job.subject), (e1, alice.account));
    let path = w
        .status(&alice.session, e1)
        .await
        .download_path
        .expect("ready");
    let r = w.download(&path, Some(&alice.session)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_archive(
        &r.body,
        alice.account,
        e1,
        &a_recs.iter().collect::<Vec<_>>(),
    );
    w.download(&path, Some(&bob.session))
        .await
        .error(StatusCode::FORBIDDEN);

    // No code verifies the ghost ticket, not even a real one; after
    // MAX_VERIFY_ATTEMPTS it is rejected.
    for code in [
        code1.as_str(),
        "0000000000000000",
        "",
        "ffffffffffffffff",
        "x",
    ] {
        w.verify(ghost.ticket_id, code)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    let ghost_view = w.agent_ticket(ghost.ticket_id).await;
    assert_eq!(
        (ghost_view.state, ghost_view.export_id),
        (TicketState::Rejected, None)
    );

    // Four wrong codes leave a ticket open; the fifth rejects it, and then
    // even the right code fails.
    let t2: TicketStatus = w
        .open_ticket("bob@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let code2 = code_in(&w.feed(&bob.session).await, t2.ticket_id);
    for n in 0..4 {
        w.verify(t2.ticket_id, &format!("{n:016x}"))
            .await
            .error(StatusCode::FORBIDDEN);
        assert_eq!(
            w.agent_ticket(t2.ticket_id).await.state,
            TicketState::AwaitingVerification
        );
    }
    w.verify(t2.ticket_id, "0123456789abcdef")
        .await
        .error(StatusCode::FORBIDDEN);
    let e = w
        .verify(t2.ticket_id, &code2)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(e.error, "forbidden");
    let t2_view = w.agent_ticket(t2.ticket_id).await;
    assert_eq!(
        (t2_view.state, t2_view.export_id),
        (TicketState::Rejected, None)
    );
    assert!(
        worker.claim().await.is_none(),
        "a rejected ticket made no export"
    );

    // Four wrong codes, then the right one: verified.
    let t3: TicketStatus = w
        .open_ticket("bob@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let code3 = code_in(&w.feed(&bob.session).await, t3.ticket_id);
    assert_ne!(code3, code2);
    for n in 0..4 {
        w.verify(t3.ticket_id, &format!("{n:016x}"))
            .await
            .error(StatusCode::FORBIDDEN);
    }
    let v3: TicketStatus = w.verify(t3.ticket_id, &code3).await.json(StatusCode::OK);
    let e3 = v3.export_id.expect("verified");
    assert_eq!(w.status(&bob.session, e3).await.state, ExportState::Pending);
    w.export_call(
        Method::GET,
        &format!("/v1/exports/{}", e3.0),
        Some(&alice.session),
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND);

    // Duplicate tickets each need their own code.
    let t4: TicketStatus = w
        .open_ticket("alice@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let t5: TicketStatus = w
        .open_ticket("alice@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let feed = w.feed(&alice.session).await;
    let (code4, code5) = (code_in(&feed, t4.ticket_id), code_in(&feed, t5.ticket_id));
    assert_ne!(code4, code5);
    let v4: TicketStatus = w.verify(t4.ticket_id, &code4).await.json(StatusCode::OK);
    let e4 = v4.export_id.expect("verified");
    assert_ne!(e4, e1, "a request after a ready export is a new export");
    w.verify(t5.ticket_id, &code4)
        .await
        .error(StatusCode::FORBIDDEN);
    w.verify(t5.ticket_id, &code1)
        .await
        .error(StatusCode::FORBIDDEN);
    let t5_view = w.agent_ticket(t5.ticket_id).await;
    assert_eq!(
        (t5_view.state, t5_view.export_id),
        (TicketState::AwaitingVerification, None)
    );
    let v5: TicketStatus = w.verify(t5.ticket_id, &code5).await.json(StatusCode::OK);
    assert_eq!(
        v5.export_id,
        Some(e4),
        "a second verified ticket joins the pending export"
    );

    // Verified tickets are not rate limited like direct requests, and the
    // exports are exactly each account's.
    let j = w.publish_next(&worker).await;
    assert_eq!((j.export_id, j.subject), (e3, bob.account));
    let j = w.publish_next(&worker).await;
    assert_eq!((j.export_id, j.subject), (e4, alice.account));
    assert!(worker.claim().await.is_none());
}

/// Many wrong codes sent at once still count one by one: the ticket is
/// rejected, and the right code fails afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_codes_cannot_outrun_the_attempt_limit() {
    for round in 0..20u64 {
        let w = Arc::new(World::new(100 + round));
        let alice = w.signup("alice@example.com").await;
        let t: TicketStatus = w
            .open_ticket("alice@example.com")
            .await
            .json(StatusCode::ACCEPTED);
        let code = code_in(&w.feed(&alice.session).await, t.ticket_id);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        const GUESSES: u64 = 64;
        for n in 0..GUESSES {
            let (w, tx) = (w.clone(), tx.clone());
            crosstalk_service::Spawner::Tokio.spawn(async move {
                let status = w.verify(t.ticket_id, &format!("{n:016x}")).await.status;
                let _ = tx.send(status);
            });
        }
        drop(tx);
        let mut answers = Vec::new();
        while let Some(status) = rx.recv().await {
            answers.push(status);
        }
        assert_eq!(answers.len() as u64, GUESSES);
        assert!(
            answers.iter().all(|s| *s == StatusCode::FORBIDDEN),
            "{answers:?}"
        );
        w.verify(t.ticket_id, &code)
            .await
            .error(StatusCode::FORBIDDEN);
        assert_eq!(
            w.agent_ticket(t.ticket_id).await.state,
            TicketState::Rejected,
            "round {round}"
        );
    }
}

// ---------------------------------------------------------------------------
// The agent console.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_agent_console_sends_only_to_verified_subjects_and_audits_everything() {
    // No pooled store connections, so the store can be taken down.
    let w = World::build(10, SERVICE_TOKEN, 0);
    let alice = w.signup("alice@example.com").await;
    let bob = w.signup("bob@example.com").await;
    let carol = w.signup("carol@example.com").await;
    let da = w.device(&alice.session).await;
    w.ingest(&da, "a0", "alice 0", audio("a", 0)).await;
    let worker = w.worker("w1");

    // Only agents get in: 401 without a bearer, 403 with anything else.
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/agent/tickets", None),
        (Method::GET, "/v1/agent/overdue", None),
        (Method::GET, "/v1/agent/audit", None),
        (Method::POST, "/v1/agent/tickets/1/resend-link", None),
        (
            Method::POST,
            "/v1/agent/tickets/1/manual-verification",
            Some(json!({ "facts": ["knows the address"] })),
        ),
        (
            Method::POST,
            "/v1/agent/exports/1/extend",
            Some(json!({ "reason": "busy" })),
        ),
    ];
    for (method, path, body) in &routes {
        let e = w
            .export_call(method.clone(), path, None, body.as_ref())
            .await
            .error(StatusCode::UNAUTHORIZED);
        assert_eq!(e.error, "unauthorized", "{path}");
        for token in [
            "agent-a-token-wrong",
            WORKER_TOKEN,
            SERVICE_TOKEN,
            &alice.session,
            "agent-a",
        ] {
            let e = w
                .export_call(method.clone(), path, Some(token), body.as_ref())
                .await
                .error(StatusCode::FORBIDDEN);
            assert_eq!(e.error, "forbidden", "{path}");
        }
    }
    assert!(w.audit(0).await.is_empty(), "nothing happened");

    // An unverified ticket: no link is sent, and no agent can vouch for
    // the requester.
    let t1: TicketStatus = w
        .open_ticket("alice@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let ghost: TicketStatus = w
        .open_ticket("nobody@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let resend = |id: u64| format!("/v1/agent/tickets/{id}/resend-link");
    let manual = |id: u64| format!("/v1/agent/tickets/{id}/manual-verification");
    let facts = json!({ "facts": ["knew the home address", "knew the birthday"] });
    w.agent(AGENT_TOKEN, Method::POST, &resend(t1.ticket_id), None)
        .await
        .error(StatusCode::CONFLICT);
    let e = w
        .agent(
            AGENT_TOKEN,
            Method::POST,
            &manual(t1.ticket_id),
            Some(&facts),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(e.error, "forbidden");
    w.agent(AGENT_TOKEN, Method::POST, &resend(ghost.ticket_id), None)
        .await
        .error(StatusCode::CONFLICT);
    w.agent(
        AGENT_TOKEN,
        Method::POST,
        &manual(ghost.ticket_id),
        Some(&json!({})),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    w.agent(AGENT_TOKEN, Method::POST, &resend(9_999), None)
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(
        w.agent_ticket(t1.ticket_id).await.state,
        TicketState::AwaitingVerification
    );
    assert!(
        worker.claim().await.is_none(),
        "no export without verification"
    );
    assert_eq!(kinds(&w.feed(&alice.session).await), ["identity-challenge"]);

    // The agent's view never shows the account behind a ticket.
    let view: Value = w
        .agent(AGENT_TOKEN, Method::GET, "/v1/agent/tickets", None)
        .await
        .json(StatusCode::OK);
    let first = view
        .as_array()
        .and_then(|v| v.first())
        .cloned()
        .expect("tickets listed");
    let mut keys: Vec<_> = first
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "claimed_email",
            "export_id",
            "message",
            "state",
            "ticket_id"
        ]
    );

    // Alice verifies; until her export is ready there is nothing to send.
    let code = code_in(&w.feed(&alice.session).await, t1.ticket_id);
    let verified: TicketStatus = w.verify(t1.ticket_id, &code).await.json(StatusCode::OK);
    let e1 = verified.export_id.expect("verified");
    w.agent(AGENT_TOKEN, Method::POST, &resend(t1.ticket_id), None)
        .await
        .error(StatusCode::CONFLICT);
    w.publish_next(&worker).await;
    let path = w
        .status(&alice.session, e1)
        .await
        .download_path
        .expect("ready");

    // Resend: to Alice's own feed, and nobody else's.
    let sent: Value = w
        .agent(AGENT_TOKEN, Method::POST, &resend(t1.ticket_id), None)
        .await
        .json(StatusCode::OK);
    assert_eq!(sent, json!({ "sent_to": "the ticket's verified subject" }));
    w.agent(AGENT_B_TOKEN, Method::POST, &resend(t1.ticket_id), None)
        .await
        .json::<Value>(StatusCode::OK);
    let feed = w.feed(&alice.session).await;
    assert_eq!(
        kinds(&feed),
        [
            "identity-challenge",
            "export-ready",
            "download-link",
            "download-link"
        ]
    );
    assert!(
        feed[2].text.contains(&path) && feed[3].text.contains(&path),
        "{feed:?}"
    );
    assert!(w.feed(&bob.session).await.is_empty());
    assert!(w.feed(&carol.session).await.is_empty());

    // A resend the store cannot deliver fails (503), and is audited too.
    w.service_store_down.store(true, Ordering::SeqCst);
    w.agent(AGENT_TOKEN, Method::POST, &resend(t1.ticket_id), None)
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    w.service_store_down.store(false, Ordering::SeqCst);
    assert_eq!(w.feed(&alice.session).await.len(), 4);

    // Extending a deadline: once, with a reason, by MAX_EXTENSION_MS.
    w.clock.advance(1_000);
    let eb: ExportStatus = w
        .request_export(&bob.session)
        .await
        .json(StatusCode::ACCEPTED);
    let extend = format!("/v1/agent/exports/{}/extend", eb.export_id.0);
    w.agent(
        AGENT_TOKEN,
        Method::POST,
        &extend,
        Some(&json!({ "reason": "   " })),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    let reason = "many devices; the subject asked for everything";
    let extended: ExportStatus = w
        .agent(
            AGENT_TOKEN,
            Method::POST,
            &extend,
            Some(&json!({ "reason": reason })),
        )
        .await
        .json(StatusCode::OK);
    assert_eq!(extended.due_at_ms, eb.due_at_ms + MAX_EXTENSION_MS);
    assert_eq!(extended.extension_reason.as_deref(), Some(reason));
    let e = w
        .agent(
            AGENT_TOKEN,
            Method::POST,
            &extend,
            Some(&json!({ "reason": "again" })),
        )
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(e.error, "conflict");
    let seen = w.status(&bob.session, eb.export_id).await;
    assert_eq!(
        seen.due_at_ms,
        eb.due_at_ms + MAX_EXTENSION_MS,
        "the second extension changed nothing"
    );
    assert_eq!(seen.extension_reason.as_deref(), Some(reason));
    w.agent(
        AGENT_TOKEN,
        Method::POST,
        "/v1/agent/exports/9999/extend",
        Some(&json!({ "reason": "x" })),
    )
    .await
    .error(StatusCode::NOT_FOUND);

    // Overdue: Carol's pending request past its due date; not Bob's
    // (extended), not Alice's (ready).
    let ec: ExportStatus = w
        .request_export(&carol.session)
        .await
        .json(StatusCode::ACCEPTED);
    let overdue: Vec<ExportStatus> = w
        .agent(AGENT_TOKEN, Method::GET, "/v1/agent/overdue", None)
        .await
        .json(StatusCode::OK);
    assert!(overdue.is_empty());
    w.clock.set(ec.due_at_ms);
    assert!(
        !w.status(&carol.session, ec.export_id).await.overdue,
        "due, not yet overdue"
    );
    w.clock.advance(1);
    let overdue: Vec<ExportStatus> = w
        .agent(AGENT_B_TOKEN, Method::GET, "/v1/agent/overdue", None)
        .await
        .json(StatusCode::OK);
    assert_eq!(
        overdue.iter().map(|s| s.export_id).collect::<Vec<_>>(),
        [ec.export_id]
    );
    assert!(overdue[0].overdue);
    assert_eq!(overdue[0].state, ExportState::Pending);
    assert!(w.status(&carol.session, ec.export_id).await.overdue);
    assert!(!w.status(&bob.session, eb.export_id).await.overdue);
    assert!(!w.status(&alice.session, e1).await.overdue);

    // The audit log: every agent action, in order, with its outcome.
    let log = w.audit(0).await;
    // (agent, action, ticket, export, how the outcome begins)
    type Entry<'a> = (&'a str, &'a str, Option<u64>, Option<ExportId>, &'a str);
    let expected: Vec<Entry> = vec![
        (
            AGENT_A,
            "resend-link",
            Some(t1.ticket_id),
            None,
            "refused: ticket not verified",
        ),
        (
            AGENT_A,
            "manual-verification",
            Some(t1.ticket_id),
            None,
            "refused: 2 facts offered",
        ),
        (
            AGENT_A,
            "resend-link",
            Some(ghost.ticket_id),
            None,
            "refused: ticket not verified",
        ),
        (
            AGENT_A,
            "manual-verification",
            Some(ghost.ticket_id),
            None,
            "refused: 0 facts offered",
        ),
        (
            AGENT_A,
            "resend-link",
            Some(9_999),
            None,
            "refused: no such ticket",
        ),
        (
            AGENT_A,
            "resend-link",
            Some(t1.ticket_id),
            Some(e1),
            "refused: export not ready",
        ),
        (
            AGENT_A,
            "resend-link",
            Some(t1.ticket_id),
            Some(e1),
            "sent to the subject's own feed",
        ),
        (
            AGENT_B,
            "resend-link",
            Some(t1.ticket_id),
            Some(e1),
            "sent to the subject's own feed",
        ),
        (
            AGENT_A,
            "resend-link",
            Some(t1.ticket_id),
            Some(e1),
            "failed",
        ),
        (
            AGENT_A,
            "extend-deadline",
            None,
            Some(eb.export_id),
            "refused: an extension needs a reason",
        ),
        (
            AGENT_A,
            "extend-deadline",
            None,
            Some(eb.export_id),
            "extended",
        ),
        (
            AGENT_A,
            "extend-deadline",
            None,
            Some(eb.export_id),
            "refused: this request was already extended once",
        ),
        (
            AGENT_A,
            "extend-deadline",
            None,
            Some(ExportId(9_999)),
            "refused: no such export",
        ),
    ];
    let got: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.agent.as_str(),
                e.action.as_str(),
                e.ticket_id,
                e.export_id,
            )
        })
        .collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(a, b, c, d, _)| (*a, *b, *c, *d))
        .collect();
    assert_eq!(got, want, "{log:#?}");
    for (entry, (.., outcome)) in log.iter().zip(&expected) {
        assert!(
            entry.outcome.starts_with(outcome),
            "{entry:?} should start with {outcome:?}"
        );
    }
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=expected.len() as u64).collect::<Vec<_>>()
    );
    assert!(log.windows(2).all(|p| p[0].at_ms <= p[1].at_ms));
    assert!(log.iter().all(|e| e.at_ms <= w.now()));
    // `after` pages through it; reading the log is not itself an action.
    let tail = w.audit(10).await;
    assert_eq!(tail, log[10..].to_vec());
    assert_eq!(w.audit(0).await, log);
}

/// The resend takes an optional body (`ResendLinkRequest`): nothing, `{}` or
/// a null archive resend the ticket's own export as before; naming an archive
/// (the "attach archive" field of real consoles) is refused with a 400 and
/// audited, whoever's archive it is; unknown fields and bodies that are not
/// JSON are refused.
#[tokio::test(start_paused = true)]
async fn the_agent_console_takes_no_archive() {
    let w = World::new(22);
    let alice = w.signup("alice@example.com").await;
    let bob = w.signup("bob@example.com").await;
    let worker = w.worker("w1");
    let bob_export: ExportStatus = w
        .request_export(&bob.session)
        .await
        .json(StatusCode::ACCEPTED);
    w.publish_next(&worker).await;
    let ticket: TicketStatus = w
        .open_ticket("alice@example.com")
        .await
        .json(StatusCode::ACCEPTED);
    let code = code_in(&w.feed(&alice.session).await, ticket.ticket_id);
    let verified: TicketStatus = w.verify(ticket.ticket_id, &code).await.json(StatusCode::OK);
    let own = verified.export_id.expect("verified");
    w.publish_next(&worker).await;
    let resend = format!("/v1/agent/tickets/{}/resend-link", ticket.ticket_id);

    for body in [None, Some(json!({})), Some(json!({ "export_id": null }))] {
        w.agent(AGENT_TOKEN, Method::POST, &resend, body.as_ref())
            .await
            .json::<Value>(StatusCode::OK);
    }
    for archive in [bob_export.export_id, own] {
        let e = w
            .agent(
                AGENT_TOKEN,
                Method::POST,
                &resend,
                Some(&json!({ "export_id": archive.0 })),
            )
            .await
            .error(StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "the console takes no archive");
    }
    w.agent(
        AGENT_TOKEN,
        Method::POST,
        &resend,
        Some(&json!({ "recipient": "bob@example.com" })),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    let not_json = Request::builder()
        .method(Method::POST)
        .uri(&resend)
        .header(header::AUTHORIZATION, format!("Bearer {AGENT_TOKEN}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("export 1"))
        .expect("request builds");
    call(&w.export, not_json)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let links = |feed: &[Notification]| feed.iter().filter(|n| n.kind == "download-link").count();
    assert_eq!(links(&w.feed(&alice.session).await), 3);
    assert_eq!(links(&w.feed(&bob.session).await), 0);
    let outcomes: Vec<(Option<ExportId>, String)> = w
        .audit(0)
        .await
        .into_iter()
        .map(|e| (e.export_id, e.outcome))
        .collect();
    let sent = "sent to the subject's own feed".to_string();
    let refused = "refused: the console takes no archive".to_string();
    assert_eq!(
        outcomes,
        [
            (Some(own), sent.clone()),
            (Some(own), sent.clone()),
            (Some(own), sent),
            (Some(bob_export.export_id), refused.clone()),
            (Some(own), refused),
        ]
    );
}

/// A job whose workers keep dying without ever reporting (a poison job) is
/// failed with a reason after `max_attempts` claims, instead of being handed
/// out forever.
#[tokio::test(start_paused = true)]
async fn a_job_whose_workers_keep_dying_fails_after_max_attempts() {
    let w = World::new(21);
    let a = w.signup("alice@example.com").await;
    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    let worker = w.worker("crashy");
    for attempt in 1..=MAX_ATTEMPTS {
        let job = worker
            .claim()
            .await
            .expect("the job is claimable again once the lease lapsed");
        assert_eq!(
            (job.export_id, job.fence),
            (requested.export_id, u64::from(attempt))
        );
        // The worker dies: no renew, no fail, no complete. Its lease lapses.
        w.clock.advance(LEASE_MS + 1);
    }
    assert!(
        worker.claim().await.is_none(),
        "a poison job is not handed out again"
    );
    let status = w.status(&a.session, requested.export_id).await;
    assert_eq!(status.state, ExportState::Failed);
    let reason = status.failure.expect("a failed job says why");
    assert!(reason.contains("attempts"), "{reason}");
}

/// Fails the `nth` store call the export service makes after it is armed.
struct FailNthStoreCall {
    armed: AtomicBool,
    calls: AtomicU64,
    nth: u64,
}

impl FaultPoints for FailNthStoreCall {
    fn fire(&self, point: &'static str) -> bool {
        point == "export.store_call.fails"
            && self.armed.load(Ordering::SeqCst)
            && self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
    }
}

#[tokio::test(start_paused = true)]
async fn a_download_whose_erasure_check_cannot_reach_the_store_fails_closed() {
    // The download authenticates its caller (store call 1), then asks the
    // store which of the archive's recordings still exist (call 2): that
    // call fails, as it would if the store were unreachable.
    let faults = Arc::new(FailNthStoreCall {
        armed: AtomicBool::new(false),
        calls: AtomicU64::new(0),
        nth: 2,
    });
    let w = World::build_with_faults(21, SERVICE_TOKEN, 4, faults.clone());
    let a = w.signup("alice@example.com").await;
    let d = w.device(&a.session).await;
    w.ingest(&d, "a0", "alice 0", audio("a", 0)).await;
    let gone = w.ingest(&d, "a1", "alice 1", audio("a", 1)).await;
    let requested: ExportStatus = w
        .request_export(&a.session)
        .await
        .json(StatusCode::ACCEPTED);
    let worker = w.worker("w1");
    w.publish_next(&worker).await;
    let ready = w.status(&a.session, requested.export_id).await;
    let path = ready.download_path.expect("ready");
    w.delete_recording(&a.session, gone.id).await;

    faults.armed.store(true, Ordering::SeqCst);
    let r = w.download(&path, Some(&a.session)).await;
    faults.armed.store(false, Ordering::SeqCst);
    // Without the `fault-points` feature nothing fires, whatever is injected.
    if faults.calls.load(Ordering::SeqCst) >= 2 {
        assert_eq!(
            r.error(StatusCode::SERVICE_UNAVAILABLE).error,
            "unavailable",
            "the erasure check could not ask the store: refuse, never serve"
        );
    } else {
        assert_eq!(r.error(StatusCode::GONE).error, "gone");
    }
    // Once the store answers, the archive holding the deleted recording is
    // revoked, never served.
    let again = w.download(&path, Some(&a.session)).await;
    assert_eq!(again.error(StatusCode::GONE).error, "gone");
}
