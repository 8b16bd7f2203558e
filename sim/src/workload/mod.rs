//! The workload: people and their devices, each a task on a client host.
//!
//! A person signs up, registers devices, adds contacts, then performs the
//! planned actions at their planned simulated times: speaking (a device
//! uploads a watermarked capture, sometimes a spoken purchase), hearing a
//! broadcast, listing history, playing back audio, deleting, requesting and
//! downloading a DSAR export, selling or resetting a device, sending voice
//! messages and reading the inbox, closing the account and coming back —
//! and, as the adversary every person might be, trying links and recording
//! ids that belong to someone else. Every action knows what it expects;
//! everything received goes to the oracle.
//!
//! - `person.rs`: a person's HTTP calls, devices and uploads, history, audit.
//! - `actions.rs`: everything else a person does.
//! - `adversary.rs`: the curious user; `limits.rs`: people who try past
//!   the export contract's limits.
//! - `delete_all.rs`: "delete all my history", and looking again.
//! - `devices.rs`: the always-on speaker that uploads on its own, whatever
//!   its account holder is doing (waiting for an export, say).
//! - `quirks.rs`: unusual but legitimate requests (a sign-up sent twice, a
//!   confirmation during a hold) that reach the services' refusals.

mod actions;
mod adversary;
mod agent;
mod airing;
mod contacts;
mod delete_all;
mod devices;
mod durable;
mod exports;
mod handover;
mod limits;
mod lockout;
mod person;
mod quirks;
mod recycled;
mod tickets;

use crate::check::contract::FaultLog;
use crate::check::{Oracle, StepFailure};
use crate::plan::Plan;
use crate::trace::Trace;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Which service a simulated client sends a request to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The recording store (accounts, devices, recordings, messages).
    Store,
    /// The export service (DSAR exports, downloads, tickets, the workers' and agents' APIs).
    Export,
}

pub use agent::agent;
pub use person::person;

/// A download link someone obtained, as it would travel by email.
#[derive(Clone, Debug)]
pub struct PublishedLink {
    pub owner: usize,
    pub export_id: u64,
    pub path: String,
}

/// What people can learn about, or hand to, each other: links that got
/// forwarded, recording ids (they are sequential, so anyone can guess
/// them), which principal holds an email now, and devices being resold.
#[derive(Default)]
pub struct Board {
    pub links: Vec<PublishedLink>,
    /// (owner principal, recording id)
    pub recordings: Vec<(usize, u64)>,
    /// Address (normalized: trimmed, lower-cased, as the services compare
    /// them) -> the principal currently signed up with it.
    pub principal_by_email: BTreeMap<String, usize>,
    /// Devices sold and not yet picked up: (buyer's person index, device).
    pub(crate) handoffs: Vec<(usize, person::Device)>,
    /// Device id -> the principal who registered it.
    pub devices: BTreeMap<u64, usize>,
    /// Devices someone set out to sell or reset (they may be anyone's now).
    pub devices_changing_hands: std::collections::BTreeSet<u64>,
    /// Recording id -> its capture time (ms) as its device stamped it.
    pub captured: BTreeMap<u64, u64>,
    /// Messages people sent: (sender principal, message id, resolved email).
    pub messages: Vec<(usize, u64, String)>,
    /// Exports people asked for: (subject principal, export id).
    pub exports: Vec<(usize, u64)>,
    /// Support tickets their subjects verified: (principal, ticket id).
    pub tickets: Vec<(usize, u64)>,
    /// History cursors people were given: (principal, cursor).
    pub cursors: Vec<(usize, String)>,
}

/// How many cursors the board keeps (the most recent ones).
const BOARD_CURSORS: usize = 64;

impl Board {
    /// The principal signed up with `email` (however it is typed) now.
    pub fn holder_of(&self, email: &str) -> Option<usize> {
        let address = crate::addresses::normalized(email);
        self.principal_by_email.get(&address).copied()
    }

    /// `principal` signed up with `email`.
    pub fn set_holder(&mut self, email: &str, principal: usize) {
        let address = crate::addresses::normalized(email);
        self.principal_by_email.insert(address, principal);
    }

    /// Whoever held `email` closed their account.
    pub fn release(&mut self, email: &str) {
        let address = crate::addresses::normalized(email);
        self.principal_by_email.remove(&address);
    }

    /// Remember a cursor `principal` was given, as a proxy's log would.
    pub fn keep_cursor(&mut self, principal: usize, cursor: &str) {
        if self.cursors.len() >= BOARD_CURSORS {
            self.cursors.remove(0);
        }
        self.cursors.push((principal, cursor.to_string()));
    }
}

