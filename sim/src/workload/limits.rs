//! People who try past the export contract's limits.
//!
//! The weakest client the contract allows just tries again: after their own
//! export flow, some people keep downloading their latest link, two
//! downloads at a time as a double click sends them, until the service
//! refuses it (past the download limit), and some wait until the
//! link must have expired — its first download plus the plan's link
//! lifetime, plus a second — and try it once more. They only report: every
//! answer reaches the oracle through the person's HTTP calls
//! (`Oracle::export_reply`, judged in `check/limits.rs`), and every archive
//! served is judged like any other delivery, entry by entry.
//!
//! Others have their latest archive rebuilt, as the contract promises
//! after a deletion: a link lifetime after their request (when the run is
//! long enough) they delete the oldest recording, open the export's page
//! and click its link (refused: revoked), wait for the rebuilt archive,
//! download it to its limit — the rebuilt link's allowance and lifetime are
//! its own — and finally click the old link from the first email again,
//! which must stay dead.

use super::CallError;
use super::person::{POLL_MS, Person};
use crate::net::sim_now_ms;
use crate::workload::Service;
use crosstalk_model::api::{ExportState, ExportStatus};
use http::{Method, StatusCode};

/// The latest a probe past expiry may begin, before the run's end.
const EXPIRY_PROBE_MARGIN_MS: u64 = 60_000;

/// The latest a rebuild may be asked for, before the run's end: time to
/// build it, download it to its limit and click the old link again.
const REBUILD_MARGIN_MS: u64 = 180_000;

/// The least time left in the active period after the store is back from
/// a download's power loss.
const STORE_DOWN_MARGIN_MS: u64 = 30_000;

/// How long after a deletion's confirmation its owner clicks the link.
const CLICK_AFTER_DELETION_MS: u64 = 1_000;

/// How often a person waiting for a link to expire lets their devices
/// upload what they buffered.
const DEVICE_FLUSH_MS: u64 = 1_000;

