//! "Moving out": a seller sells an unplugged speaker still holding their
//! captures (a spoken order and "send this to" a contact among them) and
//! closes the account; the buyer plugs it in, it flushes its buffer, and
//! the buyer looks at history, playback, orders and outgoing messages.
//!
//! Each check the path feeds is proved by a small defect planted in a
//! test-only layer in front of the store, and the correct build passes
//! with the path's controls counted:
//! - a capture refused because its seller closed (410) is filed under the
//!   device's current owner instead (the layer sends it again without its
//!   ownership epoch): an erasure (accepted after the closing) and an
//!   isolation violation (the buyer holds the seller's recording);
//! - a pre-sale capture's spoken order, or its spoken message, also acts
//!   for others (the layer adds it to every other account's listing of
//!   orders, or of outgoing messages): an isolation violation naming the
//!   order, or the message.

mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_model::RecordingId;
use crosstalk_model::api::{
    Contact, DeviceCredentials, IngestRequest, IngestResponse, Intent, MessageState, MessageView,
    OrderState, OrderView,
};
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::{Range, Scenario};
use crosstalk_sim::world::{Wrappers, run_plan};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario, split};
use tower::ServiceExt;

/// Device-resale, where people also keep contacts (so that a seller's
/// "send this to" names someone the buyer knows too).
fn resale_with_contacts() -> Scenario {
    let mut s = scenario("device-resale");
    s.actions.contacts = Range(1, 3);
    s
}

#[test]
fn the_correct_build_refuses_a_closed_sellers_captures_and_acts_for_nobody() {
    let s = resale_with_contacts();
    let (mut after_close, mut intents, mut listings) = (0, 0, 0);
    for seed in 0..3 {
        let outcome = run_plan(&Plan::generate(&s, seed));
        assert!(outcome.passed(), "seed {seed}: {:#?}", outcome.violations);
        let c = &outcome.controls;
        after_close += c.moved_out_captures_flushed_after_close;
        intents += c.moved_out_intents_flushed;
        listings += c.moving_in_listings_judged;
        assert!(c.uploads_refused_owner_closed >= c.moved_out_captures_flushed_after_close);
    }
    assert!(after_close > 0 && intents > 0 && listings > 0);
}

/// The store's own router, to send a request again.
type Inner = Router;

/// A refused (410) upload sent again without its ownership epoch: filed
/// under the device's current owner.
fn orphan_to_current_owner(State(inner): State<Inner>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if request.method() != Method::POST || request.uri().path() != "/v1/recordings" {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        let again = (parts.clone(), bytes.clone());
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        if response.status() != StatusCode::GONE {
            return response;
        }
        let Ok(mut upload) = serde_json::from_slice::<IngestRequest>(&again.1) else {
            return response;
        };
        upload.ownership_epoch = None;
        let body = serde_json::to_vec(&upload).unwrap_or_default();
        let request = Request::from_parts(again.0, Body::from(body));
        match inner.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    })
}

#[test]
fn a_closed_sellers_capture_filed_under_the_buyer_fails_the_run() {
    let outcome = first_failure(&scenario("device-resale"), 6, |_| Wrappers {
        store: Some(Rc::new(|router: Router| {
            layered(router.clone(), router, orphan_to_current_owner)
        })),
        export: None,
    });
    assert_caught(&outcome, Invariant::Erasure, "closing was acknowledged");
}

/// What the acting layer learned: each device token's ownership epoch (from
/// sale answers), and the pre-sale captures with an intent that a device
/// uploaded after its sale (recording id, intent).
#[derive(Default)]
struct Learned {
    epochs: BTreeMap<String, u32>,
    acted: Vec<(u64, Intent)>,
}

#[derive(Clone)]
struct Acting {
    learned: Arc<Mutex<Learned>>,
    /// Add the intents to the listings of messages (else of orders).
    messages: bool,
}

fn bearer(request: &Request) -> String {
    crosstalk_service::bearer_token(request.headers())
        .unwrap_or("")
        .to_string()
}

