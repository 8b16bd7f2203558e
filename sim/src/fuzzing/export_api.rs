//! The `export_api` fuzz target: arbitrary operation sequences against the
//! real recording store and the real export service, in process, across a
//! few people, judged by the simulator's one oracle ([`crate::check`]).
//!
//! One input is one small world. A current-thread tokio runtime with paused
//! time runs, on its `LocalSet`, a [`crosstalk_store::Store`] and a
//! [`crosstalk_export::ExportService`], each on redb's `InMemoryBackend`
//! with a [`ManualClock`] and [`SeededEntropy`]. The harness calls both
//! axum routers in process (`tower::ServiceExt::oneshot`, no transport);
//! the export service reaches the store, and a [`Worker`] reaches both,
//! through their real `HttpClient`s over `tokio::io::duplex` pipes served
//! by `crosstalk_service::serve_with` (so the services' own client code,
//! hyper included, stays under test). The harness steps the worker by hand
//! (`claim`, then `work`), so exports complete deterministically. To
//! abandon a request while the export service is waiting for the store,
//! the store holds the export side's calls until the harness has seen one
//! arrive. The oracle judges by the times the client saw: each request's
//! send and answer get their own observation time (the service clock's
//! millisecond, refined by the order of observations within it, so that
//! requests sharing a millisecond, as in production, stay ordered).
//!
//! The input derives [`arbitrary::Arbitrary`]: a planted-bug byte, a
//! configuration byte, then up to [`MAX_OPS`] operations ([`Op`]) of
//! [`PEOPLE`] people: sign up (again, after closing: a recycled email is a
//! new principal), log in, register devices, upload watermarked recordings
//! (optionally as captured in an earlier ownership epoch of a resold
//! device), retry an upload, list history with any limit and with cursors
//! of one's own or someone else's listing, fetch audio by one's own or
//! another's recording id, delete one, a capture-time range or all, close
//! the account, request an export, step the worker (one job, two jobs at
//! once, a claim that is abandoned and resumed after its lease), poll
//! statuses, download with one's own link, someone else's, with no session
//! or a stale one, read one's feed, resell a device, support tickets and the
//! agent console, advance the clock, cut the export side off the store,
//! abandon a request in flight, and raw requests with arbitrary method,
//! path, credential and body to either service. Seed inputs are named files
//! in `fuzz/corpus/export_api/`, written from operation lists by
//! `sim/tests/fuzz_export_api.rs` with [`seed_bytes`] (see there to add one).
//!
//! There is no judge here: the harness tells the [`Oracle`] what truly
//! happened (who captured which watermarked utterance, when each request
//! was sent and answered, which deletions and exports were asked for, when
//! the export side was cut off) and hands it everything every caller
//! received; the oracle decides, with the same checks the simulator uses
//! (isolation, erasure, exactness of listings and archives by the client's
//! times, deletion answers, link binding, access control of foreign ids,
//! the API contract: 5xx only near a fault, JSON error bodies, no panics).
//! A few protocol facts only this driver sees (a login to a closed
//! account, a retry stored twice, a ticket verified by a guess) are
//! reported to the oracle as violations of the invariant they break. The
//! first violation panics (the fuzzer's crash) with the oracle's report and
//! the operations up to it.
//!
//! What is deliberately out of scope: voice messages and contacts (a
//! message deliberately sent is a legitimate delivery this driver does not
//! track), so raw requests never reach them. Raw requests never reach the
//! routes the driver must see to report ground truth (sign-up, upload,
//! deletion, closing, device transfer and reset, messages, contacts);
//! those have their own operations. Raw responses are judged only when
//! successful and from routes that never echo what a caller wrote (an
//! error message may quote a fuzz-chosen string, which could imitate a
//! watermark).
//!
//! Everything is deterministic: a fixed seed for every entropy source and
//! the watermark key, a manual clock, paused tokio time, one thread.
//! [`run_with_stats`] returns [`Stats`] (the oracle's positive controls and
//! a digest of every answer) so tests can prove the corpus reaches the
//! accepting paths and that a run replays identically. Reproduce a crash
//! with `cargo fuzz run export_api ARTIFACT` (with `--features
//! planted-bugs` if the plant byte plants a bug).

use crate::check::contract::FaultLog;
use crate::check::driver::BrokenPromise;
use crate::check::{ArchiveContents, DeletionScope, Event, Invariant, Oracle};
use crate::net::{EXPORT_HOST, STORE_HOST};
use crate::watermark::{Decoded, WatermarkKey};
use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use crosstalk_export::worker::{Outcome, Worker, WorkerConfig};
use crosstalk_export::{ExportConfig, ExportService, StoreClient};
use crosstalk_model::api::{
    ClaimedJob, DeleteResponse, DeviceCredentials, ExportStatus, IngestRequest, IngestResponse,
    Notification, RecordingPage, RegisterDeviceResponse, SignupResponse, TicketState, TicketStatus,
};
use crosstalk_model::{AccountId, DeviceId, ExportId, ManualClock, RecordingId, SeededEntropy};
use crosstalk_service::{BoxIo, Bug, Connect, ConnectFuture, HttpClient, Inject, Planted, Spawner};
use crosstalk_store::{Store, StoreConfig};
use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

pub use super::seed::seed_bytes;

/// Most operations one input runs (the rest of a longer input is ignored).
pub const MAX_OPS: usize = 64;
/// People in every world. Each holds one email; closing and signing up
/// again gives the same person a new principal.
pub const PEOPLE: usize = 3;
/// Longest raw request body, in bytes.
pub const MAX_RAW_BODY_BYTES: usize = 16;

const SERVICE_TOKEN: &str = "fuzz-store-service-token";
const WORKER_TOKEN: &str = "fuzz-worker-token-0123456789abcdef";
const AGENT_NAME: &str = "fuzz-agent";
const AGENT_TOKEN: &str = "fuzz-agent-token-0123456789abcdef";
const PASSWORD: &str = "correct horse battery";
/// Presented where a stranger guesses a bearer token.
const GARBAGE_TOKEN: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Presented where a stranger guesses a ticket's code.
const WRONG_CODE: &str = "0000000000000000";

const STORE_SEED: u64 = 0x5707_e5eed;
const EXPORT_SEED: u64 = 0xe8_9027_5eed;
const WATERMARK_SEED: u64 = 0x0f02_2a91;

const LINK_TTL_MS: u64 = 3_600_000;
const MAX_DOWNLOADS: u32 = 3;
const LEASE_MS: u64 = 30_000;
const MAX_ATTEMPTS: u32 = 3;
const RATE_LIMIT_MAX: u32 = 3;
const RATE_LIMIT_WINDOW_MS: u64 = 600_000;
const DAY_MS: u64 = 24 * 3_600_000;
/// The per-request timeout of the services' clients (never reached in a
/// correct run: paused time only jumps forward when something hangs).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How far [`Op::Advance`] moves the clock, by its argument.
const ADVANCE_MS: [u64; 6] = [
    1,
    1_000,
    LEASE_MS + 1,
    RATE_LIMIT_WINDOW_MS + 1,
    LINK_TTL_MS + 1,
    DAY_MS,
];
/// Worker page sizes, by bits 0-1 of the configuration byte.
const PAGE_ITEMS: [usize; 4] = [2, 1, 3, 5];
/// What people say; the content id picks the words and the waveform, so
/// two people saying the same thing sound the same (same fingerprint).
const WORDS: [&str; 5] = [
    "what's the weather",
    "play the news",
    "order more coffee",
    "set a timer",
    "turn off the lights",
];
/// The oracle's pseudo-principals for callers without an account: they own
/// nothing, so anything of anyone's delivered to them is an isolation
/// violation.
const ANONYMOUS: usize = 0;
/// Observations per millisecond of the service clock in the oracle's
/// times (see `Harness::observed_ms`); far more than one input makes.
const OBSERVATIONS_PER_MS: u64 = 1_000;
const AGENT: usize = 1;

// ---------------------------------------------------------------------------
// The input: operations, derived from bytes by `Arbitrary`.
// ---------------------------------------------------------------------------

/// One operation. Every field is a small index; each operation says how it
/// reads them (a person is `byte % PEOPLE`, a pick indexes a list modulo
/// its length, a credential is one of a few choices modulo their number).
///
/// A credential (`credential`) chooses what the caller presents: 0 the
/// person's current session, 1 nothing, 2 a stale session (one of a closed
/// principal of the same person if there is one), 3 a guessed token. Raw
/// requests add 4 a device token the person holds and 5 the agent token.
#[derive(Clone, Debug, PartialEq, Eq, Arbitrary, Serialize)]
pub enum Op {
    /// `POST /v1/accounts` with the person's email.
    Signup { person: u8 },
    /// `POST /v1/sessions`: a further session of the person's account.
    Login { person: u8 },
    /// `POST /v1/devices` with the person's session.
    RegisterDevice { person: u8 },
    /// A device the person holds uploads a watermarked capture:
    /// `content % 5` what was said, captured `captured_ago_s % 4` seconds
    /// ago, in the epoch `epochs_back` before the device's current one
    /// (modulo its epochs: a capture from before a resale).
    Upload {
        person: u8,
        device: u8,
        content: u8,
        captured_ago_s: u8,
        epochs_back: u8,
    },
    /// The person's last upload, sent again byte for byte.
    RetryUpload { person: u8 },
    /// `GET /v1/recordings`: `limit % 7` (0 none, 1-4, 5 → 100, 6 → 0);
    /// `cursor % 4`: none, the viewer's last, another person's last, garbage.
    List {
        viewer: u8,
        credential: u8,
        limit: u8,
        cursor: u8,
    },
    /// `GET /v1/recordings/{id}/audio` of a recording of `owner` (any of
    /// their principals, deleted or not).
    FetchAudio {
        viewer: u8,
        credential: u8,
        owner: u8,
        pick: u8,
    },
    /// `DELETE /v1/recordings/{id}` of a recording of `owner`.
    DeleteOne { person: u8, owner: u8, pick: u8 },
    /// `POST /v1/recordings/delete`: `mode % 3` all, a capture-time range
    /// (`from_s`, `to_s` seconds before now, modulo 8), or a malformed mix.
    DeleteMany {
        person: u8,
        mode: u8,
        from_s: u8,
        to_s: u8,
    },
    /// `DELETE /v1/accounts/me`.
    CloseAccount { person: u8 },
    /// `POST /v1/exports`.
    RequestExport { person: u8, credential: u8 },
    /// The worker, `mode % 4`: drain (up to three jobs, one by one), two
    /// jobs at once, claim one and abandon it, resume the oldest abandoned
    /// claim.
    Work { mode: u8 },
    /// `GET /v1/exports/{id}` of an export of `owner`.
    Status {
        viewer: u8,
        credential: u8,
        owner: u8,
        pick: u8,
    },
    /// `GET /v1/downloads/{token}` with a link of an export of `owner`.
    Download {
        viewer: u8,
        credential: u8,
        owner: u8,
        pick: u8,
    },
    /// `GET /v1/notifications`: the person's own feed.
    Feed { person: u8, credential: u8 },
    /// Move the clock by `ADVANCE_MS[step % 6]`.
    Advance { step: u8 },
    /// `POST /v1/devices/{id}/transfer`: resell a device to `to`.
    Transfer { from: u8, device: u8, to: u8 },
    /// Cut the export service and the worker off the store (`down & 1`).
    StoreDown { down: u8 },
    /// Send an export request (`kind % 3`: status, download, new export)
    /// and drop it once the export service's call to the store is in
    /// flight, after `extra_yields % 4` more scheduler turns.
    Abandon {
        viewer: u8,
        kind: u8,
        extra_yields: u8,
    },
    /// Support tickets, `action % 4`: `requester` opens one for `target`'s
    /// email; verifies a ticket (with the code from the target's feed when
    /// `requester` is the target, else a guess); the agent vouches for a
    /// ticket from facts; the agent resends a ticket's link, `pick` odd
    /// with an archive attached.
    Ticket {
        requester: u8,
        target: u8,
        action: u8,
        pick: u8,
    },
    /// A raw request: `router` (even store, odd export), `method % 7`,
    /// path `template` (with `id` filled in; the free-form template takes
    /// its path from the body), `credential % 6`, `content_type % 3`, the
    /// first `body_len % 17` bytes of `body`.
    Raw {
        router: u8,
        method: u8,
        template: u8,
        id: u8,
        credential: u8,
        person: u8,
        content_type: u8,
        body_len: u8,
        body: [u8; MAX_RAW_BODY_BYTES],
    },
}

