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

use super::CallError;
use super::person::{Person, sleep_until};
use crate::net::sim_now_ms;
use http::{Method, StatusCode};

/// The latest a probe past expiry may begin, before the run's end.
const EXPIRY_PROBE_MARGIN_MS: u64 = 60_000;

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
                sleep_until((sim_now_ms() + DEVICE_FLUSH_MS).min(wake_ms)).await;
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

    /// Download `path` once more with one's own session; an archive served
    /// is judged like every other delivery.
    async fn download_again(&self, path: &str) -> Result<Option<StatusCode>, CallError> {
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let response = match self
            .call(true, Method::GET, path, Some(&session), None)
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
