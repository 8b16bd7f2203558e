//! The real `crosstalk-store` binary, driven over real loopback TCP.
//!
//! Each test starts the binary as a child process with its database in a
//! file under a fresh temporary directory, talks to it with the workspace's
//! `HttpClient` over `TcpConnector`, kills it (SIGKILL, no shutdown path) and
//! starts it again on the same file. The child is killed by a guard's `Drop`
//! whatever happens, and the directory is removed the same way.
//!
//! Nothing here reads the OS clock: waiting for the server is bounded by a
//! number of attempts with a fixed sleep between them.

use axum::body::Bytes;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crosstalk_model::api::{
    DeleteResponse, IngestResponse, RecordingPage, RegisterDeviceResponse, SignupResponse,
};
use crosstalk_model::{AccountId, RecordingId, sha256_hex};
use crosstalk_service::HttpResponse;
use crosstalk_service::test_support::{Endpoint, TempDir, expect_error, free_port};
use http_body_util::Full;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long to wait between attempts to reach a starting server, and how many
/// attempts: about ten seconds in all.
const STARTUP_POLL: Duration = Duration::from_millis(50);
const STARTUP_ATTEMPTS: u32 = 200;
/// How many times to try a new port when another process took ours between
/// our probe and the server's bind.
const BIND_ATTEMPTS: u32 = 5;

/// A running `crosstalk-store serve`, killed on drop.
struct Server {
    child: Child,
    /// The server's address, client and log.
    endpoint: Endpoint,
    service_token: String,
}

impl std::ops::Deref for Server {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start the binary on `db` and wait until it answers, as this server
    /// (its service token) and not some other process that took the port.
    async fn start(dir: &TempDir, db: &Path, service_token: &str, generation: u32) -> Server {
        for bind_attempt in 0..BIND_ATTEMPTS {
            let port = free_port();
            let address = format!("127.0.0.1:{port}");
            let log = dir
                .path
                .join(format!("server-{generation}-{bind_attempt}.log"));
            let log_file = std::fs::File::create(&log).expect("creating the server log");
            let child = Command::new(env!("CARGO_BIN_EXE_crosstalk-store"))
                .arg("serve")
                .arg("--db")
                .arg(db)
                .arg("--listen")
                .arg(&address)
                .env("CROSSTALK_SERVICE_TOKEN", service_token)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file))
                .spawn()
                .expect("starting crosstalk-store");
            let mut endpoint = Endpoint::new(&address);
            endpoint.log = Some(log);
            let mut server = Server {
                child,
                endpoint,
                service_token: service_token.to_string(),
            };
            match server.wait_until_up().await {
                Ok(()) => return server,
                Err(log) if log.contains("error: binding") => continue, // Lost the port race: try another.
                Err(log) => panic!("crosstalk-store exited during startup; its log:\n{log}"),
            }
        }
        panic!("could not bind a free port in {BIND_ATTEMPTS} attempts");
    }

    /// Ok once the server answers; Err(log) if the process exited first.
    async fn wait_until_up(&mut self) -> Result<(), String> {
        for _ in 0..STARTUP_ATTEMPTS {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return Err(format!("(exit status {status})\n{}", self.read_log()));
            }
            if let Ok(response) = self
                .client
                .send(self.request(Method::GET, "/health", None, None))
                .await
            {
                assert_eq!(response.status(), StatusCode::OK, "health: {response:?}");
                // Is it ours? Only our server accepts our service token.
                let probe = self.request(
                    Method::GET,
                    "/v1/service/accounts/18446744073709551615/recordings",
                    Some(&self.service_token),
                    None,
                );
                let response = self.client.send(probe).await.expect("identity probe");
                assert_eq!(
                    response.status(),
                    StatusCode::NOT_FOUND,
                    "something else answers on {}: {response:?}",
                    self.address
                );
                return Ok(());
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
        panic!(
            "crosstalk-store did not answer on {} within {STARTUP_ATTEMPTS} attempts; its log:\n{}",
            self.address,
            self.read_log()
        );
    }

    /// Kill the process (SIGKILL: no graceful shutdown) and reap it.
    fn kill(mut self) {
        self.child.kill().expect("killing crosstalk-store");
        let status = self.child.wait().expect("reaping crosstalk-store");
        assert!(
            !status.success(),
            "a killed server does not exit successfully: {status}"
        );
    }

    async fn signup(&self, email: &str) -> SignupResponse {
        self.ok(
            Method::POST,
            "/v1/accounts",
            None,
            Some(&json!({ "email": email, "password": "correct horse battery" })),
            StatusCode::CREATED,
        )
        .await
    }

    async fn device(&self, session: &str, name: &str) -> RegisterDeviceResponse {
        self.ok(
            Method::POST,
            "/v1/devices",
            Some(session),
            Some(&json!({ "name": name })),
            StatusCode::CREATED,
        )
        .await
    }

    async fn ingest(&self, device_token: &str, capture: &Capture) -> IngestResponse {
        let body = json!({
            "upload_key": capture.key,
            "captured_at_ms": capture.captured_at_ms,
            "transcript": capture.transcript,
            "audio_base64": STANDARD.encode(&capture.audio),
        });
        let response = self
            .send(
                Method::POST,
                "/v1/recordings",
                Some(device_token),
                Some(&body),
            )
            .await;
        let status = response.status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "ingest answered {status}: {}",
            String::from_utf8_lossy(response.body())
        );
        let parsed: IngestResponse = serde_json::from_slice(response.body()).expect("ingest body");
        assert_eq!(
            status == StatusCode::OK,
            parsed.duplicate,
            "200 iff duplicate"
        );
        parsed
    }

    /// Every page of the session's own listing.
    async fn list_all(
        &self,
        session: &str,
    ) -> (AccountId, Vec<crosstalk_model::api::RecordingView>) {
        let mut items = Vec::new();
        let mut path = "/v1/recordings?limit=3".to_string();
        loop {
            let page: RecordingPage = self
                .ok(Method::GET, &path, Some(session), None, StatusCode::OK)
                .await;
            items.extend(page.items);
            match page.next_cursor {
                Some(cursor) => path = format!("/v1/recordings?limit=3&cursor={cursor}"),
                None => return (page.account_id, items),
            }
        }
    }

    async fn audio(&self, session: &str, id: RecordingId) -> HttpResponse {
        self.send(
            Method::GET,
            &format!("/v1/recordings/{}/audio", id.0),
            Some(session),
            None,
        )
        .await
    }
}

