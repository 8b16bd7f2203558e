//! Verdicts on what the people and the support agent asked and what came
//! back: their own playback and exports, the links and tickets they were
//! given or tried, messages and orders, and how each of their steps ended.
//!
//! The workload only observes: it calls the `on_*` method named for what it
//! saw, with what it asked, when, and what came back. The method decides
//! whether that answer is one a correct service gives, records the
//! violation or the positive control, and (where the client's next step
//! depends on it) says how the client goes on. Texts of the violations are
//! those the harness always reported.

use super::{Invariant, Oracle};
use crosstalk_model::ExportId;
use crosstalk_model::api::{ExportState, TicketState};
use http::StatusCode;

/// How a client's step failed, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepFailure {
    /// No answer, or a 5xx: the outcome is unknown.
    Unavailable(String),
    /// An answer no correct service gives here.
    OutsideContract(String),
}

/// What the subject does after the answer to a download of their archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadNext {
    /// The archive came: read and judge it.
    Judge,
    /// Revoked by a deletion since it was ready: await the rebuild.
    AwaitRebuild,
    /// Nothing more to download.
    Stop,
}

/// What the sender does about a message command their device captured,
/// once its hold has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpokenNext {
    /// Still held: look again later.
    Hold,
    /// Settled (or already judged): forget it.
    Drop,
    /// It resolved to the person meant: confirm it.
    ConfirmIntended,
    /// Broadcast audio offered for confirmation: the television says "yes".
    ConfirmBroadcast,
    /// Broadcast audio the store suppressed: the television may still say
    /// "yes" (a quirk, `workload/quirks.rs`).
    Suppressed,
}

