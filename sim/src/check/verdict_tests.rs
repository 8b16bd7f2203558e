//! Each verdict the workload used to make, fed to the oracle directly: the
//! `on_*` method flags a bad observation with the right invariant, passes a
//! good one, and counts its positive control.

use super::*;
use crate::net::{EXPORT_HOST, STORE_HOST};
use crate::plan::STORE_HOLD_MS as HOLD_MS;
use crosstalk_model::api::{ExportState, MessageState, OrderState, OrderView, TicketState};
use crosstalk_model::{ExportId, RecordingId};
use http::StatusCode;

const A: usize = 0;
const B: usize = 1;

/// Person A's utterance 1 (rec-10) and person B's utterance 2 (rec-11),
/// captured at 100 ms by their devices' clocks and acknowledged at 5 ms.
fn oracle() -> Oracle {
    let mut oracle = Oracle::new(
        WatermarkKey::for_seed(1),
        vec!["a@example.com".into(), "b@example.com".into()],
    );
    for (nonce, owner, id) in [(1, A, 10), (2, B, 11)] {
        oracle.utterance_started(nonce, owner, 0, 1);
        oracle.utterance_captured_at(nonce, 100);
        oracle.utterance_acked(nonce, id, 5);
    }
    oracle
}

/// The invariants of the violations recorded, in order.
fn flagged(oracle: &Oracle) -> Vec<Invariant> {
    oracle.violations().iter().map(|v| v.invariant).collect()
}

/// An archive of `nonces` (utterances 1 and 2 of [`oracle`]) packed by
/// the export service's own writer, so every entry is whole.
fn archive_of(oracle: &Oracle, nonces: &[u64]) -> Vec<u8> {
    let items: Vec<crosstalk_export::archive::ArchiveItem> = nonces
        .iter()
        .map(|&nonce| {
            let audio = oracle.key().audio(nonce, 7);
            let recording = crosstalk_model::api::RecordingView {
                id: crosstalk_model::RecordingId(9 + nonce),
                device: crosstalk_model::DeviceId(1),
                captured_at_ms: 100,
                received_at_ms: 5,
                transcript: oracle.key().transcript(nonce, "play some jazz"),
                audio_sha256: crosstalk_model::sha256_hex(&audio),
                audio_len: audio.len() as u64,
            };
            crosstalk_export::archive::ArchiveItem { recording, audio }
        })
        .collect();
    crosstalk_export::archive::build_archive(
        crosstalk_model::AccountId(1),
        crosstalk_model::ExportId(3),
        6,
        &items,
    )
    .expect("an archive")
}

#[test]
fn own_audio_must_play_back_the_recording_asked_for() {
    let mut oracle = oracle();
    let own = oracle.key().audio(1, 7);
    oracle.on_own_audio(A, 10, 1, StatusCode::OK, &own, 10, 11);
    assert!(flagged(&oracle).is_empty());
    assert_eq!(oracle.controls().own_audio_checked, 1);
    oracle.on_own_audio(A, 10, 1, StatusCode::NOT_FOUND, b"", 10, 11);
    assert_eq!(flagged(&oracle), [Invariant::RequestIntegrity]);
    let foreign = oracle.key().audio(2, 7);
    oracle.on_own_audio(A, 10, 1, StatusCode::OK, &foreign, 10, 11);
    assert!(flagged(&oracle).ends_with(&[Invariant::Isolation, Invariant::RequestIntegrity]));
}

#[test]
fn an_export_must_end_ready_and_in_time() {
    let mut oracle = oracle();
    let path = oracle.on_export_finished(A, 3, ExportState::Ready, Some("/d/3".into()), None, 9);
    assert_eq!(path.as_deref(), Some("/d/3"));
    assert!(flagged(&oracle).is_empty());
    let failed = oracle.on_export_finished(A, 3, ExportState::Failed, None, Some("x".into()), 9);
    assert_eq!(failed, None);
    oracle.on_export_pending_at_deadline(A, 4, 2, 99);
    assert_eq!(flagged(&oracle), [Invariant::Liveness, Invariant::Liveness]);
}

