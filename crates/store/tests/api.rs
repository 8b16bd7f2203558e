//! Integration tests of the store's HTTP API, driven in process through the
//! router with `tower::ServiceExt::oneshot`. Time is a `ManualClock`,
//! randomness a `SeededEntropy`; nothing here reads the OS clock or OS
//! randomness.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crosstalk_model::api::{
    ErrorBody, IngestResponse, IntrospectResponse, RecordingPage, RegisterDeviceResponse,
    SignupResponse,
};
use crosstalk_model::{
    AccountId, MAX_AUDIO_BYTES, ManualClock, RecordingId, SeededEntropy, sha256_hex,
};
use crosstalk_service::test_support::{Reply, call};
use crosstalk_store::{MAX_REQUEST_BYTES, Store, StoreConfig, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const SERVICE_TOKEN: &str = "test-service-token";

struct Harness {
    router: Router,
    clock: Arc<ManualClock>,
}

impl Harness {
    fn new(seed: u64) -> Self {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let store = Store::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(seed)),
            StoreConfig {
                service_token: SERVICE_TOKEN.to_string(),
                password_iterations: 1,
                limits: Default::default(),
                hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
            },
        )
        .expect("store opens");
        Self {
            router: router(Arc::new(store)),
            clock,
        }
    }

    /// Send through the router; the whole reply (with no `Date` header).
    async fn reply(&self, request: Request<Body>) -> Reply {
        call(&self.router, request).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let reply = self.reply(request).await;
        (reply.status, reply.body)
    }

    /// Send and expect `expected`; parse a success body as `T`.
    async fn ok<T: serde::de::DeserializeOwned>(
        &self,
        request: Request<Body>,
        expected: StatusCode,
    ) -> T {
        self.reply(request).await.json(expected)
    }

    /// Send and expect the error `expected` with a JSON `ErrorBody`.
    async fn err(&self, request: Request<Body>, expected: StatusCode) -> ErrorBody {
        self.reply(request).await.error(expected)
    }

    async fn signup(&self, email: &str) -> SignupResponse {
        self.ok(
            post_json(
                "/v1/accounts",
                None,
                &json!({ "email": email, "password": "correct horse battery" }),
            ),
            StatusCode::CREATED,
        )
        .await
    }

    async fn device(&self, session: &str, name: &str) -> RegisterDeviceResponse {
        self.ok(
            post_json("/v1/devices", Some(session), &json!({ "name": name })),
            StatusCode::CREATED,
        )
        .await
    }

    async fn ingest(
        &self,
        device_token: &str,
        key: &str,
        transcript: &str,
        audio: &[u8],
    ) -> IngestResponse {
        let (status, body) = self
            .send(ingest_request(device_token, key, transcript, audio))
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "ingest answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let response: IngestResponse = serde_json::from_slice(&body).expect("ingest body");
        assert_eq!(
            status == StatusCode::OK,
            response.duplicate,
            "200 iff duplicate"
        );
        response
    }

    async fn list(&self, session: &str, query: &str) -> RecordingPage {
        self.ok(
            get(&format!("/v1/recordings{query}"), Some(session)),
            StatusCode::OK,
        )
        .await
    }
}

/// A body of every 4xx must be `{"error": ..., "message": ...}`.
fn expect_error_body(body: &[u8]) -> ErrorBody {
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    let object = value.as_object().expect("error body is a JSON object");
    assert!(
        object.get("error").is_some_and(Value::is_string),
        "no string `error`: {value}"
    );
    assert!(
        object.get("message").is_some_and(Value::is_string),
        "no string `message`: {value}"
    );
    let parsed: ErrorBody = serde_json::from_value(value).expect("error body parses as ErrorBody");
    assert!(!parsed.error.is_empty());
    parsed
}