/// One capture a device uploads.
#[derive(Clone, Debug)]
struct Capture {
    key: String,
    captured_at_ms: u64,
    transcript: String,
    audio: Vec<u8>,
}

/// Distinct, deterministic audio (a WAV-ish header and a few hundred bytes).
fn capture(who: &str, n: u32, captured_at_ms: u64) -> Capture {
    let mut audio = b"RIFF\0\0\0\0WAVEreal-server-".to_vec();
    audio.extend_from_slice(who.as_bytes());
    audio.extend_from_slice(&n.to_be_bytes());
    audio.extend((0..300u32).map(|i| (i.wrapping_mul(37).wrapping_add(n * 11) % 253) as u8));
    Capture {
        key: format!("{who}-{n}"),
        captured_at_ms,
        transcript: format!("{who} says {n}"),
        audio,
    }
}

/// What the test knows an account holds.
struct Person {
    session: String,
    account: AccountId,
    devices: Vec<RegisterDeviceResponse>,
    /// Acknowledged and not deleted: id -> (device index, capture).
    live: BTreeMap<RecordingId, (usize, Capture)>,
    /// Acknowledged deletions: id -> (device index, capture).
    deleted: BTreeMap<RecordingId, (usize, Capture)>,
}

impl Person {
    fn delete(&mut self, ids: &[RecordingId]) {
        for id in ids {
            let entry = self
                .live
                .remove(id)
                .unwrap_or_else(|| panic!("{id} was not live"));
            self.deleted.insert(*id, entry);
        }
    }
}

/// The listing, every audio file, and every deletion agree with `person`.
async fn verify(server: &Server, person: &Person) {
    let (account, items) = server.list_all(&person.session).await;
    assert_eq!(account, person.account);
    let listed: Vec<RecordingId> = items.iter().map(|v| v.id).collect();
    let expected: Vec<RecordingId> = person.live.keys().copied().collect();
    assert_eq!(listed, expected, "listing of {account}");
    for view in &items {
        let (device, capture) = &person.live[&view.id];
        assert_eq!(view.device, person.devices[*device].device_id);
        assert_eq!(view.captured_at_ms, capture.captured_at_ms);
        assert_eq!(view.transcript, capture.transcript);
        assert_eq!(view.audio_sha256, sha256_hex(&capture.audio));
        assert_eq!(view.audio_len, capture.audio.len() as u64);
        let response = server.audio(&person.session, view.id).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("audio/wav")
        );
        assert_eq!(
            sha256_hex(response.body()),
            sha256_hex(&capture.audio),
            "audio of {}",
            view.id
        );
        assert_eq!(response.body().as_ref(), capture.audio.as_slice());
    }
    for id in person.deleted.keys() {
        assert!(!listed.contains(id));
        let response = server.audio(&person.session, *id).await;
        expect_error(&response, StatusCode::NOT_FOUND);
    }
    // The export's view (service scope) agrees.
    let page: RecordingPage = server
        .ok(
            Method::GET,
            &format!("/v1/service/accounts/{}/recordings?limit=100", account.0),
            Some(&server.service_token),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        page.items.iter().map(|v| v.id).collect::<Vec<_>>(),
        expected,
        "service listing of {account}"
    );
}