#[test]
fn a_download_is_refused_only_when_revoked_or_used_up() {
    let mut oracle = oracle();
    let answer = |o: &mut Oracle, status, downloads, deleted| {
        o.on_download_answer(A, 3, status, downloads, deleted, 10)
    };
    assert_eq!(
        answer(&mut oracle, StatusCode::OK, 0, false),
        DownloadNext::Judge
    );
    let revoked = answer(&mut oracle, StatusCode::GONE, 0, true);
    assert_eq!(revoked, DownloadNext::AwaitRebuild);
    assert_eq!(
        answer(&mut oracle, StatusCode::GONE, 2, false),
        DownloadNext::Stop
    );
    assert!(flagged(&oracle).is_empty());
    assert_eq!(oracle.controls().archives_revoked, 1);
    assert_eq!(oracle.controls().download_limit_refusals, 1);
    // Dead with no deletion since it was announced: no verdict here; the
    // limits ledger judges whether anything could cause it at the end of
    // the run (`check/limits.rs`, with its own tests).
    assert_eq!(
        answer(&mut oracle, StatusCode::GONE, 0, false),
        DownloadNext::Stop
    );
    assert!(flagged(&oracle).is_empty());
    let refused = answer(&mut oracle, StatusCode::FORBIDDEN, 0, false);
    assert_eq!(refused, DownloadNext::Stop);
    let expected = [Invariant::Liveness];
    assert_eq!(flagged(&oracle), expected);
}

#[test]
fn a_downloaded_archive_is_read_and_judged_by_the_oracle() {
    let mut oracle = oracle();
    let own = archive_of(&oracle, &[1]);
    oracle.on_archive_downloaded(A, 3, &own, true, 10, 20, 20, 21);
    assert!(flagged(&oracle).is_empty(), "{:?}", oracle.violations());
    assert_eq!(oracle.controls().exports_completed, 1);
    oracle.on_archive_downloaded(A, 3, b"not a zip", false, 10, 20, 20, 21);
    assert_eq!(flagged(&oracle), [Invariant::RequestIntegrity]);
    assert_eq!(oracle.controls().exports_completed, 1);
}

#[test]
fn knowing_an_email_or_guessing_a_code_is_never_enough() {
    let mut oracle = oracle();
    let awaiting = TicketState::AwaitingVerification;
    assert!(oracle.on_impersonation_ticket(B, awaiting, None, 5));
    assert!(oracle.on_impersonation_guess(B, StatusCode::FORBIDDEN, 6));
    // Outside the contract altogether: the workload reports that itself.
    assert!(!oracle.on_impersonation_guess(B, StatusCode::IM_A_TEAPOT, 6));
    assert!(flagged(&oracle).is_empty());
    assert_eq!(oracle.controls().impersonation_codes_refused, 1);
    assert!(!oracle.on_impersonation_ticket(B, TicketState::Verified, Some(ExportId(3)), 5));
    assert!(!oracle.on_impersonation_ticket(B, awaiting, Some(ExportId(3)), 5));
    assert!(oracle.on_impersonation_guess(B, StatusCode::OK, 6));
    assert_eq!(flagged(&oracle), [Invariant::AgentContainment; 3]);
}

#[test]
fn a_notified_link_leads_to_ones_own_archive() {
    let mut oracle = oracle();
    let own = archive_of(&oracle, &[1]);
    oracle.on_notified_link(A, 1, "export-ready", StatusCode::OK, &own, 10, 11);
    oracle.on_notified_link(A, 2, "export-ready", StatusCode::GONE, b"", 10, 11);
    assert!(flagged(&oracle).is_empty());
    assert_eq!(oracle.controls().notified_links_followed, 1);
    oracle.on_notified_link(A, 3, "export-ready", StatusCode::FORBIDDEN, b"", 10, 11);
    oracle.on_notified_link(A, 4, "export-ready", StatusCode::NOT_FOUND, b"", 10, 11);
    oracle.on_notified_link(A, 5, "export-ready", StatusCode::OK, b"junk", 10, 11);
    let foreign = archive_of(&oracle, &[2]);
    oracle.on_notified_link(A, 6, "export-ready", StatusCode::OK, &foreign, 10, 11);
    let expected = [
        Invariant::AgentContainment,
        Invariant::RequestIntegrity,
        Invariant::RequestIntegrity,
    ];
    let flagged = flagged(&oracle);
    assert_eq!(flagged[..3], expected);
    // The foreign archive: its audio and its transcript each leak.
    assert!(
        flagged.len() > 3 && flagged[3..].iter().all(|i| *i == Invariant::Isolation),
        "{flagged:?}"
    );
}

