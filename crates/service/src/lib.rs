//! HTTP plumbing shared by the recording store and the export service.
//!
//! - [`serve`]: accept connections from any [`axum::serve::Listener`] (a real
//!   `tokio::net::TcpListener`, or a simulated one) and serve a router over
//!   HTTP/1 with hyper's automatic `Date` header turned off, because that
//!   header reads the OS clock. [`serve_limited`] bounds the requests in
//!   flight ([`ServeLimits`]); one past the bound is answered 503 with
//!   `Retry-After` and the JSON error `overloaded`.
//! - [`ApiError`] and [`json_errors`]: every 4xx/5xx leaves as a JSON
//!   [`ErrorBody`](crosstalk_model::api::ErrorBody), including the rejections
//!   axum produces on its own (unknown route, bad path, body too large).
//! - [`no_store`]: `Cache-Control: no-store` on every answer (each is
//!   about one person; no cache may keep it).
//! - [`JsonBody`]: a JSON extractor whose failures are [`ApiError`]s.
//! - [`probe!`]: code probes, counted per thread in simulation builds
//!   (the `probes` feature), free otherwise.
//! - [`Inject`]: fault points and planted bugs, injected the same way into
//!   every service type ([`Injected`]).
//! - [`secrets`]: the signing-key bootstrap both services' databases share.
//! - [`HttpClient`]: a pooled HTTP/1 client over an injected [`Connect`]or,
//!   with a per-request timeout. A connection whose request did not finish
//!   (timeout, cancellation) is dropped, never returned to the pool.

mod client;
pub mod digest;
mod error;
pub mod fault_points;
mod inject;
mod no_store;
pub mod planted;
pub mod probes;
pub mod real;
pub mod secrets;
mod server;
mod spawn;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use client::{BoxIo, ClientError, Connect, ConnectFuture, HttpClient, HttpResponse};
pub use error::{ApiError, JsonBody, bearer_token, json_errors};
pub use inject::{Inject, Injected};
pub use no_store::no_store;
pub use planted::{Bug, Planted};
pub use server::{
    OVERLOADED, ServeLimits, limit_in_flight, overloaded, serve, serve_limited, serve_with,
};
pub use spawn::Spawner;
