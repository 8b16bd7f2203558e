//! The curious user's checks, each proved by a small defect planted in a
//! test-only layer in front of a service (as the canary does): a sign-in
//! that takes any password, a deletion that ignores the owner, a download
//! that ignores what its token says, a playback cache that outlives a
//! deletion, a service door that takes a prefix of its token, an agent
//! console door that forgot its check, a sign-up that compares addresses
//! as written, an inbox that
//! shows nothing, a device door that takes a replaced token, spoken commands
//! never decided. Each must make the run fail with the right invariant and
//! the right kind of attempt; the correct build passes with every kind of
//! attempt made and refused.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use crosstalk_service::bearer_token;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan_with};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario, split};

type Shared<T> = Arc<Mutex<T>>;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_default()
}

fn with_bearer(parts: &mut axum::http::request::Parts, token: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        parts.headers.insert(header::AUTHORIZATION, value);
    }
}

// --- Defect: a sign-in that takes any password. -------------------------

fn any_password(
    State(known): State<Shared<BTreeMap<String, String>>>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() != Method::POST || (path != "/v1/accounts" && path != "/v1/sessions") {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        let mut body = json(&bytes);
        let email = body["email"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        {
            let mut known = known.lock().unwrap_or_else(|p| p.into_inner());
            if path == "/v1/accounts" {
                let password = body["password"].as_str().unwrap_or_default().to_string();
                known.insert(email, password);
            } else if let Some(password) = known.get(&email) {
                body["password"] = serde_json::json!(password);
            }
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

#[test]
fn a_sign_in_that_takes_any_password_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 5, |_| Wrappers {
        store: Some(Rc::new(|inner| {
            layered(inner, Shared::default(), any_password)
        })),
        export: None,
    });
    assert_caught(&outcome, Invariant::AccessControl, "sign-in as a neighbour");
}

// --- Learning who owns what, for the defects that ignore the owner. -------

/// What a layer learned from the traffic: each device token's session and
/// each recording's uploader's session, every device's tokens, and each
/// recording's audio.
#[derive(Default)]
struct Learned {
    device_session: BTreeMap<String, String>,
    recording_session: BTreeMap<u64, String>,
    device_tokens: BTreeMap<u64, Vec<String>>,
    audio: BTreeMap<u64, Vec<u8>>,
}

/// Forward `request` and learn from the exchange: registrations, resets,
/// transfers and uploads. Returns the response, rebuilt.
async fn forward_and_learn(learned: &Shared<Learned>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let is_post = request.method() == Method::POST;
    let bearer = bearer_token(request.headers())
        .map(str::to_string)
        .unwrap_or_default();
    let (parts, bytes) = split(request).await;
    let sent = json(&bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !is_post || !response.status().is_success() {
        return response;
    }
    let (parts, body) = response_bytes(response).await;
    let answer = json(&body);
    let mut learned = learned.lock().unwrap_or_else(|p| p.into_inner());
    let device = answer["device_id"].as_u64().unwrap_or(0);
    if let Some(token) = answer["device_token"].as_str() {
        if path == "/v1/devices" {
            learned
                .device_session
                .insert(token.to_string(), bearer.clone());
        }
        learned
            .device_tokens
            .entry(device)
            .or_default()
            .push(token.to_string());
    }
    if path == "/v1/recordings"
        && let Some(id) = answer["recording_id"].as_u64()
    {
        if let Some(session) = learned.device_session.get(&bearer).cloned() {
            learned.recording_session.insert(id, session);
        }
        let audio = sent["audio_base64"].as_str().unwrap_or_default();
        use base64::Engine;
        if let Ok(audio) = base64::engine::general_purpose::STANDARD.decode(audio) {
            learned.audio.insert(id, audio);
        }
    }
    Response::from_parts(parts, Body::from(body))
}

/// The recording id of `/v1/recordings/{id}` or `/v1/recordings/{id}/audio`.
fn recording_in(path: &str) -> Option<u64> {
    let rest = path.strip_prefix("/v1/recordings/")?;
    rest.trim_end_matches("/audio").parse().ok()
}

// --- Defect: a deletion that ignores the owner. ---------------------------

fn delete_ignores_owner(
    State(learned): State<Shared<Learned>>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() != Method::DELETE {
            return forward_and_learn(&learned, request, next).await;
        }
        let owner = recording_in(&path).and_then(|id| {
            learned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .recording_session
                .get(&id)
                .cloned()
        });
        let (mut parts, bytes) = split(request).await;
        if let Some(session) = owner {
            with_bearer(&mut parts, &session);
        }
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

#[test]
fn a_deletion_that_ignores_the_owner_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 5, |_| Wrappers {
        store: Some(Rc::new(|inner| {
            layered(inner, Shared::default(), delete_ignores_owner)
        })),
        export: None,
    });
    assert_caught(
        &outcome,
        Invariant::AccessControl,
        "foreign recording: delete",
    );
}

// --- Defect: a playback cache that outlives a deletion. -------------------

fn stale_playback(State(learned): State<Shared<Learned>>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        let is_audio = request.method() == Method::GET && path.ends_with("/audio");
        let bearer = bearer_token(request.headers())
            .map(str::to_string)
            .unwrap_or_default();
        let response = forward_and_learn(&learned, request, next).await;
        let Some(id) = recording_in(&path).filter(|_| is_audio) else {
            return response;
        };
        if response.status() != axum::http::StatusCode::NOT_FOUND {
            return response;
        }
        let learned = learned.lock().unwrap_or_else(|p| p.into_inner());
        match (learned.recording_session.get(&id), learned.audio.get(&id)) {
            (Some(owner), Some(audio)) if *owner == bearer => {
                Response::new(Body::from(audio.clone()))
            }
            _ => response,
        }
    })
}

