//! The export service end to end, in process: a real store router served
//! over `tokio::io::duplex` connections to the export service's
//! `HttpClient`, the export router driven with `oneshot`, the worker on the
//! same (paused-time, current-thread) runtime. Time is a `ManualClock`,
//! randomness a `SeededEntropy`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crosstalk_export::link::{LinkClaims, mint};
use crosstalk_export::{ExportConfig, ExportService, archive, router};
use crosstalk_model::api::{
    ErrorBody, ExportState, ExportStatus, IngestResponse, RegisterDeviceResponse, SignupResponse,
};
use crosstalk_model::{AccountId, Clock, ExportId, ManualClock, RecordingId, SeededEntropy, sha256_hex};
use crosstalk_service::{BoxIo, Connect, ConnectFuture, HttpClient};
use crosstalk_store::{Store, StoreConfig};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tower::ServiceExt;

const SERVICE_TOKEN: &str = "store-service-token";
const LINK_TTL_MS: u64 = 60 * 60 * 1000;
const POLL_MS: u64 = 50;

/// Connects the export service's client to the store router in process:
/// every connection is a fresh duplex pipe with an HTTP/1 server task on the
/// other end.
struct InProcessStore {
    router: Router,
    /// While set, every new connection is refused (the store is "down").
    down: Arc<AtomicBool>,
}

impl Connect for InProcessStore {
    fn connect(&self) -> ConnectFuture {
        let router = self.router.clone();
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "store is down"));
            }
            let (client, server) = tokio::io::duplex(64 * 1024);
            crosstalk_service::Spawner::Tokio.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .auto_date_header(false)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(server), TowerToHyperService::new(router))
                    .await;
            });
            Ok(Box::new(client) as BoxIo)
        })
    }
}

struct World {
    clock: Arc<ManualClock>,
    store: Router,
    export: Router,
    service: Arc<ExportService>,
    store_down: Arc<AtomicBool>,
}

impl World {
    fn new(seed: u64, store_token_in_export: &str) -> Self {
        Self::with_pool(seed, store_token_in_export, 4)
    }

