//! A device that reuses an upload key for other content (a device bug, or a
//! counter reset the contract does not rule out): the curious user sends
//! its last acknowledged upload's key with an edited transcript. Upload
//! keys make retries idempotent only for the *same* content; other content
//! under a used key must be refused (409), never answered "duplicate" (the
//! new capture silently dropped) nor stored.

use super::super::person::to_json;
use super::{CallError, Person};
use crate::check::Invariant;
use crate::workload::Service;
use crosstalk_model::api::IngestRequest;
use http::{Method, StatusCode};

impl Person {
    /// Send the last acknowledged upload of one of one's devices again with
    /// its key and other content; only 409 is right.
    pub(super) async fn reuse_upload_key(&mut self, pick: u64) -> Result<(), CallError> {
        let now = crate::net::sim_now_ms();
        let ready = self.devices_with_last_upload(now);
        if ready.is_empty() {
            return Ok(());
        }
        let device = ready[(pick.rotate_left(17) % ready.len() as u64) as usize];
        let Some((body, id)) = self.devices[device].last_upload.clone() else {
            return Ok(());
        };
        let Ok(mut upload) = serde_json::from_slice::<IngestRequest>(&body) else {
            return Ok(());
        };
        upload.transcript.push_str(" (edited)");
        let token = self.devices[device].token.clone();
        let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                "/v1/recordings",
                Some(&token),
                Some(to_json(&upload)?),
            )
            .await?
        else {
            return Ok(());
        };
        if r.status() == StatusCode::UNAUTHORIZED {
            return Ok(()); // A sale or reset whose answer was lost replaced the token.
        }
        let what = format!("reused the upload key of rec-{id} for other content");
        self.judge(
            "upload key reused for other content",
            &r,
            &[409],
            Invariant::RequestIntegrity,
            &what,
        );
        Ok(())
    }
}
