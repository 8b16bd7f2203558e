//! Verdicts on every answer a service gave, whoever drove the request (the
//! simulator's workload or the `export_api` fuzz target).
//!
//! A driver hands each answer over as an [`Answer`]: which service, the
//! request, the status, the body, who asked and the client's times. The
//! oracle judges the error contract at once (every 4xx or 5xx carries a
//! JSON `{"error", "message"}` body with both strings non-empty) and keeps
//! every 5xx for the end-of-run verdict against the fault log
//! ([`super::Oracle::judge_contract`]). Download links found in what a
//! principal received are judged by [`super::Oracle::link_delivered`]: a
//! link is only ever handed to its own subject.

use super::contract::ServerError;
use super::{Invariant, Oracle};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crosstalk_model::{AccountId, ExportId};

/// One answer of a service, as its client saw it.
#[derive(Clone, Debug)]
pub struct Answer<'a> {
    /// The service's host name (`crate::net::STORE_HOST` or `EXPORT_HOST`).
    pub service: &'static str,
    /// Method and path, for the report.
    pub request: String,
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
    /// False for answers that carry no body by definition (`HEAD`).
    pub has_body: bool,
    /// The answer's `Cache-Control` header ("" when absent).
    pub cache_control: &'a str,
    /// Whether the request carried credentials (`Authorization`).
    pub authenticated: bool,
    pub principal: Option<usize>,
    pub sent_ms: u64,
    pub at_ms: u64,
}

/// Where a download link's path begins.
pub const DOWNLOAD_PREFIX: &str = "/v1/downloads/";

/// Every download link in `bytes`: (export, subject) read from the token
/// (`base64url(export ‖ subject ‖ expiry ‖ nonce ‖ tag)`; the tag is not
/// checked: the claims say whose the link is meant to be).
pub fn links_in(bytes: &[u8]) -> Vec<(ExportId, AccountId)> {
    let text = String::from_utf8_lossy(bytes);
    let mut links = Vec::new();
    let mut rest: &str = &text;
    while let Some(start) = rest.find(DOWNLOAD_PREFIX) {
        rest = &rest[start + DOWNLOAD_PREFIX.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if let Ok(raw) = URL_SAFE_NO_PAD.decode(&rest[..end])
            && raw.len() == 8 + 8 + 8 + 16 + 32
        {
            let word = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&raw[at..at + 8]);
                u64::from_be_bytes(b)
            };
            links.push((ExportId(word(0)), AccountId(word(8))));
        }
        rest = &rest[end..];
    }
    links
}

/// Why an error answer is not a JSON `{"error", "message"}` body.
pub fn error_body_fault(content_type: &str, body: &[u8]) -> Option<String> {
    if !content_type.starts_with("application/json") {
        return Some(format!("an error with content type {content_type:?}"));
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return Some(format!("an error body that is not JSON: {e}")),
    };
    ["error", "message"].into_iter().find_map(|field| {
        match value.get(field).and_then(serde_json::Value::as_str) {
            Some(text) if !text.is_empty() => None,
            _ => Some(format!("an error body without a non-empty {field:?}")),
        }
    })
}

/// Whether a shared cache (a caching proxy between the clients and the
/// service, a CDN) may store an answer to a request that carried
/// `Authorization` and serve it to the next client asking for the same URL
/// (RFC 9111 §3 and §3.5): only when the answer explicitly allows it with
/// `public`, `s-maxage` or `must-revalidate`, and says neither `no-store`,
/// `private` (unqualified: `private="field"` only withholds that field)
/// nor `no-cache` (stored but revalidated, with the next client's own
/// credentials, before every reuse).
pub fn shared_cache_may_store_authorized(cache_control: &str) -> bool {
    let mut allows = false;
    for directive in cache_control.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        let (name, has_value) = match directive.split_once('=') {
            Some((name, _)) => (name.trim().to_string(), true),
            None => (directive.clone(), false),
        };
        match name.as_str() {
            "no-store" => return false,
            "private" | "no-cache" if !has_value => return false,
            "public" | "s-maxage" | "must-revalidate" => allows = true,
            _ => {}
        }
    }
    allows
}

