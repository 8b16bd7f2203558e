//! A support ticket across an address handover (Yahoo 2013 recycled
//! identities meet the Alexa DSAR 2018 misdelivery). A person asks for
//! their data through a ticket and reads the code the service sends to
//! their own feed — then, before verifying, closes their account. Someone
//! else signs up with the released address and records on their own new
//! device; only then does the old holder send the code they read. The
//! ticket belongs to the account that held the address when it was opened:
//! nothing of the new holder's may come of it. The new holder never asks
//! for an export, and reads their feed for a while: any link there that
//! downloads is an export of them someone else made (`check/handover.rs`
//! judges it by the watermark). An attacker who watches for released
//! addresses (`attacker`) then also asks for "their" data with a ticket of
//! their own: the archive is judged like every download, so the old
//! holder's recordings must not be in it.
//!
//! The newcomer is a separate identity (their own principal, password,
//! session and devices) driven from the old holder's task, whose account is
//! closed from then on: the order of the steps is the plan's, not a race.
//!
//! "Moving out" is the same handover for a device: a person unplugs a
//! speaker (it keeps capturing into its buffer, a spoken order and "send
//! this to mum" among the captures), sells it still unplugged, and closes
//! the account; the buyer plugs it in and it flushes its buffer under the
//! buyer's hands. A capture belongs to whoever owned the device when it
//! made it: the store must refuse a closed seller's captures (410) and file
//! an open seller's under the seller, and none of them may act for the
//! buyer. The buyer, signed in on their own phone, then looks at
//! everything: history, the playback of every id the device was told,
//! orders, outgoing messages and inbox; the oracle judges each by ground
//! truth (`check/closed.rs`, `check/household.rs`).

use super::CallError;
use super::person::{Device, POLL_MS, Person, parse};
use super::tickets::code_in;
use crate::check::closed::MovedOutFlush;
use crate::check::handover::HandoverVerification;
use crate::net::sim_now_ms;
use crate::plan::{ITEMS, PHRASES, display_name};
use crate::workload::Service;
use crosstalk_model::api::{Intent, SignupResponse};
use http::{Method, StatusCode};
use std::time::Duration;

/// How long after the old holder's verification the new holder keeps
/// reading their feed (simulated ms): long enough for an export to be
/// built past a worker crash.
const FEED_WATCH_MS: u64 = 90_000;
/// How often the new holder reads their feed meanwhile (simulated ms).
const FEED_READ_EVERY_MS: u64 = 15_000;

impl Person {
    /// Open a ticket for one's own address, close the account, let a
    /// newcomer take the address over, then verify with the code.
    pub(super) async fn ticket_across_handover(
        &mut self,
        attacker: bool,
        nonces: [u64; 2],
    ) -> Result<(), CallError> {
        let Some((ticket_id, code)) = self
            .open_ticket_for_own_address("please send me my recordings before I close my account")
            .await?
        else {
            return Ok(());
        };
        let opener = self.principal;
        self.close_account().await?;
        let mut newcomer = self.newcomer();
        newcomer.trace(format!(
            "newcomer p#{} signs up with the released address",
            newcomer.principal
        ));
        newcomer.sign_up().await?;
        for (turn, nonce) in nonces.into_iter().enumerate() {
            let content = nonce.rotate_left(17) ^ 0x6e65_7763_6f6d_6572;
            newcomer
                .speak(
                    turn as u32,
                    nonce,
                    content,
                    turn as u32,
                    None,
                    None,
                    None,
                    None,
                )
                .await?;
        }
        let sent_ms = sim_now_ms();
        match self.send_ticket_code(ticket_id, &code).await {
            Ok(response) => {
                self.oracle()
                    .on_handover_verification(HandoverVerification {
                        opener,
                        new_holder: newcomer.principal,
                        ticket_id,
                        status: response.status(),
                        sent_ms,
                        at_ms: sim_now_ms(),
                    });
            }
            // Its outcome is unknown; the new holder's feed is judged anyway.
            Err(CallError::Unavailable(_)) => {}
            Err(e) => return Err(e),
        }
        newcomer.watch_feed(sent_ms + FEED_WATCH_MS).await?;
        if attacker {
            newcomer.ticket_export().await?;
        }
        Ok(())
    }

    /// Open a ticket claiming one's own address and read its code from
    /// one's own feed (without marking the feed read); `None` when the
    /// challenge did not arrive.
    pub(super) async fn open_ticket_for_own_address(
        &mut self,
        message: &str,
    ) -> Result<Option<(u64, String)>, CallError> {
        let typed = self.typed(&self.email(), &format!("ticket/{}", self.principal));
        let ticket = self.open_ticket(typed, message).await?;
        let seen = self.notification_seq;
        let notes = self.notifications().await;
        self.notification_seq = seen;
        let code = code_in(&notes?, ticket.ticket_id);
        Ok(code.map(|code| (ticket.ticket_id, code)))
    }