#[test]
fn a_playback_cache_that_outlives_a_deletion_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 8, |_| Wrappers {
        store: Some(Rc::new(|inner| {
            layered(inner, Shared::default(), stale_playback)
        })),
        export: None,
    });
    assert_caught(&outcome, Invariant::Erasure, "after deletion: playback");
}

// --- Defect: a device door that takes a replaced token. -------------------

fn retired_tokens_accepted(
    State(learned): State<Shared<Learned>>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let is_upload =
            request.method() == Method::POST && request.uri().path() == "/v1/recordings";
        let bearer = bearer_token(request.headers())
            .map(str::to_string)
            .unwrap_or_default();
        if !is_upload {
            return forward_and_learn(&learned, request, next).await;
        }
        let current = learned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .device_tokens
            .values()
            .find(|tokens| tokens.contains(&bearer))
            .and_then(|tokens| tokens.last().cloned());
        let (mut parts, bytes) = split(request).await;
        if let Some(current) = current {
            with_bearer(&mut parts, &current);
        }
        let request = Request::from_parts(parts, Body::from(bytes));
        forward_and_learn(&learned, request, next).await
    })
}

#[test]
fn a_device_door_that_takes_a_replaced_token_is_caught() {
    let outcome = first_failure(&scenario("device-resale"), 8, |_| Wrappers {
        store: Some(Rc::new(|inner| {
            layered(inner, Shared::default(), retired_tokens_accepted)
        })),
        export: None,
    });
    assert_caught(&outcome, Invariant::AccessControl, "retired device token");
}

// --- Defects at the protected doors: a check weakened or forgotten. -------

/// Hand `request` on with the real token `real` in place of whatever it
/// carried: what a door whose check let it through would do next.
async fn with_real_token(real: &str, request: Request, next: Next) -> Response {
    let (mut parts, bytes) = split(request).await;
    with_bearer(&mut parts, real);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The first failing smoke run with `defect` layered in front of the
/// store (or the export service), given the seed's real token of `purpose`.
fn first_failure_at_a_door(
    purpose: &'static str,
    on_export: bool,
    defect: fn(State<Arc<String>>, Request, Next) -> Fut,
) -> crosstalk_sim::world::RunOutcome {
    first_failure(&scenario("smoke"), 8, |seed| {
        let real = Arc::new(hex::encode(crosstalk_sim::streams::derive(seed, purpose)));
        let layer: Rc<dyn Fn(axum::Router) -> axum::Router> =
            Rc::new(move |inner| layered(inner, real.clone(), defect));
        if on_export {
            Wrappers {
                store: None,
                export: Some(layer),
            }
        } else {
            Wrappers {
                store: Some(layer),
                export: None,
            }
        }
    })
}

/// A service door that takes a prefix of its token.
fn prefix_service_token(State(real): State<Arc<String>>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let is_service = request.uri().path().starts_with("/v1/service/");
        let bearer = bearer_token(request.headers())
            .map(str::to_string)
            .unwrap_or_default();
        if !is_service || bearer.is_empty() || !real.starts_with(&bearer) {
            return next.run(request).await;
        }
        with_real_token(&real, request, next).await
    })
}

#[test]
fn a_service_door_that_takes_a_prefix_of_its_token_is_caught() {
    let outcome = first_failure_at_a_door("service-token", false, prefix_service_token);
    assert_caught(
        &outcome,
        Invariant::AccessControl,
        "service API with a wrong token",
    );
}

/// The agent's audit log and overdue list served to whoever asks, as
/// handlers without their `agent(&headers)?` line would: less-travelled
/// doors are where a forgotten check hides.
fn audit_without_check(State(real): State<Arc<String>>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path();
        if path != "/v1/agent/audit" && path != "/v1/agent/overdue" {
            return next.run(request).await;
        }
        with_real_token(&real, request, next).await
    })
}

#[test]
fn a_console_door_that_forgot_its_check_is_caught() {
    let outcome = first_failure_at_a_door("agent-token", true, audit_without_check);
    assert_caught(
        &outcome,
        Invariant::AccessControl,
        "agent console with a wrong token",
    );
}

