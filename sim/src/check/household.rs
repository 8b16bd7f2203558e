//! Verdicts on what a household's voice commands became: the messages a
//! device captured ("send this to Ann"), and the orders on the account.
//!
//! The store's word on a message's state or an order's source is checked
//! against what the simulator knows: whose capture it was, whether it was
//! broadcast audio, and whether its sender confirmed it.

use super::unanswered::OrderSource;
use super::{Invariant, Oracle, SpokenNext};
use crosstalk_model::api::{MessageState, MessageView, OrderState, OrderView};

/// How long past its hold a spoken command may stay held on a store that
/// never restarted (its sweeper runs every second).
const HELD_SLACK_MS: u64 = 10_000;

/// One message command as its sender saw it listed once its hold ended.
#[derive(Clone, Copy, Debug)]
pub struct SpokenListing<'a> {
    pub sender: usize,
    pub nonce: u64,
    pub message_id: u64,
    pub state: MessageState,
    /// The address the store resolved the spoken name to.
    pub resolved_email: &'a str,
    /// The address of the person meant; `None` for broadcast audio.
    pub intended_email: Option<&'a str>,
    /// The store never restarted (no crash, no disk error) in this run.
    pub store_steady: bool,
}

impl Oracle {
    /// The store holds a spoken command `hold_ms` before it acts on it (as
    /// the run configures it).
    pub fn learn_hold(&mut self, hold_ms: u64) {
        self.hold_ms = hold_ms;
    }

    /// The sender saw `listing` at `now`: judge the store's word on it and
    /// say what the sender does next.
    pub fn on_spoken_message_listed(&mut self, listing: SpokenListing<'_>, now: u64) -> SpokenNext {
        if listing.state != MessageState::Held {
            self.claim_kept("held command decided within its hold");
        } else if self.held_past_its_hold(&listing, now) {
            return SpokenNext::Drop; // Reported once; not looked at again.
        }
        match (listing.state, listing.intended_email) {
            (MessageState::Held, _) => SpokenNext::Hold,
            (MessageState::Pending, Some(intended)) => {
                if listing.resolved_email.eq_ignore_ascii_case(intended) {
                    SpokenNext::ConfirmIntended
                } else {
                    self.controls.messages_refused_by_sender += 1;
                    SpokenNext::Drop
                }
            }
            (MessageState::Pending, None) => SpokenNext::ConfirmBroadcast,
            (MessageState::Delivered, None) => {
                self.on_broadcast_confirmed(&listing, true, now);
                SpokenNext::Drop
            }
            (MessageState::SuppressedMediaEvent, None) => {
                self.controls.broadcast_messages_suppressed += 1;
                SpokenNext::Suppressed
            }
            (MessageState::Delivered, Some(_)) => {
                // The store's word that it delivered is checked against
                // what the sender did: this command was never confirmed.
                let detail = format!(
                    "message {} spoken by {} was delivered to {} without its sender's confirmation",
                    listing.message_id,
                    self.who(listing.sender),
                    listing.resolved_email
                );
                let (nonce, sender) = (Some(listing.nonce), Some(listing.sender));
                self.violate(Invariant::RequestIntegrity, now, nonce, sender, detail);
                SpokenNext::Drop
            }
            _ => SpokenNext::Drop,
        }
    }

    /// The harness confirmed (for the television) a message from broadcast
    /// audio; `sent` when the store delivered it, which it never may.
    pub fn on_broadcast_confirmed(&mut self, listing: &SpokenListing<'_>, sent: bool, now: u64) {
        if !sent {
            return;
        }
        let detail = format!(
            "message {} to {} was sent from broadcast audio heard by {}",
            listing.message_id,
            listing.resolved_email,
            self.who(listing.sender)
        );
        let (nonce, sender) = (Some(listing.nonce), Some(listing.sender));
        self.violate(Invariant::BroadcastActed, now, nonce, sender, detail);
    }

    /// A spoken command still held well after its hold ended, on a store
    /// that never restarted (its sweeper ran all along), is a liveness
    /// violation. True when reported.
    fn held_past_its_hold(&mut self, listing: &SpokenListing<'_>, now: u64) -> bool {
        let acked = self.acked_at(listing.nonce);
        let steady = listing.store_steady;
        let hold_ms = self.hold_ms;
        let Some(acked) = acked.filter(|at| steady && now > at + hold_ms + HELD_SLACK_MS) else {
            return false;
        };
        let detail = format!(
            "message {} (a spoken command acknowledged at {acked} ms) is still held at {now} ms, past its {hold_ms} ms hold",
            listing.message_id
        );
        let (nonce, sender) = (Some(listing.nonce), Some(listing.sender));
        self.violate(Invariant::Liveness, now, nonce, sender, detail);
        true
    }