impl Oracle {
    /// Judge one answer's status, error body and cacheability; keep a 5xx
    /// for the end-of-run verdict against the faults injected.
    pub fn answer_received(&mut self, answer: &Answer<'_>) {
        self.reply_judged();
        self.judge_cacheability(answer);
        let error = answer.status >= 400;
        if error
            && answer.has_body
            && let Some(fault) = error_body_fault(answer.content_type, answer.body)
        {
            self.controls.error_bodies_malformed += 1;
            let detail = format!(
                "{} to the {} service answered {} with {fault}: {}",
                answer.request,
                answer.service,
                answer.status,
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
            );
            self.violate(
                Invariant::ApiContract,
                answer.at_ms,
                None,
                answer.principal,
                detail,
            );
        } else if error && answer.has_body {
            self.controls.error_bodies_judged += 1;
        }
        if answer.status >= 500 {
            self.server_error(ServerError {
                service: answer.service,
                request: answer.request.clone(),
                status: Some(answer.status),
                body: String::from_utf8_lossy(answer.body).into_owned(),
                principal: answer.principal,
                sent_ms: answer.sent_ms,
                at_ms: answer.at_ms,
            });
        }
    }

    /// An answer to an authenticated request is meant for its principal
    /// alone (a history, a recording, an archive, an export's status): a
    /// shared cache that may store it would hand it to the next client
    /// asking for the same URL (Steam 2015; a CDN in front of a personal
    /// API is ordinary deployment).
    fn judge_cacheability(&mut self, answer: &Answer<'_>) {
        if !answer.authenticated {
            return;
        }
        self.controls.cache_headers_judged += 1;
        if shared_cache_may_store_authorized(answer.cache_control) {
            let detail = format!(
                "{} to the {} service answered {} with Cache-Control: {:?}: a shared cache may store \
                 this answer to an authenticated request and serve it to the next client asking for \
                 the same URL",
                answer.request, answer.service, answer.status, answer.cache_control
            );
            self.violate(
                Invariant::RequestIntegrity,
                answer.at_ms,
                None,
                answer.principal,
                detail,
            );
        }
    }

    /// `receiver` was handed a download link whose token names the account
    /// `subject_account` (read from the link's claims): it must be their
    /// own account's.
    pub fn link_delivered(
        &mut self,
        receiver: usize,
        subject_account: u64,
        channel: &str,
        at_ms: u64,
    ) {
        self.controls.links_delivered_judged += 1;
        let own = self
            .people
            .get(receiver)
            .and_then(|p| p.account_id)
            .is_some_and(|account| account == subject_account);
        if !own {
            let detail = format!(
                "{} was handed a download link of acct-{subject_account} via {channel}",
                self.who(receiver)
            );
            self.violate(Invariant::LinkBinding, at_ms, None, Some(receiver), detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn oracle() -> Oracle {
        let mut oracle = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into(), "b@x".into()]);
        oracle.people[0].account_id = Some(10);
        oracle.people[1].account_id = Some(11);
        oracle
    }

    fn answer<'a>(status: u16, content_type: &'a str, body: &'a [u8]) -> Answer<'a> {
        Answer {
            service: crate::net::STORE_HOST,
            request: "GET /v1/recordings".into(),
            status,
            content_type,
            body,
            has_body: true,
            cache_control: "no-store",
            authenticated: true,
            principal: Some(0),
            sent_ms: 5,
            at_ms: 6,
        }
    }

    #[test]
    fn an_error_without_a_json_error_body_is_a_contract_violation() {
        let mut o = oracle();
        o.answer_received(&answer(
            404,
            "application/json",
            br#"{"error":"not_found","message":"no"}"#,
        ));
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.error_bodies_judged, 1);
        o.answer_received(&answer(404, "text/plain", b"no"));
        o.answer_received(&answer(400, "application/json", br#"{"error":"x"}"#));
        assert_eq!(o.violations.len(), 2);
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::ApiContract)
        );
        assert_eq!(o.controls.error_bodies_malformed, 2);
    }

    #[test]
    fn a_server_error_is_kept_for_the_fault_log_verdict() {
        let mut o = oracle();
        o.answer_received(&answer(
            500,
            "application/json",
            br#"{"error":"internal","message":"x"}"#,
        ));
        assert!(o.violations.is_empty());
        o.judge_contract(&Default::default(), Vec::new());
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::ApiContract);
    }

    #[test]
    fn a_link_is_judged_by_whose_account_it_names() {
        let mut o = oracle();
        o.link_delivered(0, 10, "feed", 1);
        assert!(o.violations.is_empty());
        o.link_delivered(1, 10, "feed", 2);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::LinkBinding);
        assert_eq!(o.controls.links_delivered_judged, 2);
    }
}