/// The entry of `items` that `pick` chooses among those `wanted` accepts:
/// the first accepted one from position `pick % len` on, wrapping around.
/// In a big world almost every entry is someone else's, so this looks at a
/// few entries instead of filtering the whole board on every attempt (which
/// made the workload's cost grow with the square of the world).
pub(crate) fn pick_where<T>(
    items: &[T],
    pick: u64,
    mut wanted: impl FnMut(&T) -> bool,
) -> Option<&T> {
    if items.is_empty() {
        return None;
    }
    let start = (pick % items.len() as u64) as usize;
    items[start..]
        .iter()
        .chain(&items[..start])
        .find(|item| wanted(item))
}

/// The entry of `map` chosen from `start_key` on among those `wanted`
/// accepts: the first accepted one at or after `start_key` (which need not
/// be a key of the map), wrapping around. The caller draws `start_key`.
pub(crate) fn pick_in_map<'a, K: Ord, V>(
    map: &'a BTreeMap<K, V>,
    start_key: &K,
    mut wanted: impl FnMut(&K, &V) -> bool,
) -> Option<(&'a K, &'a V)> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    map.range((Included(start_key), Unbounded))
        .chain(map.range((Unbounded, Excluded(start_key))))
        .find(|(k, v)| wanted(k, v))
}

/// Everything the actors of one run share. The simulation is single
/// threaded, so plain `RefCell`s suffice and their use is deterministic.
pub struct World {
    pub plan: Plan,
    pub oracle: RefCell<Oracle>,
    pub trace: RefCell<Trace>,
    pub board: RefCell<Board>,
    pub client_requests: Cell<u64>,
    /// Infrastructure problems that stop a person from going on.
    pub errors: RefCell<Vec<String>>,
    /// The support agent's bearer token for the export service's console.
    pub agent_token: String,
    /// Every fault the world injected, as windows for the API contract.
    pub fault_log: RefCell<FaultLog>,
    /// The store's refusals of the worker's collection reads, and the
    /// poisoned subject (`faults/poison.rs`), shared with the store's
    /// fault points.
    pub collection_faults: std::sync::Arc<crate::faults::poison::CollectionFaults>,
    /// When the store last lost power (simulated ms), and when it last came
    /// back: acknowledged state is probed again after such a restart
    /// (`durable.rs`).
    pub store_power_lost_ms: Cell<Option<u64>>,
    pub store_back_ms: Cell<Option<u64>>,
    /// The store's power loss right after it introspects an armed session
    /// (`faults/live_check.rs`), armed by a person about to download.
    pub introspect_crash: std::sync::Arc<crate::faults::live_check::IntrospectCrash>,
}

/// Why a call did not give the answer its caller expected.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer, or a 5xx: the service is down or degraded; the outcome of
    /// the request is unknown. Expected while faults are active.
    Unavailable(String),
    /// An answer no correct service gives here.
    Unexpected(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable(e) => write!(f, "unavailable: {e}"),
            CallError::Unexpected(e) => write!(f, "{e}"),
        }
    }
}

impl CallError {
    /// What the client observed, for the oracle to judge.
    pub(crate) fn observed(self) -> StepFailure {
        match self {
            CallError::Unavailable(e) => StepFailure::Unavailable(e),
            CallError::Unexpected(e) => StepFailure::OutsideContract(e),
        }
    }
}

impl World {
    pub fn new(plan: Plan, oracle: Oracle, agent_token: String) -> Rc<Self> {
        let poison = plan.poison.clone();
        Rc::new(World {
            plan,
            oracle: RefCell::new(oracle),
            trace: RefCell::new(Trace::default()),
            board: RefCell::new(Board::default()),
            client_requests: Cell::new(0),
            errors: RefCell::new(Vec::new()),
            agent_token,
            fault_log: RefCell::new(FaultLog::default()),
            collection_faults: std::sync::Arc::new(crate::faults::poison::CollectionFaults::new(
                poison,
            )),
            store_power_lost_ms: Cell::new(None),
            store_back_ms: Cell::new(None),
            introspect_crash: Default::default(),
        })
    }
}

/// One answer of a service as the oracle judges it: the request, the
/// status, the headers it judges and the body, who asked (and whether with
/// credentials), and the client's times (the answer arrived now).
fn answer_of<'a>(
    service: &'static str,
    request: String,
    method: &http::Method,
    response: &'a crosstalk_service::HttpResponse,
    principal: Option<usize>,
    authenticated: bool,
    sent_ms: u64,
) -> crate::check::replies::Answer<'a> {
    let header = |name: http::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    crate::check::replies::Answer {
        service,
        request,
        status: response.status().as_u16(),
        content_type: header(http::header::CONTENT_TYPE),
        body: response.body(),
        has_body: method != http::Method::HEAD,
        cache_control: header(http::header::CACHE_CONTROL),
        authenticated,
        principal,
        sent_ms,
        at_ms: crate::net::sim_now_ms(),
    }
}

/// An answer's `Retry-After` header as sent (`None` when absent).
fn retry_after(response: &crosstalk_service::HttpResponse) -> Option<String> {
    response
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