/// How many kinds of operation there are (the seed writer needs it to
/// encode a variant the way `Arbitrary` decodes it).
pub const OP_KINDS: u32 = 21;

/// One decoded input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Arbitrary, Serialize)]
pub struct Input {
    /// Which planted bug to plant (0: none).
    pub plant: u8,
    /// The world's configuration: worker page size (bits 0-1), the export
    /// service's store pool off (bit 2).
    pub config: u8,
    pub ops: Vec<Op>,
}

impl Input {
    /// Decode `data` (every byte string is a valid input; operations past
    /// [`MAX_OPS`] are ignored).
    pub fn decode(data: &[u8]) -> Input {
        let mut input = Input::arbitrary_take_rest(Unstructured::new(data)).unwrap_or_default();
        input.ops.truncate(MAX_OPS);
        input
    }

    /// The bug the plant byte asks for, if this build can plant bugs at all.
    pub fn planted_bug(&self) -> Option<Bug> {
        match self.plant {
            0 => None,
            n if Planted::AVAILABLE => Some(Bug::ALL[usize::from(n - 1) % Bug::ALL.len()]),
            _ => None,
        }
    }
}

/// The plant byte that plants `bug` (see [`Input::planted_bug`]).
pub fn plant_byte(bug: Bug) -> u8 {
    let index = Bug::ALL
        .iter()
        .position(|b| *b == bug)
        .unwrap_or_else(|| unreachable!("every bug is in the catalogue"));
    index as u8 + 1
}

// ---------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------

/// What one run did: the oracle's positive controls (a run where nothing
/// was delivered must not pass as "no leak") and a digest of every answer,
/// for the determinism check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub planted: Option<Bug>,
    pub ops: usize,
    pub requests: usize,
    pub controls: crate::check::Controls,
    /// SHA-256 over every status and body, in order.
    pub trace_sha256: String,
}

/// The fuzz target: run one input; panic only on a real defect.
pub fn run(data: &[u8]) {
    let _ = run_with_stats(data);
}

/// [`run`], returning what the run did.
pub fn run_with_stats(data: &[u8]) -> Stats {
    let input = Input::decode(data);
    // Paused time (tokio's `test-util`, which turmoil turns on): timers
    // fire only when every task waits, so a hang shows as a timeout at
    // once and no run depends on the wall clock.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let local = tokio::task::LocalSet::new();
    let panics = crate::check::panics::collect();
    local.block_on(&runtime, async {
        let mut harness = Harness::new(&input);
        for (index, op) in input.ops.iter().enumerate() {
            harness.op_index = index;
            harness.step(op).await;
            harness.stats.ops += 1;
            harness.report_violations();
        }
        harness.finish(panics.finish())
    })
}

// ---------------------------------------------------------------------------
// The world: two services and a worker, connected by in-process pipes.
// ---------------------------------------------------------------------------

/// Accepts the server ends of in-process pipes for `serve_with`.
struct Incoming(mpsc::UnboundedReceiver<DuplexStream>);

impl axum::serve::Listener for Incoming {
    type Io = DuplexStream;
    type Addr = ();

    async fn accept(&mut self) -> (DuplexStream, ()) {
        match self.0.recv().await {
            Some(io) => (io, ()),
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Connects to a router served by [`serve`]: a fresh pipe per connection,
/// refused while `down` is set.
struct Pipe {
    server: mpsc::UnboundedSender<DuplexStream>,
    down: Option<Arc<AtomicBool>>,
}

impl Connect for Pipe {
    fn connect(&self) -> ConnectFuture {
        let down = self.down.as_ref().is_some_and(|d| d.load(Ordering::SeqCst));
        let client = if down {
            None
        } else {
            let (client, server) = tokio::io::duplex(64 * 1024);
            self.server.send(server).ok().map(|()| match &self.down {
                Some(down) => Box::new(Severable {
                    io: client,
                    down: down.clone(),
                }) as BoxIo,
                None => Box::new(client) as BoxIo,
            })
        };
        Box::pin(async move { client.ok_or_else(severed) })
    }
}

fn severed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "the export side is cut off from the store",
    )
}

/// A connection that fails every read and write while `down` is set, so
/// that pooled connections are cut off too. (The harness flips `down` only
/// between operations, when nothing waits on the pipe.)
struct Severable {
    io: DuplexStream,
    down: Arc<AtomicBool>,
}

impl tokio::io::AsyncRead for Severable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.down.load(Ordering::SeqCst) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Severable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.down.load(Ordering::SeqCst) {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serve `router` on the `LocalSet`; returns where to send connections.
fn serve(router: axum::Router) -> mpsc::UnboundedSender<DuplexStream> {
    let (sender, receiver) = mpsc::unbounded_channel();
    Spawner::Local.spawn(crosstalk_service::serve_with(
        Incoming(receiver),
        router,
        Spawner::Local,
    ));
    sender
}

fn client(
    server: &mpsc::UnboundedSender<DuplexStream>,
    down: Option<&Arc<AtomicBool>>,
    max_idle: usize,
) -> HttpClient {
    let pipe = Pipe {
        server: server.clone(),
        down: down.cloned(),
    };
    HttpClient::new(Arc::new(pipe), REQUEST_TIMEOUT, max_idle).with_spawner(Spawner::Local)
}

struct World {
    clock: Arc<ManualClock>,
    /// The routers the harness calls in process (its instruments never
    /// go through a planted client).
    store_router: axum::Router,
    export_router: axum::Router,
    worker: Worker,
    /// While set, the export service and the worker cannot reach the store.
    store_down: Arc<AtomicBool>,
    /// Requests the store received from the export service and the worker.
    service_arrivals: Arc<AtomicU64>,
    /// While `true`, the store holds every request of the export service
    /// and the worker before handling it (`Harness::abandon`).
    hold_service_requests: watch::Sender<bool>,
}

impl World {
    fn new(planted: Planted, config: u8) -> World {
        let clock = Arc::new(ManualClock::new(crate::net::EPOCH_MS));
        let store = Store::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(STORE_SEED)),
            StoreConfig {
                service_token: SERVICE_TOKEN.to_string(),
                password_iterations: 1,
                limits: Default::default(),
                hold_ms: crate::plan::STORE_HOLD_MS,
            },
        )
        .expect("the store opens on memory")
        .with_planted(planted);
        let store_router = crosstalk_store::router(Arc::new(store));
        let service_arrivals = Arc::new(AtomicU64::new(0));
        let (hold_service_requests, held) = watch::channel(false);
        let arrivals = service_arrivals.clone();
        let counted_store_router = store_router.clone().layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                arrivals.fetch_add(1, Ordering::SeqCst);
                let mut held = held.clone();
                async move {
                    // Released when the harness says so (or is gone).
                    let _ = held.wait_for(|held| !*held).await;
                    next.run(request).await
                }
            },
        ));
        let store_for_services = serve(counted_store_router);
        let store_down = Arc::new(AtomicBool::new(false));
        let service_pool = if config & 4 == 0 { 2 } else { 0 };

        let service = ExportService::open(
            redb::backends::InMemoryBackend::new(),
            clock.clone(),
            Arc::new(SeededEntropy::from_seed_u64(EXPORT_SEED)),
            StoreClient::new(
                client(&store_for_services, Some(&store_down), service_pool).with_planted(planted),
                SERVICE_TOKEN,
            ),
            ExportConfig {
                worker_token: WORKER_TOKEN.to_string(),
                agent_tokens: vec![(AGENT_NAME.to_string(), AGENT_TOKEN.to_string())],
                link_ttl_ms: LINK_TTL_MS,
                max_downloads: MAX_DOWNLOADS,
                max_verify_attempts: crosstalk_export::tickets::MAX_VERIFY_ATTEMPTS,
                lease_ms: LEASE_MS,
                max_attempts: MAX_ATTEMPTS,
                retry_backoff_ms: 1_000,
                max_backoff_ms: 4_000,
                deadline_ms: 30 * DAY_MS,
                max_extension_ms: 60 * DAY_MS,
                rate_limit_max: RATE_LIMIT_MAX,
                rate_limit_window_ms: RATE_LIMIT_WINDOW_MS,
                limits: Default::default(),
            },
        )
        .expect("the export service opens on memory")
        .with_planted(planted);
        let export_router = crosstalk_export::router(Arc::new(service));
        let export_server = serve(export_router.clone());

        let worker = Worker::new(
            WorkerConfig {
                name: "fuzz-worker".to_string(),
                worker_token: WORKER_TOKEN.to_string(),
                poll_ms: 50,
                page_items: PAGE_ITEMS[usize::from(config & 3)],
            },
            client(&export_server, None, 2).with_planted(planted),
            StoreClient::new(
                client(&store_for_services, Some(&store_down), 2).with_planted(planted),
                SERVICE_TOKEN,
            ),
            clock.clone(),
        )
        .with_planted(planted);

        World {
            clock,
            store_router,
            export_router,
            worker,
            store_down,
            service_arrivals,
            hold_service_requests,
        }
    }

    fn now_ms(&self) -> u64 {
        crosstalk_model::Clock::now_ms(&*self.clock)
    }

    fn router(&self, server: Server) -> axum::Router {
        match server {
            Server::Store => self.store_router.clone(),
            Server::Export => self.export_router.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// What the driver knows exists (to pick ids from); ground truth is the
// oracle's.
// ---------------------------------------------------------------------------

/// An account as one holder had it: a new sign-up with the same email is
/// a new principal.
struct Principal {
    person: usize,
    account: AccountId,
    closed: bool,
    /// The principal's index in the oracle.
    oracle_id: usize,
}

struct Person {
    email: String,
    /// The principal holding the person's email now.
    current: Option<usize>,
    /// Every session the person ever got: (principal, token), oldest first.
    sessions: Vec<(usize, String)>,
    /// Devices (indices into `Model::devices`) the person holds now.
    devices: Vec<usize>,
    /// The `next_cursor` of the person's last listing.
    cursor: Option<String>,
    last_upload: Option<LastUpload>,
}

struct LastUpload {
    token: String,
    body: Vec<u8>,
    /// The watermark nonce it carries, and the recording if it was stored.
    nonce: u64,
    stored: Option<RecordingId>,
}

struct Device {
    id: DeviceId,
    token: String,
    /// `owners[e]` owned the device in ownership epoch `e`.
    owners: Vec<usize>,
}

/// One watermarked capture the store acknowledged.
struct Mark {
    owner: usize,
    recording: RecordingId,
}

struct Export {
    id: ExportId,
    principal: usize,
    /// Download paths its principal learnt, each with when it was first
    /// seen (the export seen ready, as far as that link is concerned).
    links: Vec<(String, u64)>,
    /// When its principal first asked for it (0: learnt of otherwise, so
    /// no recording is required in it).
    requested_ms: u64,
}

struct Ticket {
    id: u64,
    target: usize,
}

#[derive(Default)]
struct Model {
    principals: Vec<Principal>,
    people: Vec<Person>,
    devices: Vec<Device>,
    /// nonce -> mark.
    marks: std::collections::BTreeMap<u64, Mark>,
    next_nonce: u64,
    exports: Vec<Export>,
    tickets: Vec<Ticket>,
    /// Claims the worker took and abandoned (its lease runs out).
    abandoned_claims: Vec<ClaimedJob>,
}

impl Model {
    /// Marks of any principal `person` ever was, in nonce order.
    fn marks_of_person(&self, person: usize) -> Vec<u64> {
        self.marks
            .iter()
            .filter(|(_, m)| self.principals[m.owner].person == person)
            .map(|(n, _)| *n)
            .collect()
    }

    fn latest_session(&self, person: usize, principal: usize) -> Option<String> {
        self.people[person]
            .sessions
            .iter()
            .rev()
            .find(|(p, _)| *p == principal)
            .map(|(_, token)| token.clone())
    }

    fn export_index(&self, id: ExportId) -> Option<usize> {
        self.exports.iter().position(|e| e.id == id)
    }
}

/// Who receives an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receiver {
    /// Whoever holds no (valid) credential.
    Anonymous,
    /// A support agent.
    Agent,
    Principal(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    Store,
    Export,
}

/// One answer, read in full.
struct Reply {
    server: Server,
    method: Method,
    path: String,
    status: StatusCode,
    content_type: String,
    /// The `Cache-Control` header ("" when absent).
    cache_control: String,
    /// Whether the request carried a bearer token.
    authenticated: bool,
    body: Bytes,
    /// When the request was sent and the answer read (the client's times).
    sent_ms: u64,
    at_ms: u64,
}

impl Reply {
    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {} {} -> {}",
            self.server, self.method, self.path, self.status
        )
    }
}