impl Person {
    /// Try one's latest download link past the limit, or past its expiry.
    pub(super) async fn probe_link_limits(&mut self, past_expiry: bool) -> Result<(), CallError> {
        let Some((path, first_download_ms)) = self.kept.links.last().cloned() else {
            return Ok(());
        };
        let plan = &self.world.plan;
        if past_expiry {
            let wake_ms = first_download_ms + plan.link_ttl_ms + 1_000;
            if wake_ms + EXPIRY_PROBE_MARGIN_MS > plan.active_ms + plan.drain_ms {
                return Ok(());
            }
            // The owner waits; their devices do not: whatever a device
            // buffered while offline goes up as soon as it is back, so a
            // broadcast it heard still reaches the store within the hold.
            while sim_now_ms() < wake_ms {
                self.pass_time_until((sim_now_ms() + DEVICE_FLUSH_MS).min(wake_ms))
                    .await?;
                match self.flush_all_devices().await {
                    Ok(()) | Err(CallError::Unavailable(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.download_again(&path).await?;
            return Ok(());
        }
        // One more than the limit is enough to reach it from any count. A
        // hurried user double-clicks: two downloads of the link at once, so
        // the last allowed use is raced (the service must count it once).
        for _ in 0..=plan.max_downloads / 2 {
            let (first, second) =
                tokio::join!(self.download_again(&path), self.download_again(&path));
            if first? != Some(StatusCode::OK) || second? != Some(StatusCode::OK) {
                break;
            }
        }
        Ok(())
    }

    /// Wait until `until_ms`, letting one's devices upload meanwhile.
    async fn wait_flushing(&mut self, until_ms: u64) -> Result<(), CallError> {
        while sim_now_ms() < until_ms {
            self.pass_time_until((sim_now_ms() + DEVICE_FLUSH_MS).min(until_ms))
                .await?;
            match self.flush_all_devices().await {
                Ok(()) | Err(CallError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Have one's latest archive rebuilt after a deletion, use the rebuilt
    /// link to its limit and click the old one again.
    pub(super) async fn rebuild_own_archive(&mut self) -> Result<(), CallError> {
        // Only an export of the account one holds now (not of one closed).
        let Some((old_path, export_id, requested_at_ms, _)) = self
            .kept
            .link_exports
            .iter()
            .rev()
            .find(|link| link.3 == self.principal)
            .cloned()
        else {
            return Ok(());
        };
        let plan = &self.world.plan;
        let wake_ms = requested_at_ms + plan.link_ttl_ms + 1_000;
        if wake_ms + REBUILD_MARGIN_MS <= plan.active_ms + plan.drain_ms {
            self.wait_flushing(wake_ms).await?;
        }
        // The oldest recording, captured before the request: in the archive.
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let deleted = self.kept.deleted.len();
        self.delete_one(0).await?;
        if self.kept.deleted.len() == deleted {
            return Ok(());
        }
        // Open the export's page, then click its link: refused, revoked.
        if self.export_status(export_id).await?.is_none()
            || self.download_again(&old_path).await? != Some(StatusCode::GONE)
        {
            return Ok(());
        }
        // Deleted within the active phase: the rebuild has the whole drain.
        let strict = self.kept.last_deletion_ms <= self.world.plan.active_ms;
        let Some(new_path) = self.await_rebuild(export_id, &old_path, strict).await? else {
            return Ok(());
        };
        self.download_to_limit(&new_path).await?;
        // The first email's link, clicked again: dead for good.
        self.download_again(&old_path).await?;
        Ok(())
    }

    /// Click `path` once, its archive's recording of utterance `deleted`
    /// just deleted, as the store loses power when the download's live
    /// check reaches it (armed here, struck at the store's door:
    /// `faults/live_check.rs`) for `downtime_ms`. Whatever is served is
    /// judged like every delivery; the oracle counts the download by when
    /// the store's door cut the live check off, not by its answer. The
    /// caller then clicks again until the store is back.
    pub(super) async fn download_while_store_down(
        &mut self,
        path: &str,
        deleted: u64,
        downtime_ms: u64,
    ) -> Result<(), CallError> {
        // The store must be back well within the active period (faults
        // heal with it).
        if sim_now_ms() + downtime_ms + STORE_DOWN_MARGIN_MS > self.world.plan.active_ms {
            return Ok(());
        }
        // A moment after the deletion's confirmation, the click.
        self.pass_time_until(sim_now_ms() + CLICK_AFTER_DELETION_MS)
            .await?;
        let session = self.session.clone();
        self.world.introspect_crash.arm(&session, downtime_ms);
        let sent_ms = sim_now_ms();
        let answer = self
            .call_with_attempts(1, Service::Export, Method::GET, path, Some(&session), None)
            .await;
        let ended_ms = sim_now_ms();
        self.world.introspect_crash.disarm();
        self.oracle()
            .on_download_after_deletion(deleted, sent_ms, ended_ms);
        match answer {
            Ok(response) if response.status() == StatusCode::OK => {
                let channel = format!("{path} downloaded as the store lost power");
                self.oracle().on_archive_downloaded_again(
                    self.principal,
                    &channel,
                    response.body(),
                    sent_ms,
                    ended_ms,
                );
                Ok(())
            }
            Ok(_) | Err(CallError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One status of export `export_id` (`None`: no answer, or the session
    /// ended: the account was closed meanwhile).
    async fn export_status(&self, export_id: u64) -> Result<Option<ExportStatus>, CallError> {
        let session = self.session.clone();
        let path = format!("/v1/exports/{export_id}");
        let response = match self
            .call(Service::Export, Method::GET, &path, Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match response.status() {
            StatusCode::OK => serde_json::from_slice(response.body())
                .map(Some)
                .map_err(|e| CallError::Unexpected(format!("export status unreadable: {e}"))),
            StatusCode::UNAUTHORIZED => Ok(None),
            other => Err(CallError::Unexpected(format!(
                "export status answered {other}"
            ))),
        }
    }

    /// Poll export `export_id` until it shows a link other than
    /// `old_path`: that link, or `None` when it still shows `old_path` (the
    /// refusal was no revocation), ended otherwise (judged like any
    /// finished export) or was still pending at the run's end (a liveness
    /// violation when `strict`: it had the whole drain).
    async fn await_rebuild(
        &mut self,
        export_id: u64,
        old_path: &str,
        strict: bool,
    ) -> Result<Option<String>, CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        loop {
            let status = self.export_status(export_id).await?;
            // Still ready with the old link: the refusal was its limit or
            // expiry, not a revocation (judged in `check/limits.rs`).
            if let Some(status) = &status
                && status.state == ExportState::Ready
                && status.download_path.as_deref() == Some(old_path)
            {
                return Ok(None);
            }
            if let Some(status) = status
                && status.state != ExportState::Pending
            {
                let principal = self.principal;
                let path = self.oracle().on_export_finished(
                    principal,
                    export_id,
                    status.state,
                    status.download_path,
                    status.failure,
                    sim_now_ms(),
                );
                return Ok(path);
            }
            if sim_now_ms() + POLL_MS > deadline_ms {
                if strict {
                    let (principal, asked_ms) = (self.principal, self.kept.last_deletion_ms);
                    self.oracle().on_export_pending_at_deadline(
                        principal,
                        export_id,
                        asked_ms,
                        sim_now_ms(),
                    );
                }
                return Ok(None);
            }
            self.pass_time_until(sim_now_ms() + POLL_MS).await?;
        }
    }

    /// Download `path` as often as the limit allows (the first alone, then
    /// two at a time, as a double click sends them), and once more.
    async fn download_to_limit(&self, path: &str) -> Result<(), CallError> {
        let max = self.world.plan.max_downloads;
        if self.download_again(path).await? != Some(StatusCode::OK) {
            return Ok(());
        }
        let mut served = 1;
        while served < max {
            let (first, second) =
                tokio::join!(self.download_again(path), self.download_again(path));
            let ok = [first?, second?]
                .iter()
                .filter(|s| **s == Some(StatusCode::OK))
                .count() as u32;
            served += ok;
            if ok < 2 {
                break;
            }
        }
        self.download_again(path).await?;
        Ok(())
    }

    /// Download `path` once more with one's own session; an archive served
    /// is judged like every other delivery.
    async fn download_again(&self, path: &str) -> Result<Option<StatusCode>, CallError> {
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let response = match self
            .call(Service::Export, Method::GET, path, Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if response.status() == StatusCode::OK {
            let channel = format!("{path} downloaded again");
            self.oracle().on_archive_downloaded_again(
                self.principal,
                &channel,
                response.body(),
                requested_ms,
                sim_now_ms(),
            );
        }
        Ok(Some(response.status()))
    }
}
