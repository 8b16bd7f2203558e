//! Acknowledged state, probed again after the store lost power.
//!
//! A person remembers the state changes the store acknowledged to them
//! (an account closed, a device token replaced by a sale or a reset) with
//! when they asked. Once the store lost power at or after that request and
//! came back, the person checks that the change survived: the closed
//! account's session and the replaced device token must still be refused
//! (401). The answer is judged by the oracle (`check/durable.rs`); an
//! unanswered probe (the store down again, a 5xx) proves nothing and is
//! tried again at the next chance. What the person knows is only what the
//! store answered them, never how the store stores it.

use super::person::{Person, to_json};
use super::{CallError, World};
use crate::check::durable::{AckedProbe, AckedWhat, ListedPlayback};
use crate::net::sim_now_ms;
use crate::workload::Service;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crosstalk_model::api::IngestRequest;
use http::Method;
use std::collections::BTreeSet;
use std::time::Duration;

/// Most listed recordings one person plays back in the final audit.
const AUDIT_PLAYBACKS: usize = 64;
/// Rounds of a listed recording's playback, `POLL_MS` apart, before a
/// server error on every one counts as its audio lost.
const AUDIT_PLAYBACK_ROUNDS: u32 = 3;

/// Attempts of one probe before its outcome counts as unknown (and it is
/// tried again at the next chance).
const PROBE_ATTEMPTS: u32 = 2;

/// One acknowledged state change still to be probed after a power loss.
#[derive(Clone, Debug)]
struct Acked {
    what: AckedWhat,
    /// The credential that must stay refused.
    credential: String,
    /// When the request that changed it was (first) sent, and when its
    /// acknowledgement arrived.
    sent_ms: u64,
    acked_ms: u64,
}

/// The acknowledged changes a person has not yet seen survive a power loss.
#[derive(Debug, Default)]
pub(crate) struct AckedLedger {
    pending: Vec<Acked>,
    /// Probes sent, to name each probe's upload apart.
    probes: u64,
}

/// When the store lost power at or after `sent_ms` and is back since, the
/// power loss's time.
fn lost_since(world: &World, sent_ms: u64) -> Option<u64> {
    let lost = world.store_power_lost_ms.get()?;
    let back = world.store_back_ms.get()?;
    (lost >= sent_ms && back >= lost).then_some(lost)
}

impl Person {
    /// The store acknowledged `what` at `acked_ms` (asked at `sent_ms`):
    /// `credential` must be refused from now on.
    pub(super) fn state_acknowledged(&mut self, what: AckedWhat, credential: String, sent_ms: u64) {
        let acked_ms = sim_now_ms();
        self.kept.acked.pending.push(Acked {
            what,
            credential,
            sent_ms,
            acked_ms,
        });
    }

    /// Probe every acknowledged change the store may have lost in a power
    /// loss it came back from.
    pub(super) async fn probe_acked_state(&mut self) {
        let mut index = 0;
        while index < self.kept.acked.pending.len() {
            let acked = self.kept.acked.pending[index].clone();
            let Some(lost_ms) = lost_since(&self.world, acked.sent_ms) else {
                index += 1;
                continue;
            };
            match self.probe_one(&acked).await {
                Ok(Some(status)) => {
                    self.kept.acked.pending.remove(index);
                    let probe = AckedProbe {
                        principal: self.principal,
                        what: acked.what,
                        status,
                        acked_ms: acked.acked_ms,
                        lost_ms,
                        at_ms: sim_now_ms(),
                    };
                    self.oracle().judge_acked_after_power_loss(probe);
                }
                Ok(None) => index += 1,
                Err(e) => {
                    self.trace(format!("acknowledged state probe: {e}"));
                    index += 1;
                }
            }
        }
    }

    /// Once the active period is over: wait (within the drain) for a store
    /// that is still down, then probe what is left.
    pub(super) async fn probe_acked_state_at_the_end(&mut self) {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let down = |w: &World| match (w.store_power_lost_ms.get(), w.store_back_ms.get()) {
            (Some(lost), Some(back)) => back < lost,
            (Some(_), None) => true,
            _ => false,
        };
        while down(&self.world) && sim_now_ms() + super::person::POLL_MS <= deadline_ms {
            tokio::time::sleep(std::time::Duration::from_millis(super::person::POLL_MS)).await;
        }
        self.probe_acked_state().await;
    }