enum Body {
    Empty,
    Json(serde_json::Value),
    Raw {
        bytes: Vec<u8>,
        content_type: Option<&'static str>,
    },
}

// ---------------------------------------------------------------------------
// The harness: operations and the oracle.
// ---------------------------------------------------------------------------

struct Harness<'a> {
    input: &'a Input,
    world: World,
    model: Model,
    oracle: Oracle,
    /// When the export side was cut off from the store, while it is.
    store_down_since: Option<u64>,
    /// Every store outage, for the oracle's API-contract verdict.
    faults: FaultLog,
    stats: Stats,
    trace: Sha256,
    op_index: usize,
    /// The last observation's service-clock millisecond and its order in it.
    observed: (u64, u64),
}

impl<'a> Harness<'a> {
    fn new(input: &'a Input) -> Harness<'a> {
        let bug = input.planted_bug();
        let planted = Planted::of(bug);
        let people = (0..PEOPLE)
            .map(|i| Person {
                // Every other person's address holds every character a
                // query must percent-encode (`crate::addresses`).
                email: match i % 2 {
                    0 => format!("person{i}@example.com"),
                    _ => crate::addresses::awkward(i, 0, 4),
                },
                current: None,
                sessions: Vec::new(),
                devices: Vec::new(),
                cursor: None,
                last_upload: None,
            })
            .collect();
        Harness {
            input,
            world: World::new(planted, input.config),
            model: Model {
                people,
                ..Model::default()
            },
            oracle: Harness::oracle(),
            store_down_since: None,
            faults: FaultLog::default(),
            stats: Stats {
                planted: bug,
                ..Stats::default()
            },
            trace: Sha256::new(),
            op_index: 0,
            observed: (0, 0),
        }
    }

    /// The oracle, with the pseudo-principals of callers without an account.
    fn oracle() -> Oracle {
        let mut oracle = Oracle::new(WatermarkKey::for_seed(WATERMARK_SEED), Vec::new());
        // The services' manual clock counts from zero in this driver's
        // milliseconds, each spread over its observations (`observed_ms`).
        oracle.set_service_clock(crate::check::ServiceClock {
            epoch_ms: 0,
            per_ms: OBSERVATIONS_PER_MS,
        });
        assert_eq!(
            oracle.add_principal("an anonymous caller".into()),
            ANONYMOUS
        );
        assert_eq!(oracle.add_principal("a support agent".into()), AGENT);
        oracle
    }

    /// The end of the run: the API contract against every outage, with
    /// the panics collected inside the services.
    fn finish(mut self, panics: Vec<crate::check::panics::ServicePanic>) -> Stats {
        if let Some(since) = self.store_down_since.take() {
            self.faults.push(
                "export side cut off from the store".into(),
                &[EXPORT_HOST],
                since,
                u64::MAX,
            );
        }
        self.oracle.judge_contract(&self.faults, panics);
        self.report_violations();
        self.stats.controls = self.oracle.controls().clone();
        self.stats.trace_sha256 = hex::encode(self.trace.finalize());
        self.stats
    }

    /// Panic (the fuzzer's crash) with the oracle's first violation, if
    /// any, and the operations up to it.
    fn report_violations(&self) {
        let Some(first) = self.oracle.violations().first() else {
            return;
        };
        let mut ops = String::new();
        for (i, op) in self.input.ops.iter().enumerate().take(self.op_index + 1) {
            ops.push_str(&format!("\n  {i:>2}: {op:?}"));
        }
        let planted = match self.stats.planted {
            Some(bug) => format!("planted bug {bug}"),
            None => "no planted bug".to_string(),
        };
        panic!(
            "export_api: {} at operation {} ({planted}, config {:#04x}), {} ms, to {}:\n  {}\noperations:{ops}",
            first.invariant.describe(),
            self.op_index,
            self.input.config,
            first.at_ms,
            first.receiver.as_deref().unwrap_or("-"),
            first.detail,
        );
    }

    /// Tell the oracle which promise of the API an answer broke (it judges
    /// which invariant that is), and stop.
    fn broken(&mut self, promise: BrokenPromise, detail: impl fmt::Display) -> ! {
        let now = self.observed_ms();
        self.oracle
            .on_broken_promise(promise, now, detail.to_string());
        self.report_violations();
        unreachable!("a violation was just reported")
    }

    /// The time of an observation, for the oracle: the service clock's
    /// millisecond times 1,000 plus the observation's order within that
    /// millisecond. Many requests share a millisecond of the manual clock
    /// (as they would in production: two uploads in one millisecond is a
    /// case the store must handle), yet the oracle must know which came
    /// first, so every observation gets its own, later time.
    fn observed_ms(&mut self) -> u64 {
        let ms = self.world.now_ms();
        if ms != self.observed.0 {
            self.observed = (ms, 0);
        }
        self.observed.1 = (self.observed.1 + 1).min(OBSERVATIONS_PER_MS - 1);
        ms * OBSERVATIONS_PER_MS + self.observed.1
    }

    /// The oracle's index of whoever receives an answer.
    fn oracle_id(&self, receiver: Receiver) -> usize {
        match receiver {
            Receiver::Anonymous => ANONYMOUS,
            Receiver::Agent => AGENT,
            Receiver::Principal(p) => self.model.principals[p].oracle_id,
        }
    }

    fn person(&self, byte: u8) -> usize {
        usize::from(byte) % PEOPLE
    }

    fn describe_principal(&self, principal: usize) -> String {
        let p = &self.model.principals[principal];
        format!(
            "principal #{principal} (person {} as {}{})",
            p.person,
            p.account,
            if p.closed { ", closed" } else { "" }
        )
    }

    fn describe_receiver(&self, receiver: Receiver) -> String {
        match receiver {
            Receiver::Anonymous => "an anonymous caller".to_string(),
            Receiver::Agent => "a support agent".to_string(),
            Receiver::Principal(p) => self.describe_principal(p),
        }
    }

    fn describe_mark(&self, nonce: u64) -> String {
        match self.model.marks.get(&nonce) {
            Some(m) => format!(
                "recording {} (watermark {nonce:016x}) of {}",
                m.recording,
                self.describe_principal(m.owner)
            ),
            None => format!("watermark {nonce:016x} (never acknowledged)"),
        }
    }

    fn describe_mark_of(&self, recording: RecordingId) -> String {
        match self
            .model
            .marks
            .iter()
            .find(|(_, m)| m.recording == recording)
        {
            Some((nonce, _)) => self.describe_mark(*nonce),
            None => format!("{recording}"),
        }
    }

    /// The credential `choice` gives `person`, and who that makes the
    /// caller (see [`Op`]).
    fn credential(&self, person: usize, choice: u8) -> (Option<String>, Receiver) {
        let state = &self.model.people[person];
        match choice % 4 {
            0 => match state.current {
                Some(principal) => match self.model.latest_session(person, principal) {
                    Some(token) => (Some(token), Receiver::Principal(principal)),
                    None => (None, Receiver::Anonymous),
                },
                None => self.stale_session(person),
            },
            1 => (None, Receiver::Anonymous),
            2 => self.stale_session(person),
            _ => (Some(GARBAGE_TOKEN.to_string()), Receiver::Anonymous),
        }
    }

    /// The newest session of a closed principal of `person`, else the
    /// person's oldest session.
    fn stale_session(&self, person: usize) -> (Option<String>, Receiver) {
        let sessions = &self.model.people[person].sessions;
        let stale = sessions
            .iter()
            .rev()
            .find(|(p, _)| self.model.principals[*p].closed)
            .or_else(|| sessions.first());
        match stale {
            Some((principal, token)) => (Some(token.clone()), Receiver::Principal(*principal)),
            None => (None, Receiver::Anonymous),
        }
    }

    // -- requests -------------------------------------------------------

    /// Call a router in process, one millisecond after the last call.
    async fn call(
        &mut self,
        server: Server,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> Reply {
        let sent_ms = self.observed_ms();
        let request = self.request(&method, path, token, body);
        let response = self.world.router(server).oneshot(request).await;
        let Ok(response) = response;
        self.reply(server, method, path, token.is_some(), sent_ms, response)
            .await
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> http::Request<axum::body::Body> {
        let mut builder = http::Request::builder().method(method.clone()).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = match body {
            Body::Empty => Vec::new(),
            Body::Json(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(&value).unwrap_or_default()
            }
            Body::Raw {
                bytes,
                content_type,
            } => {
                if let Some(content_type) = content_type {
                    builder = builder.header(header::CONTENT_TYPE, content_type);
                }
                bytes
            }
        };
        builder
            .body(axum::body::Body::from(bytes))
            .unwrap_or_else(|e| {
                unreachable!("the harness builds valid requests: {method} {path}: {e}")
            })
    }

    /// Read an answer in full and fold it into the trace.
    async fn reply(
        &mut self,
        server: Server,
        method: Method,
        path: &str,
        authenticated: bool,
        sent_ms: u64,
        response: axum::response::Response,
    ) -> Reply {
        let (content_type, cache_control) = {
            let header = |name: header::HeaderName| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            (header(header::CONTENT_TYPE), header(header::CACHE_CONTROL))
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => self.broken(
                BrokenPromise::BodyBrokeOff,
                format!("{server:?} {method} {path}: the body of a {status} answer broke off: {e}"),
            ),
        };
        self.stats.requests += 1;
        self.trace.update((self.op_index as u64).to_be_bytes());
        self.trace.update(status.as_u16().to_be_bytes());
        self.trace.update((body.len() as u64).to_be_bytes());
        self.trace.update(&body);
        Reply {
            server,
            method,
            path: path.to_string(),
            status,
            content_type,
            cache_control,
            authenticated,
            body,
            sent_ms,
            at_ms: self.observed_ms(),
        }
    }

    // -- observations, for the oracle -------------------------------------

    /// Hand one answer to `receiver` to the oracle: its status and error
    /// body to the API contract always; what it carried (recordings, links)
    /// when `content` is set. Returns the watermarks it carried.
    fn judge(&mut self, reply: &Reply, receiver: Receiver, content: bool) -> BTreeSet<u64> {
        let who = self.oracle_id(receiver);
        let answer = crate::check::replies::Answer {
            service: match reply.server {
                Server::Store => STORE_HOST,
                Server::Export => EXPORT_HOST,
            },
            request: format!("{} {}", reply.method, reply.path),
            status: reply.status.as_u16(),
            content_type: &reply.content_type,
            body: &reply.body,
            has_body: reply.method != Method::HEAD,
            cache_control: &reply.cache_control,
            authenticated: reply.authenticated,
            principal: Some(who),
            sent_ms: reply.sent_ms,
            at_ms: reply.at_ms,
        };
        self.oracle.answer_received(&answer);
        if !content {
            return BTreeSet::new();
        }
        let channel = format!("{reply}");
        let marks = self.marks_in(&reply.body);
        self.oracle
            .receive(who, &channel, &marks, reply.sent_ms, reply.at_ms);
        for (_, subject) in links_in(&reply.body) {
            self.oracle
                .link_delivered(who, subject.0, &channel, reply.at_ms);
        }
        marks.nonces.into_iter().collect()
    }

    /// Every watermark in `bytes`, once: transcripts in the text, audio in
    /// a WAV or in the raw bytes at both sample alignments, and every entry
    /// of a zip archive (read by the oracle, not the service).
    fn marks_in(&self, bytes: &[u8]) -> Decoded {
        let key = self.oracle.key();
        let mut nonces = BTreeSet::new();
        let mut invalid_marks = 0;
        let mut take = |d: Decoded| {
            nonces.extend(d.nonces);
            invalid_marks += d.invalid_marks;
        };
        take(key.decode_transcript(&String::from_utf8_lossy(bytes)));
        take(key.decode_audio(bytes));
        if bytes.len() > 1 {
            take(key.decode_audio(&bytes[1..]));
        }
        if bytes.starts_with(b"PK")
            && let Ok(contents) = self.oracle.read_archive(bytes)
        {
            nonces.extend(contents.audio.iter().chain(&contents.text));
            invalid_marks += contents.invalid_marks;
        }
        Decoded {
            nonces: nonces.into_iter().collect(),
            invalid_marks,
        }
    }

    fn expect_json<T: serde::de::DeserializeOwned>(&mut self, reply: &Reply) -> T {
        match serde_json::from_slice(&reply.body) {
            Ok(value) => value,
            Err(e) => self.broken(
                BrokenPromise::NotDocumentedJson,
                format!("{reply} is not the documented JSON ({e}): {}", reply.text()),
            ),
        }
    }

    // -- operations -----------------------------------------------------

    async fn step(&mut self, op: &Op) {
        match op {
            Op::Signup { person } => self.signup(self.person(*person)).await,
            Op::Login { person } => self.login(self.person(*person)).await,
            Op::RegisterDevice { person } => {
                self.register_device(self.person(*person)).await;
            }
            Op::Upload {
                person,
                device,
                content,
                captured_ago_s,
                epochs_back,
            } => {
                self.upload(
                    self.person(*person),
                    *device,
                    *content,
                    *captured_ago_s,
                    *epochs_back,
                )
                .await
            }
            Op::RetryUpload { person } => self.retry_upload(self.person(*person)).await,
            Op::List {
                viewer,
                credential,
                limit,
                cursor,
            } => {
                self.list(self.person(*viewer), *credential, *limit, *cursor)
                    .await
            }
            Op::FetchAudio {
                viewer,
                credential,
                owner,
                pick,
            } => {
                self.fetch_audio(
                    self.person(*viewer),
                    *credential,
                    self.person(*owner),
                    *pick,
                )
                .await
            }
            Op::DeleteOne {
                person,
                owner,
                pick,
            } => {
                self.delete_one(self.person(*person), self.person(*owner), *pick)
                    .await
            }
            Op::DeleteMany {
                person,
                mode,
                from_s,
                to_s,
            } => {
                self.delete_many(self.person(*person), *mode, *from_s, *to_s)
                    .await
            }
            Op::CloseAccount { person } => self.close(self.person(*person)).await,
            Op::RequestExport { person, credential } => {
                self.request_export(self.person(*person), *credential).await
            }
            Op::Work { mode } => self.work(*mode).await,
            Op::Status {
                viewer,
                credential,
                owner,
                pick,
            } => {
                self.status(
                    self.person(*viewer),
                    *credential,
                    self.person(*owner),
                    *pick,
                )
                .await
            }
            Op::Download {
                viewer,
                credential,
                owner,
                pick,
            } => {
                self.download(
                    self.person(*viewer),
                    *credential,
                    self.person(*owner),
                    *pick,
                )
                .await
            }
            Op::Feed { person, credential } => {
                self.feed(self.person(*person), *credential).await;
            }
            Op::Advance { step } => {
                self.world
                    .clock
                    .advance(ADVANCE_MS[usize::from(*step) % ADVANCE_MS.len()]);
            }
            Op::Transfer { from, device, to } => {
                self.transfer(self.person(*from), *device, self.person(*to))
                    .await
            }
            Op::StoreDown { down } => {
                let now = self.observed_ms();
                match (down & 1 == 1, self.store_down_since) {
                    (true, None) => self.store_down_since = Some(now),
                    (false, Some(since)) => {
                        self.store_down_since = None;
                        self.faults.push(
                            "export side cut off from the store".into(),
                            &[EXPORT_HOST],
                            since,
                            now,
                        );
                    }
                    _ => {}
                }
                self.world
                    .store_down
                    .store(self.store_down_since.is_some(), Ordering::SeqCst);
            }
            Op::Abandon {
                viewer,
                kind,
                extra_yields,
            } => {
                self.abandon(self.person(*viewer), *kind, *extra_yields)
                    .await
            }
            Op::Ticket {
                requester,
                target,
                action,
                pick,
            } => {
                self.ticket(
                    self.person(*requester),
                    self.person(*target),
                    *action,
                    *pick,
                )
                .await
            }
            Op::Raw {
                router,
                method,
                template,
                id,
                credential,
                person,
                content_type,
                body_len,
                body,
            } => {
                let len = usize::from(*body_len) % (MAX_RAW_BODY_BYTES + 1);
                self.raw(
                    *router,
                    *method,
                    *template,
                    *id,
                    *credential,
                    self.person(*person),
                    *content_type,
                    &body[..len],
                )
                .await
            }
        }
    }

    async fn signup(&mut self, person: usize) {
        let email = self.model.people[person].email.clone();
        let body = json!({ "email": email, "password": PASSWORD });
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                "/v1/accounts",
                None,
                Body::Json(body),
            )
            .await;
        self.judge(&reply, Receiver::Anonymous, true);
        if reply.status != StatusCode::CREATED {
            return;
        }
        let signed: SignupResponse = self.expect_json(&reply);
        if let Some(holder) = self.model.people[person].current {
            self.broken(
                BrokenPromise::SignUpOfHeldEmail,
                format!(
                    "{reply}: the email of open {} signed up again as {}",
                    self.describe_principal(holder),
                    signed.account_id
                ),
            );
        }
        let recycled = !self.model.people[person].sessions.is_empty();
        let principal = self.model.principals.len();
        let oracle_id = self.oracle.add_principal(email);
        self.oracle.people[oracle_id].account_id = Some(signed.account_id.0);
        self.model.principals.push(Principal {
            person,
            account: signed.account_id,
            closed: false,
            oracle_id,
        });
        let state = &mut self.model.people[person];
        state.current = Some(principal);
        state.sessions.push((principal, signed.session_token));
        state.cursor = None;
        if recycled {
            self.oracle.on(Event::AccountRecycled);
        }
    }

    async fn login(&mut self, person: usize) {
        let email = self.model.people[person].email.clone();
        let body = json!({ "email": email, "password": PASSWORD });
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                "/v1/sessions",
                None,
                Body::Json(body),
            )
            .await;
        self.judge(&reply, Receiver::Anonymous, true);
        if reply.status != StatusCode::CREATED {
            return;
        }
        let logged: SignupResponse = self.expect_json(&reply);
        let current = self.model.people[person].current;
        match current {
            Some(principal) if self.model.principals[principal].account == logged.account_id => {
                self.model.people[person]
                    .sessions
                    .push((principal, logged.session_token));
            }
            _ => self.broken(BrokenPromise::SignInOpenedAnother,
                format!(
                    "{reply}: a login to person {person}'s email opened {} while the email belongs to {}",
                    logged.account_id,
                    match current {
                        Some(p) => self.describe_principal(p),
                        None => "no open account".to_string(),
                    }
                ),
            ),
        }
    }

    /// Register a device with the person's session; returns its index.
    async fn register_device(&mut self, person: usize) -> Option<usize> {
        let (token, receiver) = self.credential(person, 0);
        let body = json!({ "name": "kitchen speaker" });
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                "/v1/devices",
                token.as_deref(),
                Body::Json(body),
            )
            .await;
        self.judge(&reply, receiver, true);
        if reply.status != StatusCode::CREATED {
            return None;
        }
        let registered: RegisterDeviceResponse = self.expect_json(&reply);
        let Receiver::Principal(owner) = receiver else {
            self.broken(
                BrokenPromise::DeviceWithoutSession,
                format!("{reply}: a device registered without a session"),
            );
        };
        let index = self.model.devices.len();
        self.model.devices.push(Device {
            id: registered.device_id,
            token: registered.device_token,
            owners: vec![owner],
        });
        self.model.people[person].devices.push(index);
        Some(index)
    }

