//! Glue between the services and turmoil's simulated network and clock.
//!
//! The services take an [`axum::serve::Listener`], a [`Connect`]or and a
//! [`Clock`]; here are the simulated versions of each. Connections retry
//! while the server is not yet listening (with random host ordering a client
//! may start before the server has bound its port).

use crosstalk_model::Clock;
use crosstalk_service::{BoxIo, Connect, ConnectFuture};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The simulated epoch: 2026-01-01T00:00:00Z, fixed so no run reads the
/// wall clock.
pub const EPOCH_MS: u64 = 1_767_225_600_000;

pub const STORE_HOST: &str = "store";
pub const EXPORT_HOST: &str = "export";
pub const STORE_PORT: u16 = 7400;
pub const EXPORT_PORT: u16 = 7401;

/// How many times a client waits out a service's overload for one request
/// before it treats the service as unavailable.
pub const MAX_OVERLOAD_WAITS: u32 = 30;

/// If `response` is a service refusing a request because it is overloaded
/// (503 with the JSON error `overloaded`), how long it asks the client to
/// wait (its `Retry-After` seconds, one second if absent or unreadable),
/// plus `jitter_ms` so that a crowd does not come back all at once.
pub fn overload_wait(
    response: &crosstalk_service::HttpResponse,
    jitter_ms: u64,
) -> Option<Duration> {
    if response.status() != http::StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let body: crosstalk_model::api::ErrorBody = serde_json::from_slice(response.body()).ok()?;
    if body.error != crosstalk_service::OVERLOADED {
        return None;
    }
    let seconds = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Some(Duration::from_millis(seconds * 1000 + jitter_ms))
}

/// Simulated milliseconds since the start of the run.
pub fn sim_now_ms() -> u64 {
    turmoil::sim_elapsed()
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The simulation's clock as the services see it: epoch plus simulated time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimClock;

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        EPOCH_MS + sim_now_ms()
    }
}

/// A turmoil TCP listener usable with `crosstalk_service::serve`.
pub struct SimListener(pub turmoil::net::TcpListener);

impl SimListener {
    pub async fn bind(port: u16) -> io::Result<Self> {
        Ok(Self(
            turmoil::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await?,
        ))
    }
}

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(pair) => return pair,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Connects to `host:port` on the simulated network, retrying refused
/// connections a bounded number of times.
#[derive(Debug, Clone)]
pub struct SimConnector {
    pub host: &'static str,
    pub port: u16,
}

const CONNECT_ATTEMPTS: u32 = 50;
const CONNECT_RETRY_MS: u64 = 20;

impl Connect for SimConnector {
    fn connect(&self) -> ConnectFuture {
        let (host, port) = (self.host, self.port);
        Box::pin(async move {
            let mut last_error = None;
            for _ in 0..CONNECT_ATTEMPTS {
                match turmoil::net::TcpStream::connect((host, port)).await {
                    Ok(stream) => return Ok(Box::new(stream) as BoxIo),
                    Err(e) => {
                        last_error = Some(e);
                        tokio::time::sleep(Duration::from_millis(CONNECT_RETRY_MS)).await;
                    }
                }
            }
            Err(last_error.unwrap_or_else(|| io::Error::other("connect failed")))
        })
    }
}
