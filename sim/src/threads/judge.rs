//! Handing the threads harness's log to the oracle, in the order its
//! ground truth needs: who is who, then every upload and its
//! acknowledgement, then every deletion (sent, then acknowledged, in the
//! order they came back), then every answer that carried recordings. The
//! oracle judges each answer by the counter at its send, so the order in
//! which the log is read does not change a verdict, only what is known
//! when it is given.

use super::driver::{Kind, Record, Shared};
use super::plan::ThreadsPlan;
use crate::check::contract::FaultLog;
use crate::check::driver::BrokenPromise;
use crate::check::panics::ServicePanic;
use crate::check::replies::Answer;
use crate::check::{DeletionScope, Oracle};
use crate::net::STORE_HOST;
use crate::watermark::{Decoded, WatermarkKey};
use crosstalk_model::api::{IngestResponse, RecordingPage, SignupResponse};

/// The log, read out once the runtime stopped.
fn records(shared: &Shared) -> Vec<Record> {
    let mut log = shared.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    log.sort_by_key(|r| r.sent);
    log
}

/// Requests the store answered.
pub(super) fn requests(shared: &Shared) -> u64 {
    shared.log.lock().map_or(0, |log| log.len() as u64)
}

/// Accounts whose sign-up or device registration failed: the run did not
/// do what it planned.
pub(super) fn set_up_failures(shared: &Shared, plan: &ThreadsPlan) -> Vec<String> {
    let log = records(shared);
    (0..plan.accounts.len())
        .filter(|a| {
            !log.iter()
                .any(|r| r.account == *a && matches!(r.kind, Kind::Device) && r.status == 201)
        })
        .map(|a| format!("account {a} ({}) was not set up", plan.accounts[a].email))
        .collect()
}

/// Judge the whole log.
pub(super) fn judge(shared: &Shared, plan: &ThreadsPlan, seed: u64) -> Oracle {
    let log = records(shared);
    let emails = plan.accounts.iter().map(|a| a.email.clone()).collect();
    let mut oracle = Oracle::new(WatermarkKey::for_seed(seed), emails);
    for r in &log {
        contract(&mut oracle, r);
    }
    for r in log.iter().filter(|r| matches!(r.kind, Kind::Signup)) {
        if let Ok(signed) = serde_json::from_slice::<SignupResponse>(&r.body) {
            oracle.people[r.account].account_id = Some(signed.account_id.0);
        }
    }
    // A sale moves no capture: uploads stay their token's seller's, which
    // every delivery to the buyer is judged against.
    let sales = log
        .iter()
        .filter(|r| matches!(r.kind, Kind::Transfer) && r.status == 200);
    for _ in sales {
        oracle.on(crate::check::Event::DeviceTransferred);
    }
    uploads(&mut oracle, &log);
    deletions(&mut oracle, plan, &log);
    for r in &log {
        read(&mut oracle, r);
    }
    audits(&mut oracle, &log, plan.accounts.len());
    let panics = shared
        .panics
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|message| ServicePanic {
            message,
            location: "a store request task (real threads)".into(),
            at_ms: 0,
        })
        .collect();
    oracle.judge_contract(&FaultLog::default(), panics);
    oracle
}

/// Every answer's status and error body (no fault is ever injected here,
/// so every 5xx is a violation).
fn contract(oracle: &mut Oracle, r: &Record) {
    oracle.answer_received(&Answer {
        service: STORE_HOST,
        request: r.request.clone(),
        status: r.status,
        content_type: &r.content_type,
        body: &r.body,
        has_body: true,
        cache_control: &r.cache_control,
        authenticated: r.authenticated,
        principal: Some(r.account),
        sent_ms: r.sent,
        at_ms: r.at,
    });
}

fn uploads(oracle: &mut Oracle, log: &[Record]) {
    for r in log {
        let Kind::Upload(capture) = r.kind else {
            continue;
        };
        oracle.utterance_started(capture.nonce, r.account, 0, r.sent);
        oracle.utterance_captured_at(capture.nonce, capture.captured_at_ms);
        if r.status != 201 {
            continue;
        }
        match serde_json::from_slice::<IngestResponse>(&r.body) {
            Ok(ingested) => oracle.utterance_acked(capture.nonce, ingested.recording_id.0, r.at),
            Err(e) => broken(oracle, r, e),
        }
    }
}

fn broken(oracle: &mut Oracle, r: &Record, e: serde_json::Error) {
    let detail = format!(
        "{} answered {} with a body that is not the documented JSON ({e})",
        r.request, r.status
    );
    oracle.on_broken_promise(BrokenPromise::NotDocumentedJson, r.at, detail);
}