#[test]
fn a_forwarded_link_is_refused_to_everyone_else() {
    let mut oracle = oracle();
    oracle.on_foreign_link(B, A, 3, StatusCode::FORBIDDEN, b"", 10, 11);
    oracle.on_foreign_link(B, A, 3, StatusCode::NOT_FOUND, b"", 10, 11);
    oracle.on_anonymous_link(B, 3, StatusCode::UNAUTHORIZED, 12);
    assert!(flagged(&oracle).is_empty());
    let c = oracle.controls();
    assert_eq!((c.foreign_link_attempts, c.foreign_link_refused), (2, 2));
    assert_eq!(
        (c.anonymous_link_refused, c.foreign_statuses_judged),
        (1, 3)
    );
    // Revealing the link's state, handing it over, or not asking who it is.
    oracle.on_foreign_link(B, A, 3, StatusCode::GONE, b"", 10, 11);
    let leaked = archive_of(&oracle, &[1]);
    oracle.on_foreign_link(B, A, 3, StatusCode::OK, &leaked, 10, 11);
    oracle.on_anonymous_link(B, 3, StatusCode::NOT_FOUND, 12);
    // The leaked archive is judged whole: its audio and its manifest's
    // transcript each leak A's utterance to B.
    let expected = [
        Invariant::LinkBinding,
        Invariant::LinkBinding,
        Invariant::Isolation,
        Invariant::Isolation,
        Invariant::LinkBinding,
    ];
    assert_eq!(flagged(&oracle), expected);
}

#[test]
fn a_guessed_id_is_indistinguishable_from_a_nonexistent_one() {
    let mut oracle = oracle();
    let nonexistent = (StatusCode::NOT_FOUND, &b"no such recording"[..]);
    oracle.on_guessed_audio_refused(A, 11, nonexistent, nonexistent, 12);
    assert!(flagged(&oracle).is_empty());
    assert_eq!(oracle.controls().guessed_audio_refused, 1);
    let forbidden = (StatusCode::FORBIDDEN, &b"no such recording"[..]);
    oracle.on_guessed_audio_refused(A, 11, forbidden, nonexistent, 12);
    let other_body = (StatusCode::NOT_FOUND, &b"not yours"[..]);
    oracle.on_guessed_audio_refused(A, 11, other_body, nonexistent, 12);
    let audio = oracle.key().audio(2, 7);
    oracle.on_guessed_audio_delivered(A, 11, &audio, 10, 12);
    assert_eq!(flagged(&oracle), [Invariant::Isolation; 3]);
    assert_eq!(oracle.controls().guessed_audio_attempts, 4);
}

fn listing(state: MessageState, intended: Option<&str>, steady: bool) -> SpokenListing<'_> {
    SpokenListing {
        sender: A,
        nonce: 1,
        message_id: 40,
        state,
        resolved_email: "b@example.com",
        intended_email: intended,
        store_steady: steady,
    }
}

#[test]
fn a_spoken_message_is_sent_only_when_confirmed_and_never_from_broadcast() {
    let mut oracle = oracle();
    let b = Some("B@example.com");
    let next = |o: &mut Oracle, l| o.on_spoken_message_listed(l, 100);
    assert_eq!(
        next(&mut oracle, listing(MessageState::Held, b, false)),
        SpokenNext::Hold
    );
    let pending = listing(MessageState::Pending, b, true);
    assert_eq!(next(&mut oracle, pending), SpokenNext::ConfirmIntended);
    let misheard = listing(MessageState::Pending, Some("c@example.com"), true);
    assert_eq!(next(&mut oracle, misheard), SpokenNext::Drop);
    let broadcast = listing(MessageState::Pending, None, true);
    assert_eq!(next(&mut oracle, broadcast), SpokenNext::ConfirmBroadcast);
    oracle.on_broadcast_confirmed(&broadcast, false, 100);
    let suppressed = listing(MessageState::SuppressedMediaEvent, None, true);
    assert_eq!(next(&mut oracle, suppressed), SpokenNext::Suppressed);
    assert!(flagged(&oracle).is_empty());
    let c = oracle.controls();
    assert_eq!(
        (
            c.messages_refused_by_sender,
            c.broadcast_messages_suppressed
        ),
        (1, 1)
    );
    oracle.on_broadcast_confirmed(&broadcast, true, 100);
    next(&mut oracle, listing(MessageState::Delivered, None, true));
    next(&mut oracle, listing(MessageState::Delivered, b, true));
    let expected = [
        Invariant::BroadcastActed,
        Invariant::BroadcastActed,
        Invariant::RequestIntegrity,
    ];
    assert_eq!(flagged(&oracle), expected);
}

