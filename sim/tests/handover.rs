//! A support ticket verified across an address handover, proved by a small
//! defect planted in test-only layers in front of the services: a ticket's
//! verification answered with an export of whoever holds the claimed
//! address *now* (the export service re-resolving the address at
//! verification instead of keeping the account it was opened for). The
//! layer in front of the store learns who signed up (or in) with which
//! address; the layer in front of the export service turns the
//! verification of a ticket whose address changed hands since it was
//! opened into an export request of the new holder. The run must fail with
//! the new holder's unasked export, judged by the watermark; the correct
//! build passes with the handover's controls counted.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use crosstalk_model::api::{ExportStatus, SignupResponse, TicketState, TicketStatus};
use crosstalk_sim::check::Invariant;
use crosstalk_sim::check::handover::{NEWCOMER_FEED, VERIFIED_AFTER_HANDOVER};
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan_with};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario, split};

/// Who holds each address now, as the store's answers showed: (account id,
/// a session of theirs).
type Holders = Arc<Mutex<BTreeMap<String, (u64, String)>>>;
/// Each ticket's claimed address and the account holding it when opened.
type Tickets = Arc<Mutex<BTreeMap<u64, (String, u64)>>>;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_default()
}

fn email_in(body: &serde_json::Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// In front of the store: learn every sign-up's and sign-in's holder.
fn learn_holders(State(holders): State<Holders>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() != Method::POST || (path != "/v1/accounts" && path != "/v1/sessions") {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        let email = email_in(&json(&bytes), "email");
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        if response.status() != StatusCode::CREATED {
            return response;
        }
        let (parts, body) = response_bytes(response).await;
        if let Ok(signed) = serde_json::from_slice::<SignupResponse>(&body) {
            let mut holders = holders.lock().unwrap_or_else(|p| p.into_inner());
            holders.insert(email, (signed.account_id.0, signed.session_token));
        }
        Response::from_parts(parts, Body::from(body))
    })
}

/// In front of the export service: remember each ticket's holder at
/// opening; answer the verification of a ticket whose address changed
/// hands since with an export of the new holder.
fn verify_for_holder_now(
    State((holders, tickets)): State<(Holders, Tickets)>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() != Method::POST || !path.starts_with("/v1/tickets") {
            return next.run(request).await;
        }
        if path == "/v1/tickets" {
            return remember_ticket(&holders, &tickets, request, next).await;
        }
        let ticket_id: u64 = path
            .trim_start_matches("/v1/tickets/")
            .trim_end_matches("/verify")
            .parse()
            .unwrap_or(0);
        let claimed = tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ticket_id)
            .cloned();
        let now = claimed.and_then(|(email, opened_for)| {
            let holders = holders.lock().unwrap_or_else(|p| p.into_inner());
            holders
                .get(&email)
                .filter(|(a, _)| *a != opened_for)
                .cloned()
        });
        let Some((_, session)) = now else {
            return next.run(request).await;
        };
        let (mut parts, _) = split(request).await;
        parts.uri = "/v1/exports".parse().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {session}")) {
            parts.headers.insert(header::AUTHORIZATION, value);
        }
        let response = next.run(Request::from_parts(parts, Body::empty())).await;
        let (mut parts, body) = response_bytes(response).await;
        let Ok(export) = serde_json::from_slice::<ExportStatus>(&body) else {
            return Response::from_parts(parts, Body::from(body));
        };
        parts.status = StatusCode::OK;
        let answer = TicketStatus {
            ticket_id,
            state: TicketState::Verified,
            export_id: Some(export.export_id),
        };
        let bytes = serde_json::to_vec(&answer).unwrap_or_default();
        Response::from_parts(parts, Body::from(bytes))
    })
}

async fn remember_ticket(
    holders: &Holders,
    tickets: &Tickets,
    request: Request,
    next: Next,
) -> Response {
    let (parts, bytes) = split(request).await;
    let email = email_in(&json(&bytes), "claimed_email");
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response_bytes(response).await;
    let opened = serde_json::from_slice::<TicketStatus>(&body).ok();
    let holder = holders
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&email)
        .map(|(account, _)| *account);
    if let (Some(ticket), Some(holder)) = (opened, holder) {
        let mut tickets = tickets.lock().unwrap_or_else(|p| p.into_inner());
        tickets.insert(ticket.ticket_id, (email, holder));
    }
    Response::from_parts(parts, Body::from(body))
}

fn subject_at_verify(_seed: u64) -> Wrappers {
    let holders = Holders::default();
    let tickets = Tickets::default();
    let learned = holders.clone();
    Wrappers {
        store: Some(Rc::new(move |inner| {
            layered(inner, learned.clone(), learn_holders)
        })),
        export: Some(Rc::new(move |inner| {
            layered(
                inner,
                (holders.clone(), tickets.clone()),
                verify_for_holder_now,
            )
        })),
    }
}

#[test]
fn a_verification_answered_with_the_new_holders_data_is_caught() {
    let outcome = first_failure(&scenario("recycled-identity"), 6, subject_at_verify);
    assert_caught(
        &outcome,
        Invariant::AgentContainment,
        "never asked for an export",
    );
}

#[test]
fn the_correct_build_keeps_the_ticket_with_the_old_holder() {
    let scenario = scenario("recycled-identity");
    let (mut verified, mut feeds) = (0, 0);
    for seed in 0..2 {
        let outcome = run_plan_with(&Plan::generate(&scenario, seed), &Wrappers::default());
        assert!(outcome.passed(), "seed {seed}: {:#?}", outcome.violations);
        for (kind, total) in [
            (VERIFIED_AFTER_HANDOVER, &mut verified),
            (NEWCOMER_FEED, &mut feeds),
        ] {
            let counted = outcome
                .controls
                .probes
                .get(kind)
                .copied()
                .unwrap_or_default();
            assert_eq!(counted.attempted, counted.refused, "seed {seed}: {kind}");
            *total += counted.attempted;
        }
    }
    assert!(verified > 0, "no ticket was verified across a handover");
    assert!(feeds > 0, "no new holder's feed was read");
}
