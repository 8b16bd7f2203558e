//! Acknowledged state survives a power loss (durability, invariant 7,
//! beyond recordings; identity epochs, invariant 5, for devices).
//!
//! When the store acknowledged closing an account, or replacing a device's
//! token (a sale or a factory reset), the change is owed to its holder from
//! then on, across any crash: a closed account's session stays refused, a
//! sold device's old token uploads nothing more (or the buyer's captures
//! land in the seller's history, and the seller's in the buyer's). The
//! workload probes each such change once after the store lost power and
//! came back (`workload/durable.rs`); any answer but 401 is a change the
//! store acknowledged before it was durable and lost. A 5xx or no answer
//! is unknown and never reaches here. The probes (attempted, refused) and
//! the crashes that struck right after an acknowledgement
//! (`faults/ack_crash.rs`) are the positive controls.

use super::{Invariant, Oracle};
use crate::faults::ack_crash::RareWrite;

/// What a person was acknowledged and probes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckedWhat {
    /// Their account is closed: its session must be refused.
    Closed,
    /// A device's token was replaced by this kind of write (a transfer or
    /// a reset): the old token must be refused.
    TokenReplaced(RareWrite),
}

impl AckedWhat {
    /// The summary's counter (`Controls::probes`) of this probe.
    pub fn kind(self) -> &'static str {
        match self {
            AckedWhat::Closed => CLOSED_SESSION,
            AckedWhat::TokenReplaced(_) => REPLACED_TOKEN,
        }
    }
}

/// The summary's counters of the probes after a power loss.
pub const CLOSED_SESSION: &str =
    "after a power loss: the session of an account whose closing was acknowledged";
pub const REPLACED_TOKEN: &str =
    "after a power loss: a device token whose replacement (sale or reset) was acknowledged";

/// One probe's answer: `status` at `at_ms` for `principal`'s change, which
/// was acknowledged at `acked_ms`; the store lost power at `lost_ms`.
#[derive(Clone, Copy, Debug)]
pub struct AckedProbe {
    pub principal: usize,
    pub what: AckedWhat,
    pub status: u16,
    pub acked_ms: u64,
    pub lost_ms: u64,
    pub at_ms: u64,
}

/// The final audit's playback of a recording its listing showed: `status`
/// (`None`: no answer on any round, or a server error on every one).
#[derive(Clone, Copy, Debug)]
pub struct ListedPlayback {
    pub principal: usize,
    pub id: u64,
    pub nonce: u64,
    pub status: Option<http::StatusCode>,
    pub requested_ms: u64,
    pub at_ms: u64,
}

impl Oracle {
    /// The final audit listed `playback.nonce` among `principal`'s own
    /// recordings and played it back after every fault healed: the audio
    /// must come back, and be that recording's (a listing entry whose
    /// playback fails for good is a recording lost). `body` is the answer.
    pub fn judge_listed_playback(&mut self, playback: ListedPlayback, body: &[u8]) {
        let ListedPlayback {
            principal,
            id,
            nonce,
            status,
            requested_ms,
            at_ms,
        } = playback;
        if status == Some(http::StatusCode::OK) {
            self.controls.listed_recordings_played_back += 1;
            self.on_own_audio(
                principal,
                id,
                nonce,
                http::StatusCode::OK,
                body,
                requested_ms,
                at_ms,
            );
            return;
        }
        let Some(u) = self.utterances.get(&nonce).cloned() else {
            return;
        };
        if u.owner != principal || u.deletion_started_ms.is_some() {
            return;
        }
        let answered = status.map_or_else(
            || "a server error or nothing on every attempt".to_string(),
            |s| format!("{s}"),
        );
        let detail = format!(
            "{}; listed by the final audit as rec-{id}, but its playback answered {answered} after every fault healed: a listing entry without its audio is a recording lost",
            self.provenance(nonce, &u)
        );
        self.violate(
            Invariant::Durability,
            at_ms,
            Some(nonce),
            Some(principal),
            detail,
        );
    }

    /// The store's disk failed a sync and then lost power (fsyncgate):
    /// whatever it acknowledged after the failed sync is owed all the same.
    pub fn on_power_loss_after_failed_sync(&mut self) {
        self.controls.store_power_losses_after_failed_sync += 1;
    }

    /// The store lost power right after acknowledging a rare write.
    pub fn on_crash_after_ack(&mut self) {
        self.controls.store_crashes_after_ack += 1;
    }

    /// Judge an acknowledged change probed after a power loss.
    pub fn judge_acked_after_power_loss(&mut self, probe: AckedProbe) {
        self.controls.acked_states_probed_after_power_loss += 1;
        let entry = self.controls.probes.entry(probe.what.kind()).or_default();
        entry.attempted += 1;
        if probe.status == 401 {
            entry.refused += 1;
            return;
        }
        let what = match probe.what {
            AckedWhat::Closed => "the session of the account whose closing".to_string(),
            AckedWhat::TokenReplaced(write) => {
                format!("the device token whose replacement by a {}", write.name())
            }
        };
        let detail = format!(
            "{}: {what} the store acknowledged at {} ms was answered {} at {} ms, after the store lost power at {} ms: an acknowledged change lost in a crash (only 401 keeps it)",
            self.who(probe.principal),
            probe.acked_ms,
            probe.status,
            probe.at_ms,
            probe.lost_ms,
        );
        // (A replaced token working again also files either holder's
        // captures under the other: an identity epoch undone. The cause is
        // the lost acknowledgement, so it is judged as durability.)
        self.violate(
            Invariant::Durability,
            probe.at_ms,
            None,
            Some(probe.principal),
            detail,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn probe(what: AckedWhat, status: u16) -> AckedProbe {
        AckedProbe {
            principal: 0,
            what,
            status,
            acked_ms: 100,
            lost_ms: 101,
            at_ms: 5_000,
        }
    }

    #[test]
    fn a_refused_credential_is_kept_and_an_accepted_one_is_lost() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.judge_acked_after_power_loss(probe(AckedWhat::Closed, 401));
        let replaced = AckedWhat::TokenReplaced(RareWrite::Transfer);
        o.judge_acked_after_power_loss(probe(replaced, 401));
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.acked_states_probed_after_power_loss, 2);
        assert_eq!(o.controls.probes[CLOSED_SESSION].refused, 1);
        o.judge_acked_after_power_loss(probe(AckedWhat::Closed, 200));
        o.judge_acked_after_power_loss(probe(replaced, 201));
        assert_eq!(o.violations.len(), 2);
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::Durability)
        );
    }
}
