//! Exports as a person asks for them: directly (repeated, joined by a
//! ticket at the same time, or again once a poisoned export gave up) or by
//! a support ticket verified with one's own code; then waiting for the
//! archive, downloading it (and again), deleting a recording first where
//! planned, and following a revoked archive to its rebuild. Every answer
//! goes to the oracle (`check/limits.rs`, `check/deadlines.rs`, archives
//! judged by their watermarks).

use super::person::{POLL_MS, Person, parse, to_json};
use super::{CallError, PublishedLink};
use crate::check::{DownloadNext, Event};
use crate::net::sim_now_ms;
use crate::workload::Service;
use crosstalk_model::api::{ExportState, ExportStatus, TicketStatus, VerifyTicketRequest};
use crosstalk_service::HttpResponse;
use http::{Method, StatusCode};

/// A finished export's link, as awaited.
struct AwaitedLink {
    export_id: u64,
    path: String,
    /// When the export was requested (0 when its exactness is not sure).
    requested_at_ms: u64,
    /// When the person saw it ready.
    ready_seen_ms: u64,
    /// A recording of the person's was deleted after it was ready.
    deleted_since_ready: bool,
    /// The rebuild of a revoked archive.
    rebuilt: bool,
}

/// How one link's downloads ended.
enum LinkEnd {
    Done,
    /// Revoked (a recording in it deleted): await the rebuild.
    Revoked,
    /// Refused (gone) before its first download.
    RefusedBeforeFirst,
}