    /// One probe of `acked`; `None` when the store did not answer.
    async fn probe_one(&mut self, acked: &Acked) -> Result<Option<u16>, CallError> {
        let sent = match acked.what {
            AckedWhat::Closed => {
                let path = "/v1/recordings?limit=1";
                self.call_with_attempts(
                    PROBE_ATTEMPTS,
                    Service::Store,
                    Method::GET,
                    path,
                    Some(&acked.credential),
                    None,
                )
                .await
            }
            AckedWhat::TokenReplaced(_) => {
                let body = self.capture_for_a_retired_token()?;
                let path = "/v1/recordings";
                let token = Some(acked.credential.as_str());
                self.call_with_attempts(
                    PROBE_ATTEMPTS,
                    Service::Store,
                    Method::POST,
                    path,
                    token,
                    Some(body),
                )
                .await
            }
        };
        match sent {
            Ok(response) => Ok(Some(response.status().as_u16())),
            Err(CallError::Unavailable(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A fresh watermarked capture of this person's, to upload with a
    /// device token that must be refused: if the store takes it anyway,
    /// whoever later lists it is judged by its watermark.
    fn capture_for_a_retired_token(&mut self) -> Result<Vec<u8>, CallError> {
        self.kept.acked.probes += 1;
        let purpose = format!(
            "acked-state-probe/{}/{}",
            self.principal, self.kept.acked.probes
        );
        let digest = crate::streams::derive(self.world.plan.seed, &purpose);
        let nonce = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
        let now = sim_now_ms();
        let (audio, transcript) = {
            let oracle = self.world.oracle.borrow();
            let key = oracle.key();
            (
                key.audio(nonce, nonce),
                key.transcript(nonce, "said to a device sold or reset before"),
            )
        };
        self.oracle()
            .utterance_started(nonce, self.principal, 0, now);
        self.oracle().transcript_sent(&transcript);
        to_json(&IngestRequest {
            upload_key: format!("acked-{nonce:016x}"),
            captured_at_ms: crate::net::EPOCH_MS + now,
            transcript,
            audio_base64: STANDARD.encode(audio),
            ownership_epoch: None,
            intent: None,
        })
    }

    /// The final audit listed `listed` (nonces): play back each own
    /// recording in it (a listing entry whose audio is gone is a recording
    /// lost, as a crash between an index commit and its audio's leaves
    /// it). Every answer goes to the oracle (`Oracle::judge_listed_playback`).
    pub(super) async fn play_back_listed(
        &mut self,
        listed: &BTreeSet<u64>,
    ) -> Result<(), CallError> {
        let targets: Vec<(u64, u64)> = self
            .own_recordings
            .iter()
            .filter(|r| listed.contains(&r.nonce))
            .map(|r| (r.id, r.nonce))
            .take(AUDIT_PLAYBACKS)
            .collect();
        let session = self.session.clone();
        for (id, nonce) in targets {
            let path = format!("/v1/recordings/{id}/audio");
            let requested_ms = sim_now_ms();
            let mut answer = None;
            for round in 0..AUDIT_PLAYBACK_ROUNDS {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(super::person::POLL_MS)).await;
                }
                match self
                    .call(Service::Store, Method::GET, &path, Some(&session), None)
                    .await
                {
                    Ok(response) => {
                        answer = Some(response);
                        break;
                    }
                    Err(CallError::Unavailable(e)) => self.trace(format!("audit playback: {e}")),
                    Err(e) => return Err(e),
                }
            }
            let (status, body) = match &answer {
                Some(r) => (Some(r.status()), r.body().as_ref()),
                None => (None, &[][..]),
            };
            let playback = ListedPlayback {
                principal: self.principal,
                id,
                nonce,
                status,
                requested_ms,
                at_ms: sim_now_ms(),
            };
            self.oracle().judge_listed_playback(playback, body);
        }
        Ok(())
    }
}