/// What a deletion asked for, and the captures of the plan it covers.
fn scope_of(plan: &ThreadsPlan, r: &Record) -> Option<(DeletionScope, Vec<u64>)> {
    let captures: Vec<_> = super::captures_of(plan, r.account).collect();
    let (scope, covered) = match r.kind {
        Kind::DeleteOne { nonce } => {
            let id = r.request.rsplit('/').next()?.parse().ok()?;
            (DeletionScope::One(id), vec![nonce])
        }
        Kind::DeleteRange { from_ms, to_ms } => (
            DeletionScope::Range { from_ms, to_ms },
            captures
                .iter()
                .filter(|c| (from_ms..=to_ms).contains(&c.captured_at_ms))
                .map(|c| c.nonce)
                .collect(),
        ),
        Kind::DeleteAll | Kind::Close => (
            DeletionScope::All,
            captures.iter().map(|c| c.nonce).collect(),
        ),
        _ => return None,
    };
    Some((scope, covered))
}

/// Every deletion: sent (in send order), then answered (in answer order).
fn deletions(oracle: &mut Oracle, plan: &ThreadsPlan, log: &[Record]) {
    let mut answered = Vec::new();
    for r in log {
        let Some((scope, covered)) = scope_of(plan, r) else {
            continue;
        };
        for nonce in &covered {
            oracle.deletion_started(*nonce, r.sent);
        }
        answered.push((r, scope));
    }
    answered.sort_by_key(|(r, _)| r.at);
    for (r, scope) in answered {
        // Only a deletion's acknowledgement is judged (a 404 to a deletion
        // of one recording says nothing: the deletion itself was in flight).
        if r.status != 200 {
            continue;
        }
        let Some(named) = super::driver::named_in(&r.body) else {
            broken_json(oracle, r);
            continue;
        };
        oracle.judge_deletion(r.account, scope, &named, r.sent, r.at);
        if matches!(r.kind, Kind::Close) {
            oracle.account_closed(r.account, r.at);
        }
    }
}

fn broken_json(oracle: &mut Oracle, r: &Record) {
    let detail = format!(
        "{} answered {} with a body that is not the documented JSON",
        r.request, r.status
    );
    oracle.on_broken_promise(BrokenPromise::NotDocumentedJson, r.at, detail);
}

/// Marks in a listing page's transcripts.
fn listed(key: &WatermarkKey, r: &Record) -> Option<Decoded> {
    let page: RecordingPage = serde_json::from_slice(&r.body).ok()?;
    let mut decoded = Decoded::default();
    for item in &page.items {
        let d = key.decode_transcript(&item.transcript);
        decoded.nonces.extend(d.nonces);
        decoded.invalid_marks += d.invalid_marks;
    }
    Some(decoded)
}

/// One answer that carried recordings (or refused one).
fn read(oracle: &mut Oracle, r: &Record) {
    match (&r.kind, r.status) {
        (Kind::Play { nonce, quiescent }, status) => {
            oracle.on_request_about(*nonce, r.sent, r.at);
            let channel = format!("{} (real threads)", r.request);
            if status == 200 {
                let decoded = oracle.key().decode_audio(&r.body);
                oracle.on_own_playback(
                    r.account, *nonce, &decoded, &channel, r.sent, r.at, *quiescent,
                );
            } else if status == 404 {
                oracle.on_own_recording_refused(
                    r.account, *nonce, &channel, r.sent, r.at, *quiescent,
                );
            }
        }
        (Kind::List { quiescent: false }, 200) => match listed(oracle.key(), r) {
            Some(decoded) => {
                oracle.receive(r.account, &r.request, &decoded, r.sent, r.at);
            }
            None => broken_json(oracle, r),
        },
        (Kind::ServiceList, 200) => match listed(oracle.key(), r) {
            Some(decoded) => {
                let channel = format!(
                    "{} (the store's service listing of a closed account)",
                    r.request
                );
                oracle.on_quiescent_probe(r.account, &channel, &decoded, r.sent, r.at);
            }
            None => broken_json(oracle, r),
        },
        (Kind::ServiceAudio { nonce }, 200) => {
            let decoded = oracle.key().decode_audio(&r.body);
            let channel = format!(
                "{} (the store's service read of a closed account's utterance {nonce:016x})",
                r.request
            );
            oracle.on_quiescent_probe(r.account, &channel, &decoded, r.sent, r.at);
        }
        _ => {}
    }
}

/// The quiescent listing of each open account, all pages together: every
/// acknowledged recording not deleted must be there, no deleted one may.
fn audits(oracle: &mut Oracle, log: &[Record], accounts: usize) {
    for account in 0..accounts {
        let pages: Vec<&Record> = log
            .iter()
            .filter(|r| r.account == account && matches!(r.kind, Kind::List { quiescent: true }))
            .collect();
        let (Some(first), Some(last)) = (pages.first(), pages.last()) else {
            continue;
        };
        if pages.iter().any(|r| r.status != 200) {
            continue;
        }
        let mut all = Decoded::default();
        for page in &pages {
            match listed(oracle.key(), page) {
                Some(d) => {
                    all.nonces.extend(d.nonces);
                    all.invalid_marks += d.invalid_marks;
                }
                None => broken_json(oracle, page),
            }
        }
        let channel = "GET /v1/recordings, every page (quiescent)";
        oracle.on_quiescent_probe(account, channel, &all, first.sent, last.at);
        let set = all.nonces.iter().copied().collect();
        oracle.audit_history(account, &set, first.sent, last.at);
    }
}
