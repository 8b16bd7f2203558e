//! Driving the real store on a multi-thread runtime: set-up, rounds of
//! racing requests, then the quiescent probes. Every request is a spawned
//! task calling the store's axum router in process, so requests of one
//! round run on different worker threads at once; each answer is logged
//! with the harness's monotonic counter at its send and at its answer.

use super::plan::{Capture, RaceOp, ThreadsPlan};
use bytes::Bytes;
use crosstalk_model::api::{
    DeleteResponse, IngestRequest, IngestResponse, RecordingPage, RegisterDeviceResponse,
    SignupResponse,
};
use crosstalk_model::{ManualClock, SeededEntropy};
use crosstalk_service::Inject;
use crosstalk_service::Planted;
use crosstalk_service::fault_points::FaultPoints;
use crosstalk_store::{Store, StoreConfig};
use http::{Method, header};
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

pub(super) const SERVICE_TOKEN: &str = "threads-store-service-token";
const PASSWORD: &str = "correct horse battery";
/// Items per listing page (the store's maximum).
const PAGE_ITEMS: usize = crosstalk_store::MAX_PAGE_ITEMS;

/// Locks a mutex whose holder may have panicked (the data is plain).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The interleave points' choices: pause the thread at a seeded share of
/// the points inside the store (yield, or sleep a few microseconds).
pub(super) struct Interleaver {
    per_mille: u32,
    rng: Mutex<ChaCha8Rng>,
    pub(super) pauses: AtomicU64,
}

impl FaultPoints for Interleaver {
    fn fire(&self, _point: &'static str) -> bool {
        false
    }

    fn interleave(&self, _point: &'static str) {
        let (pause, yield_only, micros) = {
            let mut rng = lock(&self.rng);
            (
                rng.random_ratio(self.per_mille, 1000),
                rng.random_ratio(1, 4),
                rng.random_range(10..1000),
            )
        };
        if !pause {
            return;
        }
        self.pauses.fetch_add(1, Ordering::Relaxed);
        if yield_only {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(micros));
        }
    }
}

/// What a request was, for the judge.
#[derive(Clone, Debug)]
pub(super) enum Kind {
    Signup,
    Device,
    Upload(Capture),
    Play {
        nonce: u64,
        quiescent: bool,
    },
    List {
        quiescent: bool,
    },
    DeleteOne {
        nonce: u64,
    },
    DeleteRange {
        from_ms: u64,
        to_ms: u64,
    },
    DeleteAll,
    Close,
    Transfer,
    /// The store's service listing of a closed account (quiescent).
    ServiceList,
    /// The store's service read of a closed account's recording (quiescent).
    ServiceAudio {
        nonce: u64,
    },
}

/// One answer, with the counter at its send and at its answer.
#[derive(Clone, Debug)]
pub(super) struct Record {
    pub account: usize,
    pub kind: Kind,
    pub request: String,
    pub status: u16,
    pub content_type: String,
    /// The `Cache-Control` header ("" when absent).
    pub cache_control: String,
    /// Whether the request carried a bearer token.
    pub authenticated: bool,
    pub body: Bytes,
    pub sent: u64,
    pub at: u64,
}

/// An account's credentials once set up.
#[derive(Clone, Debug, Default)]
struct Credentials {
    account_id: u64,
    session: String,
    device: String,
    device_id: Option<u64>,
}

/// Everything the tasks share.
pub(super) struct Shared {
    router: axum::Router,
    ticks: AtomicU64,
    pub(super) log: Mutex<Vec<Record>>,
    credentials: Mutex<BTreeMap<usize, Credentials>>,
    /// Recording ids of acknowledged uploads, by nonce.
    ids: Mutex<BTreeMap<u64, u64>>,
    closed: Mutex<BTreeSet<usize>>,
    /// Each account's email, for a sale to it.
    emails: Mutex<Vec<String>>,
    key: crate::watermark::WatermarkKey,
    pub(super) panics: Mutex<Vec<String>>,
}