    /// A new identity for this person's address: someone else, with their
    /// own principal, password, clients and (after signing up) devices.
    fn newcomer(&self) -> Person {
        let principal = self.oracle().add_principal(self.email());
        let mut newcomer = Person::new(self.world.clone(), self.index);
        newcomer.principal = principal;
        newcomer
    }

    /// Read one's feed every little while until `until_ms` (or the end of
    /// the drain), following every download link in it: one never asked
    /// for an export, so each is judged as one someone else made.
    async fn watch_feed(&mut self, until_ms: u64) -> Result<(), CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let until_ms = until_ms.min(deadline_ms.saturating_sub(POLL_MS));
        loop {
            tokio::time::sleep(Duration::from_millis(FEED_READ_EVERY_MS)).await;
            match self.notifications().await {
                Ok(notes) => self.follow_unasked_links(notes).await?,
                Err(CallError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            if sim_now_ms() + FEED_READ_EVERY_MS > until_ms {
                return Ok(());
            }
        }
    }

    async fn follow_unasked_links(
        &mut self,
        notes: Vec<crosstalk_model::api::Notification>,
    ) -> Result<(), CallError> {
        let links: Vec<(u64, String, String)> = notes
            .into_iter()
            .filter_map(|n| {
                let path = n.text.split("ready: ").nth(1)?.to_string();
                Some((n.seq, n.kind, path))
            })
            .collect();
        self.oracle().on_newcomer_feed_read(links.len());
        let session = self.session.clone();
        for (seq, kind, path) in links {
            let requested_ms = sim_now_ms();
            let response = self
                .call(Service::Export, Method::GET, &path, Some(&session), None)
                .await?;
            let (status, now) = (response.status(), sim_now_ms());
            let mut oracle = self.oracle();
            oracle.on_notified_link(
                self.principal,
                seq,
                &kind,
                status,
                response.body(),
                requested_ms,
                now,
            );
            oracle.on_unasked_download(self.principal, seq, status, response.body(), now);
        }
        Ok(())
    }
}

/// A planned move-out (see [`crate::plan::Action::MoveOut`]).
pub(super) struct MoveOut {
    pub(super) to: usize,
    pub(super) device: u32,
    pub(super) nonces: [u64; 3],
    pub(super) item: u32,
    pub(super) contact: Option<u32>,
    pub(super) buyer_first: bool,
}

impl Person {
    /// "Moving out": unplug a device, let it capture into its buffer (a
    /// spoken order and message among the captures), sell it unplugged,
    /// and close the account; the buyer (a session of their own, driven
    /// from here so that the order of the steps is the plan's) plugs it
    /// in, it flushes its buffer, and the buyer looks at everything. The
    /// device then goes on in the buyer's own hands.
    pub(super) async fn move_out(&mut self, plan: MoveOut) -> Result<(), CallError> {
        let to = plan.to;
        if self.devices.is_empty() || to == self.index || to >= self.world.plan.accounts.len() {
            return Ok(());
        }
        let chosen = plan.device as usize % self.devices.len();
        self.devices[chosen].offline_until_ms = u64::MAX;
        self.trace(format!(
            "unplugs dev-{} to sell it",
            self.devices[chosen].id
        ));
        self.capture_into_box(chosen, &plan).await?;
        let Some(device) = self.sell_device(chosen, to).await? else {
            // No sale (the buyer has no open account): plugged in again.
            self.devices[chosen].offline_until_ms = 0;
            return Ok(());
        };
        let mut buyer = match self.buyer_signed_in(to).await {
            Ok(Some(buyer)) => buyer,
            outcome => {
                // The buyer's own task takes the device in hand later.
                self.world.board.borrow_mut().handoffs.push((to, device));
                outcome?;
                return self.close_account().await;
            }
        };
        buyer.devices.push(device);
        let outcome = self.moving_in(&mut buyer, &plan).await;
        let held: Vec<Device> = buyer.devices.drain(..).collect();
        let mut board = self.world.board.borrow_mut();
        board.handoffs.extend(held.into_iter().map(|d| (to, d)));
        outcome
    }

    /// The seller closes (before or after the buyer plugs the device in,
    /// as planned); the buyer plugs it in and looks.
    async fn moving_in(&mut self, buyer: &mut Person, plan: &MoveOut) -> Result<(), CallError> {
        if !plan.buyer_first {
            self.close_account().await?;
        }
        buyer.plug_in_bought_device(self.closed, plan).await?;
        if plan.buyer_first {
            self.close_account().await?;
        }
        match buyer.look_after_moving_in(&plan.nonces).await {
            Err(CallError::Unavailable(_)) => Ok(()),
            // The buyer closed their account meanwhile (their own task):
            // their password no longer signs in, and nothing is left to see.
            Err(e) => match buyer.login_refused().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(e),
                Err(again) => Err(again),
            },
            Ok(()) => Ok(()),
        }
    }

