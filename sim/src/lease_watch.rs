//! What the simulator itself saw of the workers' lease traffic: a layer
//! right in front of the export service's router notes, for every claim,
//! renewal and publication of a job, the export, the fence, when the
//! request reached the service and when (and how) it was answered, in
//! simulated ms. It notes every download too (the export its link names:
//! a download is the only call that can revoke a ready archive), and every
//! support ticket opened (with the address it claims). These are the
//! simulator's own observations of the wire, not the service's job state
//! or event log; the oracle judges them against the lease contract
//! (`check/leases.rs`) and the ticket contract (`check/tickets.rs`).

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};

/// Which worker call an exchange was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseCall {
    Claim,
    Renew,
    Publish,
    /// A download by link (the export the link's token names).
    Download,
    /// A support ticket opened (`POST /v1/tickets`).
    Ticket,
}

/// One worker call as the export service's door saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseExchange {
    pub call: LeaseCall,
    /// The job and the fence the call names (a claim: those it granted; a
    /// download: the export its token names, fence 0; a ticket: 0, 0).
    pub export_id: u64,
    pub fence: u64,
    /// A ticket's claimed address, as sent (empty for every other call).
    pub email: String,
    /// When the request reached the service's router.
    pub arrived_ms: u64,
    /// The status it was answered with and when; `None` when no answer
    /// ever left the service (it crashed mid-request).
    pub answered: Option<(u16, u64)>,
    /// For a claim or renewal answered 200: when the service said the lease
    /// now ends (`lease_expires_at_ms`, on the services' clock: the
    /// simulated epoch plus simulated ms).
    pub lease_expires_at_ms: Option<u64>,
}

/// Every worker call of one run, shared by the export service's
/// incarnations and read by the oracle at the end.
pub type LeaseLog = Arc<Mutex<Vec<LeaseExchange>>>;

/// The export a download token names: its first eight bytes, unverified
/// (a tampered token names some export, and is refused).
fn token_export(token: &str) -> u64 {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap_or_default();
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The call `path` names, and its export id (none for a claim).
fn classify(method: &Method, path: &str) -> Option<(LeaseCall, u64)> {
    if *method == Method::GET {
        let token = path.strip_prefix("/v1/downloads/")?;
        return Some((LeaseCall::Download, token_export(token)));
    }
    if *method != Method::POST {
        return None;
    }
    if path == "/v1/tickets" {
        return Some((LeaseCall::Ticket, 0));
    }
    if path == "/v1/internal/jobs/claim" {
        return Some((LeaseCall::Claim, 0));
    }
    let rest = path.strip_prefix("/v1/internal/jobs/")?;
    let (id, call) = rest.split_once('/')?;
    let call = match call {
        "renew" => LeaseCall::Renew,
        "complete" => LeaseCall::Publish,
        _ => return None,
    };
    Some((call, id.parse().ok()?))
}

/// Put the lease watch in front of `router`, noting into `log`.
pub fn watch(router: Router, log: LeaseLog) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let log = log.clone();
            async move { observe(&log, request, next).await }
        },
    ))
}

async fn observe(log: &LeaseLog, request: Request, next: Next) -> Response {
    let Some((call, export_id)) = classify(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let arrived_ms = crate::net::sim_now_ms();
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let fence = field(&bytes, "fence");
    let email = if call == LeaseCall::Ticket {
        text_field(&bytes, "claimed_email")
    } else {
        String::new()
    };
    let index = {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.push(LeaseExchange {
            call,
            export_id,
            fence,
            email,
            arrived_ms,
            answered: None,
            lease_expires_at_ms: None,
        });
        log.len() - 1
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status().as_u16();
    let leased = matches!(call, LeaseCall::Claim | LeaseCall::Renew) && status == 200;
    let (response, granted, lease_expires_at_ms) = if leased {
        let (mut parts, body) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let granted = (call == LeaseCall::Claim)
            .then(|| (field(&bytes, "export_id"), field(&bytes, "fence")));
        let expires = field(&bytes, "lease_expires_at_ms");
        (
            Response::from_parts(parts, Body::from(bytes)),
            granted,
            Some(expires),
        )
    } else {
        (response, None, None)
    };
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(exchange) = log.get_mut(index) {
        exchange.answered = Some((status, crate::net::sim_now_ms()));
        exchange.lease_expires_at_ms = lease_expires_at_ms;
        if let Some((export_id, fence)) = granted {
            exchange.export_id = export_id;
            exchange.fence = fence;
        }
    }
    response
}

/// A top-level number of a JSON body (0 when absent).
fn field(bytes: &[u8], name: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    value[name].as_u64().unwrap_or(0)
}

/// A top-level string of a JSON body (empty when absent).
fn text_field(bytes: &[u8], name: &str) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    value[name].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_renewals_publications_downloads_and_tickets_are_watched() {
        let post = Method::POST;
        assert_eq!(
            classify(&post, "/v1/internal/jobs/claim"),
            Some((LeaseCall::Claim, 0))
        );
        assert_eq!(
            classify(&post, "/v1/internal/jobs/7/renew"),
            Some((LeaseCall::Renew, 7))
        );
        assert_eq!(
            classify(&post, "/v1/internal/jobs/7/complete"),
            Some((LeaseCall::Publish, 7))
        );
        assert_eq!(classify(&post, "/v1/internal/jobs/7/fail"), None);
        assert_eq!(classify(&Method::GET, "/v1/internal/jobs/7/renew"), None);
        assert_eq!(classify(&post, "/v1/exports"), None);
        assert_eq!(classify(&post, "/v1/tickets"), Some((LeaseCall::Ticket, 0)));
        assert_eq!(classify(&post, "/v1/tickets/3/verify"), None);
        // A download names the export its token's first eight bytes name.
        use base64::Engine;
        let mut token = 9u64.to_be_bytes().to_vec();
        token.extend_from_slice(&[7; 64]);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
        assert_eq!(
            classify(&Method::GET, &format!("/v1/downloads/{token}")),
            Some((LeaseCall::Download, 9))
        );
        assert_eq!(
            classify(&Method::GET, "/v1/downloads/!!"),
            Some((LeaseCall::Download, 0))
        );
    }
}
