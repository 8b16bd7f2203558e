//! Verdicts on the brute force that finally hits: a support ticket opened
//! with someone else's email takes as many wrong codes as the deployment
//! allows (`Plan::ticket_attempts`, learnt with
//! [`Oracle::learn_ticket_attempts`]) and is then rejected for good, so the
//! right code — read out by the victim to a caller posing as support, or
//! entered by the victim themselves — must be refused as well (403), and
//! nothing is verified or exported.
//!
//! Only wrong codes answered 403 are counted as surely counted by the
//! service: a guess whose answer was lost may or may not have been counted
//! (it can only have raised the count), so a ticket is judged locked only
//! when the refusals seen reach the limit. A right code whose answer was a
//! server error or never came is not judged (the workload never reports it).
//!
//! The code reaches only the feed of the account that holds the claimed
//! address: a ticket for an address nobody holds (one letter short of a
//! real one, as a typo or a probing attacker sends it) must send no
//! challenge anywhere, so the identity challenge of a ticket found in the
//! feed of someone whose address is not the one claimed is a violation.

use super::{Invariant, Oracle};
use http::StatusCode;
use std::collections::BTreeMap;

/// The summary's counters (`Controls::probes`) of the lockout probe.
pub const WRONG_CODE: &str = "lockout: a wrong code on a ticket for someone else's email";
pub const RIGHT_CODE_BY_ATTACKER: &str =
    "lockout: the right code read out by its victim on a locked ticket";
pub const RIGHT_CODE_BY_VICTIM: &str =
    "lockout: the victim's own right code on a ticket an attacker locked";
pub const NEAR_MISS: &str = "lockout: no challenge in the nearest holder's feed for a ticket claiming an address nobody holds";
/// Every kind above (the vacuity check expects each where impersonators are).
pub const KINDS: &[&str] = &[
    WRONG_CODE,
    RIGHT_CODE_BY_ATTACKER,
    RIGHT_CODE_BY_VICTIM,
    NEAR_MISS,
];

/// What the oracle knows of the lockout probes: the deployment's limit and,
/// per ticket, the wrong codes the service surely counted.
#[derive(Debug, Default)]
pub(crate) struct LockoutLedger {
    limit: Option<u32>,
    wrong_refused: BTreeMap<u64, u32>,
}

/// The right code of ticket `ticket_id`, sent after the wrong ones, and
/// what it was answered at `at_ms`.
#[derive(Clone, Copy, Debug)]
pub struct RightCode {
    /// The principal who opened the ticket with someone else's email.
    pub attacker: usize,
    /// The principal who held that email and received the code.
    pub victim: usize,
    /// The victim entered the code themselves (else the attacker did).
    pub by_victim: bool,
    pub ticket_id: u64,
    pub status: StatusCode,
    pub at_ms: u64,
}

/// `reader`'s own feed, read at `at_ms`, showed (`found`) or did not show
/// the identity challenge of ticket `ticket_id`, which `opener` opened
/// claiming `claimed_email`.
#[derive(Clone, Copy, Debug)]
pub struct ChallengeRead<'a> {
    pub opener: usize,
    pub reader: usize,
    pub ticket_id: u64,
    pub claimed_email: &'a str,
    pub found: bool,
    pub at_ms: u64,
}

impl Oracle {
    /// Judge where a ticket's challenge went: only the holder of the
    /// claimed address may receive it.
    pub fn on_challenge_feed_read(&mut self, read: ChallengeRead<'_>) {
        let own = self
            .people
            .get(read.reader)
            .is_some_and(|p| p.email.eq_ignore_ascii_case(read.claimed_email.trim()));
        if own {
            return;
        }
        let entry = self.controls.probes.entry(NEAR_MISS).or_default();
        entry.attempted += 1;
        if !read.found {
            entry.refused += 1;
            return;
        }
        let detail = format!(
            "the identity challenge of ticket {}, which {} opened claiming {}, reached the feed of {}, who does not hold that address ({NEAR_MISS})",
            read.ticket_id,
            self.who(read.opener),
            read.claimed_email,
            self.who(read.reader)
        );
        self.violate(
            Invariant::AgentContainment,
            read.at_ms,
            None,
            Some(read.reader),
            detail,
        );
    }

    /// The export service rejects a ticket after `limit` wrong codes.
    pub fn learn_ticket_attempts(&mut self, limit: u32) {
        self.lockout.limit = Some(limit);
    }

    /// `attacker` sent a wrong code on ticket `ticket_id` (opened with
    /// someone else's email) and got `status` at `at_ms`. False when the
    /// answer is outside the contract altogether (neither refused nor
    /// accepted).
    pub fn on_lockout_wrong_code(
        &mut self,
        attacker: usize,
        ticket_id: u64,
        status: StatusCode,
        at_ms: u64,
    ) -> bool {
        if !matches!(status, StatusCode::FORBIDDEN | StatusCode::OK) {
            return false;
        }
        let what =
            format!("sent a wrong code on ticket {ticket_id}, opened with another person's email");
        if self.attempt(
            WRONG_CODE,
            attacker,
            status.as_u16(),
            &[403],
            Invariant::AgentContainment,
            at_ms,
            &what,
        ) {
            *self.lockout.wrong_refused.entry(ticket_id).or_default() += 1;
        }
        true
    }