impl Person {
    /// Ask for one's data directly, then wait for it and download it.
    pub(super) async fn request_export(
        &mut self,
        delete_first: bool,
        redownloads: u32,
        repeats: u32,
        by_ticket: bool,
    ) -> Result<(), CallError> {
        let session = self.session.clone();
        let requested_at_ms = sim_now_ms();
        let response = match self
            .call(
                Service::Export,
                Method::POST,
                "/v1/exports",
                Some(&session),
                None,
            )
            .await
        {
            Ok(response) => response,
            // Not accepted (or unknown): no obligation on the service yet.
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => {
                self.oracle().on(Event::ExportRequested);
                return Err(e);
            }
        };
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            self.oracle().on(Event::ExportRateLimited);
            return Ok(());
        }
        self.oracle().on(Event::ExportRequested);
        let (accepted, must_since_ms) = match response.status() {
            StatusCode::ACCEPTED => {
                let accepted = parse::<ExportStatus>(&response)?;
                let (principal, id) = (self.principal, accepted.export_id.0);
                self.oracle()
                    .on_export_accepted(principal, id, requested_at_ms, sim_now_ms());
                (accepted, requested_at_ms)
            }
            // A duplicate of an earlier request of ours whose answer was
            // lost: judge isolation fully, exactness only for what is sure.
            StatusCode::OK => {
                let joined = parse::<ExportStatus>(&response)?;
                self.oracle().on_export_request_joined(
                    self.principal,
                    joined.export_id.0,
                    joined.state,
                    sim_now_ms(),
                );
                (joined, 0)
            }
            other => {
                return Err(CallError::Unexpected(format!(
                    "export request answered {other}"
                )));
            }
        };
        self.world
            .board
            .borrow_mut()
            .exports
            .push((self.principal, accepted.export_id.0));
        self.requests.push((self.principal, accepted.export_id.0));
        let mut later = Vec::new();
        // A repeat may find the first request already answered and start a
        // new one; the repeats after it join that newest one.
        let mut newest = accepted.export_id.0;
        for _ in 0..repeats {
            if let Some(another) = self.ask_again(newest).await? {
                newest = another.0;
                later.push(another);
            }
        }
        // Impatient at another door: the same person writes to support
        // while the app's request is being built. The verified ticket joins
        // that export (awaited below) or, if it was already answered, gets
        // a new one of its own.
        if by_ticket && let Some((export_id, must_since_ms)) = self.own_ticket_verified().await? {
            if must_since_ms == 0 {
                self.oracle().on(Event::TicketJoinedExport);
            } else {
                self.oracle().on(Event::TicketVerified);
                later.push((export_id, must_since_ms));
            }
        }
        self.await_and_download(
            accepted.export_id.0,
            must_since_ms,
            delete_first,
            redownloads,
        )
        .await?;
        for (export_id, requested_at_ms) in later {
            self.await_and_download(export_id, requested_at_ms, false, 0)
                .await?;
        }
        Ok(())
    }

    /// An impatient repeat of an export request just accepted as `pending`:
    /// it must join that request. If the first was already answered in
    /// full, the repeat is a new request: its id and time come back, to be
    /// awaited too.
    async fn ask_again(&mut self, pending: u64) -> Result<Option<(u64, u64)>, CallError> {
        let session = self.session.clone();
        let requested_at_ms = sim_now_ms();
        let response = match self
            .call(
                Service::Export,
                Method::POST,
                "/v1/exports",
                Some(&session),
                None,
            )
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match response.status() {
            StatusCode::OK => {
                let joined = parse::<ExportStatus>(&response)?;
                if joined.export_id.0 != pending && joined.state == ExportState::Pending {
                    return Err(CallError::Unexpected(format!(
                        "a repeated export request joined exp-{} while exp-{pending} was pending",
                        joined.export_id.0
                    )));
                }
                self.oracle().on_export_request_joined(
                    self.principal,
                    joined.export_id.0,
                    joined.state,
                    sim_now_ms(),
                );
                Ok(None)
            }
            StatusCode::ACCEPTED => {
                self.oracle().on(Event::ExportRequested);
                let accepted = parse::<ExportStatus>(&response)?;
                let (principal, id) = (self.principal, accepted.export_id.0);
                self.oracle()
                    .on_export_accepted(principal, id, requested_at_ms, sim_now_ms());
                self.requests.push((principal, id));
                Ok(Some((accepted.export_id.0, requested_at_ms)))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                self.oracle().on(Event::ExportRateLimited);
                Ok(None)
            }
            other => Err(CallError::Unexpected(format!(
                "repeated export request answered {other}"
            ))),
        }
    }

    /// The poisoned subject's export gave up (`faults/poison.rs`): once
    /// the fault healed, they ask again, and that export must complete.
    pub(super) async fn ask_again_after_poison(&mut self) -> Result<(), CallError> {
        let Some(healed_ms) = self.oracle().poison_healed_at(self.principal) else {
            return Ok(());
        };
        self.pass_time_until(healed_ms).await?;
        self.request_export(false, 0, 0, false).await
    }

    /// Wait until export `export_id` is ready, then download and check it;
    /// when its archive was revoked (a recording in it deleted), wait for
    /// the rebuild and download again.
    pub(super) async fn await_and_download(
        &mut self,
        export_id: u64,
        requested_at_ms: u64,
        mut delete_first: bool,
        redownloads: u32,
    ) -> Result<(), CallError> {
        let session = self.session.clone();
        // Whether the archive awaited is the rebuild of a revoked one.
        let mut revoked = false;
        // A link refused before its first download, to which the export's
        // page must not lead again.
        let mut refused_path: Option<String> = None;
        loop {
            let Some(status) = self.await_export(export_id, requested_at_ms).await? else {
                return Ok(());
            };
            let ready_seen_ms = sim_now_ms();
            let Some(path) = self.oracle().on_export_finished(
                self.principal,
                export_id,
                status.state,
                status.download_path,
                status.failure,
                ready_seen_ms,
            ) else {
                return Ok(());
            };
            if refused_path.as_deref() == Some(path.as_str()) {
                // Still the refused link: its expiry, not a revocation
                // (judged at the end of the run, `check/limits.rs`).
                return Ok(());
            }
            let deleted_since_ready = delete_first && !self.own_recordings.is_empty();
            if deleted_since_ready {
                delete_first = false;
                self.delete_before_download(&path).await?;
            }
            let link = AwaitedLink {
                export_id,
                path,
                requested_at_ms,
                ready_seen_ms,
                deleted_since_ready,
                rebuilt: revoked,
            };
            match self.download_archive(&link, &session, redownloads).await? {
                LinkEnd::Done => return Ok(()),
                LinkEnd::Revoked => revoked = true,
                LinkEnd::RefusedBeforeFirst => {
                    // Refused before one ever got it: back to the export's
                    // page, whose rebuilt link (a deletion of one's own
                    // revoked the archive) is followed.
                    refused_path = Some(link.path);
                    revoked = true;
                }
            }
        }
    }

    /// Poll export `export_id` until it is no longer pending. `None` (the
    /// oracle told) when it is still pending at the end of the drain.
    async fn await_export(
        &mut self,
        export_id: u64,
        requested_at_ms: u64,
    ) -> Result<Option<ExportStatus>, CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        loop {
            let polled: Result<ExportStatus, CallError> = self
                .read_own(Service::Export, &format!("/v1/exports/{export_id}"))
                .await;
            match polled {
                Ok(status) if status.state != ExportState::Pending => return Ok(Some(status)),
                Ok(_) | Err(CallError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            if sim_now_ms() + POLL_MS > deadline_ms {
                self.oracle().on_export_pending_at_deadline(
                    self.principal,
                    export_id,
                    requested_at_ms,
                    sim_now_ms(),
                );
                return Ok(None);
            }
            self.pass_time_until(sim_now_ms() + POLL_MS).await?;
        }
    }

    /// "Oh, not that one": delete a recording before downloading the
    /// archive at `path` (and, where planned, the store loses power as the
    /// download's live check reaches it, `faults/live_check.rs`).
    async fn delete_before_download(&mut self, path: &str) -> Result<(), CallError> {
        let deleted = self.own_recordings[0].nonce;
        let before = self.kept.deleted.len();
        self.delete_one(0).await?;
        if let Some(downtime_ms) = self.store_down_ms.take()
            && self.kept.deleted.len() > before
        {
            self.download_while_store_down(path, deleted, downtime_ms)
                .await?;
        }
        Ok(())
    }

    /// Download the archive at `link.path` once, and again up to
    /// `redownloads` times, each answer judged by the oracle; how the link
    /// ended.
    async fn download_archive(
        &mut self,
        link: &AwaitedLink,
        session: &str,
        redownloads: u32,
    ) -> Result<LinkEnd, CallError> {
        let mut downloads = 0;
        loop {
            let download_requested_ms = sim_now_ms();
            let response = self.get_archive(&link.path, session).await?;
            let now = sim_now_ms();
            let next = self.oracle().on_download_answer(
                self.principal,
                link.export_id,
                response.status(),
                downloads,
                link.deleted_since_ready,
                now,
            );
            match next {
                DownloadNext::Judge if link.rebuilt && downloads == 0 => {
                    self.oracle().on(Event::RebuiltArchiveDownloaded);
                }
                DownloadNext::Judge => {}
                DownloadNext::AwaitRebuild => return Ok(LinkEnd::Revoked),
                DownloadNext::Stop if downloads == 0 && response.status() == StatusCode::GONE => {
                    return Ok(LinkEnd::RefusedBeforeFirst);
                }
                DownloadNext::Stop => return Ok(LinkEnd::Done),
            }
            downloads += 1;
            self.oracle().on_archive_downloaded(
                self.principal,
                link.export_id,
                response.body(),
                downloads == 1,
                link.requested_at_ms,
                link.ready_seen_ms,
                download_requested_ms,
                now,
            );
            if downloads == 1 {
                self.keep_link(link, download_requested_ms);
            }
            if downloads > redownloads {
                return Ok(LinkEnd::Done);
            }
        }
    }

    /// GET an archive, waiting out unavailability until the drain ends.
    async fn get_archive(&mut self, path: &str, session: &str) -> Result<HttpResponse, CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        loop {
            match self
                .call(Service::Export, Method::GET, path, Some(session), None)
                .await
            {
                Ok(response) => return Ok(response),
                Err(CallError::Unavailable(_)) if sim_now_ms() + POLL_MS <= deadline_ms => {
                    self.pass_time_until(sim_now_ms() + POLL_MS).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Keep a link one downloaded (for the probes after deletions and the
    /// final audit) and publish it on the board (for the curious).
    fn keep_link(&mut self, link: &AwaitedLink, download_requested_ms: u64) {
        let path = link.path.clone();
        self.kept.links.push((path.clone(), download_requested_ms));
        let exported = (
            path.clone(),
            link.export_id,
            link.requested_at_ms,
            self.principal,
        );
        self.kept.link_exports.push(exported);
        let published = PublishedLink {
            owner: self.principal,
            export_id: link.export_id,
            path,
        };
        self.world.board.borrow_mut().links.push(published);
    }

    /// Ask for one's data through a support ticket, proving identity with
    /// the code the service sends to one's own account.
    pub(super) async fn ticket_export(&mut self) -> Result<(), CallError> {
        let Some((export_id, must_since_ms)) = self.own_ticket_verified().await? else {
            return Ok(());
        };
        self.oracle().on(Event::TicketVerified);
        self.await_and_download(export_id, must_since_ms, false, 0)
            .await
    }

    /// Open a support ticket for one's own address and verify it with the
    /// code from one's own feed: the export it gives, and since when its
    /// exactness is sure (0 when it joined an export of one's own still
    /// being built, whose snapshot may precede the ticket). `None` when the
    /// challenge never arrived.
    pub(super) async fn own_ticket_verified(&mut self) -> Result<Option<(u64, u64)>, CallError> {
        let opened_at_ms = sim_now_ms();
        let Some((ticket_id, code)) = self
            .open_ticket_for_own_address("please send me my recordings")
            .await?
        else {
            // The challenge never arrived (the store was down): no ticket.
            return Ok(None);
        };
        let body = to_json(&VerifyTicketRequest { code: code.clone() })?;
        let path = format!("/v1/tickets/{ticket_id}/verify");
        let verified: TicketStatus = self
            .expect_json(
                Service::Export,
                Method::POST,
                &path,
                None,
                Some(body),
                &[StatusCode::OK],
            )
            .await?;
        let Some(export_id) = verified.export_id else {
            return Err(CallError::Unexpected(
                "a verified ticket without an export".into(),
            ));
        };
        // A ticket verified while one's own earlier export was still being
        // built (or rebuilt after a deletion) joins that export, whose
        // snapshot may precede the ticket: judge isolation fully, exactness
        // only for what is sure (as a joined direct request).
        let must_since_ms = {
            let mut board = self.world.board.borrow_mut();
            let joined = board.exports.contains(&(self.principal, export_id.0));
            board.tickets.push((self.principal, ticket_id));
            board.exports.push((self.principal, export_id.0));
            if joined { 0 } else { opened_at_ms }
        };
        self.requests.push((self.principal, export_id.0));
        self.verify_ticket_again(ticket_id, &code, export_id.0)
            .await?;
        Ok(Some((export_id.0, must_since_ms)))
    }
}
