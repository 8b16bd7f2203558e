//! "Delete all my history": the button people press after a news story.
//!
//! The person sends `POST /v1/recordings/delete` with `{"all": true}`
//! (retried while the store does not answer: it is idempotent), and the
//! oracle judges the answer with the range deletions' machinery
//! (`check/history.rs`, scope `All`): every own recording acknowledged
//! before the request is deleted from then on, uploads racing it go either
//! way. Then the person looks again, the way other deletions are probed:
//! plays back some of what was covered by id (first, middle and last: a
//! deletion cut short at a page or batch keeps the last ones), and walks
//! the whole history (every item judged by its watermark). The account
//! stays open: its devices go on uploading, and what they upload later
//! must survive (the final audit), while the next export must have
//! forgotten everything covered (the exactness and erasure checks).

use super::CallError;
use super::person::{POLL_MS, Person, parse, to_json};
use crate::check::Invariant;
use crate::net::sim_now_ms;
use crate::workload::Service;
use crosstalk_model::api::{DeleteRequest, DeleteResponse};
use http::{Method, StatusCode};
use std::time::Duration;

/// The probe kind of playing back a recording "delete all" covered.
pub const PLAYBACK_AFTER_DELETE_ALL: &str = "after delete all: playback";

impl Person {
    /// Press "delete all my history", then look again.
    pub(super) async fn delete_all(&mut self) -> Result<(), CallError> {
        let Some(covered) = self.send_delete_all().await? else {
            return Ok(());
        };
        let now = sim_now_ms();
        for &(id, nonce) in &covered {
            self.kept.deletion_acked(id, nonce, now);
        }
        self.own_recordings
            .retain(|r| !covered.iter().any(|&(_, nonce)| nonce == r.nonce));
        self.play_back_covered(&covered).await?;
        let listed = match self.read_history("after delete all: history").await {
            Ok(listed) => listed,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let forgotten = covered
            .iter()
            .filter(|(_, nonce)| !listed.contains(nonce))
            .count();
        self.oracle().delete_all_forgotten(forgotten);
        Ok(())
    }

    /// Send the request until the store answers (or the run's deadline);
    /// the covered recordings (id, nonce), or `None` without an answer.
    async fn send_delete_all(&mut self) -> Result<Option<Vec<(u64, u64)>>, CallError> {
        let body = to_json(&DeleteRequest {
            all: true,
            captured_from_ms: None,
            captured_to_ms: None,
        })?;
        let session = self.session.clone();
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        loop {
            let sent_ms = sim_now_ms();
            self.oracle().delete_all_sent(self.principal, sent_ms);
            let path = "/v1/recordings/delete";
            let sent = self.call(
                Service::Store,
                Method::POST,
                path,
                Some(&session),
                Some(body.clone()),
            );
            match sent.await {
                Ok(r) if r.status() == StatusCode::OK => {
                    let response: DeleteResponse = parse(&r)?;
                    let named: Vec<u64> = response.deleted.iter().map(|id| id.0).collect();
                    let (principal, now) = (self.principal, sim_now_ms());
                    let covered = self
                        .oracle()
                        .delete_all_answered(principal, &named, sent_ms, now);
                    return Ok(Some(covered));
                }
                Ok(r) => {
                    return Err(CallError::Unexpected(format!(
                        "delete all answered {}",
                        r.status()
                    )));
                }
                Err(CallError::Unavailable(_)) if sim_now_ms() + POLL_MS <= deadline_ms => {
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
                Err(CallError::Unavailable(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Play back the first, the middle and the last covered recording by
    /// id: each must be refused as if it never existed.
    async fn play_back_covered(&mut self, covered: &[(u64, u64)]) -> Result<(), CallError> {
        let Some(last) = covered.len().checked_sub(1) else {
            return Ok(());
        };
        let mut picks = vec![0, last / 2, last];
        picks.dedup();
        let session = self.session.clone();
        for index in picks {
            let (id, _) = covered[index];
            let path = format!("/v1/recordings/{id}/audio");
            let requested_ms = sim_now_ms();
            let response = match self
                .call(Service::Store, Method::GET, &path, Some(&session), None)
                .await
            {
                Ok(response) => response,
                Err(CallError::Unavailable(_)) => continue,
                Err(e) => return Err(e),
            };
            let what = format!("played back their own rec-{id} after deleting all their history");
            let status = response.status().as_u16();
            let mut oracle = self.oracle();
            let at_ms = sim_now_ms();
            let principal = self.principal;
            oracle.attempt(
                PLAYBACK_AFTER_DELETE_ALL,
                principal,
                status,
                &[404],
                Invariant::Erasure,
                at_ms,
                &what,
            );
            if response.status() == StatusCode::OK {
                let channel = "playback after delete all";
                oracle.receive_audio(principal, channel, response.body(), requested_ms, at_ms);
            }
        }
        Ok(())
    }
}
