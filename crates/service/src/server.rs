//! Serving a router on any listener, with the `Date` header off and a bound
//! on the requests in flight.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::ApiError;
use crate::spawn::Spawner;

/// How much a service takes on at once. A request that arrives while
/// `max_in_flight` others are being handled is answered at once with 503,
/// `Retry-After: retry_after_s` and the JSON error `overloaded`, instead of
/// queueing without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    pub max_in_flight: usize,
    pub retry_after_s: u32,
}

impl ServeLimits {
    /// The production default: generous for one process, finite.
    pub const DEFAULT: ServeLimits = ServeLimits {
        max_in_flight: 512,
        retry_after_s: 1,
    };
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The error code of the JSON body of an overloaded answer.
pub const OVERLOADED: &str = "overloaded";

/// Serve `router` on every connection `listener` accepts, until the task is
/// dropped. Each connection is HTTP/1 with keep-alive; hyper's automatic
/// `Date` header is off because it reads the OS clock.
pub async fn serve<L: Listener>(listener: L, router: Router) {
    serve_with(listener, router, Spawner::Tokio).await
}

/// [`serve`], with each connection's task started by `spawner`.
pub async fn serve_with<L: Listener>(listener: L, router: Router, spawner: Spawner) {
    serve_limited(listener, router, spawner, ServeLimits::DEFAULT).await
}

/// [`serve_with`], with `limits` on the requests in flight.
pub async fn serve_limited<L: Listener>(
    mut listener: L,
    router: Router,
    spawner: Spawner,
    limits: ServeLimits,
) {
    let router = limit_in_flight(router, limits);
    loop {
        let (io, _addr) = listener.accept().await;
        let service = TowerToHyperService::new(router.clone());
        spawner.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            // A peer that hangs up mid-request is routine; nothing to report.
            let _ = connection.await;
        });
    }
}

/// Counts one request in flight while it lives (also when its connection
/// drops mid-request).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Wrap `router` so that at most `limits.max_in_flight` requests run at
/// once; the others are refused with [`overloaded`].
pub fn limit_in_flight(router: Router, limits: ServeLimits) -> Router {
    let in_flight = Arc::new(AtomicUsize::new(0));
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let in_flight = in_flight.clone();
            async move {
                if in_flight.fetch_add(1, Ordering::Relaxed) >= limits.max_in_flight {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    return overloaded(limits);
                }
                let _guard = InFlight(in_flight);
                next.run(request).await
            }
        },
    ))
}

/// The answer to a request the service has no room for: 503, `Retry-After`
/// and the JSON error `overloaded`.
pub fn overloaded(limits: ServeLimits) -> Response {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        OVERLOADED,
        format!(
            "{} requests in flight; retry after {} s",
            limits.max_in_flight, limits.retry_after_s
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(limits.retry_after_s));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_limit_is_refused_with_retry_after() {
        let (release, wait) = tokio::sync::watch::channel(false);
        let router = Router::new().route(
            "/slow",
            get(move || {
                let mut wait = wait.clone();
                async move {
                    let _ = wait.wait_for(|open| *open).await;
                    "done"
                }
            }),
        );
        let limits = ServeLimits {
            max_in_flight: 1,
            retry_after_s: 3,
        };
        let router = limit_in_flight(router, limits);
        let request = || {
            Request::builder()
                .uri("/slow")
                .body(axum::body::Body::empty())
        };
        // The first request enters the handler and waits there.
        let first = router.clone().oneshot(request().unwrap());
        tokio::pin!(first);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(10), &mut first).await;
        assert!(waiting.is_err(), "the first request is in flight");
        let second = router.clone().oneshot(request().unwrap()).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(second.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], OVERLOADED);
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().status(), StatusCode::OK);
        // The slot is free again.
        release.send(true).unwrap();
        let third = router.oneshot(request().unwrap()).await.unwrap();
        assert_eq!(third.status(), StatusCode::OK);
    }
}