    async fn upload(
        &mut self,
        person: usize,
        device: u8,
        content: u8,
        captured_ago_s: u8,
        epochs_back: u8,
    ) {
        if self.model.people[person].devices.is_empty() {
            if self.model.people[person].current.is_none() {
                return;
            }
            if self.register_device(person).await.is_none() {
                return;
            }
        }
        let held = &self.model.people[person].devices;
        let index = held[usize::from(device) % held.len()];
        let (device_token, owners) = {
            let d = &self.model.devices[index];
            (d.token.clone(), d.owners.clone())
        };
        let current_epoch = owners.len() - 1;
        let epoch = current_epoch - usize::from(epochs_back) % owners.len();
        let owner = owners[epoch];
        let nonce = self.model.next_nonce;
        self.model.next_nonce += 1;
        let content = u64::from(content) % WORDS.len() as u64;
        let now = self.world.now_ms();
        let captured_at_ms = now - u64::from(captured_ago_s % 4) * 1_000;
        let owner_id = self.model.principals[owner].oracle_id;
        let started = self.observed_ms();
        self.oracle
            .utterance_started(nonce, owner_id, index as u32, started);
        self.oracle.utterance_captured_at(nonce, captured_at_ms);
        let key = self.oracle.key();
        let request = IngestRequest {
            upload_key: format!("capture-{nonce}"),
            captured_at_ms,
            transcript: key.transcript(nonce, WORDS[content as usize]),
            audio_base64: STANDARD.encode(key.audio(nonce, content)),
            ownership_epoch: (epoch != current_epoch).then_some(epoch as u32),
            intent: None,
        };
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                "/v1/recordings",
                Some(&device_token),
                Body::Raw {
                    bytes: body.clone(),
                    content_type: Some("application/json"),
                },
            )
            .await;
        self.judge(&reply, Receiver::Principal(owners[current_epoch]), true);
        let mut stored = None;
        if reply.status == StatusCode::CREATED {
            let ingested: IngestResponse = self.expect_json(&reply);
            self.model.marks.insert(
                nonce,
                Mark {
                    owner,
                    recording: ingested.recording_id,
                },
            );
            self.oracle
                .utterance_acked(nonce, ingested.recording_id.0, reply.at_ms);
            stored = Some(ingested.recording_id);
        }
        self.model.people[person].last_upload = Some(LastUpload {
            token: device_token,
            body,
            nonce,
            stored,
        });
    }

    async fn retry_upload(&mut self, person: usize) {
        let Some(last) = self.model.people[person].last_upload.as_ref() else {
            return;
        };
        let (token, body, nonce, stored) = (
            last.token.clone(),
            last.body.clone(),
            last.nonce,
            last.stored,
        );
        // A retry of a refused upload is filed under the device's owner as
        // of the retry; the oracle knows the capture's owner as of the
        // first attempt. Only retry where the two agree.
        let current_owner = self
            .model
            .devices
            .iter()
            .find(|d| d.token == token)
            .and_then(|d| d.owners.last())
            .map(|&o| self.model.principals[o].oracle_id);
        if stored.is_none() && current_owner != self.oracle.owner_of(nonce) {
            return;
        }
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                "/v1/recordings",
                Some(&token),
                Body::Raw {
                    bytes: body,
                    content_type: Some("application/json"),
                },
            )
            .await;
        self.judge(&reply, Receiver::Anonymous, true);
        if !reply.status.is_success() {
            return;
        }
        let ingested: IngestResponse = self.expect_json(&reply);
        self.oracle.claim_kept("upload retry answered");
        match stored {
            Some(first) if ingested.recording_id != first || !ingested.duplicate => self.broken(
                BrokenPromise::RetryAnsweredAnother,
                format!(
                    "{reply}: the retry of an upload stored as {first} answered {} (duplicate: {})",
                    ingested.recording_id, ingested.duplicate
                ),
            ),
            Some(_) => {}
            None => {
                // The first attempt was refused; this one was stored, for
                // the owner of the device's current epoch.
                let owner = self
                    .model
                    .devices
                    .iter()
                    .find(|d| d.token == token)
                    .and_then(|d| d.owners.last().copied());
                let registered = self.oracle.owner_of(nonce);
                let same_owner =
                    owner.is_some_and(|o| Some(self.model.principals[o].oracle_id) == registered);
                if let (Some(owner), false, true) = (owner, ingested.duplicate, same_owner) {
                    self.model.marks.insert(
                        nonce,
                        Mark {
                            owner,
                            recording: ingested.recording_id,
                        },
                    );
                    self.oracle
                        .utterance_acked(nonce, ingested.recording_id.0, reply.at_ms);
                    if let Some(last) = self.model.people[person].last_upload.as_mut() {
                        last.stored = Some(ingested.recording_id);
                    }
                }
            }
        }
    }

    async fn list(&mut self, viewer: usize, credential: u8, limit: u8, cursor: u8) {
        let (token, receiver) = self.credential(viewer, credential);
        let limit = match limit % 7 {
            0 => None,
            n @ 1..=4 => Some(u64::from(n)),
            5 => Some(100),
            _ => Some(0),
        };
        let cursor = match cursor % 4 {
            0 => None,
            1 => self.model.people[viewer].cursor.clone(),
            2 => (1..PEOPLE)
                .map(|k| (viewer + k) % PEOPLE)
                .find_map(|p| self.model.people[p].cursor.clone()),
            _ => Some("1.00112233445566778899aabbccddeeff".to_string()),
        };
        let mut query = Vec::new();
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(cursor) = &cursor {
            query.push(format!("cursor={cursor}"));
        }
        let path = if query.is_empty() {
            "/v1/recordings".to_string()
        } else {
            format!("/v1/recordings?{}", query.join("&"))
        };
        let reply = self
            .call(
                Server::Store,
                Method::GET,
                &path,
                token.as_deref(),
                Body::Empty,
            )
            .await;
        let marks = self.judge(&reply, receiver, true);
        if reply.status != StatusCode::OK {
            return;
        }
        let page: RecordingPage = self.expect_json(&reply);
        let Receiver::Principal(principal) = receiver else {
            self.broken(
                BrokenPromise::ListingWithoutSession,
                format!(
                    "{reply}: a listing served to {}",
                    self.describe_receiver(receiver)
                ),
            );
        };
        self.model.people[viewer].cursor = page.next_cursor.clone();
        if cursor.is_none() && page.next_cursor.is_none() {
            // A complete listing: every acknowledged, undeleted recording
            // of the principal must be in it, no deleted one.
            let who = self.model.principals[principal].oracle_id;
            self.oracle
                .audit_history(who, &marks, reply.sent_ms, reply.at_ms);
        }
    }

    async fn fetch_audio(&mut self, viewer: usize, credential: u8, owner: usize, pick: u8) {
        let (token, receiver) = self.credential(viewer, credential);
        let candidates = self.model.marks_of_person(owner);
        let (recording, nonce) = match candidates.get(usize::from(pick) % candidates.len().max(1)) {
            Some(nonce) => (self.model.marks[nonce].recording, Some(*nonce)),
            None => (RecordingId(u64::from(pick) + 1), None),
        };
        let path = format!("/v1/recordings/{}/audio", recording.0);
        let reply = self
            .call(
                Server::Store,
                Method::GET,
                &path,
                token.as_deref(),
                Body::Empty,
            )
            .await;
        let marks = self.judge(&reply, receiver, true);
        let Some(nonce) = nonce else {
            return;
        };
        let mark = &self.model.marks[&nonce];
        let owner = mark.owner;
        let own_and_live = Receiver::Principal(owner) == receiver
            && !self.oracle.deletion_sent(nonce)
            && !self.model.principals[owner].closed;
        if own_and_live {
            if reply.status != StatusCode::OK || !marks.contains(&nonce) {
                self.broken(
                    BrokenPromise::OwnRecordingNotServed,
                    format!(
                        "{reply}: {} asked for its own {} and got watermarks {marks:?}",
                        self.describe_receiver(receiver),
                        self.describe_mark(nonce)
                    ),
                );
            }
            self.oracle.on(Event::OwnAudioChecked);
        } else if let Receiver::Principal(p) = receiver
            && p != owner
            && !self.model.principals[p].closed
            && credential.is_multiple_of(4)
        {
            // Someone else's id with one's own valid session: refused
            // exactly as if it did not exist.
            let who = self.model.principals[p].oracle_id;
            let what = format!("fetched the audio of {}", self.describe_mark(nonce));
            self.oracle.attempt(
                "foreign recording: playback",
                who,
                reply.status.as_u16(),
                &[404],
                Invariant::AccessControl,
                reply.at_ms,
                &what,
            );
        }
    }

    /// Hand a deletion's answer to the oracle: only the requester's own
    /// recordings the scope covers may be named; they are deleted from now on.
    fn deletion_answered(&mut self, reply: &Reply, principal: usize, scope: DeletionScope) {
        let answer: DeleteResponse = self.expect_json(reply);
        let named: Vec<u64> = answer.deleted.iter().map(|id| id.0).collect();
        let who = self.model.principals[principal].oracle_id;
        self.oracle
            .judge_deletion(who, scope, &named, reply.sent_ms, reply.at_ms);
    }

    async fn delete_one(&mut self, person: usize, owner: usize, pick: u8) {
        let (token, receiver) = self.credential(person, 0);
        let candidates = self.model.marks_of_person(owner);
        let (recording, target_owner) =
            match candidates.get(usize::from(pick) % candidates.len().max(1)) {
                Some(nonce) => (
                    self.model.marks[nonce].recording,
                    Some(self.model.marks[nonce].owner),
                ),
                None => (RecordingId(u64::from(pick) + 1), None),
            };
        let path = format!("/v1/recordings/{}", recording.0);
        let reply = self
            .call(
                Server::Store,
                Method::DELETE,
                &path,
                token.as_deref(),
                Body::Empty,
            )
            .await;
        self.judge(&reply, receiver, true);
        if let (Receiver::Principal(p), Some(target)) = (receiver, target_owner)
            && p != target
            && !self.model.principals[p].closed
        {
            let who = self.model.principals[p].oracle_id;
            let what = format!("deleted {}", self.describe_mark_of(recording));
            self.oracle.attempt(
                "foreign recording: delete",
                who,
                reply.status.as_u16(),
                &[404],
                Invariant::AccessControl,
                reply.at_ms,
                &what,
            );
        }
        if reply.status != StatusCode::OK {
            return;
        }
        let Receiver::Principal(principal) = receiver else {
            self.broken(
                BrokenPromise::DeletionWithoutSession,
                format!("{reply} without a session"),
            );
        };
        self.deletion_answered(&reply, principal, DeletionScope::One(recording.0));
    }

    async fn delete_many(&mut self, person: usize, mode: u8, from_s: u8, to_s: u8) {
        let (token, receiver) = self.credential(person, 0);
        let now = self.world.now_ms();
        let from_ms = now - u64::from(from_s % 8) * 1_000;
        let to_ms = from_ms + u64::from(to_s % 8) * 1_000;
        let (body, scope) = match mode % 3 {
            0 => (json!({ "all": true }), DeletionScope::All),
            1 => (
                json!({ "captured_from_ms": from_ms, "captured_to_ms": to_ms }),
                DeletionScope::Range { from_ms, to_ms },
            ),
            _ => (
                json!({ "all": true, "captured_from_ms": from_ms }),
                DeletionScope::All,
            ),
        };
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                "/v1/recordings/delete",
                token.as_deref(),
                Body::Json(body),
            )
            .await;
        self.judge(&reply, receiver, true);
        if reply.status != StatusCode::OK {
            return;
        }
        let Receiver::Principal(principal) = receiver else {
            self.broken(
                BrokenPromise::DeletionWithoutSession,
                format!("{reply} without a session"),
            );
        };
        if mode % 3 == 2 {
            self.broken(
                BrokenPromise::MalformedDeletionAccepted,
                format!("{reply}: a malformed deletion was accepted"),
            );
        }
        self.deletion_answered(&reply, principal, scope);
    }

    async fn close(&mut self, person: usize) {
        let (token, receiver) = self.credential(person, 0);
        let reply = self
            .call(
                Server::Store,
                Method::DELETE,
                "/v1/accounts/me",
                token.as_deref(),
                Body::Empty,
            )
            .await;
        self.judge(&reply, receiver, true);
        if reply.status != StatusCode::OK {
            return;
        }
        let Receiver::Principal(principal) = receiver else {
            self.broken(
                BrokenPromise::DeletionWithoutSession,
                format!("{reply} without a session"),
            );
        };
        self.deletion_answered(&reply, principal, DeletionScope::All);
        let who = self.model.principals[principal].oracle_id;
        self.oracle.account_closed(who, reply.at_ms);
        self.model.principals[principal].closed = true;
        let owner = self.model.principals[principal].person;
        if self.model.people[owner].current == Some(principal) {
            self.model.people[owner].current = None;
            self.model.people[owner].cursor = None;
        }
    }

    /// Note an export a principal asked for (directly or by a ticket).
    fn note_export(&mut self, reply: &Reply, id: ExportId, principal: usize, requested_ms: u64) {
        match self.model.export_index(id) {
            Some(known) if self.model.exports[known].principal != principal => self.broken(
                BrokenPromise::JoinedAnothersExport,
                format!(
                    "{reply}: {} joined {id}, the export of {}",
                    self.describe_principal(principal),
                    self.describe_principal(self.model.exports[known].principal)
                ),
            ),
            Some(_) => {}
            None => self.model.exports.push(Export {
                id,
                principal,
                links: Vec::new(),
                requested_ms,
            }),
        }
    }

    /// Remember a download path of export `id` learnt by its principal.
    fn note_link(&mut self, id: ExportId, path: &str, seen_ms: u64) {
        if let Some(index) = self.model.export_index(id) {
            let links = &mut self.model.exports[index].links;
            if !links.iter().any(|(l, _)| l == path) {
                links.push((path.to_string(), seen_ms));
            }
        }
    }

    async fn request_export(&mut self, person: usize, credential: u8) {
        let (token, receiver) = self.credential(person, credential);
        let reply = self
            .call(
                Server::Export,
                Method::POST,
                "/v1/exports",
                token.as_deref(),
                Body::Empty,
            )
            .await;
        self.judge(&reply, receiver, true);
        if !matches!(reply.status, StatusCode::ACCEPTED | StatusCode::OK) {
            return;
        }
        let status: ExportStatus = self.expect_json(&reply);
        let Receiver::Principal(principal) = receiver else {
            self.broken(
                BrokenPromise::ExportWithoutSession,
                format!(
                    "{reply}: an export accepted for {}",
                    self.describe_receiver(receiver)
                ),
            );
        };
        self.note_export(&reply, status.export_id, principal, reply.sent_ms);
        if let Some(path) = &status.download_path {
            self.note_link(status.export_id, path, reply.at_ms);
        }
        self.oracle.on(Event::ExportRequested);
    }

    async fn work(&mut self, mode: u8) {
        match mode % 4 {
            0 => {
                for _ in 0..3 {
                    let Some(job) = self.world.worker.claim().await else {
                        break;
                    };
                    let outcome = self.world.worker.work(&job).await;
                    self.judge_outcome(&job, outcome);
                }
            }
            1 => {
                let Some(first) = self.world.worker.claim().await else {
                    return;
                };
                match self.world.worker.claim().await {
                    Some(second) => {
                        let worker = &self.world.worker;
                        let (a, b) = tokio::join!(worker.work(&first), worker.work(&second));
                        self.judge_outcome(&first, a);
                        self.judge_outcome(&second, b);
                    }
                    None => {
                        let outcome = self.world.worker.work(&first).await;
                        self.judge_outcome(&first, outcome);
                    }
                }
            }
            2 => {
                if let Some(job) = self.world.worker.claim().await {
                    self.model.abandoned_claims.push(job);
                }
            }
            _ => {
                if self.model.abandoned_claims.is_empty() {
                    return;
                }
                let job = self.model.abandoned_claims.remove(0);
                let outcome = self.world.worker.work(&job).await;
                self.judge_outcome(&job, outcome);
            }
        }
    }

    fn judge_outcome(&mut self, job: &ClaimedJob, outcome: Outcome) {
        match outcome {
            Outcome::Published => self.oracle.on(Event::ExportCompleted),
            Outcome::FencedOut => self.oracle.claim_kept("stale worker fenced out"),
            Outcome::Failed(reason) if self.store_down_since.is_none() => self.broken(
                BrokenPromise::WorkerFailedWithStoreUp,
                format!(
                    "the worker failed {} of {} with the store reachable: {reason}",
                    job.export_id, job.subject
                ),
            ),
            Outcome::Failed(_) => {}
        }
    }

    /// Exports (indices into `Model::exports`) of any principal `person`
    /// ever was, oldest first.
    fn exports_of_person(&self, person: usize) -> Vec<usize> {
        (0..self.model.exports.len())
            .filter(|&i| self.model.principals[self.model.exports[i].principal].person == person)
            .collect()
    }

    async fn status(&mut self, viewer: usize, credential: u8, owner: usize, pick: u8) {
        let (token, receiver) = self.credential(viewer, credential);
        let candidates = self.exports_of_person(owner);
        let (id, known) = match candidates.get(usize::from(pick) % candidates.len().max(1)) {
            Some(&i) => (self.model.exports[i].id, Some(i)),
            None => (ExportId(u64::from(pick) + 1), None),
        };
        let path = format!("/v1/exports/{}", id.0);
        let reply = self
            .call(
                Server::Export,
                Method::GET,
                &path,
                token.as_deref(),
                Body::Empty,
            )
            .await;
        self.judge(&reply, receiver, true);
        if reply.status != StatusCode::OK {
            return;
        }
        let status: ExportStatus = self.expect_json(&reply);
        if let Some(i) = known {
            let principal = self.model.exports[i].principal;
            if receiver != Receiver::Principal(principal) || status.export_id != id {
                self.broken(
                    BrokenPromise::AnothersExportStatus,
                    format!(
                        "{reply}: {} read the status of {id}, the export of {}",
                        self.describe_receiver(receiver),
                        self.describe_principal(principal)
                    ),
                );
            }
            if let Some(path) = &status.download_path {
                self.note_link(id, path, reply.at_ms);
            }
        }
    }

    async fn download(&mut self, viewer: usize, credential: u8, owner: usize, pick: u8) {
        let exports = self.exports_of_person(owner);
        let known_links = exports
            .iter()
            .any(|&i| !self.model.exports[i].links.is_empty());
        if !known_links && !exports.is_empty() {
            // No link yet: its owner looks up their latest export first.
            let latest = u8::try_from(exports.len() - 1).unwrap_or(u8::MAX);
            self.status(owner, 0, owner, latest).await;
        }
        let (token, receiver) = self.credential(viewer, credential);
        let links: Vec<(usize, String, u64)> = self
            .model
            .exports
            .iter()
            .enumerate()
            .filter(|(_, e)| self.model.principals[e.principal].person == owner)
            .flat_map(|(i, e)| e.links.iter().map(move |(l, seen)| (i, l.clone(), *seen)))
            .collect();
        let (export, path, ready_seen_ms) = match links.get(usize::from(pick) % links.len().max(1))
        {
            Some((i, path, seen)) => (Some(*i), path.clone(), *seen),
            None => (None, format!("/v1/downloads/not-a-link-{pick}"), 0),
        };
        let reply = self
            .call(
                Server::Export,
                Method::GET,
                &path,
                token.as_deref(),
                Body::Empty,
            )
            .await;
        let subject = export.map(|i| self.model.exports[i].principal);
        let own = subject.is_some_and(|s| receiver == Receiver::Principal(s));
        // One's own archive is judged whole below; anything else any
        // caller received is judged here.
        self.judge(&reply, receiver, !(own && reply.status == StatusCode::OK));
        let Some(export) = export else {
            return;
        };
        let what = format!("used a download link of {}", self.model.exports[export].id);
        match receiver {
            Receiver::Anonymous => {
                self.oracle.attempt(
                    "link without a session",
                    ANONYMOUS,
                    reply.status.as_u16(),
                    &[401],
                    Invariant::LinkBinding,
                    reply.at_ms,
                    &what,
                );
            }
            Receiver::Principal(p) if !own && !self.model.principals[p].closed => {
                let who = self.model.principals[p].oracle_id;
                self.oracle.on(Event::ForeignLinkAttempted);
                if self.oracle.attempt(
                    "foreign link",
                    who,
                    reply.status.as_u16(),
                    &[403, 404],
                    Invariant::LinkBinding,
                    reply.at_ms,
                    &what,
                ) {
                    self.oracle.on(Event::ForeignLinkRefused);
                }
            }
            _ => {}
        }
        if own && reply.status == StatusCode::OK {
            self.archive_downloaded(&reply, export, ready_seen_ms);
        } else if own && reply.status == StatusCode::GONE {
            self.oracle.on(Event::ArchiveRevoked);
        }
    }

    /// One's own archive, judged whole by the oracle: isolation and erasure
    /// of every entry, exactness by the client's times (when the export was
    /// asked for, when this link was seen, when the download was sent).
    fn archive_downloaded(&mut self, reply: &Reply, export: usize, ready_seen_ms: u64) {
        let contents: ArchiveContents = match self.oracle.read_archive(&reply.body) {
            Ok(contents) => contents,
            Err(why) => self.broken(
                BrokenPromise::UnreadableArchive,
                format!("{reply} is not a readable archive: {why}"),
            ),
        };
        let export = &self.model.exports[export];
        let (subject, requested_ms) = (export.principal, export.requested_ms);
        let who = self.model.principals[subject].oracle_id;
        let channel = format!("{reply}");
        self.oracle.check_archive(
            who,
            &channel,
            &contents,
            requested_ms,
            ready_seen_ms,
            reply.sent_ms,
            reply.at_ms,
        );
    }

    /// Read the person's feed; returns the notifications, if it was served.
    async fn feed(&mut self, person: usize, credential: u8) -> Option<Vec<Notification>> {
        let (token, receiver) = self.credential(person, credential);
        let reply = self
            .call(
                Server::Store,
                Method::GET,
                "/v1/notifications",
                token.as_deref(),
                Body::Empty,
            )
            .await;
        self.judge(&reply, receiver, true);
        if reply.status != StatusCode::OK {
            return None;
        }
        let feed: Vec<Notification> = self.expect_json(&reply);
        let Receiver::Principal(principal) = receiver else {
            self.broken(
                BrokenPromise::FeedWithoutSession,
                format!(
                    "{reply}: a feed served to {}",
                    self.describe_receiver(receiver)
                ),
            );
        };
        for note in &feed {
            for (id, _) in links_in(note.text.as_bytes()) {
                // A link of an export the model did not see requested (a
                // raw request) is the receiver's (the link check passed).
                if self.model.export_index(id).is_none() {
                    self.model.exports.push(Export {
                        id,
                        principal,
                        links: Vec::new(),
                        requested_ms: 0,
                    });
                }
                if let Some(path) = link_path_in(&note.text) {
                    self.note_link(id, &path, reply.at_ms);
                }
            }
        }
        Some(feed)
    }

    async fn transfer(&mut self, from: usize, device: u8, to: usize) {
        let held = &self.model.people[from].devices;
        if held.is_empty() || self.model.people[from].current.is_none() {
            return;
        }
        let slot = usize::from(device) % held.len();
        let index = held[slot];
        let (token, receiver) = self.credential(from, 0);
        let to_email = self.model.people[to].email.clone();
        let path = format!("/v1/devices/{}/transfer", self.model.devices[index].id.0);
        let reply = self
            .call(
                Server::Store,
                Method::POST,
                &path,
                token.as_deref(),
                Body::Json(json!({ "to_email": to_email })),
            )
            .await;
        self.judge(&reply, receiver, true);
        if reply.status != StatusCode::OK {
            return;
        }
        let credentials: DeviceCredentials = self.expect_json(&reply);
        let Some(recipient) = self.model.people[to].current.filter(|_| to != from) else {
            self.broken(
                BrokenPromise::DeviceToNobody,
                format!("{reply}: a device went to person {to}, who has no other open account"),
            );
        };
        let device = &mut self.model.devices[index];
        device.token = credentials.device_token;
        device.owners.push(recipient);
        if credentials.ownership_epoch as usize != device.owners.len() - 1 {
            self.broken(
                BrokenPromise::WrongOwnershipEpoch,
                format!(
                    "{reply}: ownership epoch {} after {} owners",
                    credentials.ownership_epoch,
                    self.model.devices[index].owners.len()
                ),
            );
        }
        self.model.people[from].devices.remove(slot);
        self.model.people[to].devices.push(index);
        self.oracle.on(Event::DeviceTransferred);
    }

    /// Start an export request and drop it once the export service's own
    /// call to the store is in flight (a client that hangs up).
    async fn abandon(&mut self, viewer: usize, kind: u8, extra_yields: u8) {
        let (token, receiver) = self.credential(viewer, 0);
        let Receiver::Principal(principal) = receiver else {
            return;
        };
        let own: Vec<&Export> = self
            .model
            .exports
            .iter()
            .filter(|e| e.principal == principal)
            .collect();
        let (method, path) = match kind % 3 {
            0 => (
                Method::GET,
                format!("/v1/exports/{}", own.last().map_or(1, |e| e.id.0)),
            ),
            1 => match own.iter().rev().find_map(|e| e.links.last()) {
                Some((link, _)) => (Method::GET, link.clone()),
                None => (Method::POST, "/v1/exports".to_string()),
            },
            _ => (Method::POST, "/v1/exports".to_string()),
        };
        let sent_ms = self.observed_ms();
        let request = self.request(&method, &path, token.as_deref(), Body::Empty);
        let arrivals = self.world.service_arrivals.clone();
        let before = arrivals.load(Ordering::SeqCst);
        // Hold the export service's call to the store (one scheduler turn
        // would otherwise carry the whole exchange), drop the request once
        // that call arrived, `extra_yields` turns after releasing it.
        self.world.hold_service_requests.send_replace(true);
        let answered = {
            let send = self.world.router(Server::Export).oneshot(request);
            tokio::pin!(send);
            let mut answered = None;
            let mut turns = 0u32;
            while answered.is_none() && arrivals.load(Ordering::SeqCst) == before && turns < 1_000 {
                tokio::select! {
                    biased;
                    result = &mut send => answered = Some(result),
                    () = tokio::task::yield_now() => {}
                }
                turns += 1;
            }
            self.world.hold_service_requests.send_replace(false);
            for _ in 0..extra_yields % 4 {
                if answered.is_some() {
                    break;
                }
                tokio::select! {
                    biased;
                    result = &mut send => answered = Some(result),
                    () = tokio::task::yield_now() => {}
                }
            }
            answered
        };
        if let Some(Ok(response)) = answered {
            let reply = self
                .reply(
                    Server::Export,
                    method,
                    &path,
                    token.is_some(),
                    sent_ms,
                    response,
                )
                .await;
            self.judge(&reply, receiver, true);
        }
    }

    async fn ticket(&mut self, requester: usize, target: usize, action: u8, pick: u8) {
        let known = self.model.tickets.len();
        let ticket = (known > 0).then(|| &self.model.tickets[usize::from(pick) % known]);
        let (ticket_id, ticket_target) = match ticket {
            Some(t) => (t.id, Some(t.target)),
            None => (u64::from(pick) + 1, None),
        };
        match action % 4 {
            0 => {
                let body = json!({
                    "claimed_email": self.model.people[target].email,
                    "message": "please send me my recordings",
                });
                let reply = self
                    .call(
                        Server::Export,
                        Method::POST,
                        "/v1/tickets",
                        None,
                        Body::Json(body),
                    )
                    .await;
                self.judge(&reply, Receiver::Anonymous, true);
                if reply.status != StatusCode::ACCEPTED {
                    return;
                }
                let status: TicketStatus = self.expect_json(&reply);
                if status.state != TicketState::AwaitingVerification || status.export_id.is_some() {
                    self.broken(BrokenPromise::NewTicketNotAwaiting,
                        format!(
                            "{reply}: a new ticket for person {target}'s email started {:?} with {:?}",
                            status.state, status.export_id
                        ),
                    );
                }
                self.model.tickets.push(Ticket {
                    id: status.ticket_id,
                    target,
                });
            }
            1 => {
                // Only the target can read the code, in their own feed.
                let code = match ticket_target {
                    Some(t) if t == requester => self
                        .feed(t, 0)
                        .await
                        .and_then(|feed| challenge_code(&feed, ticket_id)),
                    _ => None,
                };
                let with_code = code.is_some();
                let code = code.unwrap_or_else(|| WRONG_CODE.to_string());
                let path = format!("/v1/tickets/{ticket_id}/verify");
                let reply = self
                    .call(
                        Server::Export,
                        Method::POST,
                        &path,
                        None,
                        Body::Json(json!({ "code": code })),
                    )
                    .await;
                self.judge(&reply, Receiver::Anonymous, true);
                if reply.status != StatusCode::OK {
                    return;
                }
                let status: TicketStatus = self.expect_json(&reply);
                if !with_code {
                    self.broken(
                        BrokenPromise::TicketVerifiedWithGuess,
                        format!("{reply}: ticket {ticket_id} verified with a guessed code"),
                    );
                }
                let subject = ticket_target.and_then(|t| self.model.people[t].current);
                if let (Some(export_id), Some(subject)) = (status.export_id, subject) {
                    self.note_export(&reply, export_id, subject, reply.sent_ms);
                }
                self.oracle.on(Event::TicketVerified);
            }
            2 => {
                let path = format!("/v1/agent/tickets/{ticket_id}/manual-verification");
                let facts = json!({ "facts": ["knew the home address", "knew the birthday"] });
                let reply = self
                    .call(
                        Server::Export,
                        Method::POST,
                        &path,
                        Some(AGENT_TOKEN),
                        Body::Json(facts),
                    )
                    .await;
                self.judge(&reply, Receiver::Agent, true);
                if reply.status.is_success() {
                    self.broken(
                        BrokenPromise::AgentSaySoVerified,
                        format!("{reply}: an agent's say-so verified ticket {ticket_id}"),
                    );
                }
                self.oracle.on(Event::ManualVerificationRefused);
            }
            _ => {
                let path = format!("/v1/agent/tickets/{ticket_id}/resend-link");
                let attached = (pick & 1 == 1 && !self.model.exports.is_empty()).then(|| {
                    self.model.exports[usize::from(pick / 2) % self.model.exports.len()].id
                });
                let body = match attached {
                    Some(id) => Body::Json(json!({ "export_id": id.0 })),
                    None => Body::Empty,
                };
                let reply = self
                    .call(Server::Export, Method::POST, &path, Some(AGENT_TOKEN), body)
                    .await;
                self.judge(&reply, Receiver::Agent, true);
                if let Some(id) = attached {
                    if reply.status != StatusCode::BAD_REQUEST {
                        self.broken(
                            BrokenPromise::ConsoleTookArchive,
                            format!(
                                "{reply}: the console took archive {id} for ticket {ticket_id}"
                            ),
                        );
                    }
                    self.oracle.on(Event::ArchiveAttachmentRefused);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn raw(
        &mut self,
        router: u8,
        method: u8,
        template: u8,
        id: u8,
        credential: u8,
        person: usize,
        content_type: u8,
        body: &[u8],
    ) {
        let server = if router & 1 == 0 {
            Server::Store
        } else {
            Server::Export
        };
        let method = RAW_METHODS[usize::from(method) % RAW_METHODS.len()].clone();
        let (path, body) = raw_path(template, id, body);
        if path.parse::<http::Uri>().is_err() || raw_is_blocked(&method, &path) {
            return;
        }
        let (token, receiver) = match credential % 6 {
            4 => {
                let device = self.model.people[person].devices.first().copied();
                match device {
                    Some(d) => {
                        let device = &self.model.devices[d];
                        let owner = device.owners.last().copied();
                        (
                            Some(device.token.clone()),
                            owner.map_or(Receiver::Anonymous, Receiver::Principal),
                        )
                    }
                    None => (None, Receiver::Anonymous),
                }
            }
            5 => (Some(AGENT_TOKEN.to_string()), Receiver::Agent),
            n => self.credential(person, [0, 1, 2, 3][usize::from(n)]),
        };
        let content_type =
            [Some("application/json"), None, Some("text/plain")][usize::from(content_type) % 3];
        let reply = self
            .call(
                server,
                method,
                &path,
                token.as_deref(),
                Body::Raw {
                    bytes: body,
                    content_type,
                },
            )
            .await;
        let judged =
            reply.status.is_success() && RAW_JUDGED_PREFIXES.iter().any(|p| path.starts_with(p));
        self.judge(&reply, receiver, judged);
    }
}

// ---------------------------------------------------------------------------
// Raw requests.
// ---------------------------------------------------------------------------

const RAW_METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
];

/// Paths a raw request's successful answer is judged on: those that never
/// echo text a caller wrote.
const RAW_JUDGED_PREFIXES: [&str; 5] = [
    "/v1/recordings",
    "/v1/exports",
    "/v1/downloads",
    "/v1/notifications",
    "/v1/service",
];

/// Routes raw requests never reach (`*` is any one segment): they change
/// what the model must know exactly (accounts, recordings, devices), or
/// deliver recordings on purpose (messages) or store caller-written text
/// that is echoed back (contacts). Each has its own operation, or is out
/// of scope.
const RAW_BLOCKED: [(Option<Method>, &str); 10] = [
    (Some(Method::POST), "/v1/accounts"),
    (Some(Method::DELETE), "/v1/accounts/me"),
    (Some(Method::POST), "/v1/recordings"),
    (Some(Method::DELETE), "/v1/recordings/*"),
    (Some(Method::POST), "/v1/recordings/delete"),
    (Some(Method::POST), "/v1/devices/*/transfer"),
    (Some(Method::POST), "/v1/devices/*/reset"),
    (None, "/v1/messages"),
    (None, "/v1/messages/*/confirm"),
    (None, "/v1/contacts"),
];

fn raw_is_blocked(method: &Method, path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    RAW_BLOCKED.iter().any(|(blocked_method, pattern)| {
        let pattern: Vec<&str> = pattern.split('/').collect();
        blocked_method.as_ref().is_none_or(|m| m == method)
            && pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "*" || p == s)
    })
}

const RAW_TEMPLATES: [&str; 28] = [
    "/health",
    "/v1/recordings?limit={id}",
    "/v1/recordings/{id}/audio",
    "/v1/recordings/{id}",
    "/v1/devices",
    "/v1/notifications?after={id}",
    "/v1/orders",
    "/v1/inbox",
    "/v1/inbox/{id}/audio",
    "/v1/service/accounts/{id}/recordings",
    "/v1/service/accounts/{id}/recordings/{id}/audio",
    "/v1/service/introspect",
    "/v1/service/lookup?email=person{id}@example.com",
    "/v1/exports",
    "/v1/exports/{id}",
    "/v1/downloads/{id}",
    "/v1/tickets",
    "/v1/tickets/{id}/verify",
    "/v1/agent/tickets",
    "/v1/agent/tickets/{id}/resend-link",
    "/v1/agent/exports/{id}/extend",
    "/v1/agent/overdue",
    "/v1/agent/audit?after={id}",
    "/v1/internal/jobs/claim",
    "/v1/internal/jobs/{id}/complete",
    "/v1/recordings?cursor={id}.{id}",
    "/v1/sessions",
    // The free-form path: "/" and the body's bytes mapped to URL characters.
    "",
];

const FREE_FORM_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789/-._~?=&";

/// The path of a raw request, and its body (the free-form template spends
/// the body on the path).
fn raw_path(template: u8, id: u8, body: &[u8]) -> (String, Vec<u8>) {
    let template = RAW_TEMPLATES[usize::from(template) % RAW_TEMPLATES.len()];
    if template.is_empty() {
        let tail: String = body
            .iter()
            .map(|b| FREE_FORM_CHARS[usize::from(*b) % FREE_FORM_CHARS.len()] as char)
            .collect();
        return (format!("/{tail}"), Vec::new());
    }
    let id = match id {
        0..=249 => id.to_string(),
        250 => u64::MAX.to_string(),
        251 => "18446744073709551616".to_string(),
        252 => "-1".to_string(),
        253 => "abc".to_string(),
        254 => String::new(),
        _ => "0x10".to_string(),
    };
    (template.replace("{id}", &id), body.to_vec())
}

// ---------------------------------------------------------------------------
// Reading answers.
// ---------------------------------------------------------------------------

use crate::check::replies::{DOWNLOAD_PREFIX, links_in};

/// The first download path in a notification's text.
fn link_path_in(text: &str) -> Option<String> {
    let start = text.find(DOWNLOAD_PREFIX)?;
    let rest = &text[start..];
    let end = rest[DOWNLOAD_PREFIX.len()..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map_or(rest.len(), |e| e + DOWNLOAD_PREFIX.len());
    Some(rest[..end].to_string())
}

/// The code of ticket `id`'s challenge in a feed.
fn challenge_code(feed: &[Notification], id: u64) -> Option<String> {
    let needle = format!("(ticket {id})");
    feed.iter()
        .rev()
        .filter(|n| n.kind == "identity-challenge" && n.text.contains(&needle))
        .find_map(|n| {
            let code = n.text.split("your code is ").nth(1)?;
            Some(code.trim_end_matches('.').trim().to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_decodes_and_seed_bytes_round_trip() {
        for data in [
            &b""[..],
            &[0u8],
            &[7, 3, 1, 20, 1, 2, 3, 4, 5, 6, 7, 200, 9],
            &[0, 0, 1, 0, 0, 0, 128, 1, 2, 3, 4, 5, 13, 0, 0, 0, 0],
        ] {
            let input = Input::decode(data);
            assert_eq!(Input::decode(&seed_bytes(&input)), input);
        }
    }

    #[test]
    fn raw_requests_never_reach_blocked_routes() {
        assert!(raw_is_blocked(&Method::POST, "/v1/recordings"));
        assert!(raw_is_blocked(&Method::POST, "/v1/recordings?x=1"));
        assert!(raw_is_blocked(&Method::DELETE, "/v1/recordings/7"));
        assert!(raw_is_blocked(&Method::DELETE, "/v1/recordings/"));
        assert!(raw_is_blocked(&Method::GET, "/v1/contacts"));
        assert!(raw_is_blocked(&Method::POST, "/v1/messages/3/confirm"));
        assert!(!raw_is_blocked(&Method::GET, "/v1/recordings"));
        assert!(!raw_is_blocked(&Method::GET, "/v1/recordings/7/audio"));
        assert!(!raw_is_blocked(&Method::POST, "/v1/exports"));
    }

    #[test]
    fn links_and_codes_are_read_back() {
        let mut token = Vec::new();
        token.extend_from_slice(&7u64.to_be_bytes());
        token.extend_from_slice(&3u64.to_be_bytes());
        token.extend_from_slice(&[0; 8 + 16 + 32]);
        let path = format!(
            "/v1/downloads/{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token)
        );
        let text = format!("Your data is ready: {path}");
        assert_eq!(links_in(text.as_bytes()), [(ExportId(7), AccountId(3))]);
        assert_eq!(link_path_in(&text), Some(path));
        let feed = [Notification {
            seq: 1,
            kind: "identity-challenge".into(),
            text: "Someone asked for a copy of your data (ticket 4). If it was you, your code is 0a1b2c3d4e5f6a7b.".into(),
            at_ms: 0,
        }];
        assert_eq!(
            challenge_code(&feed, 4).as_deref(),
            Some("0a1b2c3d4e5f6a7b")
        );
        assert_eq!(challenge_code(&feed, 5), None);
    }
}
