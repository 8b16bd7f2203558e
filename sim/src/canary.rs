//! The canary: a deliberately leaky wrapper in front of the export service.
//!
//! Used only by the harness's own tests (a scenario with
//! `[canary] leak_into_archives = true`) to prove that the oracle sees a
//! leak. The wrapper remembers one audio file from each archive it serves
//! and slips the remembered file from a *different* caller's archive into
//! the next download, the way a shared staging path or a mixed-up cache
//! would. The SUT itself is untouched; the oracle must catch the leak from
//! the watermark alone.
//!
//! Two more wrappers break the API contract for the harness's tests: one
//! makes the first history listing panic inside its handler (on the wire, a
//! connection reset), the other answers it 500 with a JSON error body — each
//! with no fault injected anywhere. The oracle must fail both runs.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_service::bearer_token;
use std::io::{Cursor, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Stash {
    /// (caller's bearer token, audio entry) from the last archive served.
    remembered: Option<(String, Vec<u8>)>,
}

pub fn wrap(router: Router) -> Router {
    let stash = Arc::new(Mutex::new(Stash::default()));
    router.layer(axum::middleware::from_fn_with_state(stash, leak))
}

async fn leak(State(stash): State<Arc<Mutex<Stash>>>, request: Request, next: Next) -> Response {
    let is_download = request.uri().path().starts_with("/v1/downloads/");
    let caller = bearer_token(request.headers()).map(str::to_string);
    let response = next.run(request).await;
    let (Some(caller), true, true) = (caller, is_download, response.status().is_success()) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut stash = stash.lock().unwrap_or_else(|p| p.into_inner());
    let foreign = match &stash.remembered {
        Some((other, audio)) if *other != caller => Some(audio.clone()),
        _ => None,
    };
    let (rewritten, first_audio) =
        rewrite(&bytes, foreign.as_deref()).unwrap_or((bytes.to_vec(), None));
    if let Some(audio) = first_audio {
        stash.remembered = Some((caller, audio));
    }
    Response::from_parts(parts, Body::from(rewritten))
}

/// Copy the archive, adding `extra` as one more audio entry; also return the
/// archive's first audio entry.
fn rewrite(
    bytes: &[u8],
    extra: Option<&[u8]>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), zip::result::ZipError> {
    let mut input = zip::ZipArchive::new(Cursor::new(bytes))?;
    let mut output = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let mut first_audio = None;
    for index in 0..input.len() {
        let mut file = input.by_index(index)?;
        let name = file.name()?.to_string();
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        if first_audio.is_none() && name.starts_with("audio/") {
            first_audio = Some(data.clone());
        }
        output.start_file(name, options)?;
        output.write_all(&data)?;
    }
    if let Some(extra) = extra {
        output.start_file("audio/0.wav", options)?;
        output.write_all(extra)?;
    }
    Ok((output.finish()?.into_inner(), first_audio))
}

/// How a contract canary breaks the first history listing it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContractBreak {
    /// The handler panics.
    Panic,
    /// The handler answers 500 with a JSON error body.
    ServerError,
}

/// Break the first `GET /v1/recordings` (a history listing) the store gets,
/// once per run (`done` is shared by the store's incarnations).
pub fn break_contract(router: Router, how: ContractBreak, done: Arc<AtomicBool>) -> Router {
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let done = done.clone();
        async move {
            let listing = request.method() == http::Method::GET
                && request.uri().path() == "/v1/recordings";
            if listing && !done.swap(true, Ordering::Relaxed) {
                match how {
                    ContractBreak::Panic => panic_as_a_service("index and row disagree"),
                    ContractBreak::ServerError => {
                        return crosstalk_service::ApiError::internal("index and row disagree")
                            .into_response();
                    }
                }
            }
            next.run(request).await
        }
    }))
}

/// Panic the way a service would (located here, which the panic collector
/// counts as a service, not as the harness).
pub fn panic_as_a_service(message: &str) -> ! {
    panic!("{message}")
}
