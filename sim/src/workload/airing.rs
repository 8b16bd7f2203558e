//! Broadcasts air on their own time, whatever their household is doing.
//!
//! A person's planned actions run one after another, so a person who waits
//! for something long (a poisoned export, its retry once the fault healed)
//! would hear a broadcast only when the wait ends, minutes after it aired:
//! their device would capture and upload it late, outside both windows the
//! store's media detection has (capture time, receive time), and a correct
//! store would rightly act on it alone. A television does not wait for its
//! household. So every long wait of a person passes time through
//! [`Person::pass_time_until`], which hears each of the person's broadcasts
//! at its airing time, with the same capture path as the planned action;
//! the planned action then finds it heard and does nothing. Only the plan's
//! own person hears them, and only those airing from the start of the
//! action under way (earlier ones the plan's order already reached); a
//! newcomer who took the address over, or a speaker's task, hears none.

use super::CallError;
use super::person::{Person, SpokenMessage, sleep_until};
use crate::check::Event;
use crate::net::sim_now_ms;
use crate::plan::{Action, ITEMS, display_name};
use crosstalk_model::api::Intent;

/// One broadcast as a household's device hears it.
#[derive(Clone, Copy)]
pub(super) struct Airing {
    pub(super) broadcast: u32,
    pub(super) device: u32,
    pub(super) nonce: u64,
    pub(super) content: u64,
    pub(super) item: u32,
    pub(super) message_to: Option<u32>,
    /// The capture's length (`None`: the short default).
    pub(super) audio_bytes: Option<u32>,
}

impl Airing {
    /// The airing a planned action stands for, if it is one.
    pub(super) fn of(action: &Action) -> Option<Airing> {
        match *action {
            Action::HearBroadcast {
                broadcast,
                device,
                nonce,
                content,
                item,
                message_to,
                audio_bytes,
            } => Some(Airing {
                broadcast,
                device,
                nonce,
                content,
                item,
                message_to,
                audio_bytes,
            }),
            _ => None,
        }
    }
}

impl Person {
    /// A device of the person's captures the broadcast `airing` (once: an
    /// airing already heard during a wait is not heard again).
    pub(super) async fn hear_broadcast(&mut self, airing: Airing) -> Result<(), CallError> {
        if !self.broadcasts_heard.insert(airing.nonce) {
            return Ok(());
        }
        self.oracle()
            .utterance_started(airing.nonce, self.principal, airing.device, sim_now_ms());
        self.oracle().mark_broadcast(airing.nonce);
        let broadcast = airing.broadcast;
        let (words, intent) = match airing.message_to {
            Some(named) => {
                let name = display_name(named as usize);
                if !self.devices.is_empty() {
                    self.spoken_messages.push(SpokenMessage {
                        nonce: airing.nonce,
                        intended: None,
                        spoken_at_ms: sim_now_ms(),
                    });
                }
                (
                    format!("alexa, send a message to {name} (broadcast {broadcast})"),
                    Intent::Message { contact_name: name },
                )
            }
            None => {
                let item = ITEMS[airing.item as usize % ITEMS.len()];
                (
                    format!("alexa, order me a {item} (broadcast {broadcast})"),
                    Intent::Purchase {
                        item: item.to_string(),
                    },
                )
            }
        };
        let (device, nonce, content) = (airing.device, airing.nonce, airing.content);
        self.capture_of_length(
            device,
            nonce,
            content,
            &words,
            Some(intent),
            airing.audio_bytes,
        )
        .await
    }

    /// Wait until `at_ms`, hearing on the way, each at its airing time,
    /// every broadcast of the person's plan that airs meanwhile.
    pub(super) async fn pass_time_until(&mut self, at_ms: u64) -> Result<(), CallError> {
        loop {
            self.hear_broadcasts_aired().await?;
            match self.next_airing_ms().filter(|&airs| airs < at_ms) {
                Some(airs) => sleep_until(airs).await,
                None => {
                    sleep_until(at_ms).await;
                    return self.hear_broadcasts_aired().await;
                }
            }
        }
    }

    /// The broadcasts of the plan that aired by now and were not heard yet.
    async fn hear_broadcasts_aired(&mut self) -> Result<(), CallError> {
        if self.closed {
            return Ok(());
        }
        let now = sim_now_ms();
        let aired: Vec<Airing> = self.world.plan.accounts[self.index]
            .actions
            .iter()
            .take_while(|timed| timed.at_ms <= now)
            .filter(|timed| timed.at_ms >= self.airings_from_ms)
            .filter_map(|timed| Airing::of(&timed.action))
            .filter(|airing| !self.broadcasts_heard.contains(&airing.nonce))
            .collect();
        for airing in aired {
            self.pick_up_devices();
            self.oracle().on(Event::BroadcastHeardDuringWait);
            self.hear_broadcast(airing).await?;
        }
        Ok(())
    }

    /// When the next broadcast the person has not heard airs.
    fn next_airing_ms(&self) -> Option<u64> {
        self.world.plan.accounts[self.index]
            .actions
            .iter()
            .filter(|timed| timed.at_ms >= self.airings_from_ms)
            .filter(|timed| {
                Airing::of(&timed.action)
                    .is_some_and(|airing| !self.broadcasts_heard.contains(&airing.nonce))
            })
            .map(|timed| timed.at_ms)
            .min()
    }
}