    fn with_pool(seed: u64, store_token_in_export: &str, max_idle: usize) -> Self {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = Store::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(seed)),
            StoreConfig { service_token: SERVICE_TOKEN.to_string(), password_iterations: 1 },
        )
        .expect("store opens");
        let store = crosstalk_store::router(Arc::new(store));
        let store_down = Arc::new(AtomicBool::new(false));
        let connector = InProcessStore { router: store.clone(), down: store_down.clone() };
        let client = HttpClient::new(Arc::new(connector), Duration::from_secs(10), max_idle);
        let config = ExportConfig {
            store_service_token: store_token_in_export.to_string(),
            link_ttl_ms: LINK_TTL_MS,
            worker_poll_ms: POLL_MS,
            max_attempts: 3,
            max_backoff_ms: 10 * POLL_MS,
            page_items: 2,
        };
        let service = ExportService::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(seed ^ 0x5eed)),
            client,
            config,
        )
        .expect("export service opens");
        let service = Arc::new(service);
        Self { clock, store, export: router(service.clone()), service, store_down }
    }

    #[allow(clippy::disallowed_methods)] // Tests run on a real tokio runtime; the handle stops the worker.
    fn start_worker(&self) -> JoinHandle<()> {
        tokio::spawn(self.service.clone().run_worker())
    }

    async fn store_call(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        call(&self.store, request).await
    }

    async fn export_call(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        call(&self.export, request).await
    }

    async fn signup(&self, email: &str) -> SignupResponse {
        let (status, body) =
            self.store_call(post_json("/v1/accounts", None, &json!({ "email": email, "password": "correct horse battery" }))).await;
        assert_eq!(status, StatusCode::CREATED);
        serde_json::from_slice(&body).expect("signup body")
    }

    async fn device(&self, session: &str) -> RegisterDeviceResponse {
        let (status, body) =
            self.store_call(post_json("/v1/devices", Some(session), &json!({ "name": "speaker" }))).await;
        assert_eq!(status, StatusCode::CREATED);
        serde_json::from_slice(&body).expect("device body")
    }

    /// Upload one capture; returns what an export must contain for it.
    async fn ingest(&self, device_token: &str, key: &str, transcript: &str, audio: Vec<u8>) -> Ingested {
        let request = post_json(
            "/v1/recordings",
            Some(device_token),
            &json!({
                "upload_key": key,
                "captured_at_ms": self.clock.now_ms() - 500,
                "transcript": transcript,
                "audio_base64": STANDARD.encode(&audio),
            }),
        );
        let (status, body) = self.store_call(request).await;
        assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
        let response: IngestResponse = serde_json::from_slice(&body).expect("ingest body");
        Ingested {
            id: response.recording_id,
            sha256: sha256_hex(&audio),
            transcript: transcript.to_string(),
            audio,
        }
    }

    async fn request_export(&self, session: &str) -> ExportStatus {
        let (status, body) = self.export_call(post("/v1/exports".to_string(), Some(session))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("export status body")
    }

    async fn status(&self, session: &str, id: ExportId) -> (StatusCode, Bytes) {
        self.export_call(get(&format!("/v1/exports/{}", id.0), Some(session))).await
    }

    /// Poll until the export leaves `pending` (time is paused, so the
    /// sleeps only let the worker run).
    async fn wait_ready(&self, session: &str, id: ExportId) -> ExportStatus {
        for _ in 0..200 {
            let (status, body) = self.status(session, id).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            let status: ExportStatus = serde_json::from_slice(&body).expect("status body");
            if status.state != ExportState::Pending {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        panic!("export {id} never left pending");
    }
}

struct Ingested {
    id: RecordingId,
    sha256: String,
    transcript: String,
    audio: Vec<u8>,
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = router.clone().oneshot(request).await.expect("router is infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body reads").to_bytes();
    (status, bytes)
}

fn with_auth(builder: axum::http::request::Builder, token: Option<&str>) -> axum::http::request::Builder {
    match token {
        Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

fn post_json(uri: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    with_auth(Request::post(uri), token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("request builds")
}

fn post(uri: String, token: Option<&str>) -> Request<Body> {
    with_auth(Request::post(uri), token).body(Body::empty()).expect("request builds")
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    with_auth(Request::get(uri), token).body(Body::empty()).expect("request builds")
}

/// Assert `expected` and a JSON `{"error": ..., "message": ...}` body.
fn expect_error(actual: (StatusCode, Bytes), expected: StatusCode) -> ErrorBody {
    let (status, body) = actual;
    assert_eq!(status, expected, "body: {}", String::from_utf8_lossy(&body));
    let value: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    assert!(value.get("error").is_some_and(Value::is_string), "{value}");
    assert!(value.get("message").is_some_and(Value::is_string), "{value}");
    serde_json::from_value(value).expect("error body parses")
}

fn audio(tag: &str, n: u32) -> Vec<u8> {
    let mut bytes = format!("RIFF/{tag}/{n}/").into_bytes();
    bytes.extend((0..200u32).map(|i| (i.wrapping_mul(7).wrapping_add(n * 13) % 256) as u8));
    bytes
}

#[tokio::test(start_paused = true)]
async fn requesting_an_export_needs_a_valid_session() {
    let w = World::new(1, SERVICE_TOKEN);
    let a = w.signup("alice@example.com").await;
    let d = w.device(&a.session_token).await;

    let e = expect_error(w.export_call(post("/v1/exports".into(), None)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(e.error, "unauthorized");
    expect_error(
        w.export_call(post("/v1/exports".into(), Some(&"0".repeat(64)))).await,
        StatusCode::UNAUTHORIZED,
    );
    expect_error(w.export_call(post("/v1/exports".into(), Some("garbage"))).await, StatusCode::UNAUTHORIZED);
    // A device token, and the store's own service token, are not sessions.
    expect_error(
        w.export_call(post("/v1/exports".into(), Some(&d.device_token))).await,
        StatusCode::UNAUTHORIZED,
    );
    expect_error(
        w.export_call(post("/v1/exports".into(), Some(SERVICE_TOKEN))).await,
        StatusCode::UNAUTHORIZED,
    );

    // Status needs a session too, and stays JSON on bad paths.
    expect_error(w.export_call(get("/v1/exports/1", None)).await, StatusCode::UNAUTHORIZED);
    expect_error(w.export_call(get("/v1/exports/1", Some("garbage"))).await, StatusCode::UNAUTHORIZED);
    expect_error(w.export_call(get("/v1/exports/x", Some(&a.session_token))).await, StatusCode::BAD_REQUEST);
    expect_error(w.export_call(get("/v1/nothing", None)).await, StatusCode::NOT_FOUND);

    // A valid session gets a pending export, visible only to its subject.
    let status = w.request_export(&a.session_token).await;
    assert_eq!(status.state, ExportState::Pending);
    assert!(status.download_path.is_none());
    let (code, body) = w.status(&a.session_token, status.export_id).await;
    assert_eq!(code, StatusCode::OK);
    let seen: ExportStatus = serde_json::from_slice(&body).expect("status");
    assert_eq!(seen.export_id, status.export_id);
    expect_error(w.status(&a.session_token, ExportId(status.export_id.0 + 1)).await, StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn a_misconfigured_service_token_is_unavailable_not_unauthorized() {
    let w = World::new(2, "not-the-store-token");
    let a = w.signup("alice@example.com").await;
    let e = expect_error(
        w.export_call(post("/v1/exports".into(), Some(&a.session_token))).await,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(e.error, "unavailable");
}

#[tokio::test(start_paused = true)]
async fn exports_hold_exactly_the_subjects_recordings_behind_bound_links() {
    let w = World::new(3, SERVICE_TOKEN);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let da1 = w.device(&a.session_token).await;
    let da2 = w.device(&a.session_token).await;
    let db = w.device(&b.session_token).await;

    // A's recordings span several store pages (page_items = 2), interleaved
    // with B's.
    let mut a_recs = Vec::new();
    let mut b_recs = Vec::new();
    for n in 0..5u32 {
        w.clock.advance(1_000);
        let device = if n % 2 == 0 { &da1 } else { &da2 };
        a_recs.push(
            w.ingest(
                &device.device_token,
                &format!("a{n}"),
                &format!("alice #{n} — ça va? 🎙"),
                audio("a", n),
            )
            .await,
        );
        b_recs.push(w.ingest(&db.device_token, &format!("b{n}"), &format!("bob #{n}"), audio("b", n)).await);
    }

    let worker = w.start_worker();
    let requested_a = w.request_export(&a.session_token).await;
    let requested_b = w.request_export(&b.session_token).await;
    assert_ne!(requested_a.export_id, requested_b.export_id);

    let ready_a = w.wait_ready(&a.session_token, requested_a.export_id).await;
    assert_eq!(ready_a.state, ExportState::Ready, "failure: {:?}", ready_a.failure);
    let path_a = ready_a.download_path.clone().expect("a ready export has a download path");
    assert!(path_a.starts_with("/v1/downloads/"), "{path_a}");
    let expires_at = ready_a.expires_at_ms.expect("a ready export expires");
    assert_eq!(expires_at, w.clock.now_ms() + LINK_TTL_MS);
    let ready_b = w.wait_ready(&b.session_token, requested_b.export_id).await;
    assert_eq!(ready_b.state, ExportState::Ready);
    let path_b = ready_b.download_path.clone().expect("b's download path");
    assert_ne!(path_a, path_b);

    // A's export does not exist for B, exactly like a missing one.
    let other = w.status(&b.session_token, requested_a.export_id).await;
    let missing = w.status(&b.session_token, ExportId(9_999)).await;
    assert_eq!(other, missing);
    expect_error(other, StatusCode::NOT_FOUND);

    // A downloads a zip with exactly A's recordings.
    let (status, bytes) = w.export_call(get(&path_a, Some(&a.session_token))).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let (manifest, files) = archive::read_archive(&bytes).expect("a valid archive");
    assert_eq!(manifest.subject, a.account_id);
    assert_eq!(manifest.export_id, requested_a.export_id);
    assert_eq!(Some(manifest.snapshot_at_ms), ready_a.snapshot_at_ms);
    let got: Vec<_> =
        manifest.recordings.iter().map(|e| (e.id, e.sha256.clone(), e.transcript.clone())).collect();
    let want: Vec<_> = a_recs.iter().map(|r| (r.id, r.sha256.clone(), r.transcript.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(files.len(), a_recs.len());
    for rec in &a_recs {
        assert_eq!(files.get(&format!("audio/{}.wav", rec.id.0)), Some(&rec.audio));
    }
    for rec in &b_recs {
        assert!(manifest.recordings.iter().all(|e| e.id != rec.id && e.sha256 != rec.sha256));
    }
    // ... and B's archive holds exactly B's.
    let (status, bytes_b) = w.export_call(get(&path_b, Some(&b.session_token))).await;
    assert_eq!(status, StatusCode::OK);
    let (manifest_b, _) = archive::read_archive(&bytes_b).expect("b's archive");
    assert_eq!(manifest_b.subject, b.account_id);
    let ids_b: Vec<_> = manifest_b.recordings.iter().map(|e| e.id).collect();
    assert_eq!(ids_b, b_recs.iter().map(|r| r.id).collect::<Vec<_>>());

    // A link is not a credential: B holding A's link gets 403, no session 401.
    let e = expect_error(w.export_call(get(&path_a, Some(&b.session_token))).await, StatusCode::FORBIDDEN);
    assert_eq!(e.error, "forbidden");
    expect_error(w.export_call(get(&path_b, Some(&a.session_token))).await, StatusCode::FORBIDDEN);
    expect_error(w.export_call(get(&path_a, None)).await, StatusCode::UNAUTHORIZED);
    expect_error(w.export_call(get(&path_a, Some("garbage"))).await, StatusCode::UNAUTHORIZED);

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
                subject: a.account_id,
                expires_at_ms: u64::MAX,
                nonce: [0; 16],
            },
        ),
    ];
    // Every claim altered under the original tag: export id (to B's),
    // subject (to B), expiry (later), nonce.
    for (offset, value) in [(0usize, requested_b.export_id.0), (8, b.account_id.0), (16, u64::MAX)] {
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
        let e = expect_error(
            w.export_call(get(&format!("/v1/downloads/{bad}"), Some(&a.session_token))).await,
            StatusCode::NOT_FOUND,
        );
        assert_eq!(e.error, "not_found", "token {bad}");
    }

    // A recording that arrives after the snapshot is not added to the
    // archive; the link works until just before its expiry, and is gone
    // from then on.
    w.ingest(&da1.device_token, "late", "after the snapshot", audio("a", 99)).await;
    w.clock.set(expires_at - 1);
    let (status, again) = w.export_call(get(&path_a, Some(&a.session_token))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, bytes, "the stored archive is served unchanged");
    w.clock.set(expires_at);
    let e = expect_error(w.export_call(get(&path_a, Some(&a.session_token))).await, StatusCode::GONE);
    assert_eq!(e.error, "gone");
    w.clock.advance(LINK_TTL_MS);
    expect_error(w.export_call(get(&path_a, Some(&a.session_token))).await, StatusCode::GONE);
    // Expired or not, B still gets nothing but 403.
    expect_error(w.export_call(get(&path_a, Some(&b.session_token))).await, StatusCode::FORBIDDEN);

    worker.abort();
}

#[tokio::test(start_paused = true)]
async fn an_export_of_an_account_without_recordings_is_an_empty_archive() {
    let w = World::new(4, SERVICE_TOKEN);
    let a = w.signup("alice@example.com").await;
    let b = w.signup("bob@example.com").await;
    let db = w.device(&b.session_token).await;
    w.ingest(&db.device_token, "b0", "bob", audio("b", 0)).await;

    let worker = w.start_worker();
    let requested = w.request_export(&a.session_token).await;
    let ready = w.wait_ready(&a.session_token, requested.export_id).await;
    assert_eq!(ready.state, ExportState::Ready);
    let path = ready.download_path.expect("download path");
    let (status, bytes) = w.export_call(get(&path, Some(&a.session_token))).await;
    assert_eq!(status, StatusCode::OK);
    let (manifest, files) = archive::read_archive(&bytes).expect("archive");
    assert_eq!(manifest.subject, AccountId(a.account_id.0));
    assert!(manifest.recordings.is_empty());
    assert!(files.is_empty());
    worker.abort();
}

#[tokio::test(start_paused = true)]
async fn an_export_whose_store_stays_down_fails_without_a_link() {
    // No pooled connections, so "down" applies to every request.
    let w = World::with_pool(5, SERVICE_TOKEN, 0);
    let a = w.signup("alice@example.com").await;
    let d = w.device(&a.session_token).await;
    w.ingest(&d.device_token, "a0", "alice", audio("a", 0)).await;
    let requested = w.request_export(&a.session_token).await;

    // While the store is down, nobody can be authenticated: 503, not 401.
    w.store_down.store(true, Ordering::SeqCst);
    let e =
        expect_error(w.status(&a.session_token, requested.export_id).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.error, "unavailable");

    // The worker tries max_attempts (3) times with back-off, then gives up.
    let worker = w.start_worker();
    tokio::time::sleep(Duration::from_millis(POLL_MS * 20)).await;
    w.store_down.store(false, Ordering::SeqCst);
    let status = w.wait_ready(&a.session_token, requested.export_id).await;
    assert_eq!(status.state, ExportState::Failed);
    assert!(status.download_path.is_none());
    assert!(status.expires_at_ms.is_none());
    assert!(status.failure.as_deref().is_some_and(|f| f.contains("store is down")), "{:?}", status.failure);
    worker.abort();

    // A new request after the store is back succeeds.
    let worker = w.start_worker();
    let retry = w.request_export(&a.session_token).await;
    let ready = w.wait_ready(&a.session_token, retry.export_id).await;
    assert_eq!(ready.state, ExportState::Ready);
    worker.abort();
}