#[test]
fn a_spoken_message_held_past_its_hold_on_a_steady_store_is_stuck() {
    let mut oracle = oracle();
    let late = HOLD_MS + 20_000;
    let held = listing(MessageState::Held, None, false);
    assert_eq!(
        oracle.on_spoken_message_listed(held, late),
        SpokenNext::Hold
    );
    let held = listing(MessageState::Held, None, true);
    assert_eq!(oracle.on_spoken_message_listed(held, 100), SpokenNext::Hold);
    assert!(flagged(&oracle).is_empty());
    assert_eq!(
        oracle.on_spoken_message_listed(held, late),
        SpokenNext::Drop
    );
    assert_eq!(flagged(&oracle), [Invariant::Liveness]);
}

fn order(order_id: u64, recording: u64, state: OrderState) -> OrderView {
    OrderView {
        order_id,
        item: "tea".into(),
        source_recording: RecordingId(recording),
        state,
    }
}

#[test]
fn an_order_comes_from_ones_own_genuine_capture() {
    let mut oracle = oracle();
    oracle.utterance_started(3, A, 0, 1);
    oracle.mark_broadcast(3);
    oracle.utterance_acked(3, 12, 5);
    let good = [
        order(1, 10, OrderState::Placed),
        order(2, 12, OrderState::SuppressedMediaEvent),
    ];
    oracle.on_orders_listed(A, &good, 50);
    assert!(flagged(&oracle).is_empty());
    let c = oracle.controls();
    assert_eq!(
        (c.genuine_orders_placed, c.broadcast_orders_suppressed),
        (1, 1)
    );
    let bad = [
        order(3, 99, OrderState::Placed),
        order(4, 11, OrderState::Placed),
        order(5, 12, OrderState::Placed),
    ];
    oracle.on_orders_listed(A, &bad, 50);
    let expected = [
        Invariant::RequestIntegrity,
        Invariant::Isolation,
        Invariant::BroadcastActed,
    ];
    assert_eq!(flagged(&oracle), expected);
}

/// Chaos seed 29 with the key-reuse probe: A's "order" capture 3 was
/// stored as rec-20, its answer lost, its device reset before a retry.
#[test]
fn an_order_from_an_upload_whose_answer_was_lost_is_judged_by_its_listing() {
    let mut oracle = oracle();
    oracle.utterance_started(3, A, 0, 1);
    oracle.upload_unanswered(3);
    oracle.utterance_started(4, A, 0, 1);
    oracle.mark_broadcast(4);
    oracle.upload_unanswered(4);
    // Nothing names rec-20 yet: it may be capture 3 or 4 of A's; B sent
    // nothing without an answer, so an unknown id is nobody's for B.
    oracle.on_orders_listed(A, &[order(1, 20, OrderState::Placed)], 50);
    assert!(flagged(&oracle).is_empty());
    oracle.on_orders_listed(B, &[order(2, 21, OrderState::Placed)], 50);
    assert_eq!(flagged(&oracle), [Invariant::RequestIntegrity]);
    // A's history shows rec-20 with capture 3's watermark and rec-23 with
    // capture 4's; B's listing cannot name A's capture.
    oracle.own_listing_named(B, 22, 3);
    oracle.own_listing_named(A, 20, 3);
    oracle.own_listing_named(A, 23, 4);
    let later = [
        order(1, 20, OrderState::Placed),
        order(3, 22, OrderState::Placed),
        order(4, 23, OrderState::Placed),
    ];
    oracle.on_orders_listed(A, &later, 60);
    let expected = [
        Invariant::RequestIntegrity,
        Invariant::RequestIntegrity,
        Invariant::BroadcastActed,
    ];
    assert_eq!(flagged(&oracle), expected);
    let c = oracle.controls();
    let counts = (
        c.unanswered_uploads_named_by_listing,
        c.orders_from_unanswered_uploads,
        c.orders_of_unknown_uploads_excused,
        c.genuine_orders_placed,
    );
    assert_eq!(counts, (2, 2, 1, 1));
}

