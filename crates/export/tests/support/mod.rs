//! Scaffolding shared by the in-process tests of the export service
//! (`export_flow.rs`, `planted.rs`): the real store's router on an
//! in-memory database (each test builds its own export router), clients
//! that reach a router over `tokio::io::duplex` connections, the tokens,
//! and the clock's start; time is a `ManualClock` that moves only when a
//! test moves it, randomness a `SeededEntropy`.
#![allow(dead_code)] // Each test file uses its own part.

use axum::Router;
use axum::http::Method;
use crosstalk_model::{ManualClock, SeededEntropy};
use crosstalk_service::test_support::{Reply, call, json_request};
use crosstalk_service::{BoxIo, Connect, ConnectFuture, HttpClient};
use crosstalk_store::{Store, StoreConfig};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the store accepts as the service principal's token.
pub const SERVICE_TOKEN: &str = "store-service-token";
pub const WORKER_TOKEN: &str = "worker-token-0123456789abcdef";
pub const AGENT_TOKEN: &str = "agent-a-token-0123456789abcdef";
/// The clock's start.
pub const T0: u64 = 1_700_000_000_000;
/// Recordings per page of the workers' walk of the store.
pub const PAGE_ITEMS: usize = 2;

/// Connects a client to `router` in process: every connection is a fresh
/// duplex pipe with an HTTP/1 server task on the other end.
struct InProcess {
    router: Router,
    /// While set, every new connection is refused (the server is "down").
    down: Arc<AtomicBool>,
}

impl Connect for InProcess {
    fn connect(&self) -> ConnectFuture {
        let router = self.router.clone();
        let down = self.down.load(Ordering::SeqCst);
        Box::pin(async move {
            if down {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "store is down",
                ));
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

/// A client of `router`; `max_idle` 0 makes every request a new connection,
/// so that `down` applies to every request.
pub fn in_process_client(router: &Router, down: &Arc<AtomicBool>, max_idle: usize) -> HttpClient {
    let connector = InProcess {
        router: router.clone(),
        down: down.clone(),
    };
    HttpClient::new(Arc::new(connector), Duration::from_secs(10), max_idle)
}

/// A client of `router` that is always up.
pub fn client(router: &Router, max_idle: usize) -> HttpClient {
    in_process_client(router, &Arc::new(AtomicBool::new(false)), max_idle)
}

/// The store's router over an in-memory database, on `clock`, its
/// randomness from `seed`, with one password iteration.
pub fn open_store(seed: u64, clock: Arc<ManualClock>) -> Router {
    let store = Store::open(
        redb::backends::InMemoryBackend::new(),
        clock,
        Arc::new(SeededEntropy::from_seed_u64(seed)),
        StoreConfig {
            service_token: SERVICE_TOKEN.to_string(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_store::media::DEFAULT_HOLD_MS,
        },
    )
    .expect("store opens");
    crosstalk_store::router(Arc::new(store))
}

/// One JSON request to `router`, its whole answer.
pub async fn json_call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    call(router, json_request(method, uri, token, body)).await
}

/// A capture's bytes, distinct per `tag` and `n`.
pub fn audio(tag: &str, n: u32) -> Vec<u8> {
    let mut bytes = format!("RIFF/{tag}/{n}/").into_bytes();
    bytes.extend((0..200u32).map(|i| (i.wrapping_mul(7).wrapping_add(n * 13) % 256) as u8));
    bytes
}