fn with_auth(
    builder: axum::http::request::Builder,
    token: Option<&str>,
) -> axum::http::request::Builder {
    match token {
        Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

fn post_raw(
    uri: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<Body>,
) -> Request<Body> {
    with_auth(Request::post(uri), token)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("request builds")
}

fn post_json(uri: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    post_raw(
        uri,
        token,
        "application/json",
        serde_json::to_vec(body).expect("json"),
    )
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    with_auth(Request::get(uri), token)
        .body(Body::empty())
        .expect("request builds")
}

fn ingest_request(device_token: &str, key: &str, transcript: &str, audio: &[u8]) -> Request<Body> {
    post_json(
        "/v1/recordings",
        Some(device_token),
        &json!({
            "upload_key": key,
            "captured_at_ms": 1_700_000_000_000u64,
            "transcript": transcript,
            "audio_base64": STANDARD.encode(audio),
        }),
    )
}

/// Distinct, deterministic audio for the `n`th capture.
fn audio(n: u32) -> Vec<u8> {
    let mut bytes = b"RIFF-test-audio-".to_vec();
    bytes.extend_from_slice(&n.to_be_bytes());
    bytes.extend((0..64u32).map(|i| (i.wrapping_mul(31).wrapping_add(n) % 251) as u8));
    bytes
}

#[tokio::test]
async fn health_is_ok() {
    let h = Harness::new(1);
    let body: Value = h.ok(get("/health", None), StatusCode::OK).await;
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn signup_creates_accounts_and_refuses_bad_input() {
    let h = Harness::new(2);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    assert_ne!(a.account_id, b.account_id);
    assert_ne!(a.session_token, b.session_token);
    assert_eq!(a.session_token.len(), 64);

    // Duplicate email, also after case folding and trimming.
    for email in ["alice@example.com", "  ALICE@Example.COM "] {
        let e = h
            .err(
                post_json(
                    "/v1/accounts",
                    None,
                    &json!({ "email": email, "password": "correct horse battery" }),
                ),
                StatusCode::CONFLICT,
            )
            .await;
        assert_eq!(e.error, "conflict");
    }

    // Invalid emails.
    for email in [
        "",
        "no-at-sign",
        "@example.com",
        "a@nodot",
        "a b@example.com",
        "a@b@example.com",
    ] {
        let e = h
            .err(
                post_json(
                    "/v1/accounts",
                    None,
                    &json!({ "email": email, "password": "correct horse battery" }),
                ),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request", "email {email:?}");
    }
    let long = format!("{}@example.com", "x".repeat(260));
    h.err(
        post_json(
            "/v1/accounts",
            None,
            &json!({ "email": long, "password": "correct horse battery" }),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Malformed JSON, wrong types, missing fields.
    for body in [&b"{"[..], b"not json", b"", b"[]", b"{\"email\": 5}", b"{}"] {
        let e = h
            .err(
                post_raw("/v1/accounts", None, "application/json", body.to_vec()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request");
    }

    // Wrong or missing content type.
    let body = serde_json::to_vec(
        &json!({ "email": "carol@example.com", "password": "correct horse battery" }),
    )
    .expect("json");
    let e = h
        .err(
            post_raw("/v1/accounts", None, "text/plain", body.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .await;
    assert_eq!(e.error, "unsupported_media_type");
    let no_type = Request::post("/v1/accounts")
        .body(Body::from(body))
        .expect("request");
    h.err(no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // Unknown fields.
    let e = h
        .err(
            post_json("/v1/accounts", None, &json!({ "email": "carol@example.com", "admin": true, "password": "correct horse battery" })),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");

    // None of the refused requests created carol.
    h.signup("carol@example.com").await;
}

#[tokio::test]
async fn register_device_needs_a_valid_session() {
    let h = Harness::new(3);
    let a = h.signup("alice@example.com").await;

    let body = json!({ "name": "kitchen" });
    let e = h
        .err(
            post_json("/v1/devices", None, &body),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(e.error, "unauthorized");
    h.err(
        post_json("/v1/devices", Some("0".repeat(64).as_str()), &body),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        post_json("/v1/devices", Some("garbage"), &body),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Not a bearer scheme.
    let basic = Request::post("/v1/devices")
        .header(header::AUTHORIZATION, format!("Basic {}", a.session_token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("request");
    h.err(basic, StatusCode::UNAUTHORIZED).await;

    // A device token is not a session.
    let d = h.device(&a.session_token, "kitchen").await;
    h.err(
        post_json("/v1/devices", Some(&d.device_token), &body),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Name limits.
    h.err(
        post_json(
            "/v1/devices",
            Some(&a.session_token),
            &json!({ "name": "" }),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    h.err(
        post_json(
            "/v1/devices",
            Some(&a.session_token),
            &json!({ "name": "n".repeat(129) }),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let d2 = h.device(&a.session_token, "bedroom").await;
    assert_ne!(d.device_id, d2.device_id);
    assert_ne!(d.device_token, d2.device_token);
}

#[tokio::test]
async fn ingest_refuses_bad_tokens_and_bad_uploads() {
    let h = Harness::new(4);
    let a = h.signup("alice@example.com").await;
    let d = h.device(&a.session_token, "kitchen").await;

    // Bad device tokens: none, unknown, a session token.
    let e = h
        .err(
            post_json(
                "/v1/recordings",
                None,
                &json!({"upload_key": "k", "captured_at_ms": 1, "transcript": "", "audio_base64": "AAAA"}),
            ),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(e.error, "unauthorized");
    h.err(
        ingest_request(&"f".repeat(64), "k", "hi", &audio(0)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        ingest_request(&a.session_token, "k", "hi", &audio(0)),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Bad base64.
    let bad_b64 = json!({"upload_key": "k", "captured_at_ms": 1, "transcript": "", "audio_base64": "!!!not base64!!!"});
    let e = h
        .err(
            post_json("/v1/recordings", Some(&d.device_token), &bad_b64),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");

    // Empty audio.
    h.err(
        ingest_request(&d.device_token, "k", "hi", &[]),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Empty and overlong upload keys.
    h.err(
        ingest_request(&d.device_token, "", "hi", &audio(0)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    h.err(
        ingest_request(&d.device_token, &"k".repeat(129), "hi", &audio(0)),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Unknown fields and a wrong content type.
    let extra = json!({"upload_key": "k", "captured_at_ms": 1, "transcript": "", "audio_base64": "AAAA", "owner": 2});
    h.err(
        post_json("/v1/recordings", Some(&d.device_token), &extra),
        StatusCode::BAD_REQUEST,
    )
    .await;
    h.err(
        post_raw("/v1/recordings", Some(&d.device_token), "text/plain", "{}"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;

    // Transcript over the limit.
    let long = "t".repeat(crosstalk_model::MAX_TRANSCRIPT_BYTES + 1);
    let e = h
        .err(
            ingest_request(&d.device_token, "k", &long, &audio(0)),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    assert_eq!(e.error, "payload_too_large");

    // Decoded audio one byte over MAX_AUDIO_BYTES (the body is under the
    // router's limit, so the audio check is what refuses it).
    let over = vec![7u8; MAX_AUDIO_BYTES + 1];
    let request = ingest_request(&d.device_token, "k", "hi", &over);
    let e = h.err(request, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(e.error, "payload_too_large");
    assert!(e.message.starts_with("audio exceeds"), "{}", e.message);
    assert!(STANDARD.encode(&over).len() < MAX_REQUEST_BYTES);

    // A body over the router's limit.
    let huge = format!(
        r#"{{"upload_key":"k","captured_at_ms":1,"transcript":"","audio_base64":"{}"}}"#,
        "A".repeat(MAX_REQUEST_BYTES + 16)
    );
    let e = h
        .err(
            post_raw(
                "/v1/recordings",
                Some(&d.device_token),
                "application/json",
                huge,
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    assert_eq!(e.error, "payload_too_large");
    assert_eq!(e.message, "request body exceeds the limit");

    // Exactly MAX_AUDIO_BYTES is accepted.
    let max = vec![9u8; MAX_AUDIO_BYTES];
    let r = h.ingest(&d.device_token, "max", "hi", &max).await;
    assert!(!r.duplicate);

    // None of the refused uploads was stored.
    let page = h.list(&a.session_token, "").await;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, r.recording_id);
    assert_eq!(page.items[0].audio_len, MAX_AUDIO_BYTES as u64);
}

#[tokio::test]
async fn ingest_is_idempotent_per_device_and_key() {
    let h = Harness::new(5);
    let a = h.signup("alice@example.com").await;
    let d = h.device(&a.session_token, "kitchen").await;
    let d2 = h.device(&a.session_token, "bedroom").await;

    let first = h
        .ingest(&d.device_token, "key-1", "turn on the lights", &audio(1))
        .await;
    assert!(!first.duplicate);

    // Same device, same key, same content: 200, the same id, duplicate.
    let (status, body) = h
        .send(ingest_request(
            &d.device_token,
            "key-1",
            "turn on the lights",
            &audio(1),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let again: IngestResponse = serde_json::from_slice(&body).expect("ingest body");
    assert!(again.duplicate);
    assert_eq!(again.recording_id, first.recording_id);

    // Same key, different audio or transcript: 409.
    let e = h
        .err(
            ingest_request(&d.device_token, "key-1", "turn on the lights", &audio(2)),
            StatusCode::CONFLICT,
        )
        .await;
    assert_eq!(e.error, "conflict");
    h.err(
        ingest_request(&d.device_token, "key-1", "turn off the lights", &audio(1)),
        StatusCode::CONFLICT,
    )
    .await;

    // The same key from another device is a different upload.
    let other = h
        .ingest(&d2.device_token, "key-1", "turn on the lights", &audio(1))
        .await;
    assert!(!other.duplicate);
    assert_ne!(other.recording_id, first.recording_id);

    let page = h.list(&a.session_token, "").await;
    let ids: Vec<RecordingId> = page.items.iter().map(|v| v.id).collect();
    assert_eq!(ids, vec![first.recording_id, other.recording_id]);
}

#[tokio::test]
async fn listing_shows_only_own_recordings_and_pages_with_bound_cursors() {
    let h = Harness::new(6);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    let da = h.device(&a.session_token, "alice-kitchen").await;
    let db = h.device(&b.session_token, "bob-kitchen").await;

    // Interleave uploads so that ids of A and B alternate.
    let mut expected_a = Vec::new();
    let mut expected_b = Vec::new();
    for n in 0..5u32 {
        h.clock.advance(1_000);
        let ra = h
            .ingest(
                &da.device_token,
                &format!("a-{n}"),
                &format!("alice {n} ünïcødé 🎤"),
                &audio(n),
            )
            .await;
        expected_a.push((ra.recording_id, sha256_hex(&audio(n)), h.clock_now()));
        let rb = h
            .ingest(
                &db.device_token,
                &format!("b-{n}"),
                &format!("bob {n}"),
                &audio(100 + n),
            )
            .await;
        expected_b.push((rb.recording_id, sha256_hex(&audio(100 + n))));
    }

    // One page with everything.
    let page = h.list(&a.session_token, "").await;
    assert_eq!(page.account_id, a.account_id);
    assert!(page.next_cursor.is_none());
    let got: Vec<_> = page
        .items
        .iter()
        .map(|v| (v.id, v.audio_sha256.clone(), v.received_at_ms))
        .collect();
    assert_eq!(got, expected_a);
    assert!(page.items.iter().all(|v| v.device == da.device_id));
    assert_eq!(page.items[2].transcript, "alice 2 ünïcødé 🎤");

    // Pages of two, following cursors.
    let mut seen = Vec::new();
    let mut cursors = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = h.list(&a.session_token, &query).await;
        assert_eq!(page.account_id, a.account_id);
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|v| v.id));
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(page.items.len(), 2);
                query = format!("?limit=2&cursor={cursor}");
                cursors.push(cursor);
            }
            None => break,
        }
    }
    assert_eq!(seen, expected_a.iter().map(|e| e.0).collect::<Vec<_>>());
    assert_eq!(cursors.len(), 2, "5 items in pages of 2 need 3 pages");

    // B's listing holds only B's recordings.
    let page = h.list(&b.session_token, "").await;
    assert_eq!(page.account_id, b.account_id);
    let got: Vec<_> = page
        .items
        .iter()
        .map(|v| (v.id, v.audio_sha256.clone()))
        .collect();
    assert_eq!(got, expected_b);

    // A's cursor is refused for B.
    for cursor in &cursors {
        let e = h
            .err(
                get(
                    &format!("/v1/recordings?limit=2&cursor={cursor}"),
                    Some(&b.session_token),
                ),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request");
    }
    // ... and for the service scope, even for A.
    let e = h
        .err(
            get(
                &format!(
                    "/v1/service/accounts/{}/recordings?limit=2&cursor={}",
                    a.account_id.0, cursors[0]
                ),
                Some(SERVICE_TOKEN),
            ),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");

    // Tampered cursors.
    let cursor = &cursors[0];
    let (after, tag) = cursor.split_once('.').expect("cursor shape");
    let after: u64 = after.parse().expect("cursor position");
    let flipped_tag: String = tag
        .char_indices()
        .map(|(i, c)| {
            if i == 0 {
                if c == '0' { '1' } else { '0' }
            } else {
                c
            }
        })
        .collect();
    let tampered = [
        format!("{}.{tag}", after + 1),
        format!("{}.{tag}", after.saturating_sub(1)),
        format!("0.{tag}"),
        format!("{after}.{flipped_tag}"),
        format!("{after}.{}", &tag[..tag.len() - 2]),
        format!("{after}.{}", &tag[..2]),
        format!("{after}."),
        format!("{after}"),
        format!("{after}.{tag}00"),
        "garbage".to_string(),
        format!("{}.{tag}", u64::MAX),
    ];
    for bad in tampered {
        let e = h
            .err(
                get(
                    &format!("/v1/recordings?limit=2&cursor={bad}"),
                    Some(&a.session_token),
                ),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request", "cursor {bad:?}");
    }

    // Bad query parameters.
    h.err(
        get("/v1/recordings?limit=abc", Some(&a.session_token)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    h.err(
        get("/v1/recordings?owner=2", Some(&b.session_token)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Listing needs a session.
    h.err(get("/v1/recordings", None), StatusCode::UNAUTHORIZED)
        .await;
    h.err(
        get("/v1/recordings", Some(&da.device_token)),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // A huge limit is clamped, a zero limit still returns one item.
    let page = h.list(&a.session_token, "?limit=0").await;
    assert_eq!(page.items.len(), 1);
    assert!(page.next_cursor.is_some());
    let page = h.list(&a.session_token, "?limit=100000").await;
    assert_eq!(page.items.len(), 5);
}

impl Harness {
    fn clock_now(&self) -> u64 {
        use crosstalk_model::Clock;
        self.clock.now_ms()
    }
}

#[tokio::test]
async fn audio_is_served_to_its_owner_only() {
    let h = Harness::new(7);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    let da = h.device(&a.session_token, "alice-kitchen").await;
    let db = h.device(&b.session_token, "bob-kitchen").await;
    let ra = h.ingest(&da.device_token, "a", "alice", &audio(1)).await;
    let rb = h.ingest(&db.device_token, "b", "bob", &audio(2)).await;

    // The owner gets the bytes.
    let response = h
        .router
        .clone()
        .oneshot(get(
            &format!("/v1/recordings/{}/audio", ra.recording_id.0),
            Some(&a.session_token),
        ))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("audio/wav")
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(bytes.as_ref(), audio(1).as_slice());

    // Someone else's recording is a 404, byte for byte like a missing one.
    let (status_other, body_other) = h
        .send(get(
            &format!("/v1/recordings/{}/audio", rb.recording_id.0),
            Some(&a.session_token),
        ))
        .await;
    let (status_missing, body_missing) = h
        .send(get("/v1/recordings/999999/audio", Some(&a.session_token)))
        .await;
    assert_eq!(status_other, StatusCode::NOT_FOUND);
    assert_eq!(status_missing, StatusCode::NOT_FOUND);
    assert_eq!(body_other, body_missing);
    expect_error_body(&body_other);

    // Without or with a bad session.
    h.err(
        get(&format!("/v1/recordings/{}/audio", ra.recording_id.0), None),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        get(
            &format!("/v1/recordings/{}/audio", ra.recording_id.0),
            Some(&da.device_token),
        ),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Non-numeric and out-of-range ids.
    for id in ["abc", "-1", "1.5", "18446744073709551616"] {
        let e = h
            .err(
                get(
                    &format!("/v1/recordings/{id}/audio"),
                    Some(&a.session_token),
                ),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request", "id {id}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let h = Harness::new(8);
    let e = h.err(get("/v1/nope", None), StatusCode::NOT_FOUND).await;
    assert_eq!(e.error, "not_found");
    h.err(get("/", None), StatusCode::NOT_FOUND).await;
    h.err(
        get("/v1/recordings/1/audio/extra", None),
        StatusCode::NOT_FOUND,
    )
    .await;
    let delete = Request::delete("/v1/accounts")
        .body(Body::empty())
        .expect("request");
    let e = h.err(delete, StatusCode::METHOD_NOT_ALLOWED).await;
    assert_eq!(e.error, "method_not_allowed");
}

#[tokio::test]
async fn service_routes_need_the_service_token_and_stay_scoped() {
    let h = Harness::new(9);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    let da = h.device(&a.session_token, "alice-kitchen").await;
    let db = h.device(&b.session_token, "bob-kitchen").await;
    let mut a_ids = Vec::new();
    for n in 0..3u32 {
        a_ids.push(
            h.ingest(&da.device_token, &format!("a-{n}"), "alice", &audio(n))
                .await
                .recording_id,
        );
    }
    let rb = h
        .ingest(&db.device_token, "b", "bob", &audio(50))
        .await
        .recording_id;

    let list_a = format!("/v1/service/accounts/{}/recordings", a.account_id.0);
    let audio_a = format!(
        "/v1/service/accounts/{}/recordings/{}/audio",
        a.account_id.0, a_ids[0].0
    );
    let introspect = |token: Option<&str>, session: &str| {
        post_json(
            "/v1/service/introspect",
            token,
            &json!({ "session_token": session }),
        )
    };

    // No token: 401. Wrong token (including a user's session): 403.
    let e = h.err(get(&list_a, None), StatusCode::UNAUTHORIZED).await;
    assert_eq!(e.error, "unauthorized");
    h.err(get(&audio_a, None), StatusCode::UNAUTHORIZED).await;
    h.err(introspect(None, &a.session_token), StatusCode::UNAUTHORIZED)
        .await;
    for wrong in [
        "wrong-token",
        a.session_token.as_str(),
        "test-service-token-",
        "test-service-toke",
    ] {
        let e = h
            .err(get(&list_a, Some(wrong)), StatusCode::FORBIDDEN)
            .await;
        assert_eq!(e.error, "forbidden");
        h.err(get(&audio_a, Some(wrong)), StatusCode::FORBIDDEN)
            .await;
        h.err(
            introspect(Some(wrong), &a.session_token),
            StatusCode::FORBIDDEN,
        )
        .await;
    }

    // Service listing of A: exactly A's recordings.
    let page: RecordingPage = h
        .ok(get(&list_a, Some(SERVICE_TOKEN)), StatusCode::OK)
        .await;
    assert_eq!(page.account_id, a.account_id);
    assert_eq!(page.items.iter().map(|v| v.id).collect::<Vec<_>>(), a_ids);

    // Paging in the service scope.
    let first: RecordingPage = h
        .ok(
            get(&format!("{list_a}?limit=2"), Some(SERVICE_TOKEN)),
            StatusCode::OK,
        )
        .await;
    let cursor = first.next_cursor.clone().expect("a second page");
    let second: RecordingPage = h
        .ok(
            get(
                &format!("{list_a}?limit=2&cursor={cursor}"),
                Some(SERVICE_TOKEN),
            ),
            StatusCode::OK,
        )
        .await;
    assert!(second.next_cursor.is_none());
    let ids: Vec<_> = first
        .items
        .iter()
        .chain(second.items.iter())
        .map(|v| v.id)
        .collect();
    assert_eq!(ids, a_ids);
    // A service cursor for A does not work for B, nor in the owner scope.
    h.err(
        get(
            &format!(
                "/v1/service/accounts/{}/recordings?limit=2&cursor={cursor}",
                b.account_id.0
            ),
            Some(SERVICE_TOKEN),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    h.err(
        get(
            &format!("/v1/recordings?limit=2&cursor={cursor}"),
            Some(&a.session_token),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Unknown account: 404. Non-numeric account: 400.
    let e = h
        .err(
            get(
                "/v1/service/accounts/424242/recordings",
                Some(SERVICE_TOKEN),
            ),
            StatusCode::NOT_FOUND,
        )
        .await;
    assert_eq!(e.error, "not_found");
    h.err(
        get("/v1/service/accounts/alice/recordings", Some(SERVICE_TOKEN)),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Service audio is scoped to the subject in the path.
    let (status, bytes) = h.send(get(&audio_a, Some(SERVICE_TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.as_ref(), audio(0).as_slice());
    let cross = format!(
        "/v1/service/accounts/{}/recordings/{}/audio",
        a.account_id.0, rb.0
    );
    let (cross_status, cross_body) = h.send(get(&cross, Some(SERVICE_TOKEN))).await;
    let missing = format!(
        "/v1/service/accounts/{}/recordings/999999/audio",
        a.account_id.0
    );
    let (missing_status, missing_body) = h.send(get(&missing, Some(SERVICE_TOKEN))).await;
    assert_eq!(cross_status, StatusCode::NOT_FOUND);
    assert_eq!(missing_status, StatusCode::NOT_FOUND);
    assert_eq!(cross_body, missing_body);
    expect_error_body(&cross_body);
    let reverse = format!(
        "/v1/service/accounts/{}/recordings/{}/audio",
        b.account_id.0, a_ids[1].0
    );
    h.err(get(&reverse, Some(SERVICE_TOKEN)), StatusCode::NOT_FOUND)
        .await;
    h.err(
        get(
            "/v1/service/accounts/424242/recordings/1/audio",
            Some(SERVICE_TOKEN),
        ),
        StatusCode::NOT_FOUND,
    )
    .await;
    h.err(
        get(
            &format!("/v1/service/accounts/{}/recordings/x/audio", a.account_id.0),
            Some(SERVICE_TOKEN),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Introspection.
    let who: IntrospectResponse = h
        .ok(
            introspect(Some(SERVICE_TOKEN), &a.session_token),
            StatusCode::OK,
        )
        .await;
    assert_eq!(who.account_id, a.account_id);
    let who: IntrospectResponse = h
        .ok(
            introspect(Some(SERVICE_TOKEN), &b.session_token),
            StatusCode::OK,
        )
        .await;
    assert_eq!(who.account_id, b.account_id);
    let e = h
        .err(
            introspect(Some(SERVICE_TOKEN), &"0".repeat(64)),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(e.error, "unauthorized");
    h.err(
        introspect(Some(SERVICE_TOKEN), ""),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A device token is not a session.
    h.err(
        introspect(Some(SERVICE_TOKEN), &da.device_token),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        post_json(
            "/v1/service/introspect",
            Some(SERVICE_TOKEN),
            &json!({ "session_token": "x", "extra": 1 }),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn account_ids_are_not_reused_and_stores_are_deterministic() {
    // Two stores with the same seed hand out the same tokens; a different
    // seed gives different ones (the tokens come from the injected entropy).
    let h1 = Harness::new(10);
    let h2 = Harness::new(10);
    let h3 = Harness::new(11);
    let s1 = h1.signup("alice@example.com").await;
    let s2 = h2.signup("alice@example.com").await;
    let s3 = h3.signup("alice@example.com").await;
    assert_eq!(s1.session_token, s2.session_token);
    assert_ne!(s1.session_token, s3.session_token);
    assert_eq!(s1.account_id, AccountId(1));
    let next = h1.signup("bob@example.com").await;
    assert_eq!(next.account_id, AccountId(2));
}

// ---------------------------------------------------------------------------
// Deletion and account closure.

use crosstalk_model::api::DeleteResponse;

fn delete(uri: &str, token: Option<&str>) -> Request<Body> {
    with_auth(Request::delete(uri), token)
        .body(Body::empty())
        .expect("request builds")
}

fn ingest_at_request(
    device_token: &str,
    key: &str,
    captured_at_ms: u64,
    audio: &[u8],
) -> Request<Body> {
    post_json(
        "/v1/recordings",
        Some(device_token),
        &json!({
            "upload_key": key,
            "captured_at_ms": captured_at_ms,
            "transcript": format!("captured at {captured_at_ms}"),
            "audio_base64": STANDARD.encode(audio),
        }),
    )
}

impl Harness {
    async fn ingest_at(
        &self,
        device_token: &str,
        key: &str,
        captured_at_ms: u64,
        audio: &[u8],
    ) -> RecordingId {
        let response: IngestResponse = self
            .ok(
                ingest_at_request(device_token, key, captured_at_ms, audio),
                StatusCode::CREATED,
            )
            .await;
        assert!(!response.duplicate);
        response.recording_id
    }

    async fn ids(&self, session: &str) -> Vec<RecordingId> {
        self.list(session, "?limit=100")
            .await
            .items
            .iter()
            .map(|v| v.id)
            .collect()
    }

    async fn service_ids(&self, account: AccountId) -> Vec<RecordingId> {
        let page: RecordingPage = self
            .ok(
                get(
                    &format!("/v1/service/accounts/{}/recordings?limit=100", account.0),
                    Some(SERVICE_TOKEN),
                ),
                StatusCode::OK,
            )
            .await;
        assert_eq!(page.account_id, account);
        page.items.iter().map(|v| v.id).collect()
    }

    async fn audio_status(&self, session: &str, id: RecordingId) -> StatusCode {
        self.send(get(
            &format!("/v1/recordings/{}/audio", id.0),
            Some(session),
        ))
        .await
        .0
    }
}

#[tokio::test]
async fn delete_one_removes_only_own_recordings() {
    let h = Harness::new(20);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    let da = h.device(&a.session_token, "alice-kitchen").await;
    let db = h.device(&b.session_token, "bob-kitchen").await;
    let a_ids = [
        h.ingest_at(&da.device_token, "a-0", 1_000, &audio(0)).await,
        h.ingest_at(&da.device_token, "a-1", 2_000, &audio(1)).await,
        h.ingest_at(&da.device_token, "a-2", 3_000, &audio(2)).await,
    ];
    let rb = h
        .ingest_at(&db.device_token, "b-0", 1_000, &audio(10))
        .await;

    // Own recording: 200, exactly that id.
    let response: DeleteResponse = h
        .ok(
            delete(
                &format!("/v1/recordings/{}", a_ids[1].0),
                Some(&a.session_token),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, vec![a_ids[1]]);
    assert_eq!(h.ids(&a.session_token).await, vec![a_ids[0], a_ids[2]]);
    assert_eq!(
        h.audio_status(&a.session_token, a_ids[1]).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.service_ids(a.account_id).await, vec![a_ids[0], a_ids[2]]);
    let (status, _) = h
        .send(get(
            &format!(
                "/v1/service/accounts/{}/recordings/{}/audio",
                a.account_id.0, a_ids[1].0
            ),
            Some(SERVICE_TOKEN),
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another account's recording: 404, byte for byte like a missing one,
    // and like one already deleted. Bob keeps his.
    let (other_status, other_body) = h
        .send(delete(
            &format!("/v1/recordings/{}", rb.0),
            Some(&a.session_token),
        ))
        .await;
    let (missing_status, missing_body) = h
        .send(delete("/v1/recordings/999999", Some(&a.session_token)))
        .await;
    let (again_status, again_body) = h
        .send(delete(
            &format!("/v1/recordings/{}", a_ids[1].0),
            Some(&a.session_token),
        ))
        .await;
    assert_eq!(other_status, StatusCode::NOT_FOUND);
    assert_eq!(missing_status, StatusCode::NOT_FOUND);
    assert_eq!(again_status, StatusCode::NOT_FOUND);
    assert_eq!(other_body, missing_body);
    assert_eq!(again_body, missing_body);
    expect_error_body(&other_body);
    assert_eq!(h.ids(&b.session_token).await, vec![rb]);
    assert_eq!(h.audio_status(&b.session_token, rb).await, StatusCode::OK);

    // No session, a bad one, a device token: 401, nothing deleted.
    let path = format!("/v1/recordings/{}", a_ids[0].0);
    let e = h.err(delete(&path, None), StatusCode::UNAUTHORIZED).await;
    assert_eq!(e.error, "unauthorized");
    h.err(
        delete(&path, Some(&"0".repeat(64))),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        delete(&path, Some(&da.device_token)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The service token is not a session either.
    h.err(delete(&path, Some(SERVICE_TOKEN)), StatusCode::UNAUTHORIZED)
        .await;
    // Bad ids.
    for id in ["abc", "-1", "18446744073709551616"] {
        let e = h
            .err(
                delete(&format!("/v1/recordings/{id}"), Some(&a.session_token)),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request", "id {id}");
    }
    assert_eq!(h.ids(&a.session_token).await, vec![a_ids[0], a_ids[2]]);

    // A device retrying the deleted recording's upload does not bring it back.
    let (status, body) = h
        .send(ingest_at_request(&da.device_token, "a-1", 2_000, &audio(1)))
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let retry: IngestResponse = serde_json::from_slice(&body).expect("ingest body");
    assert!(retry.duplicate);
    assert_eq!(retry.recording_id, a_ids[1]);
    assert_eq!(h.ids(&a.session_token).await, vec![a_ids[0], a_ids[2]]);
    assert_eq!(
        h.audio_status(&a.session_token, a_ids[1]).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_many_by_capture_range_or_all() {
    let h = Harness::new(21);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    let da = h.device(&a.session_token, "alice-kitchen").await;
    let db = h.device(&b.session_token, "bob-kitchen").await;
    // Alice captured at 1_000 .. 5_000; bob at the same times.
    let mut a_ids = Vec::new();
    let mut b_ids = Vec::new();
    for n in 1..=5u32 {
        let t = 1_000 * u64::from(n);
        a_ids.push(
            h.ingest_at(&da.device_token, &format!("a-{n}"), t, &audio(n))
                .await,
        );
        b_ids.push(
            h.ingest_at(&db.device_token, &format!("b-{n}"), t, &audio(100 + n))
                .await,
        );
    }
    let delete_many =
        |token: Option<&str>, body: &Value| post_json("/v1/recordings/delete", token, body);

    // Invalid forms: neither, both, half a range, from > to, wrong types,
    // unknown fields, all=false alone. 400 with a JSON body, nothing deleted.
    let invalid = [
        json!({}),
        json!({ "all": false }),
        json!({ "all": true, "captured_from_ms": 1_000, "captured_to_ms": 2_000 }),
        json!({ "all": true, "captured_from_ms": 1_000 }),
        json!({ "all": true, "captured_to_ms": 1_000 }),
        json!({ "captured_from_ms": 1_000 }),
        json!({ "captured_to_ms": 1_000 }),
        json!({ "captured_from_ms": 3_001, "captured_to_ms": 3_000 }),
        json!({ "all": "yes" }),
        json!({ "captured_from_ms": -1, "captured_to_ms": 3_000 }),
        json!({ "captured_from_ms": "1000", "captured_to_ms": 3_000 }),
        json!({ "all": true, "owner": b.account_id.0 }),
        json!([]),
    ];
    for body in &invalid {
        let e = h
            .err(
                delete_many(Some(&a.session_token), body),
                StatusCode::BAD_REQUEST,
            )
            .await;
        assert_eq!(e.error, "bad_request", "body {body}");
    }
    let e = h
        .err(
            post_raw(
                "/v1/recordings/delete",
                Some(&a.session_token),
                "application/json",
                "{",
            ),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");
    h.err(
        post_raw(
            "/v1/recordings/delete",
            Some(&a.session_token),
            "text/plain",
            r#"{"all":true}"#,
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    // No session: 401.
    let e = h
        .err(
            delete_many(None, &json!({ "all": true })),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(e.error, "unauthorized");
    h.err(
        delete_many(Some(&da.device_token), &json!({ "all": true })),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(h.ids(&a.session_token).await, a_ids);
    assert_eq!(h.ids(&b.session_token).await, b_ids);

    // A range is inclusive of both ends and touches only the caller's own.
    let response: DeleteResponse = h
        .ok(
            delete_many(
                Some(&a.session_token),
                &json!({ "captured_from_ms": 2_000, "captured_to_ms": 4_000 }),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, a_ids[1..4].to_vec());
    assert_eq!(h.ids(&a.session_token).await, vec![a_ids[0], a_ids[4]]);
    assert_eq!(h.service_ids(a.account_id).await, vec![a_ids[0], a_ids[4]]);
    for id in &a_ids[1..4] {
        assert_eq!(
            h.audio_status(&a.session_token, *id).await,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(h.ids(&b.session_token).await, b_ids);

    // A one-point range; an empty range deletes nothing (and is not an error).
    let response: DeleteResponse = h
        .ok(
            delete_many(
                Some(&a.session_token),
                &json!({ "captured_from_ms": 1_000, "captured_to_ms": 1_000 }),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, vec![a_ids[0]]);
    let response: DeleteResponse = h
        .ok(
            delete_many(
                Some(&a.session_token),
                &json!({ "captured_from_ms": 1_001, "captured_to_ms": 4_999 }),
            ),
            StatusCode::OK,
        )
        .await;
    assert!(response.deleted.is_empty());
    assert_eq!(h.ids(&a.session_token).await, vec![a_ids[4]]);

    // `all` deletes the rest of the caller's, and only the caller's.
    let response: DeleteResponse = h
        .ok(
            delete_many(Some(&a.session_token), &json!({ "all": true })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, vec![a_ids[4]]);
    assert!(h.ids(&a.session_token).await.is_empty());
    assert!(h.service_ids(a.account_id).await.is_empty());
    assert_eq!(h.ids(&b.session_token).await, b_ids);
    assert_eq!(h.service_ids(b.account_id).await, b_ids);
    for id in &b_ids {
        assert_eq!(h.audio_status(&b.session_token, *id).await, StatusCode::OK);
    }
    // Again: nothing left to delete.
    let response: DeleteResponse = h
        .ok(
            delete_many(Some(&a.session_token), &json!({ "all": true })),
            StatusCode::OK,
        )
        .await;
    assert!(response.deleted.is_empty());

    // The account still works: new uploads get new ids.
    let fresh = h
        .ingest_at(&da.device_token, "a-new", 2_000, &audio(50))
        .await;
    assert!(a_ids.iter().chain(b_ids.iter()).all(|old| fresh > *old));
    assert_eq!(h.ids(&a.session_token).await, vec![fresh]);
}

#[tokio::test]
async fn closing_an_account_ends_it_and_frees_the_email_for_a_new_account() {
    let h = Harness::new(22);
    let a = h.signup("alice@example.com").await;
    let b = h.signup("bob@example.com").await;
    let da = h.device(&a.session_token, "alice-kitchen").await;
    let db = h.device(&b.session_token, "bob-kitchen").await;
    let mut a_ids = Vec::new();
    for n in 0..3u32 {
        a_ids.push(
            h.ingest_at(
                &da.device_token,
                &format!("a-{n}"),
                1_000 + u64::from(n),
                &audio(n),
            )
            .await,
        );
    }
    let rb = h
        .ingest_at(&db.device_token, "b-0", 1_000, &audio(10))
        .await;
    assert_eq!(h.service_ids(a.account_id).await, a_ids);

    // Closing needs a session.
    h.err(delete("/v1/accounts/me", None), StatusCode::UNAUTHORIZED)
        .await;
    h.err(
        delete("/v1/accounts/me", Some(&da.device_token)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        delete("/v1/accounts/me", Some(SERVICE_TOKEN)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(h.ids(&a.session_token).await, a_ids);

    let response: DeleteResponse = h
        .ok(
            delete("/v1/accounts/me", Some(&a.session_token)),
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, a_ids);

    // The session is dead everywhere, including for introspection.
    for request in [
        get("/v1/recordings", Some(&a.session_token)),
        get(
            &format!("/v1/recordings/{}/audio", a_ids[0].0),
            Some(&a.session_token),
        ),
        delete(
            &format!("/v1/recordings/{}", a_ids[0].0),
            Some(&a.session_token),
        ),
        post_json(
            "/v1/recordings/delete",
            Some(&a.session_token),
            &json!({ "all": true }),
        ),
        post_json(
            "/v1/devices",
            Some(&a.session_token),
            &json!({ "name": "new" }),
        ),
        delete("/v1/accounts/me", Some(&a.session_token)),
        post_json(
            "/v1/service/introspect",
            Some(SERVICE_TOKEN),
            &json!({ "session_token": a.session_token }),
        ),
    ] {
        let e = h.err(request, StatusCode::UNAUTHORIZED).await;
        assert_eq!(e.error, "unauthorized");
    }
    // The device can no longer upload: neither new captures nor retries.
    h.err(
        ingest_at_request(&da.device_token, "a-new", 9_000, &audio(9)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    h.err(
        ingest_at_request(&da.device_token, "a-0", 1_000, &audio(0)),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The recordings are gone from the service API too.
    let list_old = format!("/v1/service/accounts/{}/recordings", a.account_id.0);
    let (status, body) = h.send(get(&list_old, Some(SERVICE_TOKEN))).await;
    match status {
        StatusCode::OK => {
            let page: RecordingPage = serde_json::from_slice(&body).expect("page");
            assert!(
                page.items.is_empty(),
                "a closed account's listing: {page:?}"
            );
        }
        StatusCode::NOT_FOUND => {
            expect_error_body(&body);
        }
        other => panic!("service listing of a closed account answered {other}"),
    }
    for id in &a_ids {
        let path = format!(
            "/v1/service/accounts/{}/recordings/{}/audio",
            a.account_id.0, id.0
        );
        h.err(get(&path, Some(SERVICE_TOKEN)), StatusCode::NOT_FOUND)
            .await;
    }

    // The email signs up again (case and spaces folded) as a NEW account
    // that sees none of the old recordings.
    let again = h.signup("  Alice@Example.com ").await;
    assert_ne!(again.account_id, a.account_id);
    assert_ne!(again.account_id, b.account_id);
    assert!(
        again.account_id > b.account_id,
        "account ids are never reused"
    );
    assert_ne!(again.session_token, a.session_token);
    assert!(h.ids(&again.session_token).await.is_empty());
    assert!(h.service_ids(again.account_id).await.is_empty());
    for id in &a_ids {
        assert_eq!(
            h.audio_status(&again.session_token, *id).await,
            StatusCode::NOT_FOUND
        );
        let path = format!(
            "/v1/service/accounts/{}/recordings/{}/audio",
            again.account_id.0, id.0
        );
        h.err(get(&path, Some(SERVICE_TOKEN)), StatusCode::NOT_FOUND)
            .await;
        h.err(
            delete(
                &format!("/v1/recordings/{}", id.0),
                Some(&again.session_token),
            ),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let who: IntrospectResponse = h
        .ok(
            post_json(
                "/v1/service/introspect",
                Some(SERVICE_TOKEN),
                &json!({ "session_token": again.session_token }),
            ),
            StatusCode::OK,
        )
        .await;
    assert_eq!(who.account_id, again.account_id);
    // The old device token stays dead for the new holder of the email.
    h.err(
        ingest_at_request(&da.device_token, "a-later", 9_000, &audio(9)),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(h.ids(&again.session_token).await.is_empty());
    // The new account's own uploads get fresh ids.
    let d_again = h.device(&again.session_token, "alice-new-kitchen").await;
    assert_ne!(d_again.device_id, da.device_id);
    let fresh = h
        .ingest_at(&d_again.device_token, "a-0", 1_000, &audio(0))
        .await;
    assert!(a_ids.iter().all(|old| fresh > *old));
    assert_eq!(h.ids(&again.session_token).await, vec![fresh]);
    // A second signup with the email is a conflict again.
    h.err(
        post_json(
            "/v1/accounts",
            None,
            &json!({ "email": "alice@example.com", "password": "correct horse battery" }),
        ),
        StatusCode::CONFLICT,
    )
    .await;

    // Bob is untouched.
    assert_eq!(h.ids(&b.session_token).await, vec![rb]);
    assert_eq!(h.audio_status(&b.session_token, rb).await, StatusCode::OK);
}