    /// The unplugged device `chosen` captures the plan's three utterances
    /// into its buffer: a plain one, a spoken order, and (with a contact)
    /// "send this to" them.
    async fn capture_into_box(&mut self, chosen: usize, plan: &MoveOut) -> Result<(), CallError> {
        let device = chosen as u32;
        let content = |nonce: u64| nonce.rotate_left(23) ^ 0x6d6f_7669_6e67_6f75;
        let [plain, order, message] = plan.nonces;
        let words = format!("{} (before moving out)", PHRASES[0]);
        self.capture(device, plain, content(plain), &words, None)
            .await?;
        let item = ITEMS[plan.item as usize % ITEMS.len()];
        let purchase = Intent::Purchase {
            item: item.to_string(),
        };
        let words = format!("alexa, order {item}");
        self.capture(device, order, content(order), &words, Some(purchase))
            .await?;
        let (words, intent) = match plan.contact {
            Some(contact) => {
                let name = display_name(contact as usize);
                let words = format!("alexa, send this to {name}");
                (words, Some(Intent::Message { contact_name: name }))
            }
            None => (PHRASES[1].to_string(), None),
        };
        self.capture(device, message, content(message), &words, intent)
            .await
    }

    /// Person `to`'s current identity, signed in with a session of its own
    /// (the buyer's phone); `None` when they hold no open account.
    async fn buyer_signed_in(&self, to: usize) -> Result<Option<Person>, CallError> {
        let email = self.world.plan.accounts[to].email.clone();
        let principal = self.world.board.borrow().holder_of(&email);
        let Some(principal) = principal else {
            return Ok(None);
        };
        let mut buyer = Person::new(self.world.clone(), to);
        buyer.principal = principal;
        let typed = buyer.typed(&email, &format!("buyer/{principal}"));
        let response = buyer.sign_in_as_typed(&typed).await?;
        if response.status() != StatusCode::CREATED {
            return Ok(None);
        }
        let session: SignupResponse = parse(&response)?;
        buyer.session = session.session_token;
        Ok(Some(buyer))
    }

    /// Plug the bought device in: it flushes the seller's captures under
    /// the buyer's hands; `seller_closed` when the seller's closing was
    /// acknowledged before.
    async fn plug_in_bought_device(
        &mut self,
        seller_closed: bool,
        plan: &MoveOut,
    ) -> Result<(), CallError> {
        let Some(device) = self.devices.last_mut() else {
            return Ok(());
        };
        device.offline_until_ms = 0;
        let aboard: Vec<u64> = device.buffer.iter().map(|p| p.nonce).collect();
        self.trace(format!(
            "plugs in a bought device with {} captures",
            aboard.len()
        ));
        let flushed = self.flush_all_devices().await;
        let still: Vec<u64> = self
            .devices
            .iter()
            .flat_map(|d| d.buffer.iter().map(|p| p.nonce))
            .collect();
        let answered: Vec<u64> = aboard.into_iter().filter(|n| !still.contains(n)).collect();
        let intents = answered
            .iter()
            .filter(|&&n| n == plan.nonces[1] || (n == plan.nonces[2] && plan.contact.is_some()))
            .count() as u64;
        self.oracle().on_moved_out_flush(MovedOutFlush {
            answered: answered.len() as u64,
            intents,
            after_close: seller_closed,
        });
        match flushed {
            Err(CallError::Unavailable(_)) => Ok(()),
            outcome => outcome,
        }
    }

    /// The buyer looks at everything after the flush: the whole history,
    /// the playback of every recording id the device was told, the orders,
    /// the outgoing messages and the inbox.
    async fn look_after_moving_in(&mut self, nonces: &[u64; 3]) -> Result<(), CallError> {
        self.read_history("moving in: the buyer's history").await?;
        let told: Vec<u64> = {
            let oracle = self.oracle();
            nonces
                .iter()
                .filter_map(|&n| oracle.recording_told(n))
                .collect()
        };
        for id in told {
            self.play_told_recording(id).await?;
        }
        self.audit_orders().await?;
        self.list_outgoing_messages().await?;
        self.oracle().on_moving_in_listings_judged();
        self.read_inbox(0).await
    }

    /// Play back recording `id`, which the buyer's device was told when it
    /// uploaded a seller's capture: whatever plays is judged by its
    /// watermark (a refusal shows nothing).
    async fn play_told_recording(&mut self, id: u64) -> Result<(), CallError> {
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let path = format!("/v1/recordings/{id}/audio");
        let response = self
            .call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?;
        if response.status() == StatusCode::OK {
            let now = sim_now_ms();
            self.oracle().on_guessed_audio_delivered(
                self.principal,
                id,
                response.body(),
                requested_ms,
                now,
            );
        }
        Ok(())
    }
}
