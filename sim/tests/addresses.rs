//! Real users' addresses (`sim/src/addresses.rs`, `check/addresses.rs`):
//! plus-addressing on a family's mailbox, apostrophes, capitals, the
//! characters a URL query must percent-encode, typed in other letters from
//! one time to the next. Each test plants, in a test-only layer in front of
//! the store, the mangling a naive client or server does to such an
//! address, and shows the run fails by the address contract; the correct
//! build passes with the requests by awkward addresses counted:
//!
//! - the export service's lookup built without percent-encoding (every
//!   `%2B` arrives as `+`, which the store reads as a space): a customer's
//!   address resolved to nobody, so their ticket never gets its challenge;
//! - a sign-in body read as a form (`+` as a space): the right password
//!   refused;
//! - a sale whose address loses its `+tag` (sub-address "normalization"):
//!   the buyer is nobody;
//! - a contact kept without its `+tag`: a message to the contact resolves
//!   to an address its sender never gave, or to nobody.

mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{Wrappers, run_plan};
use std::rc::Rc;
use support::{Fut, assert_caught, first_failure, layered, scenario, split};

/// A shipped scenario (swarm off) where every person's address is awkward.
fn everyone_awkward(name: &str) -> Scenario {
    let mut s = scenario(name);
    s.data.awkward_address_per_mille = 1000;
    s
}

fn store_layer(layer: fn(State<()>, Request, Next) -> Fut) -> impl Fn(u64) -> Wrappers {
    move |_| Wrappers {
        store: Some(Rc::new(move |inner: Router| layered(inner, (), layer))),
        export: None,
    }
}

#[test]
fn the_correct_build_judges_requests_by_awkward_addresses_and_passes() {
    let (mut awkward, mut lookups, mut sign_ins) = (0, 0, 0);
    for name in ["gdpr-wrong-customer", "portland-message", "device-resale"] {
        let s = everyone_awkward(name);
        for seed in 0..2 {
            let outcome = run_plan(&Plan::generate(&s, seed));
            assert!(
                outcome.passed(),
                "{name} seed {seed}: {:#?}",
                outcome.violations
            );
            let c = &outcome.controls;
            awkward += c.awkward_address_requests_judged;
            lookups += c.lookups_judged_against_holders;
            sign_ins += c.sign_ins_judged;
        }
    }
    assert!(awkward > 0 && lookups > 0 && sign_ins > 0);
}

// --- Defect: a lookup query built without percent-encoding. ----------------

/// The export service's lookup as a client that does not percent-encode
/// sends it: an encoded plus arrives as a plus (which a query reads as a
/// space).
fn unencoded_lookup(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let (mut parts, body) = request.into_parts();
        if parts.method == Method::GET && parts.uri.path() == "/v1/service/lookup" {
            let naive = parts.uri.to_string().replace("%2B", "+");
            parts.uri = naive.parse::<Uri>().unwrap_or(parts.uri);
        }
        next.run(Request::from_parts(parts, body)).await
    })
}

#[test]
fn a_lookup_built_without_percent_encoding_is_caught() {
    let s = everyone_awkward("gdpr-wrong-customer");
    let outcome = first_failure(&s, 4, store_layer(unencoded_lookup));
    assert_caught(&outcome, Invariant::ApiContract, "resolved to nobody");
}

// --- Defect: a JSON body's address read as a form. -----------------------

/// `field` of a JSON request body rewritten by `mangle`.
async fn mangled_field(
    request: Request,
    next: Next,
    field: &str,
    mangle: fn(&str) -> String,
) -> axum::response::Response {
    let (parts, bytes) = split(request).await;
    let mut body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(email) = body[field].as_str() {
        body[field] = serde_json::json!(mangle(email));
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn sign_in_read_as_a_form(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if request.method() != Method::POST || request.uri().path() != "/v1/sessions" {
            return next.run(request).await;
        }
        mangled_field(request, next, "email", |e| e.replace('+', " ")).await
    })
}

#[test]
fn a_sign_in_that_reads_its_address_as_a_form_is_caught() {
    let s = everyone_awkward("smoke");
    let outcome = first_failure(&s, 4, store_layer(sign_in_read_as_a_form));
    assert_caught(&outcome, Invariant::ApiContract, "the right password");
}

// --- Defect: sub-addresses "normalized" away. -----------------------------

/// `email` without its `+tag`, as a service that "normalizes" sub-addresses
/// keeps it.
fn without_tag(email: &str) -> String {
    match (email.find('+'), email.rfind('@')) {
        (Some(plus), Some(at)) if plus < at => format!("{}{}", &email[..plus], &email[at..]),
        _ => email.to_string(),
    }
}

fn sale_without_tag(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let sale = request.uri().path().ends_with("/transfer");
        if request.method() != Method::POST || !sale {
            return next.run(request).await;
        }
        mangled_field(request, next, "to_email", without_tag).await
    })
}

#[test]
fn a_sale_whose_address_loses_its_tag_is_caught() {
    let s = everyone_awkward("device-resale");
    let outcome = first_failure(&s, 4, store_layer(sale_without_tag));
    assert_caught(&outcome, Invariant::ApiContract, "no such account");
}

fn contact_without_tag(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if request.method() != Method::POST || request.uri().path() != "/v1/contacts" {
            return next.run(request).await;
        }
        mangled_field(request, next, "email", without_tag).await
    })
}

#[test]
fn a_contact_kept_without_its_tag_is_caught() {
    let s = everyone_awkward("portland-message");
    let outcome = first_failure(&s, 4, store_layer(contact_without_tag));
    assert_caught(&outcome, Invariant::ApiContract, "address contract");
}