#[tokio::test]
async fn survives_kill_and_restart_over_real_tcp() {
    const TEST: &str = "kill-restart";
    let dir = TempDir::new("store-real", TEST);
    let db = dir.path.join("store.redb");
    let token = format!("real-server-token-{}-{TEST}", std::process::id());

    let server = Server::start(&dir, &db, &token, 0).await;

    // Two accounts, three devices.
    let mut people = Vec::new();
    for (email, devices) in [("alice@example.com", 2), ("bob@example.com", 1)] {
        let s = server.signup(email).await;
        let mut registered = Vec::new();
        for d in 0..devices {
            registered.push(
                server
                    .device(&s.session_token, &format!("{email}-device-{d}"))
                    .await,
            );
        }
        people.push(Person {
            session: s.session_token,
            account: s.account_id,
            devices: registered,
            live: BTreeMap::new(),
            deleted: BTreeMap::new(),
        });
    }
    assert_ne!(people[0].account, people[1].account);

    // Interleaved uploads; capture times 1_000 * n (alice) and 1_000 * n + 500 (bob).
    for n in 0..6u32 {
        for (p, who) in [(0usize, "alice"), (1, "bob")] {
            if p == 1 && n >= 4 {
                continue;
            }
            let offset = if p == 0 { 0 } else { 500 };
            let c = capture(who, n, 1_000 * u64::from(n) + offset);
            let device = n as usize % people[p].devices.len();
            let token = people[p].devices[device].device_token.clone();
            let r = server.ingest(&token, &c).await;
            assert!(!r.duplicate);
            assert!(
                people[p].live.insert(r.recording_id, (device, c)).is_none(),
                "ids are unique"
            );
        }
    }
    assert_eq!(people[0].live.len(), 6);
    assert_eq!(people[1].live.len(), 4);
    // A retry of an acknowledged upload is a duplicate with the same id.
    let (&first_id, (device, first)) = people[0].live.iter().next().expect("alice has recordings");
    let retry = server
        .ingest(&people[0].devices[*device].device_token, first)
        .await;
    assert!(retry.duplicate);
    assert_eq!(retry.recording_id, first_id);

    for person in &people {
        verify(&server, person).await;
    }
    // Neither sees the other's audio: 404, like a missing recording.
    for (me, other) in [(0, 1), (1, 0)] {
        for id in people[other].live.keys() {
            expect_error(
                &server.audio(&people[me].session, *id).await,
                StatusCode::NOT_FOUND,
            );
        }
    }

    // Alice deletes one recording, then the capture range [2_000, 3_000]
    // (inclusive: her captures 2 and 3; bob's 2_500 is untouched).
    let one = *people[0].live.keys().nth(1).expect("a second recording");
    let response: DeleteResponse = server
        .ok(
            Method::DELETE,
            &format!("/v1/recordings/{}", one.0),
            Some(&people[0].session),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, vec![one]);
    people[0].delete(&[one]);
    let range = json!({ "captured_from_ms": 2_000, "captured_to_ms": 3_000 });
    let response: DeleteResponse = server
        .ok(
            Method::POST,
            "/v1/recordings/delete",
            Some(&people[0].session),
            Some(&range),
            StatusCode::OK,
        )
        .await;
    let expected: Vec<RecordingId> = people[0]
        .live
        .iter()
        .filter(|(_, (_, c))| (2_000..=3_000).contains(&c.captured_at_ms))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(response.deleted, expected);
    people[0].delete(&expected);
    // Bob deletes one too.
    let bobs = *people[1].live.keys().next().expect("bob has recordings");
    let response: DeleteResponse = server
        .ok(
            Method::DELETE,
            &format!("/v1/recordings/{}", bobs.0),
            Some(&people[1].session),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(response.deleted, vec![bobs]);
    people[1].delete(&[bobs]);
    for person in &people {
        verify(&server, person).await;
    }
    let max_old_id = people
        .iter()
        .flat_map(|p| p.live.keys().chain(p.deleted.keys()))
        .copied()
        .max()
        .expect("ids");

    // Crash: SIGKILL, no shutdown. Start again on the same file.
    server.kill();
    let server = Server::start(&dir, &db, &token, 1).await;

    // Sessions still work; every acknowledged, undeleted recording is there
    // with identical audio; deletions stayed deleted.
    for person in &people {
        verify(&server, person).await;
    }

    // Re-uploading a deleted recording's upload key does not bring it back.
    for person in &people {
        for (id, (device, c)) in &person.deleted {
            let r = server
                .ingest(&person.devices[*device].device_token, c)
                .await;
            assert!(r.duplicate, "re-upload of deleted {id}");
            assert_eq!(r.recording_id, *id);
        }
    }
    for person in &people {
        verify(&server, person).await;
    }

    // Device tokens still work, and new ids do not collide with old ones.
    for (p, who) in [(0usize, "alice"), (1, "bob")] {
        let c = capture(who, 100, 50_000);
        let r = server.ingest(&people[p].devices[0].device_token, &c).await;
        assert!(!r.duplicate);
        assert!(
            r.recording_id > max_old_id,
            "new id {} after restart must exceed {max_old_id}",
            r.recording_id
        );
        people[p].live.insert(r.recording_id, (0, c));
    }
    // A new account gets a new id, and sees nothing.
    let carol = server.signup("carol@example.com").await;
    assert!(people.iter().all(|p| p.account != carol.account_id));
    let (account, items) = server.list_all(&carol.session_token).await;
    assert_eq!(account, carol.account_id);
    assert!(items.is_empty());
    for person in &people {
        verify(&server, person).await;
    }

    // Once more: what was written after the first restart survives a second crash.
    server.kill();
    let server = Server::start(&dir, &db, &token, 2).await;
    for person in &people {
        verify(&server, person).await;
    }
    drop(server);
}

#[tokio::test]
async fn errors_over_the_socket_are_json_and_responses_have_no_date() {
    const TEST: &str = "errors";
    let dir = TempDir::new("store-real", TEST);
    let db = dir.path.join("store.redb");
    let token = format!("real-server-token-{}-{TEST}", std::process::id());
    let server = Server::start(&dir, &db, &token, 0).await;

    // A malformed body, an invalid email, an unknown route, a wrong method,
    // a missing session, a wrong service token, a bad path parameter.
    let raw = Request::builder()
        .method(Method::POST)
        .uri("/v1/accounts")
        .header(header::HOST, &server.address)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{\"email\": ")))
        .expect("request builds");
    let e = expect_error(&server.send_raw(raw).await, StatusCode::BAD_REQUEST);
    assert_eq!(e.error, "bad_request");
    let e = server
        .err(
            Method::POST,
            "/v1/accounts",
            None,
            Some(&json!({ "email": "nope", "password": "correct horse battery" })),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");
    let e = server
        .err(Method::GET, "/v1/nope", None, None, StatusCode::NOT_FOUND)
        .await;
    assert_eq!(e.error, "not_found");
    let e = server
        .err(
            Method::DELETE,
            "/v1/accounts",
            None,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        )
        .await;
    assert_eq!(e.error, "method_not_allowed");
    let e = server
        .err(
            Method::GET,
            "/v1/recordings",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    assert_eq!(e.error, "unauthorized");
    let e = server
        .err(
            Method::GET,
            "/v1/service/accounts/1/recordings",
            Some("not-the-token"),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(e.error, "forbidden");
    let s = server.signup("dave@example.com").await;
    let e = server
        .err(
            Method::GET,
            "/v1/recordings/abc/audio",
            Some(&s.session_token),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");
    let e = server
        .err(
            Method::POST,
            "/v1/recordings/delete",
            Some(&s.session_token),
            Some(&json!({})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert_eq!(e.error, "bad_request");

    // Successes carry no Date header either (send_raw checks every response),
    // and the connection stays usable after errors (keep-alive).
    let health = server.send(Method::GET, "/health", None, None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().get(header::DATE).is_none());
    let d = server.device(&s.session_token, "kitchen").await;
    let r = server.ingest(&d.device_token, &capture("dave", 1, 1)).await;
    let audio = server.audio(&s.session_token, r.recording_id).await;
    assert_eq!(audio.status(), StatusCode::OK);
    assert!(audio.headers().get(header::DATE).is_none());
}
