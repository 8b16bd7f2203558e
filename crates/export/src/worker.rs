//! An export worker: a stateless process that builds archives.
//!
//! It claims a job from the export service (receiving a lease and a fencing
//! token), collects the subject's recordings from the store's service API as
//! of a snapshot time, renewing its lease after every page, builds the
//! archive in a staging area of its own for that job, and publishes it with
//! its fence. If it crashes, its lease lapses and another worker takes the
//! job with a higher fence; if it was only slow or cut off, its late
//! publication is refused. Any number of workers may run, and one worker
//! may work several jobs at once ([`Worker::with_concurrency`]): its job
//! slots run as futures of one task, each staging into its own entry of the
//! worker's staging area, named by the job and its fence.

use crate::archive::{ArchiveItem, build_archive};
use crate::store_client::StoreClient;
use base64::Engine;
use bytes::Bytes;
use crosstalk_model::api::{
    ClaimRequest, ClaimedJob, CompleteJobRequest, FailJobRequest, FenceRequest,
};
use crosstalk_model::{Clock, sha256_hex};
use crosstalk_service::fault_points::FaultPoints;
use crosstalk_service::{Bug, HttpClient, HttpResponse, Inject, Injected};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
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

/// Whether a listed recording belongs in an export snapshotted at
/// `snapshot_at_ms`: it reached the store by then (later uploads wait for
/// the next export).
pub fn in_snapshot(view: &crosstalk_model::api::RecordingView, snapshot_at_ms: u64) -> bool {
    view.received_at_ms <= snapshot_at_ms
}

pub struct Worker {
    config: WorkerConfig,
    export: HttpClient,
    store: StoreClient,
    clock: Arc<dyn Clock>,
    /// Fault points and planted bugs (see [`Inject`]).
    injected: Injected,
    /// Jobs worked at once by [`Worker::run`] (at least 1).
    concurrency: usize,
    /// Where archives are assembled: staging path -> the items collected
    /// under it so far. Each attempt at a job has a path of its own.
    staging: Mutex<BTreeMap<String, Vec<ArchiveItem>>>,
    /// (export, fence) -> when its lease ends, as the last renewal said.
    lease_ends: Mutex<BTreeMap<(u64, u64), u64>>,
}

/// A job slot's loop, as [`Worker::run`] polls it.
type Slot<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What one attempt at a job produced.
pub enum Outcome {
    Published,
    /// The lease was lost (fenced out): another worker has the job.
    FencedOut,
    Failed(String),
}

impl Inject for Worker {
    fn injected_mut(&mut self) -> &mut Injected {
        &mut self.injected
    }

