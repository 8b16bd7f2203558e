//! An export worker: a stateless process that builds archives.
//!
//! It claims a job from the export service (receiving a lease and a fencing
//! token), collects the subject's recordings from the store's service API as
//! of a snapshot time, renewing its lease after every page, builds the
//! archive in a staging area of its own for that job, and publishes it with
//! its fence. If it crashes, its lease lapses and another worker takes the
//! job with a higher fence; if it was only slow or cut off, its late
//! publication is refused. Any number of workers may run.

use crate::StoreClient;
use crate::archive::{ArchiveItem, build_archive};
use base64::Engine;
use bytes::Bytes;
use crosstalk_model::api::{
    ClaimRequest, ClaimedJob, CompleteJobRequest, FailJobRequest, FenceRequest,
};
use crosstalk_model::{Clock, sha256_hex};
use crosstalk_service::{HttpClient, HttpResponse};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's name, recorded in leases.
    pub name: String,
    /// Bearer token for the export service's `/v1/internal/*`.
    pub worker_token: String,
    /// How long to wait before asking again when there is no work.
    pub poll_ms: u64,
    /// Recordings requested per page from the store.
    pub page_items: usize,
}

pub struct Worker {
    config: WorkerConfig,
    export: HttpClient,
    store: StoreClient,
    clock: Arc<dyn Clock>,
    faults: Arc<dyn crosstalk_service::fault_points::FaultPoints>,
    planted: crosstalk_service::Planted,
}

/// What one attempt at a job produced.
pub enum Outcome {
    Published,
    /// The lease was lost (fenced out): another worker has the job.
    FencedOut,
    Failed(String),
}

impl Worker {
    pub fn new(
        config: WorkerConfig,
        export: HttpClient,
        store: StoreClient,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config,
            export,
            store,
            clock,
            faults: crosstalk_service::fault_points::none(),
            planted: crosstalk_service::Planted::none(),
        }
    }

    /// Inject fault points (simulation and fuzzing builds).
    pub fn with_fault_points(
        mut self,
        faults: Arc<dyn crosstalk_service::fault_points::FaultPoints>,
    ) -> Self {
        self.faults = faults;
        self
    }

    /// Plant bugs from the catalogue (inert unless built with the
    /// `planted-bugs` feature; see `crosstalk_service::planted`).
    pub fn with_planted(mut self, planted: crosstalk_service::Planted) -> Self {
        self.planted = planted;
        self
    }

    fn fires(&self, point: &'static str) -> bool {
        crosstalk_service::fault_points::fires(&*self.faults, point)
    }

    async fn call<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<HttpResponse, String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.config.worker_token),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.export.send(request).await.map_err(|e| e.to_string())
    }

    /// Ask for a job; `None` when there is none (or the service is away).
    pub async fn claim(&self) -> Option<ClaimedJob> {
        let response = self
            .call(
                "/v1/internal/jobs/claim",
                &ClaimRequest {
                    worker: self.config.name.clone(),
                },
            )
            .await
            .ok()?;
        if response.status() == StatusCode::OK {
            serde_json::from_slice(response.body()).ok()
        } else {
            None
        }
    }

    async fn renew(&self, job: &ClaimedJob) -> Result<(), String> {
        let path = format!("/v1/internal/jobs/{}/renew", job.export_id.0);
        let response = self.call(&path, &FenceRequest { fence: job.fence }).await?;
        match response.status() {
            StatusCode::OK => Ok(()),
            StatusCode::CONFLICT => Err("fenced out".into()),
            other => Err(format!("renewal answered {other}")),
        }
    }

    /// Collect the subject's recordings as of now, into this job's own
    /// staging area, and build the archive.
    async fn build(&self, job: &ClaimedJob) -> Result<(u64, Vec<ArchiveItem>, Vec<u8>), String> {
        let snapshot_at_ms = self.clock.now_ms();
        let mut staged: Vec<ArchiveItem> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            if self.fires("worker.collect.page_fails") {
                return Err("injected: a page read from the store failed".into());
            }
            let page = self
                .store
                .page(job.subject, cursor.as_deref(), self.config.page_items)
                .await
                .map_err(|e| e.message)?;
            // Defence in depth: a page for anyone else fails the job loudly.
            if page.account_id != job.subject {
                return Err(format!(
                    "store returned a page of {} while collecting {}",
                    page.account_id, job.subject
                ));
            }
            for view in page.items {
                if view.received_at_ms > snapshot_at_ms {
                    continue;
                }
                let Some(audio) = self
                    .store
                    .audio(job.subject, view.id)
                    .await
                    .map_err(|e| e.message)?
                else {
                    continue; // Deleted since it was listed.
                };
                if sha256_hex(&audio) != view.audio_sha256 {
                    return Err(format!(
                        "audio of {} does not match the store's digest",
                        view.id
                    ));
                }
                staged.push(ArchiveItem {
                    recording: view,
                    audio,
                });
            }
            self.renew(job).await?;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let archive = build_archive(job.subject, job.export_id, snapshot_at_ms, &staged)?;
        Ok((snapshot_at_ms, staged, archive))
    }

    /// One attempt at a claimed job, start to finish.
    pub async fn work(&self, job: &ClaimedJob) -> Outcome {
        let (snapshot_at_ms, staged, archive) = match self.build(job).await {
            Ok(built) => built,
            Err(reason) if reason == "fenced out" => return Outcome::FencedOut,
            Err(reason) => {
                let path = format!("/v1/internal/jobs/{}/fail", job.export_id.0);
                let _ = self
                    .call(
                        &path,
                        &FailJobRequest {
                            fence: job.fence,
                            reason: reason.clone(),
                        },
                    )
                    .await;
                return Outcome::Failed(reason);
            }
        };
        if self.fires("worker.publish.stalls") {
            // A long pause (a GC, a swapped-out VM) right before publishing:
            // the lease lapses and the publication must be refused.
            let stall_ms = job
                .lease_expires_at_ms
                .saturating_sub(self.clock.now_ms())
                .saturating_add(1_000);
            tokio::time::sleep(Duration::from_millis(stall_ms)).await;
        }
        let request = CompleteJobRequest {
            fence: job.fence,
            snapshot_at_ms,
            recording_ids: staged.iter().map(|item| item.recording.id).collect(),
            archive_base64: base64::engine::general_purpose::STANDARD.encode(&archive),
        };
        let path = format!("/v1/internal/jobs/{}/complete", job.export_id.0);
        match self.call(&path, &request).await {
            Ok(r) if r.status() == StatusCode::OK => Outcome::Published,
            Ok(r) if r.status() == StatusCode::CONFLICT => Outcome::FencedOut,
            Ok(r) => Outcome::Failed(format!("publication answered {}", r.status())),
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Claim and work jobs until the task is dropped.
    pub async fn run(self) {
        let idle = Duration::from_millis(self.config.poll_ms.max(1));
        loop {
            match self.claim().await {
                Some(job) => {
                    if let Outcome::Failed(_) = self.work(&job).await {
                        tokio::time::sleep(idle).await;
                    }
                }
                None => tokio::time::sleep(idle).await,
            }
        }
    }
}