/// The store, in process, on redb's in-memory backend, with a manual
/// clock, seeded entropy and the interleave points.
pub(super) fn open_store(
    seed: u64,
    planted: Planted,
    points: Arc<Interleaver>,
) -> Result<Store, String> {
    let clock = Arc::new(ManualClock::new(crate::net::EPOCH_MS));
    let entropy_seed = u64::from_be_bytes(
        crate::streams::derive(seed, "threads/store-entropy")[..8]
            .try_into()
            .unwrap_or_default(),
    );
    Store::open(
        redb::backends::InMemoryBackend::new(),
        clock,
        Arc::new(SeededEntropy::from_seed_u64(entropy_seed)),
        StoreConfig {
            service_token: SERVICE_TOKEN.to_string(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crate::plan::STORE_HOLD_MS,
        },
    )
    .map(|store| store.with_planted(planted).with_fault_points(points))
    .map_err(|e| format!("the store did not open on memory: {e:?}"))
}

impl Interleaver {
    pub(super) fn new(plan: &ThreadsPlan) -> Interleaver {
        Interleaver {
            per_mille: plan.interleave_per_mille,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(plan.interleave_seed)),
            pauses: AtomicU64::new(0),
        }
    }
}

impl Shared {
    /// The store's router (broken on purpose when `canary` says so: the
    /// harness's own self-test, see `crate::canary`).
    pub(super) fn new(
        store: Store,
        seed: u64,
        canary: Option<crate::canary::CanaryBreak>,
    ) -> Shared {
        let router = crosstalk_store::router(Arc::new(store));
        let router = match canary {
            Some(how) => crate::canary::break_store(router, how, Arc::default()),
            None => router,
        };
        Shared {
            router,
            ticks: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            credentials: Mutex::new(BTreeMap::new()),
            ids: Mutex::new(BTreeMap::new()),
            closed: Mutex::new(BTreeSet::new()),
            emails: Mutex::new(Vec::new()),
            key: crate::watermark::WatermarkKey::for_seed(seed),
            panics: Mutex::new(Vec::new()),
        }
    }

    fn tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// One request to the store; logged, and returned.
    async fn call(
        &self,
        account: usize,
        kind: Kind,
        method: Method,
        path: String,
        token: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> Record {
        let mut builder = http::Request::builder().method(method.clone()).uri(&path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if json.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let body = axum::body::Body::from(json.unwrap_or_default());
        let request = builder.body(body).unwrap_or_else(|e| {
            unreachable!("the harness builds valid requests: {method} {path}: {e}")
        });
        let sent = self.tick();
        let Ok(response) = self.router.clone().oneshot(request).await;
        let status = response.status().as_u16();
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
        let authenticated = token.is_some();
        let (status, body) = match response.into_body().collect().await {
            Ok(collected) => (status, collected.to_bytes()),
            // A body that broke off is no answer: a server error.
            Err(e) => (599, Bytes::from(format!("the body broke off: {e}"))),
        };
        let record = Record {
            account,
            kind,
            request: format!("{method} {path}"),
            status,
            content_type,
            cache_control,
            authenticated,
            body,
            sent,
            at: self.tick(),
        };
        lock(&self.log).push(record.clone());
        record
    }

    fn credentials(&self, account: usize) -> Option<Credentials> {
        lock(&self.credentials).get(&account).cloned()
    }

    fn id_of(&self, nonce: u64) -> Option<u64> {
        lock(&self.ids).get(&nonce).copied()
    }
}

/// One spawned request (or sequence of requests).
type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Run `tasks` at once, each on whichever worker thread takes it; a task
/// that panicked (a panic inside the store) is remembered for the judge.
#[allow(
    clippy::disallowed_methods,
    reason = "real threads are this harness's point: tasks must run on the multi-thread runtime's workers, not on a LocalSet"
)]
async fn all_at_once(shared: &Arc<Shared>, tasks: Vec<Task>) {
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    for handle in handles {
        if let Err(e) = handle.await
            && e.is_panic()
        {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            lock(&shared.panics).push(message);
        }
    }
}

