//! Verdicts on the curious user's attempts and on the probes of
//! acknowledged claims.
//!
//! The workload reports what it asked and what came back; the oracle alone
//! decides. An attempt with someone else's id, a tampered token or a wrong
//! credential must be answered with exactly the refusal the API gives for
//! a thing that does not exist (or for a missing or wrong credential);
//! whatever bytes a failed refusal delivered are judged separately by the
//! watermark (`Oracle::receive`). A probe of an acknowledged claim counts
//! what was found kept (a confirmed message in its recipient's inbox) or
//! forgotten (a deleted recording absent from a later listing, inbox or
//! archive); a deleted recording found again is already an erasure
//! violation of `receive`.

use super::{Invariant, Oracle};
use std::collections::BTreeSet;

impl Oracle {
    /// `attacker` made an attempt of `kind` (`what` says which) and got
    /// `status`. Only a status in `refusals` is the answer the contract
    /// demands; anything else is a violation of `invariant`. True when refused.
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &mut self,
        kind: &'static str,
        attacker: usize,
        status: u16,
        refusals: &[u16],
        invariant: Invariant,
        at_ms: u64,
        what: &str,
    ) -> bool {
        let entry = self.controls.probes.entry(kind).or_default();
        entry.attempted += 1;
        if refusals.contains(&status) {
            entry.refused += 1;
            return true;
        }
        let detail = format!(
            "{} {what}: answered {status} where only {refusals:?} refuses it without revealing anything ({kind})",
            self.who(attacker)
        );
        self.violate(invariant, at_ms, None, Some(attacker), detail);
        false
    }

    /// A probe of `kind` found an acknowledged claim honoured.
    pub fn claim_kept(&mut self, kind: &'static str) {
        let entry = self.controls.probes.entry(kind).or_default();
        entry.attempted += 1;
        entry.refused += 1;
    }

    /// The store acknowledged confirming the message carrying `nonce` to
    /// `recipient` at `at_ms`: from then on it must be in their inbox until
    /// its sender deletes the recording.
    pub fn message_confirmed(&mut self, nonce: u64, recipient: usize, at_ms: u64) {
        self.confirmed_messages
            .entry((nonce, recipient))
            .or_insert(at_ms);
    }

    /// `receiver` listed their inbox (asked at `requested_ms`) and found
    /// `listed`: every message confirmed to them before must be there unless
    /// its recording's deletion was sent; every sent recording deleted
    /// before must be gone (its presence is an erasure `receive` reports).
    pub fn inbox_listed(
        &mut self,
        receiver: usize,
        listed: &BTreeSet<u64>,
        requested_ms: u64,
        at_ms: u64,
    ) {
        let due: Vec<u64> = self
            .confirmed_messages
            .iter()
            .filter(|((_, to), confirmed)| *to == receiver && **confirmed < requested_ms)
            .map(|((nonce, _), _)| *nonce)
            .collect();
        for nonce in due {
            let Some(u) = self.utterances.get(&nonce).cloned() else {
                continue;
            };
            if u.deletion_started_ms.is_some() {
                continue;
            }
            if listed.contains(&nonce) {
                self.controls.messages_verified_delivered += 1;
                continue;
            }
            let detail = format!(
                "{}; its message to {} was confirmed, yet it is missing from their inbox listed at {requested_ms} ms",
                self.provenance(nonce, &u),
                self.who(receiver)
            );
            self.violate(
                Invariant::Durability,
                at_ms,
                Some(nonce),
                Some(receiver),
                detail,
            );
        }
        let forgotten: Vec<u64> = self
            .sent_to(receiver)
            .filter(|(_, u)| u.deletion_acked_ms.is_some_and(|at| at < requested_ms))
            .map(|(n, _)| *n)
            .collect();
        self.count_forgotten("after deletion: recipient's inbox", &forgotten, listed);
    }

    /// `owner` listed `listed` through `path` (asked at `requested_ms`):
    /// count their recordings deleted before that as probes of erasure.
    pub fn owner_listed(
        &mut self,
        path: &'static str,
        owner: usize,
        listed: &BTreeSet<u64>,
        requested_ms: u64,
    ) {
        let deleted: Vec<u64> = self
            .owned_by(owner)
            .filter(|(_, u)| u.deletion_acked_ms.is_some_and(|at| at < requested_ms))
            .map(|(n, _)| *n)
            .collect();
        self.count_forgotten(path, &deleted, listed);
    }

    fn count_forgotten(&mut self, path: &'static str, deleted: &[u64], listed: &BTreeSet<u64>) {
        if deleted.is_empty() {
            return;
        }
        let entry = self.controls.probes.entry(path).or_default();
        for nonce in deleted {
            entry.attempted += 1;
            if !listed.contains(nonce) {
                entry.refused += 1;
            }
        }
    }
}

impl Oracle {
    /// Whether a deletion covering `nonce` was sent (acknowledged or not).
    pub fn deletion_sent(&self, nonce: u64) -> bool {
        self.utterances
            .get(&nonce)
            .is_some_and(|u| u.deletion_started_ms.is_some())
    }
}

/// Kinds of attempt every scenario with the curious user must exercise
/// (over enough seeds); a scenario that enables it and never made one of
/// these attempts, or never saw it refused, proves nothing.
/// The attempt kinds every scenario with the curious user must see refused
/// (vacuity; `sim/src/vacuity.rs` reads them as `refused: <kind>`).
pub const CORE_ATTEMPTS: &[&str] = &[
    "foreign recording: playback",
    "foreign recording: delete",
    "foreign recording: message",
    "foreign range deletion",
    "foreign device: reset",
    "foreign device: transfer",
    "undocumented parameter",
    "sign-in as a neighbour",
    "service API with a wrong token",
    "worker API with a wrong token",
    "agent console with a wrong token",
];

impl super::Controls {
    /// The curious user's attempts and the probes, one line for the summary.
    pub fn probe_summary(&self) -> String {
        let kinds: Vec<String> = self
            .probes
            .iter()
            .map(|(kind, a)| format!("{kind} {}/{}", a.refused, a.attempted))
            .collect();
        format!(
            "curious user and probes (refused or kept / attempted): {}; confirmed messages found in their recipient's inbox {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            },
            self.messages_verified_delivered
        )
    }

    /// Core kinds of attempt (and, with exports, the tampered link) that
    /// were never refused.
    pub fn vacuous_probes(&self, with_exports: bool) -> Vec<&'static str> {
        let refused = |kind: &str| self.probes.get(kind).is_some_and(|a| a.refused > 0);
        let mut missing: Vec<&'static str> = CORE_ATTEMPTS
            .iter()
            .copied()
            .filter(|k| !refused(k))
            .collect();
        if with_exports && !refused("tampered link token") {
            missing.push("tampered link token");
        }
        missing
    }
}

impl Oracle {
    /// When the store acknowledged the upload of `nonce`, if it did.
    pub fn acked_at(&self, nonce: u64) -> Option<u64> {
        self.utterances.get(&nonce).and_then(|u| u.acked_ms)
    }
}