// --- Defect: a sign-up that compares addresses as written. -----------------

/// A sign-up whose uniqueness check compares the address as written: one
/// in capitals or with spaces around it is a new account (the layer files
/// it under an address of its own, as the defective store would).
fn signup_as_written(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if request.method() != Method::POST || request.uri().path() != "/v1/accounts" {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        let mut body = json(&bytes);
        let written = body["email"].as_str().unwrap_or_default().to_string();
        let normal = written.trim().to_ascii_lowercase();
        if written != normal {
            body["email"] = serde_json::json!(format!("as-written.{normal}"));
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

#[test]
fn a_sign_up_that_compares_addresses_as_written_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 5, |_| Wrappers {
        store: Some(Rc::new(|inner| layered(inner, (), signup_as_written))),
        export: None,
    });
    assert_caught(
        &outcome,
        Invariant::AccessControl,
        "sign-up with one's own address written another way",
    );
}

// --- Defect: an inbox that shows nothing. ---------------------------------

fn empty_inbox(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if request.method() == Method::GET && request.uri().path() == "/v1/inbox" {
            let _ = next.run(request).await;
            let mut response = Response::new(Body::from("[]"));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return response;
        }
        next.run(request).await
    })
}

#[test]
fn confirmed_messages_that_never_arrive_are_caught() {
    let outcome = first_failure(&scenario("portland-message"), 5, |_| Wrappers {
        store: Some(Rc::new(|inner| layered(inner, (), empty_inbox))),
        export: None,
    });
    assert_caught(&outcome, Invariant::Durability, "missing from their inbox");
}

// --- Defect: a download that ignores what its token says. -----------------

/// Each session's last download path, as export statuses showed it.
fn token_ignored(
    State(paths): State<Shared<BTreeMap<String, String>>>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        let bearer = bearer_token(request.headers())
            .map(str::to_string)
            .unwrap_or_default();
        if path.starts_with("/v1/downloads/") {
            let known = paths
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&bearer)
                .cloned();
            let (mut parts, bytes) = split(request).await;
            if let Some(known) = known.filter(|k| *k != path)
                && let Ok(uri) = known.parse()
            {
                parts.uri = uri;
            }
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        let response = next.run(request).await;
        if !path.starts_with("/v1/exports/") || !response.status().is_success() {
            return response;
        }
        let (parts, body) = response_bytes(response).await;
        if let Some(download) = json(&body)["download_path"].as_str() {
            paths
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(bearer, download.to_string());
        }
        Response::from_parts(parts, Body::from(body))
    })
}

#[test]
fn a_download_that_ignores_its_token_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 8, |_| Wrappers {
        store: None,
        export: Some(Rc::new(|inner| {
            layered(inner, Shared::default(), token_ignored)
        })),
    });
    assert_caught(&outcome, Invariant::LinkBinding, "tampered link token");
}

// --- The correct build. ---------------------------------------------------

#[test]
fn the_correct_build_refuses_every_attempt() {
    let scenario = scenario("smoke");
    let mut refused = BTreeMap::new();
    for seed in 0..2 {
        let outcome = run_plan_with(&Plan::generate(&scenario, seed), &Wrappers::default());
        assert!(outcome.passed(), "seed {seed}: {:#?}", outcome.violations);
        for (kind, a) in &outcome.controls.probes {
            assert_eq!(a.attempted, a.refused, "seed {seed}: {kind}");
            *refused.entry(*kind).or_insert(0) += a.refused;
        }
    }
    for kind in [
        "foreign recording: delete",
        "foreign device: transfer",
        "sign-in as a neighbour",
        "sign-up with one's own address written another way",
        "service API with a wrong token",
        "worker API with a wrong token",
        "agent console with a wrong token",
        "tampered link token",
    ] {
        assert!(
            refused.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} refused"
        );
    }
}

// --- Defect: spoken commands that are never decided. ----------------------

fn never_decided(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let outgoing = request.method() == Method::GET && request.uri().path() == "/v1/messages";
        let response = next.run(request).await;
        if !outgoing || !response.status().is_success() {
            return response;
        }
        let (parts, body) = response_bytes(response).await;
        let mut messages = json(&body);
        if let Some(items) = messages.as_array_mut() {
            for item in items.iter_mut().filter(|m| m["spoken"] == true) {
                item["state"] = serde_json::json!("held");
            }
        }
        let bytes = serde_json::to_vec(&messages).unwrap_or_default();
        Response::from_parts(parts, Body::from(bytes))
    })
}

#[test]
fn spoken_commands_never_decided_are_caught() {
    let outcome = first_failure(&scenario("portland-message"), 5, |_| Wrappers {
        store: Some(Rc::new(|inner| layered(inner, (), never_decided))),
        export: None,
    });
    assert_caught(&outcome, Invariant::Liveness, "still held");
}
