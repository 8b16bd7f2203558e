//! Exports as their subject sees them: asking for one, its status (with
//! the download link once ready), the download itself (a link bound to
//! the export and the subject, expiring, limited in downloads, and checked
//! against the store for deleted recordings, which revoke the archive), and
//! the announcement of a ready export to the subject's own feed.

use crate::jobs::{Job, Origin};
use crate::link;
use crate::schema::{ARCHIVES, JOBS};
use crate::service::{ExportService, internal};
use crosstalk_model::api::{ExportState, ExportStatus};
use crosstalk_model::{AccountId, ExportId, sha256_hex};
use crosstalk_service::{ApiError, Bug};
use redb::ReadableTable;

impl ExportService {
    pub(crate) fn download_path(&self, job: &Job) -> Option<String> {
        match (job.state, job.expires_at_ms, job.link_nonce) {
            (ExportState::Ready, Some(expires_at_ms), Some(nonce)) => {
                let claims = link::LinkClaims {
                    export_id: job.id,
                    subject: job.subject,
                    expires_at_ms,
                    nonce,
                };
                Some(format!(
                    "/v1/downloads/{}",
                    link::mint(&self.link_key, &claims)
                ))
            }
            _ => None,
        }
    }

    pub(crate) fn status(&self, job: &Job) -> ExportStatus {
        let now = self.clock.now_ms();
        ExportStatus {
            export_id: job.id,
            state: job.state,
            requested_at_ms: job.requested_at_ms,
            due_at_ms: job.due_at_ms,
            overdue: job.state != ExportState::Ready && now > job.due_at_ms,
            extension_reason: job.extension_reason.clone(),
            snapshot_at_ms: job.snapshot_at_ms,
            download_path: self.download_path(job),
            expires_at_ms: job.expires_at_ms,
            downloads_left: (job.state == ExportState::Ready)
                .then(|| self.config.max_downloads.saturating_sub(job.downloads)),
            failure: job.failure.clone(),
        }
    }

    /// Accept a direct request from the authenticated `subject` (or return
    /// the open request it duplicates).
    pub fn request_export(&self, subject: AccountId) -> Result<(ExportStatus, bool), ApiError> {
        let (job, duplicate) = self.accept_request(subject, Origin::Direct, true)?;
        Ok((self.status(&job), duplicate))
    }

    /// The status of export `id`, if `subject` is its subject. Someone
    /// else's export is reported exactly like one that does not exist.
    pub fn export_status(
        &self,
        subject: AccountId,
        id: ExportId,
    ) -> Result<ExportStatus, ApiError> {
        match self.load_job(id)? {
            Some(job) if job.subject == subject => Ok(self.status(&job)),
            _ => {
                crosstalk_service::probe!("export.status.not_own");
                Err(ApiError::not_found("no such export"))
            }
        }
    }

    /// The archive behind `token`, for the authenticated `caller`.
    pub async fn download(&self, caller: AccountId, token: &str) -> Result<Vec<u8>, ApiError> {
        let claims = link::verify(&self.link_key, token).map_err(|_| {
            crosstalk_service::probe!("export.download.bad_link");
            ApiError::not_found("no such download")
        })?;
        let job = self
            .load_job(claims.export_id)?
            .ok_or_else(|| ApiError::not_found("no such download"))?;
        if job.subject != claims.subject {
            crosstalk_service::probe!("export.download.subject_mismatch");
            return Err(ApiError::not_found("no such download"));
        }
        // A link is not a credential: the caller must be the subject.
        // Planted unbound-link (Alexa DSAR 2018): whoever holds the link downloads.
        if caller != job.subject && !self.injected.on(Bug::UnboundLink) {
            crosstalk_service::probe!("export.download.foreign_caller_refused");
            return Err(ApiError::forbidden(
                "this download belongs to another account",
            ));
        }
        // A link of an earlier build (before a revocation) no longer works.
        if job.state != ExportState::Ready || job.link_nonce != Some(claims.nonce) {
            crosstalk_service::probe!("export.download.revoked_link");
            return Err(ApiError::gone(
                "this link was revoked; the export is being rebuilt or was replaced",
            ));
        }
        if self.clock.now_ms() >= claims.expires_at_ms {
            crosstalk_service::probe!("export.download.expired");
            return Err(ApiError::gone("this download link has expired"));
        }
        if job.downloads >= self.config.max_downloads {
            crosstalk_service::probe!("export.download.used_up");
            return Err(ApiError::gone("this download link has been used up"));
        }
        // Erasure: every recording in the archive must still exist now. If
        // the store cannot say, refuse rather than risk it.
        let live = if self.injected.on(Bug::DeleteExportRace) {
            // Planted delete-export-race (Twitter 2019, Instagram 2020): the export's own index, which deletion never updates.
            job.recording_ids.clone()
        } else {
            match self.store.live(job.subject, &job.recording_ids).await {
                Ok(live) => live,
                Err(e) => {
                    crosstalk_service::probe!("export.download.live_check_failed");
                    if self.injected.on(Bug::LiveCheckFailsOpen) {
                        // Planted live-check-fails-open (Twitter 2019, Instagram 2020): store unreachable, so assume everything still live.
                        job.recording_ids.clone()
                    } else {
                        return Err(e);
                    }
                }
            }
        };
        if live.len() != job.recording_ids.len() {
            crosstalk_service::probe!("export.download.recordings_deleted");
            self.revoke_and_rebuild(job.id)?;
            return Err(ApiError::gone(
                "recordings in this archive were deleted; it is being rebuilt",
            ));
        }
        let txn = self.db.begin_write().map_err(internal)?;
        let bytes = {
            let mut current = {
                let jobs = txn.open_table(JOBS).map_err(internal)?;
                let json = jobs
                    .get(job.id.0)
                    .map_err(internal)?
                    .ok_or_else(|| ApiError::internal("job vanished"))?;
                serde_json::from_str::<Job>(json.value()).map_err(internal)?
            };
            // Re-check inside the transaction: a revocation may have won.
            if current.state != ExportState::Ready || current.link_nonce != Some(claims.nonce) {
                crosstalk_service::probe!("export.download.revoked_in_commit");
                return Err(ApiError::gone("this link was revoked"));
            }
            if current.downloads >= self.config.max_downloads {
                crosstalk_service::probe!("export.download.used_up_in_commit");
                return Err(ApiError::gone("this download link has been used up"));
            }
            let bytes = txn
                .open_table(ARCHIVES)
                .map_err(internal)?
                .get(job.id.0)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("ready export without archive"))?
                .value()
                .to_vec();
            if current.archive_sha256.as_deref() != Some(sha256_hex(&bytes).as_str()) {
                return Err(ApiError::internal(
                    "stored archive does not match its digest",
                ));
            }
            current.downloads += 1;
            Self::write_job(&txn, &current)?;
            bytes
        };
        txn.commit().map_err(internal)?;
        Ok(bytes)
    }

    /// Tell the subject their export is ready, on their own feed (best
    /// effort: the status endpoint shows the link too).
    pub(crate) async fn announce(&self, job: &Job) {
        if self.fires("export.announce.dropped") {
            return; // The subject still sees the link in the export's status.
        }
        if let Some(path) = self.download_path(job) {
            let _ = self
                .store
                .notify(
                    job.subject,
                    "export-ready",
                    &format!("Your data is ready: {path}"),
                )
                .await;
        }
    }
}
