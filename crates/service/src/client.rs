//! A small pooled HTTP/1 client over an injected connector.

use crate::planted::{Bug, Planted};
use crate::spawn::Spawner;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
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

/// The response to a request that was sent but whose reply has not been
/// read yet (hyper resolves it when the response head arrives).
type InFlight = Pin<Box<dyn Future<Output = hyper::Result<Response<Incoming>>> + Send>>;

/// One keep-alive connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// A reply still owed on this connection. Always `None` in a pooled
    /// connection of a correct build; only the planted pool-cancel-desync
    /// pools a connection whose request did not finish.
    unread: Option<InFlight>,
}

/// A connection checked out of the pool for one request. Dropping it (the
/// request finished, failed, timed out or was cancelled) decides whether
/// the connection goes back to the pool: only if the request finished, its
/// reply read in full.
struct Checkout<'a> {
    client: &'a HttpClient,
    conn: Option<Conn>,
    finished: bool,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Planted pool-cancel-desync (ChatGPT 2023): a cancelled request's connection is pooled with its reply unread.
        if self.finished || self.client.planted.on(Bug::PoolCancelDesync) {
            self.client.put_idle(conn);
        }
    }
}

/// Keeps up to `max_idle` keep-alive connections. A connection goes back to
/// the pool only after its response was read in full; a request that is
/// cancelled or times out drops its connection with it, so no reply meant
/// for one request can ever be read by the next (DESIGN invariant 6).
pub struct HttpClient {
    connector: Arc<dyn Connect>,
    idle: Mutex<Vec<Conn>>,
    timeout: Duration,
    max_idle: usize,
    spawner: Spawner,
    planted: Planted,
}

impl HttpClient {
    pub fn new(connector: Arc<dyn Connect>, timeout: Duration, max_idle: usize) -> Self {
        Self {
            connector,
            idle: Mutex::new(Vec::new()),
            timeout,
            max_idle,
            spawner: Spawner::Tokio,
            planted: Planted::none(),
        }
    }

    /// Start connection tasks with `spawner` (see [`Spawner`]).
    pub fn with_spawner(mut self, spawner: Spawner) -> Self {
        self.spawner = spawner;
        self
    }

    /// Plant bugs from the catalogue (inert unless built with the
    /// `planted-bugs` feature; see [`crate::planted`]).
    pub fn with_planted(mut self, planted: Planted) -> Self {
        self.planted = planted;
        self
    }

    /// Send one request and read the whole response, within the timeout.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, ClientError> {
        match tokio::time::timeout(self.timeout, self.send_inner(request)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle && !conn.sender.is_closed() {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
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
        Ok(Conn {
            sender,
            unread: None,
        })
    }

    async fn send_inner(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, ClientError> {
        let conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let mut checkout = Checkout {
            client: self,
            conn: Some(conn),
            finished: false,
        };
        let Some(conn) = checkout.conn.as_mut() else {
            return Err(checkout_lost());
        };
        // A reply still owed on this connection (only ever in a planted
        // pool-cancel-desync build) comes first: it is read in full, in
        // place (a cancellation here leaves it owed), before anything else
        // is sent, and then handed to *this* request as if it were its own.
        let stale = match conn.unread.as_mut() {
            Some(in_flight) => {
                let head = in_flight.await;
                conn.unread = None;
                Some(read_in_full(head.map_err(ClientError::Http)?).await?)
            }
            None => None,
        };
        conn.sender.ready().await.map_err(ClientError::Http)?;
        // The request is queued on the connection now; its reply is owed
        // until read.
        conn.unread = Some(Box::pin(conn.sender.send_request(request)));
        if let Some(stale) = stale {
            // This request's own reply stays owed, for the next request on
            // this connection.
            checkout.finished = true;
            return Ok(stale);
        }
        let head = match conn.unread.as_mut() {
            Some(in_flight) => in_flight.await,
            None => return Err(checkout_lost()),
        };
        conn.unread = None;
        let response = read_in_full(head.map_err(ClientError::Http)?).await?;
        checkout.finished = true;
        Ok(response)
    }
}

async fn read_in_full(response: Response<Incoming>) -> Result<HttpResponse, ClientError> {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(ClientError::Http)?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

/// What a checkout without its connection answers (it cannot happen: the
/// connection is taken only when the checkout is dropped).
fn checkout_lost() -> ClientError {
    ClientError::Connect(io::Error::other("the connection left its checkout"))
}