    /// `principal` listed their orders at `now`: every one must come from
    /// their own capture, and none from broadcast audio may be placed.
    pub fn on_orders_listed(&mut self, principal: usize, orders: &[OrderView], now: u64) {
        for order in orders {
            let nonce = match self.order_source(principal, order.source_recording.0) {
                OrderSource::Capture(nonce) => nonce,
                OrderSource::MaybeUnanswered => continue,
                OrderSource::Nobody => {
                    self.order_from_nobody(principal, order, now);
                    continue;
                }
            };
            if self.owner_of(nonce) != Some(principal) {
                let detail = format!(
                    "order {} ({}) of {} comes from another household's capture",
                    order.order_id,
                    order.item,
                    self.who(principal)
                );
                self.violate(
                    Invariant::Isolation,
                    now,
                    Some(nonce),
                    Some(principal),
                    detail,
                );
                continue;
            }
            self.judge_order_state(principal, order, nonce, now);
        }
    }

    /// `principal` listed their outgoing messages at `now`: each carries a
    /// recording, and a message (spoken or sent from the app) acts for the
    /// account it is listed to, so its recording must be that account's
    /// own capture by ground truth (whose device captured it, in which
    /// ownership epoch). A recording whose upload's answer was lost is not
    /// judged (the simulator does not know its id).
    pub fn on_messages_listed(&mut self, principal: usize, messages: &[MessageView], now: u64) {
        for message in messages {
            let Some(nonce) = self.nonce_of_recording(message.recording_id.0) else {
                continue;
            };
            self.controls.outgoing_messages_judged += 1;
            if self.owner_of(nonce) == Some(principal) {
                continue;
            }
            let detail = format!(
                "message {} ({}, to {}) listed as sent by {} carries rec-{}, another household's capture",
                message.message_id,
                if message.spoken {
                    "spoken"
                } else {
                    "from the app"
                },
                message.resolved_contact.email,
                self.who(principal),
                message.recording_id.0
            );
            self.violate(
                Invariant::Isolation,
                now,
                Some(nonce),
                Some(principal),
                detail,
            );
        }
    }

    /// An order whose source recording no capture can be behind.
    fn order_from_nobody(&mut self, principal: usize, order: &OrderView, now: u64) {
        let detail = format!(
            "order {} comes from rec-{}, which nobody uploaded",
            order.order_id, order.source_recording.0
        );
        self.violate(
            Invariant::RequestIntegrity,
            now,
            None,
            Some(principal),
            detail,
        );
    }

    /// Whether the deletion of `nonce`'s recording was acknowledged (so
    /// committed) before the store can have ended its command's hold: the
    /// hold runs `hold_ms` from the store's receipt, which is no earlier
    /// than the capture (one second of margin).
    fn deleted_during_hold(&self, nonce: u64) -> bool {
        self.utterances.get(&nonce).is_some_and(|u| {
            u.deletion_acked_ms.is_some_and(|deleted| {
                deleted.saturating_add(1_000) < u.upload_started_ms.saturating_add(self.hold_ms)
            })
        })
    }

    fn judge_order_state(&mut self, principal: usize, order: &OrderView, nonce: u64, now: u64) {
        match (order.state, self.is_broadcast(nonce)) {
            (OrderState::Placed, true) => {
                let detail = format!(
                    "order {} for {} was placed from broadcast audio heard by {}",
                    order.order_id,
                    order.item,
                    self.who(principal)
                );
                self.violate(
                    Invariant::BroadcastActed,
                    now,
                    Some(nonce),
                    Some(principal),
                    detail,
                );
            }
            (OrderState::Placed, false) if self.deleted_during_hold(nonce) => {
                let detail = format!(
                    "order {} for {} of {} was placed although its recording's deletion was acknowledged during the order's hold",
                    order.order_id,
                    order.item,
                    self.who(principal)
                );
                self.violate(
                    Invariant::Erasure,
                    now,
                    Some(nonce),
                    Some(principal),
                    detail,
                );
            }
            (OrderState::Placed, false) => self.controls.genuine_orders_placed += 1,
            (OrderState::Cancelled, false) if self.deleted_during_hold(nonce) => {
                self.controls.orders_cancelled_by_deletion += 1
            }
            (OrderState::SuppressedMediaEvent, true) => {
                self.controls.broadcast_orders_suppressed += 1
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;
    use crosstalk_model::RecordingId;
    use crosstalk_model::api::Contact;

    fn message(message_id: u64, recording: u64) -> MessageView {
        MessageView {
            message_id,
            state: MessageState::Held,
            recording_id: RecordingId(recording),
            resolved_contact: Contact {
                name: "Ann".into(),
                email: "ann@x.test".into(),
            },
            spoken: true,
        }
    }

    #[test]
    fn an_outgoing_message_must_carry_its_senders_own_capture() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into(), "b@x".into()]);
        // A's capture 1 (rec-10), made before A sold the device to B.
        o.utterance_started(1, 0, 7, 1);
        o.utterance_acked(1, 10, 5);
        o.on_messages_listed(0, &[message(1, 10)], 6);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        // Listed as B's: A's capture acts for B.
        o.on_messages_listed(1, &[message(2, 10)], 7);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Isolation);
        // A recording the simulator was never told of is not judged.
        o.on_messages_listed(1, &[message(3, 99)], 8);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.controls.outgoing_messages_judged, 2);
    }
}