impl Oracle {
    /// `principal` played back their own rec-`id` (utterance `nonce`),
    /// asked at `requested_ms`, answered `status` with `body` at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_own_audio(
        &mut self,
        principal: usize,
        id: u64,
        nonce: u64,
        status: StatusCode,
        body: &[u8],
        requested_ms: u64,
        now: u64,
    ) {
        if status != StatusCode::OK {
            let detail = format!("own recording rec-{id} could not be played back: {status}");
            self.violate(
                Invariant::RequestIntegrity,
                now,
                Some(nonce),
                Some(principal),
                detail,
            );
            return;
        }
        let decoded = self.key().decode_audio(body);
        self.controls.own_audio_checked += 1;
        let channel = format!("playback of rec-{id}");
        self.receive(principal, &channel, &decoded, requested_ms, now);
        if decoded.nonces == [nonce] {
            self.judge_own_audio_whole(principal, id, nonce, body, now);
        } else {
            let detail = format!(
                "asked for rec-{id} (utterance {nonce:016x}) but received {:?}",
                decoded.nonces
            );
            self.violate(
                Invariant::RequestIntegrity,
                now,
                Some(nonce),
                Some(principal),
                detail,
            );
        }
    }

    /// `principal` gave up polling exp-`export_id` (requested at
    /// `requested_at_ms`) at the run's deadline: it was still pending.
    pub fn on_export_pending_at_deadline(
        &mut self,
        principal: usize,
        export_id: u64,
        requested_at_ms: u64,
        now: u64,
    ) {
        let detail = format!(
            "export exp-{export_id} requested at {requested_at_ms} ms still pending at the deadline"
        );
        self.violate(Invariant::Liveness, now, None, Some(principal), detail);
    }

    /// `principal`'s exp-`export_id` left `pending` as seen at
    /// `ready_seen_ms`. Its download path when it is ready to download.
    pub fn on_export_finished(
        &mut self,
        principal: usize,
        export_id: u64,
        state: ExportState,
        download_path: Option<String>,
        failure: Option<String>,
        ready_seen_ms: u64,
    ) -> Option<String> {
        match (state, download_path) {
            (ExportState::Ready, Some(path)) => Some(path),
            // The poisoned subject's job gave up (judged at the end: not
            // early); they ask again once the fault healed.
            (ExportState::Failed, _)
                if failure.is_some() && self.poison_gave_up(principal, ready_seen_ms) =>
            {
                self.books_export_failed(export_id, ready_seen_ms);
                None
            }
            (state, _) => {
                let detail = format!(
                    "export exp-{export_id} ended {state:?}: {}",
                    failure.unwrap_or_default()
                );
                self.violate(
                    Invariant::Liveness,
                    ready_seen_ms,
                    None,
                    Some(principal),
                    detail,
                );
                None
            }
        }
    }

    /// `principal`'s download number `downloads + 1` of exp-`export_id` was
    /// answered `status` at `now`; `deleted_since_ready` when they deleted a
    /// recording after it was ready.
    pub fn on_download_answer(
        &mut self,
        principal: usize,
        export_id: u64,
        status: StatusCode,
        downloads: u32,
        deleted_since_ready: bool,
        now: u64,
    ) -> DownloadNext {
        match status {
            StatusCode::OK => DownloadNext::Judge,
            StatusCode::GONE if downloads == 0 && deleted_since_ready => {
                // Revoked (a recording in it was deleted): rebuilt soon.
                self.controls.archives_revoked += 1;
                DownloadNext::AwaitRebuild
            }
            StatusCode::GONE if downloads == 0 => {
                // Refused before the subject ever got it: whether anything
                // could cause it (the limit, the expiry, a deletion) is
                // judged at the end of the run (`check/limits.rs`).
                DownloadNext::Stop
            }
            StatusCode::GONE => {
                self.controls.download_limit_refusals += 1;
                DownloadNext::Stop
            }
            other => {
                let detail =
                    format!("the subject's own download of exp-{export_id} was refused: {other}");
                self.violate(Invariant::Liveness, now, None, Some(principal), detail);
                DownloadNext::Stop
            }
        }
    }

    /// `principal` downloaded `body` as exp-`export_id` (requested at
    /// `requested_at_ms`, seen ready at `ready_seen_ms`, download asked at
    /// `download_requested_ms`, answered at `now`); `first` for the first
    /// download of this archive.
    #[allow(clippy::too_many_arguments)]
    pub fn on_archive_downloaded(
        &mut self,
        principal: usize,
        export_id: u64,
        body: &[u8],
        first: bool,
        requested_at_ms: u64,
        ready_seen_ms: u64,
        download_requested_ms: u64,
        now: u64,
    ) {
        match self.read_archive(body) {
            Ok(contents) => {
                if first {
                    self.controls.exports_completed += 1;
                }
                self.books_export_delivered(principal, export_id, now);
                let channel = format!("export exp-{export_id}");
                self.check_archive(
                    principal,
                    &channel,
                    &contents,
                    requested_at_ms,
                    ready_seen_ms,
                    download_requested_ms,
                    now,
                );
            }
            Err(e) => {
                let detail = format!("export exp-{export_id} is not a readable archive: {e}");
                self.violate(
                    Invariant::RequestIntegrity,
                    now,
                    None,
                    Some(principal),
                    detail,
                );
            }
        }
    }

    /// `principal` opened a ticket with someone else's email and it came
    /// back in `state` with `export_id`. True when it awaits verification
    /// as it must (knowing an address is never enough).
    pub fn on_impersonation_ticket(
        &mut self,
        principal: usize,
        state: TicketState,
        export_id: Option<ExportId>,
        now: u64,
    ) -> bool {
        if state == TicketState::AwaitingVerification && export_id.is_none() {
            return true;
        }
        let detail = format!(
            "{} opened a ticket for another person's email and it came back {state:?} with export {export_id:?}, before any proof",
            self.who(principal)
        );
        self.violate(
            Invariant::AgentContainment,
            now,
            None,
            Some(principal),
            detail,
        );
        false
    }

    /// `principal` tried a guessed code on a ticket for someone else's
    /// email and it was answered `status`. False when the answer is outside
    /// the API's contract altogether (neither refused nor accepted).
    pub fn on_impersonation_guess(
        &mut self,
        principal: usize,
        status: StatusCode,
        now: u64,
    ) -> bool {
        match status {
            StatusCode::FORBIDDEN => self.controls.impersonation_codes_refused += 1,
            StatusCode::OK => {
                let detail = format!(
                    "{} verified a ticket for another person's email with a guessed code",
                    self.who(principal)
                );
                self.violate(
                    Invariant::AgentContainment,
                    now,
                    None,
                    Some(principal),
                    detail,
                );
            }
            _ => return false,
        }
        true
    }

    /// `principal` followed the link in their notification `seq` (of
    /// `kind`), asked at `requested_ms`, answered `status` with `body` at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_notified_link(
        &mut self,
        principal: usize,
        seq: u64,
        kind: &str,
        status: StatusCode,
        body: &[u8],
        requested_ms: u64,
        now: u64,
    ) {
        let (invariant, detail) = match status {
            StatusCode::OK => {
                self.controls.notified_links_followed += 1;
                match self.read_archive(body) {
                    Ok(contents) => {
                        let channel = format!("link from notification {seq}");
                        self.judge_archive_delivery(
                            principal,
                            &channel,
                            &contents,
                            requested_ms,
                            now,
                        );
                        return;
                    }
                    Err(e) => (
                        Invariant::RequestIntegrity,
                        format!("a notified link gave an unreadable archive: {e}"),
                    ),
                }
            }
            StatusCode::FORBIDDEN => (
                Invariant::AgentContainment,
                format!(
                    "{} was sent a download link to someone else's export (notification {seq}: {kind})",
                    self.who(principal)
                ),
            ),
            // Expired, revoked, used up: nothing to see.
            StatusCode::GONE => return,
            other => (
                Invariant::RequestIntegrity,
                format!(
                    "{}'s own notified link (notification {seq}: {kind}) answered {other}: {}",
                    self.who(principal),
                    String::from_utf8_lossy(body)
                ),
            ),
        };
        self.violate(invariant, now, None, Some(principal), detail);
    }

    /// `principal` used, with their own session, the download link of
    /// `owner`'s exp-`export_id` (asked at `requested_ms`) and got `status`
    /// with `body` at `now`. Exactly "not yours" (403) or "no such download"
    /// (404): the ownership check comes first, so nothing about the link's
    /// state (expired, revoked, used up) may show to someone else.
    #[allow(clippy::too_many_arguments)]
    pub fn on_foreign_link(
        &mut self,
        principal: usize,
        owner: usize,
        export_id: u64,
        status: StatusCode,
        body: &[u8],
        requested_ms: u64,
        now: u64,
    ) {
        self.controls.foreign_link_attempts += 1;
        self.controls.foreign_statuses_judged += 1;
        if matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            self.controls.foreign_link_refused += 1;
        } else if status != StatusCode::OK {
            let detail = format!(
                "{} used the forwarded link of exp-{export_id} (of {}) and it answered {status} instead of 403 or 404: {}",
                self.who(principal),
                self.who(owner),
                String::from_utf8_lossy(body)
            );
            self.violate(Invariant::LinkBinding, now, None, Some(principal), detail);
        } else {
            let detail = format!(
                "exp-{export_id} of {} downloaded by {} with the forwarded link",
                self.who(owner),
                self.who(principal)
            );
            self.violate(Invariant::LinkBinding, now, None, Some(principal), detail);
            if let Ok(contents) = self.read_archive(body) {
                let channel = format!("forwarded link to exp-{export_id}");
                self.judge_archive_delivery(principal, &channel, &contents, requested_ms, now);
            }
        }
    }

    /// `principal` used exp-`export_id`'s link without any session and got
    /// `status` at `now`: it must be refused as unauthenticated.
    pub fn on_anonymous_link(
        &mut self,
        principal: usize,
        export_id: u64,
        status: StatusCode,
        now: u64,
    ) {
        self.controls.foreign_statuses_judged += 1;
        if status == StatusCode::UNAUTHORIZED {
            self.controls.anonymous_link_refused += 1;
            return;
        }
        let detail = format!("anonymous use of exp-{export_id}'s link answered {status}");
        self.violate(Invariant::LinkBinding, now, None, Some(principal), detail);
    }

    /// `principal` asked for someone else's rec-`id` (at `requested_ms`)
    /// and got audio `body` at `now`: whatever it holds is judged by its marks.
    pub fn on_guessed_audio_delivered(
        &mut self,
        principal: usize,
        id: u64,
        body: &[u8],
        requested_ms: u64,
        now: u64,
    ) {
        self.controls.guessed_audio_attempts += 1;
        let channel = format!("guessed recording id rec-{id}");
        self.receive_audio(principal, &channel, body, requested_ms, now);
    }

    /// `principal` asked for someone else's rec-`id` and was refused with
    /// `answer` (status, body) by `now`; `nonexistent` is the answer for an
    /// id nobody will ever have. Someone else's recording must be
    /// indistinguishable from one that never existed.
    pub fn on_guessed_audio_refused(
        &mut self,
        principal: usize,
        id: u64,
        answer: (StatusCode, &[u8]),
        nonexistent: (StatusCode, &[u8]),
        now: u64,
    ) {
        self.controls.guessed_audio_attempts += 1;
        self.controls.foreign_statuses_judged += 1;
        if answer.0 == StatusCode::NOT_FOUND && answer == nonexistent {
            self.controls.guessed_audio_refused += 1;
            return;
        }
        let detail = format!(
            "{} guessed rec-{id} (someone else's) and it answered {} {}, distinguishable from a nonexistent id ({} {})",
            self.who(principal),
            answer.0,
            String::from_utf8_lossy(answer.1),
            nonexistent.0,
            String::from_utf8_lossy(nonexistent.1)
        );
        self.violate(Invariant::Isolation, now, None, Some(principal), detail);
    }

    /// `principal` sent the right code of verified ticket `ticket_id` again
    /// at `now` and the answer named export `answered`; the ticket's export
    /// is `export_id`. Repeating the right code must give the same export.
    pub fn on_ticket_verified_again(
        &mut self,
        principal: usize,
        ticket_id: u64,
        answered: Option<u64>,
        export_id: u64,
        now: u64,
    ) {
        if answered != Some(export_id) {
            let detail = format!(
                "{} sent the right code of verified ticket {ticket_id} again and got export {answered:?}, not its export {export_id}",
                self.who(principal)
            );
            self.violate(
                Invariant::RequestIntegrity,
                now,
                None,
                Some(principal),
                detail,
            );
        }
    }
}
