//! The durable job queue: requests, leases with fencing tokens, publishing,
//! revocation, deadlines.
//!
//! Every accepted request is a job in redb before it is acknowledged. A
//! worker *claims* a job: the claim bumps the job's fence and grants a lease
//! for `lease_ms`. Every later call of that worker carries the fence; once
//! the lease lapsed or another worker claimed the job (a higher fence), the
//! old worker's renewals, failures and — above all — its publication are
//! refused. A crashed worker's job is therefore redelivered after its lease,
//! and can never be published twice or by the wrong worker.

use crate::schema::{ARCHIVES, JOBS, META, NEXT_EXPORT, PENDING, REQUESTS};
use crate::service::{ExportService, internal};
use crosstalk_model::api::{ClaimedJob, ExportState};
use crosstalk_model::{AccountId, ExportId, RecordingId};
use crosstalk_service::ApiError;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Origin {
    /// The authenticated subject asked.
    Direct,
    /// A support ticket, verified by the challenge sent to the account.
    Ticket(u64),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub(crate) worker: String,
    pub(crate) expires_at_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) id: ExportId,
    pub(crate) subject: AccountId,
    pub(crate) origin: Origin,
    pub(crate) state: ExportState,
    pub(crate) requested_at_ms: u64,
    pub(crate) due_at_ms: u64,
    pub(crate) extension_reason: Option<String>,
    pub(crate) attempts: u32,
    /// Earliest time a worker may claim it again (after a failed attempt).
    pub(crate) not_before_ms: u64,
    pub(crate) fence: u64,
    pub(crate) lease: Option<Lease>,
    /// Archives published for it so far (a rebuild publishes another).
    pub(crate) version: u32,
    pub(crate) snapshot_at_ms: Option<u64>,
    pub(crate) recording_ids: Vec<RecordingId>,
    pub(crate) link_nonce: Option<[u8; 16]>,
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) downloads: u32,
    pub(crate) archive_sha256: Option<String>,
    pub(crate) failure: Option<String>,
}

/// Why a worker's call was refused.
pub(crate) fn fenced_out() -> ApiError {
    ApiError::conflict("this worker no longer holds the job's lease (fenced out)")
}

