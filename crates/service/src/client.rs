//! A small pooled HTTP/1 client over an injected connector.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a server: a TCP stream, a simulated one, anything.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub type BoxIo = Box<dyn Io>;
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>>;

/// Opens a new connection to one fixed server.
pub trait Connect: Send + Sync + 'static {
    fn connect(&self) -> ConnectFuture;
}

/// A fully read response.
pub type HttpResponse = Response<Bytes>;

#[derive(Debug)]
pub enum ClientError {
    Connect(io::Error),
    Http(hyper::Error),
    Timeout,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect failed: {e}"),
            ClientError::Http(e) => write!(f, "http error: {e}"),
            ClientError::Timeout => write!(f, "request timed out"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Keeps up to `max_idle` keep-alive connections. A connection goes back to
/// the pool only after its response was read in full; a request that is
/// cancelled or times out drops its connection with it, so no reply meant
/// for one request can ever be read by the next (DESIGN invariant 6).
pub struct HttpClient {
    connector: Arc<dyn Connect>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
    max_idle: usize,
    spawner: crate::Spawner,
}

impl HttpClient {
    pub fn new(connector: Arc<dyn Connect>, timeout: Duration, max_idle: usize) -> Self {
        Self {
            connector,
            idle: Mutex::new(Vec::new()),
            timeout,
            max_idle,
            spawner: crate::Spawner::Tokio,
        }
    }

    /// Start connection tasks with `spawner` (see [`crate::Spawner`]).
    pub fn with_spawner(mut self, spawner: crate::Spawner) -> Self {
        self.spawner = spawner;
        self
    }

    /// Send one request and read the whole response, within the timeout.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, ClientError> {
        match tokio::time::timeout(self.timeout, self.send_inner(request)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle && !sender.is_closed() {
            idle.push(sender);
        }
    }

    async fn send_inner(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, ClientError> {
        let mut sender = match self.take_idle() {
            Some(sender) => sender,
            None => {
                let io = self
                    .connector
                    .connect()
                    .await
                    .map_err(ClientError::Connect)?;
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                    .await
                    .map_err(ClientError::Http)?;
                self.spawner.spawn(async move {
                    let _ = connection.await;
                });
                sender
            }
        };
        sender.ready().await.map_err(ClientError::Http)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(ClientError::Http)?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(ClientError::Http)?.to_bytes();
        self.put_idle(sender);
        Ok(Response::from_parts(parts, bytes))
    }
}
