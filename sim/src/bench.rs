//! `crosstalk bench`: how fast the harness runs, as ratios measured side by
//! side in one process (machines are shared and noisy; absolute times are
//! not comparable across runs, ratios are).
//!
//! It runs a scenario's seeds on one thread and reports seeds per second,
//! simulated seconds per wall second and SUT HTTP requests per wall second;
//! then, in the same process, the baseline: plain HTTP/1 keep-alive round
//! trips through turmoil at zero latency to a trivial axum handler served
//! exactly like the services are. The ratio says what share of raw turmoil
//! HTTP throughput the full world (services, redb, oracle) achieves.

use crate::net::{EPOCH_MS, SimConnector, SimListener};
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use crosstalk_service::{HttpClient, Spawner};
use http_body_util::Full;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const BASELINE_HOST: &str = "echo";
const BASELINE_PORT: u16 = 7499;

/// Run `round_trips` keep-alive GETs through turmoil at zero latency.
/// Returns the number completed (the caller times the call).
pub fn baseline_round_trips(round_trips: u64) -> u64 {
    let mut sim = turmoil::Builder::new()
        .rng_seed(0)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_secs(24 * 3600))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        .build();
    sim.host(BASELINE_HOST, || async {
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let listener = SimListener::bind(BASELINE_PORT).await?;
        crosstalk_service::serve_with(listener, router, Spawner::Local).await;
        Ok(())
    });
    let done = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counter = done.clone();
    sim.client("bench-client", async move {
        let client = HttpClient::new(
            Arc::new(SimConnector {
                host: BASELINE_HOST,
                port: BASELINE_PORT,
            }),
            Duration::from_secs(10),
            1,
        )
        .with_spawner(Spawner::Local);
        for _ in 0..round_trips {
            let request = http::Request::get("/ping").body(Full::new(Bytes::new()))?;
            let response = client.send(request).await?;
            if response.body().as_ref() != b"pong" {
                return Err("the echo server answered something else".into());
            }
            counter.set(counter.get() + 1);
        }
        Ok(())
    });
    // An error here leaves `done` short, which the report shows.
    let _ = sim.run();
    done.get()
}