/// The whole workload: set-up, the rounds, the quiescent probes.
pub(super) async fn drive(shared: Arc<Shared>, plan: ThreadsPlan) {
    *lock(&shared.emails) = plan.accounts.iter().map(|a| a.email.clone()).collect();
    let plan = Arc::new(plan);
    let setups = (0..plan.accounts.len())
        .map(|a| Box::pin(set_up(shared.clone(), plan.clone(), a)) as _)
        .collect();
    all_at_once(&shared, setups).await;
    for round in &plan.rounds {
        let tasks = round
            .iter()
            .map(|op| Box::pin(race(shared.clone(), op.clone(), plan.deletion_storm)) as _)
            .collect();
        all_at_once(&shared, tasks).await;
    }
    let probes = (0..plan.accounts.len())
        .map(|a| Box::pin(probe(shared.clone(), plan.clone(), a)) as _)
        .collect();
    all_at_once(&shared, probes).await;
}

/// Sign up, register a device, upload the initial captures (all at once).
async fn set_up(shared: Arc<Shared>, plan: Arc<ThreadsPlan>, account: usize) {
    let email = plan.accounts[account].email.clone();
    let body = serde_json::json!({"email": email, "password": PASSWORD});
    let reply = shared
        .call(
            account,
            Kind::Signup,
            Method::POST,
            "/v1/accounts".into(),
            None,
            Some(body.to_string().into_bytes()),
        )
        .await;
    let Ok(signed) = serde_json::from_slice::<SignupResponse>(&reply.body) else {
        return;
    };
    lock(&shared.credentials).insert(
        account,
        Credentials {
            account_id: signed.account_id.0,
            session: signed.session_token.clone(),
            ..Credentials::default()
        },
    );
    if !register_device(&shared, account, &signed.session_token).await {
        lock(&shared.credentials).remove(&account);
        return;
    }
    let uploads = plan.accounts[account]
        .initial
        .iter()
        .map(|c| Box::pin(upload(shared.clone(), account, *c)) as _)
        .collect();
    all_at_once(&shared, uploads).await;
}

/// Register a speaker for `account` and make it the one its uploads use.
async fn register_device(shared: &Shared, account: usize, session: &str) -> bool {
    let body = serde_json::json!({"name": "speaker"})
        .to_string()
        .into_bytes();
    let path = "/v1/devices".to_string();
    let reply = shared
        .call(
            account,
            Kind::Device,
            Method::POST,
            path,
            Some(session),
            Some(body),
        )
        .await;
    let Ok(device) = serde_json::from_slice::<RegisterDeviceResponse>(&reply.body) else {
        return false;
    };
    if let Some(creds) = lock(&shared.credentials).get_mut(&account) {
        creds.device = device.device_token;
        creds.device_id = Some(device.device_id.0);
    }
    true
}

/// The account's device uploads `capture`.
async fn upload(shared: Arc<Shared>, account: usize, capture: Capture) {
    let Some(creds) = shared.credentials(account) else {
        return;
    };
    let words = super::WORDS[(capture.content % super::WORDS.len() as u64) as usize];
    let request = IngestRequest {
        upload_key: format!("capture-{}", capture.nonce),
        captured_at_ms: capture.captured_at_ms,
        transcript: shared.key.transcript(capture.nonce, words),
        audio_base64: base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            shared.key.audio(capture.nonce, capture.content),
        ),
        ownership_epoch: None,
        intent: None,
    };
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let reply = shared
        .call(
            account,
            Kind::Upload(capture),
            Method::POST,
            "/v1/recordings".into(),
            Some(&creds.device),
            Some(body),
        )
        .await;
    if reply.status == 201
        && let Ok(ingested) = serde_json::from_slice::<IngestResponse>(&reply.body)
    {
        lock(&shared.ids).insert(capture.nonce, ingested.recording_id.0);
    }
}