    /// The store client's `export.store_call.fails` fault point fires from
    /// the same fault points.
    fn pass_on_fault_points(&mut self, faults: &Arc<dyn FaultPoints>) {
        self.store.injected_mut().set_fault_points(faults.clone());
    }
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
            injected: Injected::default(),
            concurrency: 1,
            staging: Mutex::new(BTreeMap::new()),
            lease_ends: Mutex::new(BTreeMap::new()),
        }
    }

    /// Work up to `slots` jobs at once in [`Worker::run`] (at least 1). The
    /// slots are futures of the one task that runs the worker, polled in
    /// slot order: no task is spawned.
    pub fn with_concurrency(mut self, slots: usize) -> Self {
        self.concurrency = slots.max(1);
        self
    }

    fn fires(&self, point: &'static str) -> bool {
        self.injected.fires(point)
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
            StatusCode::OK => {
                let renewed: serde_json::Value =
                    serde_json::from_slice(response.body()).unwrap_or_default();
                if let Some(ends) = renewed["lease_expires_at_ms"].as_u64() {
                    let mut leases = self.lease_ends.lock().unwrap_or_else(|p| p.into_inner());
                    leases.insert((job.export_id.0, job.fence), ends);
                }
                Ok(())
            }
            StatusCode::CONFLICT => Err("fenced out".into()),
            other => Err(format!("renewal answered {other}")),
        }
    }

    /// The staging path of one attempt at `job`: its export and its fence,
    /// so no two attempts (here or on another slot) ever share one.
    fn staging_path(&self, job: &ClaimedJob, snapshot_at_ms: u64) -> String {
        if self.injected.on(Bug::SharedTempPath) {
            // Planted shared-temp-path (givewp #5346): a minute-stamped temp name that concurrent jobs share.
            return format!("/tmp/crosstalk-export-{}.zip", snapshot_at_ms / 60_000);
        }
        format!("/tmp/crosstalk-export-{}-{}", job.export_id.0, job.fence)
    }

    fn stage(&self, path: &str, item: ArchiveItem) {
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        staging.entry(path.to_string()).or_default().push(item);
    }

    fn take_staged(&self, path: &str) -> Vec<ArchiveItem> {
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        staging.remove(path).unwrap_or_default()
    }

    /// Collect the subject's recordings as of now, into this attempt's own
    /// staging path, and build the archive from what was staged there.
    async fn build(&self, job: &ClaimedJob) -> Result<(u64, Vec<ArchiveItem>, Vec<u8>), String> {
        let snapshot_at_ms = self.clock.now_ms();
        let path = self.staging_path(job, snapshot_at_ms);
        let collected = self.collect(job, snapshot_at_ms, &path).await;
        if let Err(reason) = collected {
            // Clean up after a failed attempt (a planted shared path's
            // leftovers stay, as a real temp file would).
            if !self.injected.on(Bug::SharedTempPath) {
                self.take_staged(&path);
            }
            return Err(reason);
        }
        // The archive (and so its manifest, which publication checks) is
        // built from what the staging path holds.
        let staged = self.take_staged(&path);
        let archive = build_archive(job.subject, job.export_id, snapshot_at_ms, &staged)?;
        Ok((snapshot_at_ms, staged, archive))
    }

    /// Page through the subject's recordings as of `snapshot_at_ms`, staging
    /// each under `path`, renewing the lease after every page.
    async fn collect(
        &self,
        job: &ClaimedJob,
        snapshot_at_ms: u64,
        path: &str,
    ) -> Result<(), String> {
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
                if !in_snapshot(&view, snapshot_at_ms) {
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
                self.stage(
                    path,
                    ArchiveItem {
                        recording: view,
                        audio,
                    },
                );
            }
            self.renew(job).await?;
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// One attempt at a claimed job, start to finish.
    pub async fn work(&self, job: &ClaimedJob) -> Outcome {
        let outcome = self.attempt(job).await;
        let mut leases = self.lease_ends.lock().unwrap_or_else(|p| p.into_inner());
        leases.remove(&(job.export_id.0, job.fence));
        outcome
    }

    /// When `job`'s lease ends as far as this worker knows (the claim's
    /// expiry, or the last renewal's).
    fn lease_ends_ms(&self, job: &ClaimedJob) -> u64 {
        let leases = self.lease_ends.lock().unwrap_or_else(|p| p.into_inner());
        let renewed = leases.get(&(job.export_id.0, job.fence)).copied();
        renewed.unwrap_or(0).max(job.lease_expires_at_ms)
    }

    async fn attempt(&self, job: &ClaimedJob) -> Outcome {
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
            // the lease lapses and the publication must be refused. It ends
            // from 1 ms to 1.5 s past the lease (by export and fence): a
            // short one before any other worker could claim the job (the
            // fence alone would not refuse it), a long one after.
            let past_ms = 1 + (job.export_id.0 * 7_919 + job.fence * 104_729) % 1_500;
            let stall_ms = self
                .lease_ends_ms(job)
                .saturating_sub(self.clock.now_ms())
                .saturating_add(past_ms);
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

    /// Claim and work jobs until the task is dropped, in
    /// [`Worker::with_concurrency`] slots at once.
    pub async fn run(self) {
        let mut slots: Vec<Option<Slot<'_>>> = (0..self.concurrency)
            .map(|_| Some(Box::pin(self.slot()) as Slot<'_>))
            .collect();
        // A join of the slots without a spawn: every wake-up polls each
        // unfinished slot once, in slot order (deterministic).
        std::future::poll_fn(|cx| {
            let mut running = false;
            for slot in &mut slots {
                if let Some(future) = slot {
                    if future.as_mut().poll(cx).is_ready() {
                        *slot = None;
                    } else {
                        running = true;
                    }
                }
            }
            if running {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// One job slot: claim and work jobs, one at a time, forever.
    async fn slot(&self) {
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
