//! What the simulator itself saw of the export service asking the store who
//! an address belongs to: a layer right at the store's door notes every
//! `GET /v1/service/lookup?email=…`, the address it asks about (read the
//! way the store's query extractor reads it: as a form, `+` a space), when
//! it reached the store, and when and how the store answered, with the
//! account its answer names, in simulated ms. The oracle holds the export
//! service's answers to support tickets against it (`check/tickets.rs`: an
//! address is "unknown" only when the store said so), and each answer
//! against who held the address (`check/addresses.rs`).

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};

pub use crate::addresses::normalized;

/// One lookup as the store's door saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The address asked about, decoded as a form, trimmed and lower-cased.
    pub email: String,
    pub arrived_ms: u64,
    /// The store's status and when it answered; `None` when no answer ever
    /// left the store (it crashed mid-request).
    pub answered: Option<(u16, u64)>,
    /// The account a 200 answer names.
    pub account_id: Option<u64>,
}

/// Every lookup of one run, shared by the store's incarnations.
pub type LookupLog = Arc<Mutex<Vec<Lookup>>>;

/// The address a lookup request asks about, if `request` is one.
fn looked_up(method: &Method, path: &str, query: Option<&str>) -> Option<String> {
    if *method != Method::GET || path != "/v1/service/lookup" {
        return None;
    }
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("email="))?;
    Some(normalized(&crate::addresses::form_decoded(value)))
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
            account_id: None,
        });
        log.len() - 1
    };
    let response = next.run(request).await;
    let answered = (response.status().as_u16(), crate::net::sim_now_ms());
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(lookup) = log.get_mut(index) {
        lookup.answered = Some(answered);
        lookup.account_id = answer["account_id"].as_u64();
    }
    Response::from_parts(parts, Body::from(bytes))
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
        // As a form: an unencoded plus is a space, an encoded one a plus.
        assert_eq!(
            looked_up(&get, "/v1/service/lookup", Some("email=ana+x%2By%40z.org")),
            Some("ana x+y@z.org".to_string())
        );
        assert_eq!(looked_up(&get, "/v1/service/lookup", None), None);
        assert_eq!(looked_up(&get, "/v1/service/page", Some("email=a")), None);
        assert_eq!(
            looked_up(&Method::POST, "/v1/service/lookup", Some("email=a")),
            None
        );
    }
}
