//! The always-on speaker: a device that uploads on its own.
//!
//! A person's planned devices capture only inside the person's own actions,
//! so nothing of theirs reaches the store while they wait for something (an
//! export being built, say). Real speakers do not wait for their owner: the
//! household keeps talking and the speaker keeps uploading. An account the
//! plan gives ambient captures (`plan/chatter.rs`) registers one more
//! device at sign-up, and a task of its own captures and uploads on the
//! plan's schedule, with the person's upload path (`Person::capture`) and
//! its own connections, concurrently with everything the person does. The
//! speaker follows the account: it stops capturing when the account is
//! closed, and a sign-up again registers a new one for the new identity.
//! After the active period it uploads what it still holds, and the person's
//! final audit waits for it.

use super::person::{Device, POLL_MS, Person, sleep_until, to_json};
use super::{CallError, World};
use crate::check::Event;
use crate::net::sim_now_ms;
use crate::plan::PHRASES;
use crate::workload::Service;
use crosstalk_model::api::{RegisterDeviceRequest, RegisterDeviceResponse};
use http::{Method, StatusCode};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

/// What a person and their always-on speaker's task share.
#[derive(Default)]
struct Shared {
    /// The principal holding the account the speaker serves now.
    principal: Cell<usize>,
    /// The account is closed (the speaker captures nothing more).
    closed: Cell<bool>,
    /// A speaker registered at a sign-up, for the task to take in hand.
    fresh: RefCell<Option<Device>>,
}

/// A person's end of their always-on speaker.
pub(crate) struct AlwaysOnLink {
    shared: Rc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Person {
    /// Register a device called `name` with one's own session; the world's
    /// board records who registered it.
    pub(super) async fn register_device(
        &mut self,
        name: &str,
    ) -> Result<RegisterDeviceResponse, CallError> {
        let body = to_json(&RegisterDeviceRequest {
            name: name.to_string(),
        })?;
        let session = self.session.clone();
        let registered: RegisterDeviceResponse = self
            .expect_json(
                Service::Store,
                Method::POST,
                "/v1/devices",
                Some(&session),
                Some(body),
                &[StatusCode::CREATED],
            )
            .await?;
        self.world
            .board
            .borrow_mut()
            .devices
            .insert(registered.device_id.0, self.principal);
        Ok(registered)
    }

    /// Register the account's always-on speaker, if the plan gives it one,
    /// and hand it to the speaker's task (started at the first sign-up).
    pub(super) async fn register_always_on(&mut self) -> Result<(), CallError> {
        // The plan's person only: a newcomer who took over the address
        // (`handover.rs`, another principal for the same plan index) has no
        // speaker of this schedule. A later sign-up of the same person
        // reuses the speaker's task.
        let newcomer = self.always_on.is_none() && self.principal != self.index;
        if self.world.plan.accounts[self.index].ambient.is_empty() || newcomer {
            return Ok(());
        }
        let registered = self.register_device("always-on speaker").await?;
        let device = Device {
            id: registered.device_id.0,
            token: registered.device_token,
            epoch: registered.ownership_epoch,
            buffer: VecDeque::new(),
            offline_until_ms: 0,
            clock_skew_ms: 0,
            next_upload_key: 1,
            last_upload: None,
            legacy_firmware: false,
        };
        let link = self.always_on.get_or_insert_with(|| {
            let shared = Rc::new(Shared::default());
            let task =
                tokio::task::spawn_local(speaker(self.world.clone(), self.index, shared.clone()));
            AlwaysOnLink {
                shared,
                task: Some(task),
            }
        });
        link.shared.principal.set(self.principal);
        link.shared.closed.set(false);
        *link.shared.fresh.borrow_mut() = Some(device);
        Ok(())
    }

    /// The account's closing was acknowledged: its speaker stops capturing.
    pub(super) fn always_on_account_closed(&self) {
        if let Some(link) = &self.always_on {
            link.shared.closed.set(true);
        }
    }

    /// Wait until the speaker's task has uploaded what it holds (or met the
    /// deadline).
    pub(super) async fn await_always_on(&mut self) {
        let Some(task) = self.always_on.as_mut().and_then(|l| l.task.take()) else {
            return;
        };
        if let Err(e) = task.await {
            self.world
                .errors
                .borrow_mut()
                .push(format!("p{} always-on speaker: {e}", self.index));
        }
    }

    /// Take in hand a speaker registered since, for the account's holder now.
    fn take_fresh_speaker(&mut self, shared: &Shared) {
        if let Some(device) = shared.fresh.borrow_mut().take() {
            self.devices.push(device);
        }
        self.principal = shared.principal.get();
    }
}

/// The speaker's task for person `index`: capture on the plan's schedule,
/// then upload what is left once the faults healed.
async fn speaker(world: Rc<World>, index: usize, shared: Rc<Shared>) {
    let mut speaker = Person::new(world.clone(), index);
    let schedule = world.plan.accounts[index].ambient.clone();
    for capture in &schedule {
        sleep_until(capture.at_ms).await;
        speaker.take_fresh_speaker(&shared);
        // Only the newest speaker (the account's holder's now) is in use.
        if shared.closed.get() || speaker.devices.is_empty() {
            continue;
        }
        let device = (speaker.devices.len() - 1) as u32;
        let words = format!(
            "{} (to the always-on speaker)",
            PHRASES[capture.phrase as usize % PHRASES.len()]
        );
        speaker.oracle().on(Event::AmbientCapture);
        let outcome = speaker
            .capture(device, capture.nonce, capture.content, &words, None)
            .await;
        if !speaker.step_ended("always-on capture", outcome) {
            return;
        }
    }
    sleep_until(world.plan.active_ms).await;
    speaker.take_fresh_speaker(&shared);
    let outcome = speaker.upload_what_is_left().await;
    speaker.step_ended("always-on final upload", outcome);
}

impl Person {
    /// Report the outcome of one of the speaker's steps; false: stop.
    fn step_ended(&self, step: &str, outcome: Result<(), CallError>) -> bool {
        let principal = self.principal;
        let outcome = outcome.map_err(CallError::observed);
        self.oracle()
            .on_action_ended(principal, step, outcome, sim_now_ms())
    }

    /// Upload every buffered capture, trying again every `POLL_MS` until the
    /// deadline; what is still held then is stuck (a liveness failure).
    async fn upload_what_is_left(&mut self) -> Result<(), CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        loop {
            self.flush_all_devices().await?;
            let buffered = self.buffered_uploads();
            if buffered == 0 {
                return Ok(());
            }
            if sim_now_ms() + POLL_MS > deadline_ms {
                self.oracle()
                    .on_uploads_stuck_at_deadline(self.principal, buffered, sim_now_ms());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}