/// One racing operation; a deletion of one recording comes with `storm`
/// playback loops of it.
async fn race(shared: Arc<Shared>, op: RaceOp, storm: u32) {
    let account = op.account();
    let Some(creds) = shared.credentials(account) else {
        return;
    };
    let session = Some(creds.session.as_str());
    match op {
        RaceOp::Play { nonce, .. } => play(&shared, account, &creds, nonce, false).await,
        RaceOp::List { .. } => list(&shared, account, &creds, false).await,
        RaceOp::Upload { capture, .. } => upload(shared.clone(), account, capture).await,
        RaceOp::DeleteOne { nonce, .. } => {
            delete_in_a_storm(&shared, account, &creds, nonce, storm).await;
        }
        RaceOp::DeleteRange { from_ms, to_ms, .. } => {
            let body = serde_json::json!({"captured_from_ms": from_ms, "captured_to_ms": to_ms});
            let kind = Kind::DeleteRange { from_ms, to_ms };
            let path = "/v1/recordings/delete".to_string();
            shared
                .call(
                    account,
                    kind,
                    Method::POST,
                    path,
                    session,
                    Some(body.to_string().into_bytes()),
                )
                .await;
        }
        RaceOp::DeleteAll { .. } => {
            let body = serde_json::json!({"all": true}).to_string().into_bytes();
            let path = "/v1/recordings/delete".to_string();
            shared
                .call(
                    account,
                    Kind::DeleteAll,
                    Method::POST,
                    path,
                    session,
                    Some(body),
                )
                .await;
        }
        RaceOp::Transfer { to, .. } => {
            let Some(device_id) = creds.device_id else {
                return;
            };
            let email = lock(&shared.emails).get(to).cloned().unwrap_or_default();
            let body = serde_json::json!({"to_email": email})
                .to_string()
                .into_bytes();
            let path = format!("/v1/devices/{device_id}/transfer");
            let reply = shared
                .call(
                    account,
                    Kind::Transfer,
                    Method::POST,
                    path,
                    session,
                    Some(body),
                )
                .await;
            if reply.status == 200 {
                // The seller buys a new speaker for the rounds to come.
                register_device(&shared, account, &creds.session).await;
            }
        }
        RaceOp::Close { .. } => {
            let path = "/v1/accounts/me".to_string();
            let reply = shared
                .call(account, Kind::Close, Method::DELETE, path, session, None)
                .await;
            if reply.status == 200 {
                lock(&shared.closed).insert(account);
            }
        }
    }
}

/// Playbacks each storm loop sends after it saw the deletion acknowledged.
const STORM_PLAYS_AFTER_ACK: u32 = 3;
/// Playbacks one storm loop sends at most before the acknowledgement (a
/// bound, should the deletion never be answered).
const STORM_PLAYS_BEFORE_ACK: u32 = 400;

/// Delete one recording while `storm` tasks play it back again and again:
/// each loop starts with the deletion and goes on until a few playbacks
/// after its acknowledgement, so that some playback reads the database
/// while the deletion commits (a cache evicted before the commit is refilled
/// then) and the ones sent after the acknowledgement show what was kept.
async fn delete_in_a_storm(
    shared: &Arc<Shared>,
    account: usize,
    creds: &Credentials,
    nonce: u64,
    storm: u32,
) {
    let Some(id) = shared.id_of(nonce) else {
        return;
    };
    let answered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks: Vec<Task> = (0..storm)
        .map(|_| {
            let (shared, creds, answered) = (shared.clone(), creds.clone(), answered.clone());
            Box::pin(
                async move { play_until_after(&shared, account, &creds, nonce, &answered).await },
            ) as Task
        })
        .collect();
    let (deleter, session) = (shared.clone(), creds.session.clone());
    tasks.push(Box::pin(async move {
        let path = format!("/v1/recordings/{id}");
        let kind = Kind::DeleteOne { nonce };
        deleter
            .call(account, kind, Method::DELETE, path, Some(&session), None)
            .await;
        answered.store(true, Ordering::SeqCst);
    }));
    all_at_once(shared, tasks).await;
}

