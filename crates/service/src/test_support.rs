//! Test scaffolding the services' own tests share (the `test-support`
//! feature, turned on only by the crates' dev-dependencies; no production
//! build compiles it).
//!
//! - [`Reply`]: one response read in full, with the assertions every API
//!   test makes (the expected status and a JSON body; an error's JSON
//!   [`ErrorBody`] and content type). [`call`] sends a request (say, a
//!   [`json_request`]) through a router in process and checks that no
//!   `Date` header left it.
//! - [`TempDir`], [`free_port`] and [`Endpoint`]: the real-server tests'
//!   temporary directory, port probe, and a client of a server over real
//!   loopback TCP that checks every response for a `Date` header.
//!
//! Nothing here reads the OS clock.

use crate::client::{ClientError, HttpClient, HttpResponse};
use crate::real::TcpConnector;
use axum::Router;
use bytes::Bytes;
use crosstalk_model::api::ErrorBody;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// One response, read in full.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl From<HttpResponse> for Reply {
    fn from(response: HttpResponse) -> Self {
        let (parts, body) = response.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

impl Reply {
    /// The body as (lossy) text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Expect `expected` and a JSON body of type `T`.
    pub fn json<T: DeserializeOwned>(&self, expected: StatusCode) -> T {
        assert_eq!(self.status, expected, "body: {}", self.text());
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not the expected JSON ({e}): {}", self.text()))
    }

    /// Expect the error `expected`: JSON content, a `{"error", "message"}`
    /// body with both fields non-empty strings.
    pub fn error(&self, expected: StatusCode) -> ErrorBody {
        assert_eq!(self.status, expected, "body: {}", self.text());
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "error content type; body: {}",
            self.text()
        );
        let value: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", self.text()));
        assert!(value.get("error").is_some_and(Value::is_string), "{value}");
        assert!(
            value.get("message").is_some_and(Value::is_string),
            "{value}"
        );
        let parsed: ErrorBody = serde_json::from_value(value).expect("error body parses");
        assert!(
            !parsed.error.is_empty() && !parsed.message.is_empty(),
            "{parsed:?}"
        );
        parsed
    }
}

/// An in-process request: an optional bearer token, an optional JSON body.
pub fn json_request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Request<axum::body::Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(
                serde_json::to_vec(body).expect("json"),
            ))
            .expect("request builds"),
        None => builder
            .body(axum::body::Body::empty())
            .expect("request builds"),
    }
}

/// Send `request` through `router` in process and read the whole reply;
/// the reply must carry no `Date` header (it would read the OS clock).
pub async fn call(router: &Router, request: Request<axum::body::Body>) -> Reply {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("routers are infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body reads").to_bytes();
    assert!(
        parts.headers.get(header::DATE).is_none(),
        "a Date header reads the OS clock"
    );
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Expect the error `expected` in a response read over a socket (see
/// [`Reply::error`]).
pub fn expect_error(response: &HttpResponse, expected: StatusCode) -> ErrorBody {
    Reply::from(response.clone()).error(expected)
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    /// `crosstalk-{kind}-{pid}-{test}` under the system temp dir, empty.
    pub fn new(kind: &str, test: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("crosstalk-{kind}-{}-{test}", std::process::id()));
        // A leftover from a crashed earlier run with a recycled pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A port nobody was listening on a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe listener");
    listener.local_addr().expect("probe address").port()
}

/// A server over real loopback TCP, reached with the workspace's pooled
/// [`HttpClient`]; every response must lack a `Date` header.
pub struct Endpoint {
    pub address: String,
    pub client: HttpClient,
    /// The server's log, quoted when a request gets no answer.
    pub log: Option<PathBuf>,
}

impl Endpoint {
    pub fn new(address: &str) -> Self {
        Self {
            address: address.to_string(),
            client: HttpClient::new(
                Arc::new(TcpConnector {
                    address: address.to_string(),
                }),
                Duration::from_secs(10),
                4,
            ),
            log: None,
        }
    }

    /// The server's log so far (empty without one).
    pub fn read_log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// A request with the `Host` header, an optional bearer token and an
    /// optional JSON body.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.address);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(value).expect("json"))
            }
            None => Bytes::new(),
        };
        builder.body(Full::new(body)).expect("request builds")
    }

    /// Send over the socket; an answer must lack a `Date` header.
    pub async fn try_send_raw(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<HttpResponse, ClientError> {
        let what = format!("{} {} on {}", request.method(), request.uri(), self.address);
        let response = self.client.send(request).await?;
        assert!(
            response.headers().get(header::DATE).is_none(),
            "{what} answered with a Date header: {response:?}"
        );
        Ok(response)
    }

    /// The answer, if one came (say, while a server is starting).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<HttpResponse> {
        self.try_send_raw(self.request(method, path, token, body))
            .await
            .ok()
    }

    /// [`Self::try_send_raw`], which must get an answer.
    pub async fn send_raw(&self, request: Request<Full<Bytes>>) -> HttpResponse {
        let what = format!("{} {} on {}", request.method(), request.uri(), self.address);
        self.try_send_raw(request)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}; server log:\n{}", self.read_log()))
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> HttpResponse {
        self.send_raw(self.request(method, path, token, body)).await
    }

    /// Expect `expected`, parse the body as `T`.
    pub async fn ok<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> T {
        Reply::from(self.send(method, path, token, body).await).json(expected)
    }

    /// Expect the error `expected`, with a JSON [`ErrorBody`].
    pub async fn err(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> ErrorBody {
        Reply::from(self.send(method, path, token, body).await).error(expected)
    }
}