impl ExportService {
    pub(crate) fn load_job(&self, id: ExportId) -> Result<Option<Job>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let jobs = txn.open_table(JOBS).map_err(internal)?;
        match jobs.get(id.0).map_err(internal)? {
            Some(json) => serde_json::from_str(json.value())
                .map(Some)
                .map_err(internal),
            None => Ok(None),
        }
    }

    pub(crate) fn write_job(txn: &redb::WriteTransaction, job: &Job) -> Result<(), ApiError> {
        let json = serde_json::to_string(job).map_err(internal)?;
        txn.open_table(JOBS)
            .map_err(internal)?
            .insert(job.id.0, json.as_str())
            .map_err(internal)?;
        let mut pending = txn.open_table(PENDING).map_err(internal)?;
        if job.state == ExportState::Pending {
            pending.insert(job.id.0, ()).map_err(internal)?;
        } else {
            pending.remove(job.id.0).map_err(internal)?;
        }
        Ok(())
    }

    pub(crate) fn read_job_in(txn: &redb::WriteTransaction, id: ExportId) -> Result<Job, ApiError> {
        let jobs = txn.open_table(JOBS).map_err(internal)?;
        let json = jobs
            .get(id.0)
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found("no such export"))?;
        serde_json::from_str(json.value()).map_err(internal)
    }

    /// The job a new request of `subject` would duplicate: one still being
    /// built. (A request after an export is ready deserves a new snapshot.)
    fn open_job_of(
        &self,
        txn: &redb::WriteTransaction,
        subject: AccountId,
    ) -> Result<Option<Job>, ApiError> {
        let jobs = txn.open_table(JOBS).map_err(internal)?;
        let mut found = None;
        for entry in jobs.iter().map_err(internal)?.rev() {
            let (_, json) = entry.map_err(internal)?;
            let job: Job = serde_json::from_str(json.value()).map_err(internal)?;
            if job.subject != subject {
                continue;
            }
            if job.state == ExportState::Pending {
                found = Some(job);
            }
            break;
        }
        Ok(found)
    }

    /// Accept a request for `subject`'s data, durably, or return the open
    /// request it duplicates. `rate_limited` applies the per-subject limit
    /// (direct requests); a verified ticket is not limited.
    pub(crate) fn accept_request(
        &self,
        subject: AccountId,
        origin: Origin,
        rate_limited: bool,
    ) -> Result<(Job, bool), ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let accepted = self.accept_request_in(&txn, subject, origin, rate_limited)?;
        txn.commit().map_err(internal)?;
        Ok(accepted)
    }

    /// [`Self::accept_request`] within `txn` (the caller commits).
    pub(crate) fn accept_request_in(
        &self,
        txn: &redb::WriteTransaction,
        subject: AccountId,
        origin: Origin,
        rate_limited: bool,
    ) -> Result<(Job, bool), ApiError> {
        let now = self.clock.now_ms();
        if let Some(existing) = self.open_job_of(txn, subject)? {
            crosstalk_service::probe!("export.request.duplicate_joined");
            return Ok((existing, true));
        }
        if rate_limited {
            let requests = txn.open_table(REQUESTS).map_err(internal)?;
            let since = now.saturating_sub(self.config.rate_limit_window_ms);
            let recent = requests
                .range((subject.0, since, 0)..=(subject.0, u64::MAX, u64::MAX))
                .map_err(internal)?
                .count();
            if recent >= self.config.rate_limit_max as usize {
                crosstalk_service::probe!("export.request.rate_limited");
                return Err(ApiError::new(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many export requests recently; try again later",
                ));
            }
        }
        let id = {
            let mut meta = txn.open_table(META).map_err(internal)?;
            let id = meta
                .get(NEXT_EXPORT)
                .map_err(internal)?
                .map(|v| v.value())
                .unwrap_or(1);
            meta.insert(NEXT_EXPORT, id + 1).map_err(internal)?;
            id
        };
        if rate_limited {
            txn.open_table(REQUESTS)
                .map_err(internal)?
                .insert((subject.0, now, id), ())
                .map_err(internal)?;
        }
        let job = Job {
            id: ExportId(id),
            subject,
            origin,
            state: ExportState::Pending,
            requested_at_ms: now,
            due_at_ms: now.saturating_add(self.config.deadline_ms),
            extension_reason: None,
            attempts: 0,
            not_before_ms: 0,
            fence: 0,
            lease: None,
            version: 0,
            snapshot_at_ms: None,
            recording_ids: Vec::new(),
            link_nonce: None,
            expires_at_ms: None,
            downloads: 0,
            archive_sha256: None,
            failure: None,
        };
        Self::write_job(txn, &job)?;
        Ok((job, false))
    }

    /// Give `worker` a lease on the oldest job that needs work.
    pub(crate) fn claim(&self, worker: &str) -> Result<Option<ClaimedJob>, ApiError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        let claimed = {
            let ids: Vec<u64> = {
                let pending = txn.open_table(PENDING).map_err(internal)?;
                let mut ids = Vec::new();
                for entry in pending.iter().map_err(internal)? {
                    ids.push(entry.map_err(internal)?.0.value());
                }
                ids
            };
            let mut claimed = None;
            for id in ids {
                let mut job = Self::read_job_in(&txn, ExportId(id))?;
                let leased = job.lease.as_ref().is_some_and(|l| l.expires_at_ms > now);
                if leased || job.not_before_ms > now {
                    continue;
                }
                if job.attempts >= self.config.max_attempts {
                    crosstalk_service::probe!("export.job.poison_failed");
                    // Its workers kept dying (or losing their lease) without
                    // ever reporting: a poison job. Fail it, with a reason.
                    job.state = ExportState::Failed;
                    job.lease = None;
                    job.failure = Some(format!("{} attempts ended without a result", job.attempts));
                    Self::write_job(&txn, &job)?;
                    continue;
                }
                if job.lease.is_some() {
                    // Its worker died or stalled: the lease lapsed.
                    crosstalk_service::probe!("export.job.lapsed_lease_reclaimed");
                }
                job.fence += 1;
                job.attempts += 1;
                let expires_at_ms = now.saturating_add(self.config.lease_ms);
                job.lease = Some(Lease {
                    worker: worker.to_string(),
                    expires_at_ms,
                });
                Self::write_job(&txn, &job)?;
                claimed = Some(ClaimedJob {
                    export_id: job.id,
                    subject: job.subject,
                    fence: job.fence,
                    lease_expires_at_ms: expires_at_ms,
                });
                break;
            }
            claimed
        };
        txn.commit().map_err(internal)?;
        Ok(claimed)
    }

    /// The job, if `fence` still holds a live lease on it.
    fn leased_job(
        &self,
        txn: &redb::WriteTransaction,
        id: ExportId,
        fence: u64,
        now: u64,
    ) -> Result<Job, ApiError> {
        let job = Self::read_job_in(txn, id)?;
        let live = job.lease.as_ref().is_some_and(|l| l.expires_at_ms > now);
        if job.fence != fence || !live || job.state != ExportState::Pending {
            crosstalk_service::probe!("export.job.fenced_out");
            return Err(fenced_out());
        }
        Ok(job)
    }

    pub(crate) fn renew(&self, id: ExportId, fence: u64) -> Result<u64, ApiError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        let mut job = self.leased_job(&txn, id, fence, now)?;
        let expires_at_ms = now.saturating_add(self.config.lease_ms);
        if let Some(lease) = job.lease.as_mut() {
            lease.expires_at_ms = expires_at_ms;
        }
        Self::write_job(&txn, &job)?;
        txn.commit().map_err(internal)?;
        Ok(expires_at_ms)
    }

    /// A worker gave up on an attempt: back off, or fail for good.
    pub(crate) fn fail_attempt(
        &self,
        id: ExportId,
        fence: u64,
        reason: &str,
    ) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        let mut job = self.leased_job(&txn, id, fence, now)?;
        job.lease = None;
        if job.attempts >= self.config.max_attempts {
            job.state = ExportState::Failed;
            crosstalk_service::probe!("export.job.attempts_exhausted");
            job.failure = Some(reason.chars().take(500).collect());
        } else {
            crosstalk_service::probe!("export.job.attempt_backed_off");
            let exponent = job.attempts.saturating_sub(1).min(16);
            let backoff =
                (self.config.retry_backoff_ms << exponent).min(self.config.max_backoff_ms);
            job.not_before_ms = now.saturating_add(backoff);
        }
        Self::write_job(&txn, &job)?;
        txn.commit().map_err(internal)
    }

    /// Publish a worker's archive, if its fence still holds the lease. The
    /// archive must be for this job and subject and hold exactly the
    /// recordings the worker reports.
    pub(crate) fn publish(
        &self,
        id: ExportId,
        fence: u64,
        snapshot_at_ms: u64,
        recording_ids: Vec<RecordingId>,
        archive: &[u8],
    ) -> Result<Job, ApiError> {
        let (manifest, files) = crate::archive::read_archive(archive).map_err(|e| {
            ApiError::new(http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_archive", e)
        })?;
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        let mut job = self.leased_job(&txn, id, fence, now)?;
        // Defence in depth: the archive must be this job's, for its subject.
        let listed: Vec<RecordingId> = manifest.recordings.iter().map(|r| r.id).collect();
        let mut reported = recording_ids.clone();
        reported.sort();
        let mut sorted_listed = listed.clone();
        sorted_listed.sort();
        if manifest.subject != job.subject
            || manifest.export_id != job.id
            || manifest.snapshot_at_ms != snapshot_at_ms
            || sorted_listed != reported
            || files.len() != listed.len()
        {
            crosstalk_service::probe!("export.publish.archive_mismatch_refused");
            return Err(ApiError::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_archive",
                "the archive does not match its job (subject, export, snapshot or recordings)",
            ));
        }
        let mut nonce = [0u8; 16];
        self.entropy.fill(&mut nonce);
        job.state = ExportState::Ready;
        job.lease = None;
        job.version += 1;
        job.snapshot_at_ms = Some(snapshot_at_ms);
        job.recording_ids = reported;
        job.link_nonce = Some(nonce);
        job.expires_at_ms = Some(now.saturating_add(self.config.link_ttl_ms));
        job.downloads = 0;
        job.archive_sha256 = Some(crosstalk_model::sha256_hex(archive));
        job.failure = None;
        Self::write_job(&txn, &job)?;
        txn.open_table(ARCHIVES)
            .map_err(internal)?
            .insert(job.id.0, archive)
            .map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok(job)
    }

    /// Withdraw a ready archive (a recording in it was deleted) and queue
    /// the job to be built again. Its link stops working at once.
    pub(crate) fn revoke_and_rebuild(&self, id: ExportId) -> Result<(), ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let mut job = Self::read_job_in(&txn, id)?;
        if job.state == ExportState::Ready {
            crosstalk_service::probe!("export.job.revoked_for_rebuild");
            job.state = ExportState::Pending;
            job.link_nonce = None;
            job.expires_at_ms = None;
            job.archive_sha256 = None;
            job.not_before_ms = 0;
            job.attempts = 0;
            Self::write_job(&txn, &job)?;
            txn.open_table(ARCHIVES)
                .map_err(internal)?
                .remove(id.0)
                .map_err(internal)?;
        }
        txn.commit().map_err(internal)
    }

    /// Jobs past their due date and not ready.
    pub(crate) fn overdue(&self) -> Result<Vec<Job>, ApiError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_read().map_err(internal)?;
        let jobs = txn.open_table(JOBS).map_err(internal)?;
        let mut out = Vec::new();
        for entry in jobs.iter().map_err(internal)? {
            let (_, json) = entry.map_err(internal)?;
            let job: Job = serde_json::from_str(json.value()).map_err(internal)?;
            if job.state != ExportState::Ready && job.due_at_ms < now {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Extend a request's deadline once, by up to two further months, with
    /// a reason (GDPR Art. 12(3)).
    pub(crate) fn extend(&self, id: ExportId, reason: &str) -> Result<Job, ApiError> {
        if reason.trim().is_empty() || reason.len() > 500 {
            return Err(ApiError::bad_request(
                "an extension needs a reason of 1 to 500 bytes",
            ));
        }
        let txn = self.db.begin_write().map_err(internal)?;
        let mut job = Self::read_job_in(&txn, id)?;
        if job.extension_reason.is_some() {
            return Err(ApiError::conflict("this request was already extended once"));
        }
        job.due_at_ms = job.due_at_ms.saturating_add(self.config.max_extension_ms);
        job.extension_reason = Some(reason.trim().to_string());
        Self::write_job(&txn, &job)?;
        txn.commit().map_err(internal)?;
        Ok(job)
    }
}
