//! The client's pool and a cancelled request (DESIGN invariant 6), with the
//! planted pool-cancel-desync (ChatGPT 2023) and without.
//!
//! A tiny in-process HTTP/1 server answers each request with its own path,
//! the first one (`/one`) late. The client's timeout gives up on `/one`;
//! a correct client drops that connection, so `/two` gets its own reply. A
//! planted client pools the connection with `/one`'s reply unread, and
//! `/two` is handed that reply (and `/three` gets `/two`'s).

use bytes::Bytes;
use crosstalk_service::{BoxIo, ClientError, Connect, ConnectFuture, HttpClient, Planted};
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TIMEOUT_MS: u64 = 1_000;
const SLOW_REPLY_MS: u64 = 1_500;

/// Every connection is a duplex pipe to a fresh server connection task.
struct SlowFirst {
    connections: Arc<AtomicUsize>,
}

impl Connect for SlowFirst {
    fn connect(&self) -> ConnectFuture {
        self.connections.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            crosstalk_service::Spawner::Tokio.spawn(async move {
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        let path = request.uri().path().to_string();
                        if path == "/one" {
                            tokio::time::sleep(Duration::from_millis(SLOW_REPLY_MS)).await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                            "reply to {path}"
                        )))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .auto_date_header(false)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(server), service)
                    .await;
            });
            Ok(Box::new(client) as BoxIo)
        })
    }
}

async fn get(client: &HttpClient, path: &str) -> Result<String, ClientError> {
    let request = Request::builder()
        .uri(path)
        .body(Full::new(Bytes::new()))
        .expect("request builds");
    let response = client.send(request).await?;
    Ok(String::from_utf8_lossy(response.body()).into_owned())
}

async fn run(planted: Planted) -> (Vec<String>, usize) {
    let connections = Arc::new(AtomicUsize::new(0));
    let connector = SlowFirst {
        connections: connections.clone(),
    };
    let client = HttpClient::new(Arc::new(connector), Duration::from_millis(TIMEOUT_MS), 4)
        .with_planted(planted);
    let first = get(&client, "/one").await;
    assert!(matches!(first, Err(ClientError::Timeout)), "{first:?}");
    let mut replies = Vec::new();
    for path in ["/two", "/three"] {
        replies.push(get(&client, path).await.expect("answered"));
    }
    (replies, connections.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_requests_connection_is_never_reused() {
    let (replies, connections) = run(Planted::none()).await;
    assert_eq!(replies, ["reply to /two", "reply to /three"]);
    assert_eq!(connections, 2, "the timed-out connection was dropped");
}

#[cfg(feature = "planted-bugs")]
#[tokio::test(start_paused = true)]
async fn planted_pool_cancel_desync_hands_each_request_the_previous_reply() {
    let (replies, connections) = run(Planted::of([crosstalk_service::Bug::PoolCancelDesync])).await;
    assert_eq!(replies, ["reply to /one", "reply to /two"]);
    assert_eq!(
        connections, 1,
        "the timed-out connection went back to the pool"
    );
}