/// Learn sales and post-sale uploads of pre-sale captures; add their
/// intents to every orders (or messages) listing.
fn intents_act_for_others(State(acting): State<Acting>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let token = bearer(&request);
        let (parts, bytes) = split(request).await;
        let upload = serde_json::from_slice::<IngestRequest>(&bytes).ok();
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        if !response.status().is_success() {
            return response;
        }
        let (parts, body) = response_bytes(response).await;
        let mut learned = acting.learned.lock().unwrap_or_else(|p| p.into_inner());
        if method == Method::POST && path.ends_with("/transfer") {
            if let Ok(sold) = serde_json::from_slice::<DeviceCredentials>(&body) {
                learned
                    .epochs
                    .insert(sold.device_token, sold.ownership_epoch);
            }
        } else if method == Method::POST && path == "/v1/recordings" {
            learn_post_sale_intent(&mut learned, &token, upload, &body);
        } else if method == Method::GET && (path == "/v1/orders" || path == "/v1/messages") {
            let acted = learned.acted.clone();
            drop(learned);
            return add_acts(&path, acted, acting.messages, &body)
                .unwrap_or_else(|| Response::from_parts(parts, Body::from(body)));
        }
        Response::from_parts(parts, Body::from(body))
    })
}

fn learn_post_sale_intent(
    learned: &mut Learned,
    token: &str,
    upload: Option<IngestRequest>,
    answer: &[u8],
) {
    let Some(upload) = upload else { return };
    let (Some(epoch), Some(intent)) = (upload.ownership_epoch, upload.intent) else {
        return;
    };
    let sold_since = learned.epochs.get(token).is_some_and(|now| *now > epoch);
    if let (true, Ok(stored)) = (sold_since, serde_json::from_slice::<IngestResponse>(answer)) {
        learned.acted.push((stored.recording_id.0, intent));
    }
}

/// The listing with an order (or a spoken message) for each learned act of
/// that kind that it does not name already; `None` to leave it as it is.
fn add_acts(
    path: &str,
    acted: Vec<(u64, Intent)>,
    messages: bool,
    body: &[u8],
) -> Option<Response> {
    if (path == "/v1/messages") != messages {
        return None;
    }
    if messages {
        let mut listed: Vec<MessageView> = serde_json::from_slice(body).ok()?;
        for (id, intent) in acted {
            let Intent::Message { contact_name } = intent else {
                continue;
            };
            if listed.iter().all(|m| m.recording_id.0 != id) {
                listed.push(MessageView {
                    message_id: (1 << 40) + id,
                    state: MessageState::Held,
                    recording_id: RecordingId(id),
                    resolved_contact: Contact {
                        name: contact_name,
                        email: "someone@example.test".into(),
                    },
                    spoken: true,
                });
            }
        }
        return Some(axum::Json(listed).into_response());
    }
    let mut listed: Vec<OrderView> = serde_json::from_slice(body).ok()?;
    for (id, intent) in acted {
        let Intent::Purchase { item } = intent else {
            continue;
        };
        if listed.iter().all(|o| o.source_recording.0 != id) {
            listed.push(OrderView {
                order_id: (1 << 40) + id,
                item,
                source_recording: RecordingId(id),
                state: OrderState::Held,
            });
        }
    }
    Some(axum::Json(listed).into_response())
}

fn acting_layer(messages: bool) -> impl Fn(u64) -> Wrappers {
    move |_| {
        let acting = Acting {
            learned: Arc::default(),
            messages,
        };
        Wrappers {
            store: Some(Rc::new(move |router: Router| {
                layered(router, acting.clone(), intents_act_for_others)
            })),
            export: None,
        }
    }
}

#[test]
fn a_pre_sale_spoken_order_acting_for_others_fails_the_run() {
    let outcome = first_failure(&scenario("device-resale"), 6, acting_layer(false));
    assert_caught(
        &outcome,
        Invariant::Isolation,
        "comes from another household's capture",
    );
}

#[test]
fn a_pre_sale_spoken_message_acting_for_others_fails_the_run() {
    let outcome = first_failure(&resale_with_contacts(), 6, acting_layer(true));
    assert_caught(
        &outcome,
        Invariant::Isolation,
        "another household's capture",
    );
    assert_caught(&outcome, Invariant::Isolation, "listed as sent by");
}