    /// The right code reached ticket `code.ticket_id` after the wrong ones:
    /// if the wrong codes surely counted reach the limit, only 403 keeps
    /// the contract; a ticket verified now would export the victim's data
    /// on the attacker's request.
    pub fn on_lockout_right_code(&mut self, code: RightCode) {
        let Some(limit) = self.lockout.limit else {
            return;
        };
        let refused = self
            .lockout
            .wrong_refused
            .get(&code.ticket_id)
            .copied()
            .unwrap_or(0);
        if refused < limit {
            return;
        }
        let (kind, sender) = if code.by_victim {
            (RIGHT_CODE_BY_VICTIM, code.victim)
        } else {
            (RIGHT_CODE_BY_ATTACKER, code.attacker)
        };
        let what = format!(
            "sent the right code on ticket {} that {} opened with {}'s email, after {refused} wrong codes had been refused (the limit is {limit}): a rejected ticket must stay rejected",
            code.ticket_id,
            self.who(code.attacker),
            self.who(code.victim),
        );
        self.attempt(
            kind,
            sender,
            code.status.as_u16(),
            &[403],
            Invariant::AgentContainment,
            code.at_ms,
            &what,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    const ATTACKER: usize = 0;
    const VICTIM: usize = 1;

    fn oracle(limit: u32) -> Oracle {
        let emails = vec!["a@example.test".into(), "v@example.test".into()];
        let mut oracle = Oracle::new(WatermarkKey::for_seed(1), emails);
        oracle.learn_ticket_attempts(limit);
        oracle
    }

    fn right(status: StatusCode, by_victim: bool) -> RightCode {
        RightCode {
            attacker: ATTACKER,
            victim: VICTIM,
            by_victim,
            ticket_id: 7,
            status,
            at_ms: 10,
        }
    }

    #[test]
    fn a_locked_ticket_must_refuse_the_right_code() {
        let mut o = oracle(2);
        assert!(o.on_lockout_wrong_code(ATTACKER, 7, StatusCode::FORBIDDEN, 5));
        assert!(o.on_lockout_wrong_code(ATTACKER, 7, StatusCode::FORBIDDEN, 6));
        o.on_lockout_right_code(right(StatusCode::FORBIDDEN, false));
        o.on_lockout_right_code(right(StatusCode::FORBIDDEN, true));
        assert!(o.violations().is_empty());
        assert_eq!(o.controls().probes[RIGHT_CODE_BY_ATTACKER].refused, 1);
        assert_eq!(o.controls().probes[RIGHT_CODE_BY_VICTIM].refused, 1);
        assert_eq!(o.controls().probes[WRONG_CODE].refused, 2);
        o.on_lockout_right_code(right(StatusCode::OK, false));
        assert_eq!(o.violations().len(), 1);
        assert_eq!(o.violations()[0].invariant, Invariant::AgentContainment);
    }

    #[test]
    fn a_ticket_below_the_limit_is_not_judged_locked() {
        let mut o = oracle(3);
        assert!(o.on_lockout_wrong_code(ATTACKER, 7, StatusCode::FORBIDDEN, 5));
        assert!(o.on_lockout_wrong_code(ATTACKER, 7, StatusCode::FORBIDDEN, 6));
        o.on_lockout_right_code(right(StatusCode::OK, false));
        assert!(o.violations().is_empty());
        assert!(!o.on_lockout_wrong_code(ATTACKER, 7, StatusCode::IM_A_TEAPOT, 7));
    }

    #[test]
    fn a_challenge_for_an_address_nobody_holds_must_reach_nobody() {
        let mut o = oracle(3);
        let mut read = ChallengeRead {
            opener: ATTACKER,
            reader: VICTIM,
            ticket_id: 7,
            claimed_email: "v@example.tes",
            found: false,
            at_ms: 9,
        };
        o.on_challenge_feed_read(read);
        assert!(o.violations().is_empty());
        assert_eq!(o.controls().probes[NEAR_MISS].refused, 1);
        read.claimed_email = "V@example.test";
        read.found = true;
        o.on_challenge_feed_read(read);
        assert!(o.violations().is_empty());
        read.claimed_email = "v@example.tes";
        o.on_challenge_feed_read(read);
        assert_eq!(o.violations().len(), 1);
        assert_eq!(o.violations()[0].invariant, Invariant::AgentContainment);
    }

    #[test]
    fn a_wrong_code_accepted_is_a_violation() {
        let mut o = oracle(3);
        assert!(o.on_lockout_wrong_code(ATTACKER, 7, StatusCode::OK, 5));
        assert_eq!(o.violations().len(), 1);
    }
}
