//! The real `crosstalk-export` binary, driven over real loopback TCP.
//!
//! The store runs in this process on a real `TcpListener` (its database a
//! file in a fresh temporary directory); the export service (`serve`, its
//! database a file too) and a worker (`worker`) run as child processes of
//! the real binary. The test signs up, ingests, asks for an export, waits
//! for the worker to build it, downloads it, then kills the export service
//! (SIGKILL, no shutdown path) and starts it again on the same database
//! file: the export's status and its download link still work, because the
//! link key and the job are durable. Children are killed by a guard's
//! `Drop` whatever happens, and the directory is removed the same way.
//!
//! Nothing here reads the OS clock directly: waiting is bounded by a number
//! of attempts with a fixed sleep between them. (The store is given the
//! real-server `SystemClock`, as `crosstalk-store serve` would be.)

use axum::http::{Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crosstalk_export::archive::read_archive;
use crosstalk_model::api::{
    AuditEntry, ExportState, ExportStatus, IngestResponse, Notification, RegisterDeviceResponse,
    SignupResponse,
};
use crosstalk_model::{AccountId, RecordingId, SeededEntropy, sha256_hex};
use crosstalk_service::HttpResponse;
use crosstalk_service::real::SystemClock;
use crosstalk_service::test_support::{Endpoint, TempDir, expect_error, free_port};
use crosstalk_store::{Store, StoreConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Waiting for a starting process: about ten seconds in all.
const STARTUP_POLL: Duration = Duration::from_millis(50);
const STARTUP_ATTEMPTS: u32 = 200;
/// Waiting for an export to be built: about thirty seconds in all (the
/// worker polls once a second).
const READY_POLL: Duration = Duration::from_millis(200);
const READY_ATTEMPTS: u32 = 150;
/// How many times to try a new port when another process took ours between
/// our probe and the server's bind.
const BIND_ATTEMPTS: u32 = 5;

/// A child process, killed and reaped on drop.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kill (SIGKILL: no graceful shutdown) and reap.
    fn kill(mut self) {
        self.child.kill().expect("killing the child");
        let status = self.child.wait().expect("reaping the child");
        assert!(
            !status.success(),
            "a killed process does not exit successfully: {status}"
        );
    }

    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().expect("polling the child") {
            panic!("{what} exited ({status}); its log:\n{}", self.log());
        }
    }
}

struct Tokens {
    service: String,
    worker: String,
    agent: String,
}

impl Tokens {
    fn new(test: &str) -> Self {
        let pid = std::process::id();
        Self {
            service: format!("service-token-{pid}-{test}"),
            worker: format!("worker-token-{pid}-{test}"),
            agent: format!("agent-token-{pid}-{test}-0123456789"),
        }
    }

    fn apply(&self, command: &mut Command) {
        command
            .env("CROSSTALK_SERVICE_TOKEN", &self.service)
            .env("CROSSTALK_WORKER_TOKEN", &self.worker)
            .env("CROSSTALK_AGENT_TOKENS", format!("agent={}", self.agent));
    }
}

