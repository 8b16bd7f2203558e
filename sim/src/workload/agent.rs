//! A support agent working the ticket queue — and making the mistakes real
//! agents make: typing an adjacent ticket id, acting on a stale clipboard,
//! swapping two tickets worked at once, vouching for a caller who "knew the
//! address and the birthday", doing the same thing twice. Every mistake is
//! counted; the oracle checks that none of them ever delivers anyone's data
//! to anyone else (people follow every link that reaches their feed).
//!
//! Customers call back: now and then the agent re-sends the link of a
//! ticket worked long ago, whose subject may have closed their account
//! since (and someone else may hold the address now). Customers write in
//! about their requests, and the agent extends some of them as complex
//! (GDPR Art. 12(3): once, by two further months, with a reason), with the
//! mistakes agents make there too: the same request extended twice, a
//! neighbouring request's number or one from another system typed in, the
//! reason left empty or a whole e-mail thread pasted into it; each
//! extension is reported when sent and when answered (`check/deadlines.rs`).
//! And the agent reads its books — the console's audit log and overdue
//! queue — now and then and at the end; every console action it takes is
//! reported to the oracle, which matches the books against them
//! (`check/books.rs`).

use super::World;
use super::person::to_json;
use crate::check::Event;
use crate::check::books::AgentAction;
use crate::check::deadlines::{MAX_REASON_BYTES, NO_SUCH_EXPORT_FROM};
use crate::net::{
    EXPORT_HOST, EXPORT_PORT, MAX_OVERLOAD_WAITS, SimConnector, overload_wait, sim_now_ms,
};
use crate::plan::AgentPlan;
use bytes::Bytes;
use crosstalk_model::ExportId;
use crosstalk_model::api::{
    AgentTicketView, AuditEntry, ExportStatus, ExtendRequest, ManualVerificationRequest,
    ResendLinkRequest, TicketState,
};
use crosstalk_service::{HttpClient, HttpResponse, Spawner};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Most audit entries one read returns (the console's page).
const AUDIT_PAGE: usize = 500;

/// The agent reads its books every this many shifts.
const BOOKS_EVERY_SHIFTS: u64 = 10;

/// How often the agent looks for complaints about failed requests, in ms.
const COMPLAINT_POLL_MS: u64 = 5_000;

/// The agent's last read of its books ends this long before the drain does.
const LAST_READ_BEFORE_END_MS: u64 = 5_000;

/// Why a request is complex, as the agent writes it for its subject.
const REASONS: &[&str] = &[
    "the request covers several devices",
    "the account holds years of recordings",
    "collecting the recordings keeps failing; it needs more time",
];

/// A line of the e-mail thread an agent pastes as a reason by mistake.
const THREAD_LINE: &str = "Re: Fwd: your request for a copy of your recordings, as discussed. ";

struct Agent {
    world: Rc<World>,
    plan: AgentPlan,
    client: HttpClient,
    rng: ChaCha8Rng,
    /// Each ticket's export as the queue last listed it.
    exports_listed: BTreeMap<u64, Option<ExportId>>,
    /// The last audit entry read.
    audit_after: u64,
    /// How many of the board's requests the agent went through.
    requests_reviewed: usize,
    /// The requests it went through (a ticket may join a request listed
    /// before).
    reviewed: BTreeSet<u64>,
}

impl Agent {
    fn chance(&mut self, per_mille: u32) -> bool {
        self.rng.random_ratio(per_mille.min(1000), 1000)
    }

    fn trace(&self, event: String) {
        self.world
            .trace
            .borrow_mut()
            .record(sim_now_ms(), &format!("agent {event}"));
    }

    /// Hand a reply of the console to the oracle: its error body is judged
    /// at once, a 5xx against the faults near it (the API contract).
    fn judge_reply(&self, r: &HttpResponse, method: &Method, path: &str, sent_ms: u64) {
        let answer = super::answer_of(
            crate::net::EXPORT_HOST,
            format!("agent {method} {path}"),
            method,
            r,
            None,
            true,
            sent_ms,
        );
        self.world.oracle.borrow_mut().answer_received(&answer);
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Option<HttpResponse> {
        let mut waits = 0u64;
        loop {
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(path)
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", self.world.agent_token),
                );
            if body.is_some() {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            let request = request
                .body(Full::new(body.clone().map(Bytes::from).unwrap_or_default()))
                .ok()?;
            self.world
                .client_requests
                .set(self.world.client_requests.get() + 1);
            let sent_ms = sim_now_ms();
            let response = self.client.send(request).await;
            match &response {
                Ok(r) => self.trace(format!("{method} {path} -> {}", r.status().as_u16())),
                Err(e) => self.trace(format!("{method} {path} -> transport error: {e}")),
            }
            // An overloaded console: come back when it says (a person would).
            let wait = match &response {
                Ok(r) if waits < u64::from(MAX_OVERLOAD_WAITS) => {
                    overload_wait(r, waits * 53 % 500)
                }
                _ => None,
            };
            let Some(wait) = wait else {
                if let Ok(r) = &response {
                    self.judge_reply(r, &method, path, sent_ms);
                }
                return response.ok();
            };
            waits += 1;
            if let Ok(r) = &response {
                let mut oracle = self.world.oracle.borrow_mut();
                oracle.overloaded_answer(
                    crate::check::contract::ServerError {
                        service: crate::net::EXPORT_HOST,
                        request: format!("agent {method} {path}"),
                        status: Some(r.status().as_u16()),
                        body: String::from_utf8_lossy(r.body()).into_owned(),
                        principal: None,
                        sent_ms,
                        at_ms: sim_now_ms(),
                    },
                    super::retry_after(r),
                );
            }
            self.world.oracle.borrow_mut().on(Event::OverloadedRetry);
            tokio::time::sleep(wait).await;
        }
    }

    /// Resend a ticket's link; with `attach`, the agent also "attaches" an
    /// archive it has on screen (someone else's, by mistake). The console
    /// must refuse to take an archive at all.
    async fn resend(&self, ticket: u64, attach: Option<ExportId>) {
        let body = attach.and_then(|export_id| {
            to_json(&ResendLinkRequest {
                export_id: Some(export_id),
            })
            .ok()
        });
        let listed = self.exports_listed.get(&ticket).copied().flatten();
        let export = attach.or(listed).map(|e| e.0);
        let path = format!("/v1/agent/tickets/{ticket}/resend-link");
        let sent_ms = sim_now_ms();
        let response = self
            .act(
                "resend-link",
                Some(ticket),
                export,
                Method::POST,
                &path,
                body,
            )
            .await;
        let status = response.as_ref().map(|r| r.status().as_u16());
        let subject = self
            .world
            .board
            .borrow()
            .tickets
            .iter()
            .find(|(_, t)| *t == ticket)
            .map(|(p, _)| *p);
        let mut oracle = self.world.oracle.borrow_mut();
        if let Some(response) = &response {
            oracle.on_link_resent(attach.is_some(), response.status());
        }
        if let Some(subject) = subject {
            oracle.on_ticket_link_resent(subject, status, sent_ms, sim_now_ms());
        }
    }

    /// Take one console action (`action` on `ticket`, naming `export`) and
    /// report it, and its answer, to the oracle.
    async fn act(
        &self,
        action: &'static str,
        ticket: Option<u64>,
        export: Option<u64>,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Option<HttpResponse> {
        let sent_ms = sim_now_ms();
        let response = self.call(method, path, body).await;
        self.world.oracle.borrow_mut().on_agent_action(AgentAction {
            action,
            ticket_id: ticket,
            export_id: export,
            status: response.as_ref().map(|r| r.status().as_u16()),
            sent_ms,
            reply_ms: sim_now_ms(),
        });
        response
    }

    fn error(&self, what: &str) {
        self.world.oracle.borrow_mut().on(Event::AgentMistake);
        self.trace(format!("makes a mistake: {what}"));
    }

    /// One pass over the queue.
    async fn shift(
        &mut self,
        handled: &mut BTreeSet<u64>,
        vouched: &mut BTreeSet<u64>,
        clipboard: &mut Option<(u64, Option<ExportId>)>,
    ) {
        let Some(response) = self.call(Method::GET, "/v1/agent/tickets", None).await else {
            return;
        };
        if response.status() != StatusCode::OK {
            return;
        }
        let Ok(tickets) = serde_json::from_slice::<Vec<AgentTicketView>>(response.body()) else {
            return;
        };
        for ticket in &tickets {
            self.exports_listed
                .insert(ticket.ticket_id, ticket.export_id);
        }
        self.call_backs(&tickets, handled).await;
        for ticket in &tickets {
            if handled.contains(&ticket.ticket_id) {
                continue;
            }
            match ticket.state {
                TicketState::Rejected => {
                    handled.insert(ticket.ticket_id);
                }
                TicketState::AwaitingVerification => {
                    // One caller, one chance to talk the agent round.
                    if vouched.insert(ticket.ticket_id)
                        && self.chance(self.plan.weak_proof_per_mille)
                    {
                        self.accept_weak_proof(ticket.ticket_id).await;
                    }
                }
                TicketState::Verified => {
                    self.send_archive(ticket, &tickets, clipboard).await;
                    *clipboard = Some((ticket.ticket_id, ticket.export_id));
                    handled.insert(ticket.ticket_id);
                }
            }
        }
        self.review_requests().await;
    }
}

impl Agent {
    /// The agent is talked round: knowable facts accepted as proof of
    /// identity for ticket `ticket_id` (the oracle judges the answer).
    async fn accept_weak_proof(&mut self, ticket_id: u64) {
        self.error("accepts knowable facts as proof of identity");
        let facts = vec![
            "knew the account email".to_string(),
            "knew the home address".to_string(),
        ];
        let Ok(body) = to_json(&ManualVerificationRequest { facts }) else {
            return;
        };
        let path = format!("/v1/agent/tickets/{ticket_id}/manual-verification");
        let answer = self
            .act(
                "manual-verification",
                Some(ticket_id),
                None,
                Method::POST,
                &path,
                Some(body),
            )
            .await;
        if let Some(r) = answer {
            self.world.oracle.borrow_mut().on_manual_verification(
                ticket_id,
                r.status(),
                sim_now_ms(),
            );
        }
    }

    /// Send a verified ticket's archive, as a person at a console would:
    /// now and then to an adjacent ticket id, the previous ticket's (or its
    /// archive) from a stale clipboard, another ticket worked at once, and
    /// sometimes twice.
    async fn send_archive(
        &mut self,
        ticket: &AgentTicketView,
        tickets: &[AgentTicketView],
        clipboard: &Option<(u64, Option<ExportId>)>,
    ) {
        let mut target = ticket.ticket_id;
        let mut attach = None;
        if self.chance(self.plan.typo_per_mille) {
            target = if self.rng.random_bool(0.5) {
                target + 1
            } else {
                target.saturating_sub(1)
            };
            self.error("types an adjacent ticket id");
        } else if let Some((previous, previous_export)) =
            clipboard.filter(|_| self.chance(self.plan.stale_clipboard_per_mille))
        {
            if previous_export.is_some() && self.rng.random_bool(0.5) {
                attach = previous_export;
                self.error("attaches the previous ticket's archive");
            } else {
                target = previous;
                self.error("pastes the previous ticket's id");
            }
        } else if tickets.len() > 1 && self.chance(self.plan.swap_per_mille) {
            let other = &tickets[self.rng.random_range(0..tickets.len())];
            if other.export_id.is_some() && self.rng.random_bool(0.5) {
                attach = other.export_id;
                self.error("attaches the archive of another ticket worked at once");
            } else {
                target = other.ticket_id;
                self.error("swaps two tickets worked at once");
            }
        }
        self.resend(target, attach).await;
        if self.chance(self.plan.duplicate_per_mille) {
            self.error("sends it twice");
            self.resend(target, attach).await;
        }
    }
}

impl Agent {
    /// Customers write in about the requests they made (the board's
    /// requests, in the order they were made): the agent extends some as
    /// complex.
    async fn review_requests(&mut self) {
        loop {
            let next = self
                .world
                .board
                .borrow()
                .exports
                .get(self.requests_reviewed)
                .copied();
            let Some((_, export_id)) = next else {
                return;
            };
            self.requests_reviewed += 1;
            if self.reviewed.insert(export_id) && self.chance(self.plan.extend_per_mille) {
                self.extend_request(export_id).await;
            }
        }
    }

    /// Extend request `export_id`'s deadline, with the mistakes agents make:
    /// a blank or pasted reason first, a wrong number (looked at again only
    /// when the console says there is no such request), the click repeated.
    async fn extend_request(&mut self, export_id: u64) {
        let reason = REASONS[self.rng.random_range(0..REASONS.len())];
        if self.chance(self.plan.bad_reason_per_mille) {
            let bad = if self.rng.random_bool(0.5) {
                self.error("leaves the extension's reason empty");
                " ".repeat(self.rng.random_range(0..3))
            } else {
                self.error("pastes a whole e-mail thread as the reason");
                let bytes = self
                    .rng
                    .random_range(MAX_REASON_BYTES + 1..=2 * MAX_REASON_BYTES);
                THREAD_LINE.repeat(bytes / THREAD_LINE.len() + 1)[..bytes].to_string()
            };
            self.extend(export_id, &bad).await;
        }
        if self.chance(self.plan.typo_per_mille) {
            let wrong = if self.rng.random_bool(0.5) {
                self.error("types a neighbouring request's number");
                if self.rng.random_bool(0.5) {
                    export_id + 1
                } else {
                    export_id.saturating_sub(1)
                }
            } else {
                self.error("pastes a number from another system");
                NO_SUCH_EXPORT_FROM + self.rng.random_range(0..1_000_000)
            };
            if self.extend(wrong, reason).await != Some(404) {
                // Done, as far as the agent can tell.
                return;
            }
        }
        self.extend(export_id, reason).await;
        if self.chance(self.plan.duplicate_per_mille) {
            self.error("extends the deadline twice");
            self.extend(export_id, reason).await;
        }
    }

    /// POST one extension of `export_id` with `reason`, reported to the
    /// oracle when sent and when answered; its status, if one came.
    async fn extend(&self, export_id: u64, reason: &str) -> Option<u16> {
        let path = format!("/v1/agent/exports/{export_id}/extend");
        let body = to_json(&ExtendRequest {
            reason: reason.to_string(),
        })
        .ok()?;
        let sent =
            self.world
                .oracle
                .borrow_mut()
                .on_extension_sent(export_id, reason, sim_now_ms());
        let export = Some(export_id);
        let response = self
            .act(
                "extend-deadline",
                None,
                export,
                Method::POST,
                &path,
                Some(body),
            )
            .await;
        let status = response.as_ref().map(|r| r.status().as_u16());
        let (content_type, body) = match &response {
            Some(r) => (
                r.headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
                r.body().as_ref(),
            ),
            None => ("", &[][..]),
        };
        self.world.oracle.borrow_mut().on_extension_answered(
            sent,
            status,
            content_type,
            body,
            sim_now_ms(),
        );
        status
    }
}

impl Agent {
    /// Customers call back about tickets worked in earlier shifts: the
    /// agent re-sends each such verified ticket's link now and then.
    async fn call_backs(&mut self, tickets: &[AgentTicketView], handled: &BTreeSet<u64>) {
        for ticket in tickets {
            let old = handled.contains(&ticket.ticket_id) && ticket.state == TicketState::Verified;
            if old && self.chance(self.plan.callback_per_mille) {
                self.trace(format!(
                    "a customer calls back about ticket {}",
                    ticket.ticket_id
                ));
                self.resend(ticket.ticket_id, None).await;
            }
        }
    }

    /// Read the audit log from the last entry read to its end, then the
    /// overdue queue, and hand both to the oracle.
    async fn read_books(&mut self) {
        let sent_ms = sim_now_ms();
        loop {
            let path = format!("/v1/agent/audit?after={}", self.audit_after);
            let Some(page) = self.read_json::<Vec<AuditEntry>>(&path).await else {
                break;
            };
            let complete = page.len() < AUDIT_PAGE;
            self.audit_after = page.iter().map(|e| e.seq).fold(self.audit_after, u64::max);
            self.world
                .oracle
                .borrow_mut()
                .on_audit_read(page, sent_ms, complete);
            if complete {
                break;
            }
        }
        let sent_ms = sim_now_ms();
        if let Some(listed) = self
            .read_json::<Vec<ExportStatus>>("/v1/agent/overdue")
            .await
        {
            self.world
                .oracle
                .borrow_mut()
                .on_overdue_read(&listed, sent_ms, sim_now_ms());
        }
    }

    /// GET `path` from the console and parse its 200 answer.
    async fn read_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let response = self.call(Method::GET, path, None).await?;
        if response.status() != StatusCode::OK {
            return None;
        }
        serde_json::from_slice(response.body()).ok()
    }
}

/// Work the ticket queue until the active period ends.
pub async fn agent(world: Rc<World>, plan: AgentPlan) {
    let client = HttpClient::new(
        Arc::new(SimConnector {
            host: EXPORT_HOST,
            port: EXPORT_PORT,
        }),
        Duration::from_secs(10),
        2,
    )
    .with_spawner(Spawner::Local);
    let rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut agent = Agent {
        world: world.clone(),
        plan: plan.clone(),
        client,
        rng,
        exports_listed: BTreeMap::new(),
        audit_after: 0,
        requests_reviewed: 0,
        reviewed: BTreeSet::new(),
    };
    let mut handled = BTreeSet::new();
    let mut vouched = BTreeSet::new();
    let mut clipboard = None;
    // Tickets verified late in the run still get their link: work until the
    // drain is well under way.
    let end_ms = world.plan.active_ms + world.plan.drain_ms / 4;
    let mut shifts = 0u64;
    while sim_now_ms() < end_ms {
        tokio::time::sleep(Duration::from_millis(plan.shift_interval_ms)).await;
        agent
            .shift(&mut handled, &mut vouched, &mut clipboard)
            .await;
        shifts += 1;
        if shifts.is_multiple_of(BOOKS_EVERY_SHIFTS) {
            agent.read_books().await;
        }
    }
    agent.read_books().await;
    if world.plan.poison.is_some() {
        agent.read_books_when_overdue().await;
    }
}

impl Agent {
    /// A customer whose request failed complains: once it is past its due
    /// date (if that comes before the drain ends), the agent looks at its
    /// books again.
    async fn read_books_when_overdue(&mut self) {
        let plan = &self.world.plan;
        let last_ms = (plan.active_ms + plan.drain_ms).saturating_sub(LAST_READ_BEFORE_END_MS);
        while sim_now_ms() + COMPLAINT_POLL_MS <= last_ms {
            let due_ms = self.world.oracle.borrow().overdue_read_due_ms();
            match due_ms {
                Some(due_ms) if due_ms <= last_ms => {
                    let wait = due_ms.saturating_sub(sim_now_ms());
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    self.read_books().await;
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(COMPLAINT_POLL_MS)).await,
            }
        }
    }
}