#[test]
fn an_order_whose_recording_was_deleted_during_its_hold_is_never_placed() {
    let hold = HOLD_MS;
    let mut oracle = oracle();
    oracle.utterance_started(3, A, 0, 1);
    oracle.utterance_acked(3, 12, 5);
    oracle.deletion_acked(3, 50);
    oracle.on_orders_listed(A, &[order(1, 12, OrderState::Cancelled)], hold + 10);
    assert!(flagged(&oracle).is_empty());
    assert_eq!(oracle.controls().orders_cancelled_by_deletion, 1);
    // Deleted after the hold could have ended: placing it was right.
    oracle.utterance_started(4, A, 0, 1);
    oracle.utterance_acked(4, 13, 5);
    oracle.deletion_acked(4, hold + 5);
    oracle.on_orders_listed(A, &[order(2, 13, OrderState::Placed)], hold + 10);
    assert!(flagged(&oracle).is_empty());
    oracle.on_orders_listed(A, &[order(1, 12, OrderState::Placed)], hold + 10);
    assert_eq!(flagged(&oracle), [Invariant::Erasure]);
}

#[test]
fn a_step_outside_the_contract_fails_and_an_unknown_outcome_waits_for_the_fault_log() {
    let mut oracle = oracle();
    let down = || StepFailure::Unavailable("reset".into());
    let wrong = || StepFailure::OutsideContract("a 404 for one's own export".into());
    assert!(oracle.on_action_ended(A, "export", Ok(()), 5));
    assert!(oracle.on_action_ended(A, "export", Err(down()), 5));
    oracle.on_sign_up_failed(B, "b@example.com", down(), 1, 2);
    assert!(flagged(&oracle).is_empty());
    // The unanswered sign-up is a server error: judged against the fault log.
    oracle.judge_contract(&FaultLog::default(), Vec::new());
    assert_eq!(flagged(&oracle), [Invariant::ApiContract]);
    assert!(!oracle.on_action_ended(A, "export", Err(wrong()), 5));
    oracle.on_sign_up_failed(B, "b@example.com", wrong(), 1, 2);
    oracle.on_final_audit_failed(A, wrong(), 9);
    oracle.on_final_audit_failed(A, down(), 9);
    oracle.on_uploads_stuck_at_deadline(A, 2, 9);
    let expected = [
        Invariant::ApiContract,
        Invariant::RequestIntegrity,
        Invariant::RequestIntegrity,
        Invariant::RequestIntegrity,
        Invariant::Liveness,
        Invariant::Liveness,
    ];
    assert_eq!(flagged(&oracle), expected);
}

#[test]
fn the_console_refuses_weak_proof_and_attachments() {
    let mut oracle = oracle();
    oracle.on_manual_verification(7, StatusCode::FORBIDDEN, 5);
    oracle.on_link_resent(true, StatusCode::BAD_REQUEST);
    oracle.on_link_resent(false, StatusCode::OK);
    assert!(flagged(&oracle).is_empty());
    let c = oracle.controls();
    assert_eq!(c.agent_actions, 3);
    assert_eq!(
        (
            c.manual_verifications_refused,
            c.archive_attachments_refused
        ),
        (1, 1)
    );
    oracle.on_manual_verification(7, StatusCode::OK, 5);
    assert_eq!(flagged(&oracle), [Invariant::AgentContainment]);
}

#[test]
fn a_world_still_busy_at_the_end_is_a_liveness_violation() {
    let mut oracle = oracle();
    let harness = oracle.on_simulation_error("host panicked".into(), 100, 100);
    assert_eq!(harness.as_deref(), Some("simulation error: host panicked"));
    assert!(flagged(&oracle).is_empty());
    let busy = oracle.on_simulation_error("Ran for duration: 100ms".into(), 100, 100);
    assert_eq!(busy, None);
    assert_eq!(flagged(&oracle), [Invariant::Liveness]);
}

#[test]
fn events_feed_the_controls_the_oracle_chooses() {
    let mut oracle = oracle();
    oracle.on(Event::TicketVerified);
    oracle.on(Event::ExportRequested);
    for host in [STORE_HOST, EXPORT_HOST, "worker-1"] {
        oracle.on_crash(host);
    }
    oracle.on_sut_faults_fired(4);
    let c = oracle.controls();
    assert_eq!((c.tickets_verified, c.exports_requested), (1, 2));
    assert_eq!(
        (c.store_crashes, c.export_crashes, c.worker_crashes),
        (1, 1, 1)
    );
    assert_eq!(c.sut_faults_fired, 4);
    assert!(flagged(&oracle).is_empty());
}