/// One storm loop: play `nonce` back until the deletion was `answered`,
/// then a few times more. Yields between playbacks, so that no loop holds
/// a worker thread the deletion needs.
async fn play_until_after(
    shared: &Shared,
    account: usize,
    creds: &Credentials,
    nonce: u64,
    answered: &std::sync::atomic::AtomicBool,
) {
    let mut before = 0;
    while !answered.load(Ordering::SeqCst) && before < STORM_PLAYS_BEFORE_ACK {
        play(shared, account, creds, nonce, false).await;
        before += 1;
        tokio::task::yield_now().await;
    }
    for _ in 0..STORM_PLAYS_AFTER_ACK {
        play(shared, account, creds, nonce, false).await;
        tokio::task::yield_now().await;
    }
}

async fn play(shared: &Shared, account: usize, creds: &Credentials, nonce: u64, quiescent: bool) {
    let Some(id) = shared.id_of(nonce) else {
        return;
    };
    let path = format!("/v1/recordings/{id}/audio");
    let kind = Kind::Play { nonce, quiescent };
    shared
        .call(account, kind, Method::GET, path, Some(&creds.session), None)
        .await;
}

/// Every page of a listing: the owner's history, or (for a closed account)
/// the store's service listing.
async fn list(shared: &Shared, account: usize, creds: &Credentials, quiescent: bool) {
    let closed = lock(&shared.closed).contains(&account);
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit={PAGE_ITEMS}&cursor={c}"),
            None => format!("limit={PAGE_ITEMS}"),
        };
        let reply = if closed {
            let path = format!(
                "/v1/service/accounts/{}/recordings?{query}",
                creds.account_id
            );
            shared
                .call(
                    account,
                    Kind::ServiceList,
                    Method::GET,
                    path,
                    Some(SERVICE_TOKEN),
                    None,
                )
                .await
        } else {
            let path = format!("/v1/recordings?{query}");
            let kind = Kind::List { quiescent };
            shared
                .call(account, kind, Method::GET, path, Some(&creds.session), None)
                .await
        };
        cursor = serde_json::from_slice::<RecordingPage>(&reply.body)
            .ok()
            .and_then(|p| p.next_cursor);
        if reply.status != 200 || cursor.is_none() {
            return;
        }
    }
}

/// After every writer stopped: list everything, and play back (or, for a
/// closed account, read through the service API) every recording ever
/// acknowledged, twice (a first read may fill a cache; the second hits it).
async fn probe(shared: Arc<Shared>, plan: Arc<ThreadsPlan>, account: usize) {
    let Some(creds) = shared.credentials(account) else {
        return;
    };
    list(&shared, account, &creds, true).await;
    let closed = lock(&shared.closed).contains(&account);
    for nonce in super::captures_of(&plan, account).map(|c| c.nonce) {
        for _ in 0..2 {
            if closed {
                let Some(id) = shared.id_of(nonce) else { break };
                let path = format!(
                    "/v1/service/accounts/{}/recordings/{id}/audio",
                    creds.account_id
                );
                let kind = Kind::ServiceAudio { nonce };
                shared
                    .call(account, kind, Method::GET, path, Some(SERVICE_TOKEN), None)
                    .await;
            } else {
                play(&shared, account, &creds, nonce, true).await;
            }
        }
    }
}

/// Recording ids the store named in a deletion answer.
pub(super) fn named_in(body: &[u8]) -> Option<Vec<u64>> {
    serde_json::from_slice::<DeleteResponse>(body)
        .ok()
        .map(|d| d.deleted.into_iter().map(|id| id.0).collect())
}