/// The store, in this process, on a real socket, its database in `db`.
async fn start_store(db: &Path, tokens: &Tokens) -> Endpoint {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db)
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
    let backend = redb::backends::FileBackend::new(file).expect("locking the store database");
    let store = Store::open(
        backend,
        Arc::new(SystemClock),
        Arc::new(SeededEntropy::from_seed_u64(u64::from(std::process::id()))),
        StoreConfig {
            service_token: tokens.service.clone(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .expect("store opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the store");
    let address = listener.local_addr().expect("store address").to_string();
    crosstalk_service::Spawner::Tokio.spawn(crosstalk_service::serve(
        listener,
        crosstalk_store::router(Arc::new(store)),
    ));
    let store = Endpoint::new(&address);
    let health: Value = store
        .ok(Method::GET, "/health", None, None, StatusCode::OK)
        .await;
    assert_eq!(health, json!({ "status": "ok" }));
    store
}

/// A running `crosstalk-export serve`.
struct ExportServer {
    process: Process,
    endpoint: Endpoint,
}

impl ExportServer {
    /// Start the binary on `db`, listening on `address` (or on a fresh port
    /// if `None`), and wait until it answers as this server.
    async fn start(
        dir: &TempDir,
        db: &Path,
        store: &str,
        tokens: &Tokens,
        address: Option<&str>,
        generation: u32,
    ) -> Self {
        for bind_attempt in 0..BIND_ATTEMPTS {
            let address = address
                .map(str::to_string)
                .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
            let log = dir
                .path
                .join(format!("export-serve-{generation}-{bind_attempt}.log"));
            let log_file = std::fs::File::create(&log).expect("creating the server log");
            let mut command = Command::new(env!("CARGO_BIN_EXE_crosstalk-export"));
            command
                .arg("serve")
                .arg("--db")
                .arg(db)
                .arg("--store")
                .arg(store)
                .arg("--listen")
                .arg(&address);
            tokens.apply(&mut command);
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file))
                .spawn()
                .expect("starting crosstalk-export serve");
            let mut server = ExportServer {
                process: Process { child, log },
                endpoint: Endpoint::new(&address),
            };
            match server.wait_until_up(tokens).await {
                Ok(()) => return server,
                Err(log) if log.contains("error: binding") => {
                    // Lost the port race: try again (on the same address, if
                    // one was asked for, once the other holder is gone).
                    tokio::time::sleep(STARTUP_POLL * 4).await;
                    continue;
                }
                Err(log) => panic!("crosstalk-export serve exited during startup; its log:\n{log}"),
            }
        }
        panic!("could not bind in {BIND_ATTEMPTS} attempts");
    }

    /// Ok once the server answers; Err(log) if the process exited first.
    async fn wait_until_up(&mut self, tokens: &Tokens) -> Result<(), String> {
        for _ in 0..STARTUP_ATTEMPTS {
            if let Some(status) = self.process.child.try_wait().expect("polling the child") {
                return Err(format!("(exit status {status})\n{}", self.process.log()));
            }
            if let Some(response) = self
                .endpoint
                .try_send(Method::GET, "/health", None, None)
                .await
            {
                assert_eq!(response.status(), StatusCode::OK, "health: {response:?}");
                // Is it ours? Only our server knows our agent.
                let _: Vec<AuditEntry> = self
                    .endpoint
                    .ok(
                        Method::GET,
                        "/v1/agent/audit",
                        Some(&tokens.agent),
                        None,
                        StatusCode::OK,
                    )
                    .await;
                return Ok(());
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
        panic!(
            "crosstalk-export did not answer on {} within {STARTUP_ATTEMPTS} attempts; its log:\n{}",
            self.endpoint.address,
            self.process.log()
        );
    }

    async fn status(&self, session: &str, id: u64) -> ExportStatus {
        self.endpoint
            .ok(
                Method::GET,
                &format!("/v1/exports/{id}"),
                Some(session),
                None,
                StatusCode::OK,
            )
            .await
    }

    /// Poll until the export leaves `pending`.
    async fn wait_ready(&self, session: &str, id: u64, worker: &mut Process) -> ExportStatus {
        for _ in 0..READY_ATTEMPTS {
            let status = self.status(session, id).await;
            if status.state != ExportState::Pending {
                assert_eq!(
                    status.state,
                    ExportState::Ready,
                    "failure: {:?}",
                    status.failure
                );
                return status;
            }
            worker.assert_running("the worker");
            tokio::time::sleep(READY_POLL).await;
        }
        panic!(
            "export {id} was not ready within {READY_ATTEMPTS} polls; worker log:\n{}\nserver log:\n{}",
            worker.log(),
            self.process.log()
        );
    }
}

fn start_worker(dir: &TempDir, export: &str, store: &str, tokens: &Tokens) -> Process {
    let log = dir.path.join("worker.log");
    let log_file = std::fs::File::create(&log).expect("creating the worker log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_crosstalk-export"));
    command
        .arg("worker")
        .arg("--export")
        .arg(export)
        .arg("--store")
        .arg(store)
        .arg("--name")
        .arg("w1");
    tokens.apply(&mut command);
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("starting crosstalk-export worker");
    Process { child, log }
}

struct Capture {
    id: RecordingId,
    transcript: String,
    audio: Vec<u8>,
}

fn audio(who: &str, n: u32) -> Vec<u8> {
    let mut audio = b"RIFF\0\0\0\0WAVEexport-real-".to_vec();
    audio.extend_from_slice(who.as_bytes());
    audio.extend_from_slice(&n.to_be_bytes());
    audio.extend((0..300u32).map(|i| (i.wrapping_mul(37).wrapping_add(n * 11) % 253) as u8));
    audio
}

async fn signup(store: &Endpoint, email: &str) -> SignupResponse {
    let body = json!({ "email": email, "password": "correct horse battery" });
    store
        .ok(
            Method::POST,
            "/v1/accounts",
            None,
            Some(&body),
            StatusCode::CREATED,
        )
        .await
}

async fn ingest(store: &Endpoint, session: &str, who: &str, count: u32) -> Vec<Capture> {
    let device: RegisterDeviceResponse = store
        .ok(
            Method::POST,
            "/v1/devices",
            Some(session),
            Some(&json!({ "name": who })),
            StatusCode::CREATED,
        )
        .await;
    let mut captures = Vec::new();
    for n in 0..count {
        let audio = audio(who, n);
        let transcript = format!("{who} says {n}");
        let body = json!({
            "upload_key": format!("{who}-{n}"),
            "captured_at_ms": 1_000 + u64::from(n),
            "transcript": transcript,
            "audio_base64": STANDARD.encode(&audio),
        });
        let r: IngestResponse = store
            .ok(
                Method::POST,
                "/v1/recordings",
                Some(&device.device_token),
                Some(&body),
                StatusCode::CREATED,
            )
            .await;
        captures.push(Capture {
            id: r.recording_id,
            transcript,
            audio,
        });
    }
    captures
}

/// The archive holds exactly `expected`, for `subject`'s export `id`.
fn check_archive(bytes: &[u8], subject: AccountId, id: u64, expected: &[Capture]) {
    let (manifest, files) = read_archive(bytes).expect("a valid archive");
    assert_eq!(manifest.subject, subject);
    assert_eq!(manifest.export_id.0, id);
    let got: Vec<_> = manifest
        .recordings
        .iter()
        .map(|e| (e.id, e.sha256.clone(), e.transcript.clone()))
        .collect();
    let want: Vec<_> = expected
        .iter()
        .map(|c| (c.id, sha256_hex(&c.audio), c.transcript.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(files.len(), expected.len());
    for c in expected {
        assert_eq!(files.get(&format!("audio/{}.wav", c.id.0)), Some(&c.audio));
    }
}

async fn download(export: &Endpoint, path: &str, session: Option<&str>) -> HttpResponse {
    export.send(Method::GET, path, session, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_built_by_a_real_worker_and_survive_a_restart() {
    const TEST: &str = "export-restart";
    // Declared first, so dropped last: the children die before it goes.
    let dir = TempDir::new("export-real", TEST);
    let tokens = Tokens::new(TEST);
    let store = start_store(&dir.path.join("store.redb"), &tokens).await;
    let db = dir.path.join("export.redb");
    let server = ExportServer::start(&dir, &db, &store.address, &tokens, None, 0).await;
    let export_address = server.endpoint.address.clone();
    let mut worker = start_worker(&dir, &export_address, &store.address, &tokens);

    let alice = signup(&store, "alice@example.com").await;
    let bob = signup(&store, "bob@example.com").await;
    let alice_recs = ingest(&store, &alice.session_token, "alice", 3).await;
    let bob_recs = ingest(&store, &bob.session_token, "bob", 2).await;

    // The agent tokens came through the environment.
    let e = server
        .endpoint
        .err(
            Method::GET,
            "/v1/agent/audit",
            Some("not-an-agent-token"),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
    assert_eq!(e.error, "forbidden");
    server
        .endpoint
        .err(
            Method::GET,
            "/v1/agent/audit",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;

    // Request (202), a duplicate (200), and only with a session.
    server
        .endpoint
        .err(
            Method::POST,
            "/v1/exports",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    server
        .endpoint
        .err(
            Method::POST,
            "/v1/exports",
            Some(&tokens.service),
            None,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    let requested: ExportStatus = server
        .endpoint
        .ok(
            Method::POST,
            "/v1/exports",
            Some(&alice.session_token),
            None,
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(requested.state, ExportState::Pending);
    let dup: ExportStatus = server
        .endpoint
        .ok(
            Method::POST,
            "/v1/exports",
            Some(&alice.session_token),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(dup.export_id, requested.export_id);
    let id = requested.export_id.0;

    // The worker builds it.
    let ready = server
        .wait_ready(&alice.session_token, id, &mut worker)
        .await;
    let path = ready
        .download_path
        .clone()
        .expect("a ready export has a link");
    assert_eq!(ready.downloads_left, Some(5));
    assert!(!ready.overdue);
    assert_eq!(
        ready.due_at_ms,
        ready.requested_at_ms + 30 * 24 * 3600 * 1000
    );

    // Alice downloads exactly her recordings; Bob's session gets 403 with
    // her link, no session 401.
    let first = download(&server.endpoint, &path, Some(&alice.session_token)).await;
    assert_eq!(
        first.status(),
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(first.body())
    );
    assert_eq!(
        first
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/zip")
    );
    check_archive(first.body(), alice.account_id, id, &alice_recs);
    expect_error(
        &download(&server.endpoint, &path, Some(&bob.session_token)).await,
        StatusCode::FORBIDDEN,
    );
    expect_error(
        &download(&server.endpoint, &path, None).await,
        StatusCode::UNAUTHORIZED,
    );
    expect_error(
        &download(
            &server.endpoint,
            "/v1/downloads/forged",
            Some(&alice.session_token),
        )
        .await,
        StatusCode::NOT_FOUND,
    );

    // Alice was told on her own feed; Bob was not.
    let feed: Vec<Notification> = store
        .ok(
            Method::GET,
            "/v1/notifications",
            Some(&alice.session_token),
            None,
            StatusCode::OK,
        )
        .await;
    assert!(
        feed.iter()
            .any(|n| n.kind == "export-ready" && n.text.contains(&path)),
        "{feed:?}"
    );
    let feed: Vec<Notification> = store
        .ok(
            Method::GET,
            "/v1/notifications",
            Some(&bob.session_token),
            None,
            StatusCode::OK,
        )
        .await;
    assert!(feed.is_empty(), "{feed:?}");

    // Kill the export service and start it again on the same file and port.
    server.process.kill();
    let server =
        ExportServer::start(&dir, &db, &store.address, &tokens, Some(&export_address), 1).await;

    // The export, its link (the key persisted) and its download count
    // survived.
    let after = server.status(&alice.session_token, id).await;
    assert_eq!(after.state, ExportState::Ready);
    assert_eq!(after.download_path.as_deref(), Some(path.as_str()));
    assert_eq!(after.expires_at_ms, ready.expires_at_ms);
    assert_eq!(after.downloads_left, Some(4));
    let again = download(&server.endpoint, &path, Some(&alice.session_token)).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(again.body())
    );
    assert_eq!(again.body(), first.body(), "the same archive");
    assert_eq!(
        server.status(&alice.session_token, id).await.downloads_left,
        Some(3)
    );
    expect_error(
        &download(&server.endpoint, &path, Some(&bob.session_token)).await,
        StatusCode::FORBIDDEN,
    );

    // The worker, still running, serves the restarted service: Bob's export.
    let bob_requested: ExportStatus = server
        .endpoint
        .ok(
            Method::POST,
            "/v1/exports",
            Some(&bob.session_token),
            None,
            StatusCode::ACCEPTED,
        )
        .await;
    assert_ne!(bob_requested.export_id.0, id);
    let bob_ready = server
        .wait_ready(&bob.session_token, bob_requested.export_id.0, &mut worker)
        .await;
    let bob_path = bob_ready.download_path.expect("ready");
    let bytes = download(&server.endpoint, &bob_path, Some(&bob.session_token)).await;
    assert_eq!(bytes.status(), StatusCode::OK);
    check_archive(
        bytes.body(),
        bob.account_id,
        bob_requested.export_id.0,
        &bob_recs,
    );
    expect_error(
        &download(&server.endpoint, &bob_path, Some(&alice.session_token)).await,
        StatusCode::FORBIDDEN,
    );

    worker.assert_running("the worker");
}
