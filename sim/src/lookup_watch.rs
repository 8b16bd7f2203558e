//! What the simulator itself saw of the export service asking the store who
//! an address belongs to: a layer right at the store's door notes every
//! `GET /v1/service/lookup?email=…`, the address it asks about, when it
//! reached the store and when (and how) the store answered, in simulated
//! ms. The oracle holds the export service's answers to support tickets
//! against it (`check/tickets.rs`): an address is "unknown" only when the
//! store said so.

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};

/// One lookup as the store's door saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The address asked about, decoded, trimmed and lower-cased.
    pub email: String,
    pub arrived_ms: u64,
    /// The store's status and when it answered; `None` when no answer ever
    /// left the store (it crashed mid-request).
    pub answered: Option<(u16, u64)>,
}

/// Every lookup of one run, shared by the store's incarnations.
pub type LookupLog = Arc<Mutex<Vec<Lookup>>>;

/// An address as the services compare them: trimmed, lower-cased.
pub fn normalized(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// `%XX`-decode a query value (anything malformed is kept as sent).
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The address a lookup request asks about, if `request` is one.
fn looked_up(method: &Method, path: &str, query: Option<&str>) -> Option<String> {
    if *method != Method::GET || path != "/v1/service/lookup" {
        return None;
    }
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("email="))?;
    Some(normalized(&percent_decoded(value)))
}

/// Put the lookup watch in front of `router`, noting into `log`.
pub fn watch(router: Router, log: LookupLog) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let log = log.clone();
            async move { observe(&log, request, next).await }
        },
    ))
}

async fn observe(log: &LookupLog, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let Some(email) = looked_up(request.method(), uri.path(), uri.query()) else {
        return next.run(request).await;
    };
    let index = {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.push(Lookup {
            email,
            arrived_ms: crate::net::sim_now_ms(),
            answered: None,
        });
        log.len() - 1
    };
    let response = next.run(request).await;
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lookup) = log.get_mut(index) {
        lookup.answered = Some((response.status().as_u16(), crate::net::sim_now_ms()));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lookups_are_watched_with_their_address_decoded() {
        let get = Method::GET;
        assert_eq!(
            looked_up(&get, "/v1/service/lookup", Some("email=Ann%40X.org")),
            Some("ann@x.org".to_string())
        );
        assert_eq!(
            looked_up(&get, "/v1/service/lookup", Some("email=a%4")),
            Some("a%4".to_string())
        );
        assert_eq!(looked_up(&get, "/v1/service/lookup", None), None);
        assert_eq!(looked_up(&get, "/v1/service/page", Some("email=a")), None);
        assert_eq!(
            looked_up(&Method::POST, "/v1/service/lookup", Some("email=a")),
            None
        );
    }
}
