//! The export contract's limits, judged by what the clients saw.
//!
//! A published archive's link lives `link_ttl_ms` after publication and
//! serves at most `max_downloads` downloads (a rebuild publishes a new link
//! with a fresh count and lifetime; the old link is dead for good). The
//! oracle learns both limits from the plan and judges every download answer
//! of the export service against the times the clients themselves saw, never
//! against the service's own claims (the expiry in the token, the
//! `downloads_left` of a status):
//!
//! - **Lifetime.** A link appears in a status reply only once it is
//!   published, so its expiry is at most (the first arrival of a reply
//!   showing it + TTL). A download *sent* at or after that instant was
//!   handled after the expiry: a 200 is a link-binding violation.
//! - **Count.** The service counts every download it served; the clients
//!   saw at most that many (a lost reply was counted but not seen), so more
//!   than `max_downloads` successes seen for one link is a violation.
//! - **Refusals (410) are claims too.** A 410 to the link's subject is
//!   excused only by what could cause it: the limit (successes seen plus
//!   attempts whose outcome is unknown reach it), the expiry (the reply came
//!   after the earliest possible expiry: the last send of a status request
//!   that still answered "pending" before the link was first seen, plus the
//!   TTL), or a revocation (the subject sent a request that can delete a
//!   recording — a deletion, closing the account, a device reset or sale —
//!   before the refusal came back). Anything else is a link that died
//!   behind its subject's back, a violation judged at the end of the run.
//! - **A revoked link is dead for good.** A 410 that neither the limit nor
//!   the expiry can explain can only be a revocation (the archive is
//!   withdrawn and rebuilt under a new link). A status request sent after
//!   that refusal came back, and answered "ready" with the very same link,
//!   shows an archive that was never withdrawn and never rebuilt: the
//!   subject is offered a dead link forever (DESIGN invariants 3 and 8).
//! - **A dead link stays dead.** Every refusal (410) of a link is for good
//!   (expired, used up or revoked: none of them is ever undone), and so is
//!   a link replaced by another one for the same export (a status request
//!   sent after the old link was seen showed a new one: the archive was
//!   rebuilt). A 200 to a download sent after either was seen serves a
//!   revoked link — the old email's link, or a stranger's replay, reaching
//!   the rebuilt archive (invariant 4).
//! - **A rebuilt link is new.** A link that replaced an earlier one for the
//!   same export was built after that one was last seen alive, so it was
//!   published after then (its lifetime runs from there, not from the
//!   request) and holds none of the recordings whose deletion was
//!   acknowledged before then: such a deletion cannot explain a refusal
//!   of it, and its download count starts from zero.

use super::{Invariant, Oracle};
use crosstalk_model::api::{ExportState, ExportStatus};
use std::collections::BTreeMap;

/// The limits the export service runs with in this run (plan data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportLimits {
    pub link_ttl_ms: u64,
    pub max_downloads: u32,
}

/// What the clients saw of one download link (one published archive).
#[derive(Clone, Debug)]
struct Link {
    /// The principal whose status reply showed it (the export's subject).
    owner: usize,
    export_id: u64,
    /// Arrival of the first reply that showed it.
    first_seen_ms: u64,
    /// It was published after this instant (a status request sent then
    /// still answered "pending").
    published_after_ms: u64,
    /// Downloads answered 200, to anyone.
    successes: u32,
    /// Downloads whose outcome is unknown (no answer, or a 5xx).
    unknown: u32,
    /// The latest send of a status request answered "ready" with it.
    last_offered_sent_ms: u64,
    /// The latest send of a request that found it alive (a status showing
    /// it, or a download served).
    alive_sent_ms: u64,
    /// For a link that replaced an earlier one of its export: when that one
    /// was last seen alive (its rebuild began later). 0 for a first link.
    built_after_ms: u64,
}

/// A request of a principal that may revoke an archive of theirs.
#[derive(Clone, Copy, Debug)]
struct Revoking {
    sent_ms: u64,
    /// When its definite answer (not a 5xx) arrived; `None`: its effect
    /// may land any time later.
    answered_ms: Option<u64>,
}

/// A 410 to a link's subject, judged at the end of the run.
#[derive(Clone, Debug)]
struct Gone {
    path: String,
    sent_ms: u64,
    at_ms: u64,
}

/// The oracle's ledger of links, statuses and refusals.
#[derive(Debug, Default)]
pub struct LimitsLedger {
    limits: Option<ExportLimits>,
    /// Export id -> the latest send of a status request answered "pending".
    pending_sent_ms: BTreeMap<u64, u64>,
    /// Download path -> what the clients saw of it.
    links: BTreeMap<String, Link>,
    /// Successes and unknown outcomes of paths no status ever showed.
    unseen: BTreeMap<String, (u32, u32)>,
    /// Principal -> the requests they sent that may revoke an archive.
    revoking: BTreeMap<usize, Vec<Revoking>>,
    gone: Vec<Gone>,
    /// Download path -> the arrival of the first answer proving it dead
    /// for good (a 410 to it, or a status showing its replacement).
    dead_from_ms: BTreeMap<String, u64>,
}

impl LimitsLedger {
    /// Learn the limits the export service was configured with.
    pub fn learn(&mut self, limits: ExportLimits) {
        self.limits = Some(limits);
    }

    pub fn limits(&self) -> Option<ExportLimits> {
        self.limits
    }

    fn status_seen(&mut self, principal: usize, status: &ExportStatus, sent_ms: u64, at_ms: u64) {
        let id = status.export_id.0;
        match (status.state, &status.download_path) {
            (ExportState::Pending, _) => {
                let latest = self.pending_sent_ms.entry(id).or_default();
                *latest = (*latest).max(sent_ms);
            }
            (ExportState::Ready, Some(path)) => {
                let built_after_ms = self.replaced_by(id, path, sent_ms, at_ms);
                let pending_ms = self.pending_sent_ms.get(&id).copied().unwrap_or(0);
                let (successes, unknown) = self.unseen.remove(path).unwrap_or_default();
                let link = self.links.entry(path.clone()).or_insert(Link {
                    owner: principal,
                    export_id: id,
                    first_seen_ms: at_ms,
                    published_after_ms: pending_ms.max(built_after_ms),
                    successes,
                    unknown,
                    last_offered_sent_ms: sent_ms,
                    alive_sent_ms: sent_ms,
                    built_after_ms,
                });
                link.last_offered_sent_ms = link.last_offered_sent_ms.max(sent_ms);
                link.alive_sent_ms = link.alive_sent_ms.max(sent_ms);
            }
            _ => {}
        }
    }

    /// A status request of export `id` sent at `sent_ms` showed `path`
    /// (arriving at `at_ms`): every other link of the export seen before
    /// that send is replaced, dead from `at_ms` on. Returns when the
    /// latest of them was last seen alive (0 when none).
    fn replaced_by(&mut self, id: u64, path: &str, sent_ms: u64, at_ms: u64) -> u64 {
        let older: Vec<(String, u64)> = self
            .links
            .iter()
            .filter(|(p, l)| l.export_id == id && p.as_str() != path && l.first_seen_ms < sent_ms)
            .map(|(p, l)| (p.clone(), l.alive_sent_ms))
            .collect();
        let mut built_after_ms = 0;
        for (old, alive_ms) in older {
            built_after_ms = built_after_ms.max(alive_ms);
            self.dead_from(&old, at_ms);
        }
        built_after_ms
    }

    /// `path` is known dead from `at_ms` on (kept at the earliest).
    fn dead_from(&mut self, path: &str, at_ms: u64) {
        let known = self.dead_from_ms.entry(path.to_string()).or_insert(at_ms);
        *known = (*known).min(at_ms);
    }

    /// Whether a request of `owner` that may revoke an archive, sent before
    /// `before_ms`, may have landed after `built_after_ms` (an answer that
    /// arrived by then landed before: the request sent at `built_after_ms`
    /// left after it).
    fn may_have_revoked(&self, owner: usize, built_after_ms: u64, before_ms: u64) -> bool {
        self.revoking.get(&owner).is_some_and(|sent| {
            sent.iter()
                .any(|r| r.sent_ms < before_ms && r.answered_ms.is_none_or(|a| a > built_after_ms))
        })
    }
}

/// Whether a request to the store may delete recordings of its sender
/// (and so revoke an archive of theirs).
fn may_revoke(method: &http::Method, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    *method == http::Method::DELETE
        || (*method == http::Method::POST
            && (path.ends_with("/recordings/delete")
                || path.ends_with("/reset")
                || path.ends_with("/transfer")))
}

impl Oracle {
    /// A request of `principal` to the store is about to be sent.
    pub fn store_request_sent(
        &mut self,
        principal: usize,
        method: &http::Method,
        path: &str,
        sent_ms: u64,
    ) {
        self.note_sale(principal, method, path);
        self.note_address_request(principal, method, path, sent_ms);
        if may_revoke(method, path) {
            let revoking = Revoking {
                sent_ms,
                answered_ms: None,
            };
            self.limits
                .revoking
                .entry(principal)
                .or_default()
                .push(revoking);
        }
    }

    /// The store answered a request of `principal` sent at `sent_ms`
    /// (`status` `None`: no answer): a definite answer to a request that
    /// may revoke an archive bounds when its effect landed.
    pub fn store_reply_arrived(
        &mut self,
        principal: usize,
        method: &http::Method,
        path: &str,
        sent_ms: u64,
        status: Option<u16>,
        at_ms: u64,
    ) {
        if !may_revoke(method, path) || status.is_none_or(|s| s >= 500) {
            return;
        }
        let sent = self.limits.revoking.entry(principal).or_default();
        if let Some(r) = sent
            .iter_mut()
            .rev()
            .find(|r| r.sent_ms == sent_ms && r.answered_ms.is_none())
        {
            r.answered_ms = Some(at_ms);
        }
    }

    /// One exchange of `principal` with the export service: `status` is
    /// `None` when no answer came back.
    #[allow(clippy::too_many_arguments)]
    pub fn export_reply(
        &mut self,
        principal: usize,
        method: &http::Method,
        path: &str,
        sent_ms: u64,
        status: Option<u16>,
        body: &[u8],
        at_ms: u64,
    ) {
        if path.starts_with("/v1/downloads/") {
            self.download_answered(principal, path, sent_ms, status, at_ms);
            return;
        }
        let is_status = *method == http::Method::GET
            && path
                .strip_prefix("/v1/exports/")
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        let is_request = *method == http::Method::POST && path == "/v1/exports";
        let answered =
            (is_status && status == Some(200)) || (is_request && matches!(status, Some(200 | 202)));
        if answered && let Ok(export) = serde_json::from_slice::<ExportStatus>(body) {
            self.limits.status_seen(principal, &export, sent_ms, at_ms);
            self.deadline_shown(principal, &export, sent_ms, at_ms);
        }
    }

    fn download_answered(
        &mut self,
        principal: usize,
        path: &str,
        sent_ms: u64,
        status: Option<u16>,
        at_ms: u64,
    ) {
        let Some(limits) = self.limits.limits else {
            return;
        };
        self.judge_dead_link(principal, path, sent_ms, status, at_ms);
        let known = self.limits.links.contains_key(path);
        let counts = match self.limits.links.get_mut(path) {
            Some(link) => (&mut link.successes, &mut link.unknown),
            None => {
                let entry = self.limits.unseen.entry(path.to_string()).or_default();
                (&mut entry.0, &mut entry.1)
            }
        };
        match status {
            Some(200) => *counts.0 += 1,
            None | Some(500..=599) => {
                *counts.1 += 1;
                return;
            }
            Some(410) => {
                if known {
                    self.limits.gone.push(Gone {
                        path: path.to_string(),
                        sent_ms,
                        at_ms,
                    });
                }
                return;
            }
            Some(_) => return,
        }
        let successes = *counts.0;
        if let Some(link) = self.limits.links.get_mut(path) {
            link.alive_sent_ms = link.alive_sent_ms.max(sent_ms);
        }
        self.controls.downloads_judged_against_limits += 1;
        let link = self.limits.links.get(path).cloned();
        let export = link
            .as_ref()
            .map(|l| format!("exp-{}", l.export_id))
            .unwrap_or_else(|| "an export".into());
        if successes > limits.max_downloads {
            let detail = format!(
                "download limit: {export}'s link served its download number {successes} (at least; sent at {sent_ms} ms) to {}, past the limit of {} per archive",
                self.who(principal),
                limits.max_downloads
            );
            self.violate(Invariant::LinkBinding, at_ms, None, Some(principal), detail);
        }
        if let Some(link) = link
            && sent_ms >= link.first_seen_ms.saturating_add(limits.link_ttl_ms)
        {
            let detail = format!(
                "expired link: {export}'s link was first seen ready at {} ms and lives {} ms, yet a download sent at {sent_ms} ms was served",
                link.first_seen_ms, limits.link_ttl_ms
            );
            self.violate(Invariant::LinkBinding, at_ms, None, Some(principal), detail);
        }
    }

    /// Judge every 410 a link's subject received (at the end of the run,
    /// when every attempt of unknown outcome is known).
    pub fn judge_limits(&mut self) {
        self.count_live_check_probes();
        let Some(limits) = self.limits.limits else {
            return;
        };
        self.count_rebuilt_links(limits);
        let gone = std::mem::take(&mut self.limits.gone);
        for g in gone {
            let Some(link) = self.limits.links.get(&g.path).cloned() else {
                continue;
            };
            self.controls.gone_answers_judged += 1;
            let expired_for_sure =
                g.sent_ms >= link.first_seen_ms.saturating_add(limits.link_ttl_ms);
            let used_up = link.successes >= limits.max_downloads;
            if expired_for_sure {
                self.controls.downloads_refused_after_expiry += 1;
                continue;
            }
            if used_up {
                self.controls.downloads_refused_past_limit += 1;
                continue;
            }
            let maybe_used_up = link.successes + link.unknown >= limits.max_downloads;
            let maybe_expired =
                g.at_ms >= link.published_after_ms.saturating_add(limits.link_ttl_ms);
            if maybe_used_up || maybe_expired {
                continue;
            }
            self.judge_revoked_link(&link, &g);
            if self
                .limits
                .may_have_revoked(link.owner, link.built_after_ms, g.at_ms)
            {
                continue;
            }
            let detail = format!(
                "a live link refused: exp-{}'s link (first seen ready at {} ms, published after {} ms, lifetime {} ms) was answered 410 at {} ms after {} of {} downloads, with no deletion by its subject that could reach this build of the archive and no download of unknown outcome",
                link.export_id,
                link.first_seen_ms,
                link.published_after_ms,
                limits.link_ttl_ms,
                g.at_ms,
                link.successes,
                limits.max_downloads
            );
            self.violate(
                Invariant::LinkBinding,
                g.at_ms,
                None,
                Some(link.owner),
                detail,
            );
        }
    }
}

impl Oracle {
    /// A download of `path` sent at `sent_ms` was answered `status` at
    /// `at_ms`: a 410 kills the link for good; a 200 to a download sent
    /// after the link was known dead serves a revoked link.
    fn judge_dead_link(
        &mut self,
        principal: usize,
        path: &str,
        sent_ms: u64,
        status: Option<u16>,
        at_ms: u64,
    ) {
        let dead_ms = self.limits.dead_from_ms.get(path).copied();
        if let Some(dead_ms) = dead_ms
            && sent_ms >= dead_ms
            && let Some(status) = status
            && status < 500
        {
            self.controls.dead_links_tried_again += 1;
            if status == 200 {
                let export = self
                    .limits
                    .links
                    .get(path)
                    .map(|l| format!("exp-{}'s", l.export_id))
                    .unwrap_or_else(|| "an export's".into());
                let detail = format!(
                    "a revoked link served: {export} link was known dead at {dead_ms} ms (refused 410, or replaced by a rebuilt archive's link), yet a download of it sent by {} at {sent_ms} ms was answered 200",
                    self.who(principal)
                );
                self.violate(Invariant::LinkBinding, at_ms, None, Some(principal), detail);
            }
        }
        if status == Some(410) {
            self.limits.dead_from(path, at_ms);
        }
    }

    /// Count the rebuilt links their subject used to the limit (at the end
    /// of the run), and those published a lifetime or more after their
    /// export's first link was seen and still downloaded.
    fn count_rebuilt_links(&mut self, limits: ExportLimits) {
        let rebuilt: Vec<&Link> = self
            .limits
            .links
            .values()
            .filter(|l| l.built_after_ms > 0)
            .collect();
        let to_limit = rebuilt
            .iter()
            .filter(|l| l.successes >= limits.max_downloads)
            .count() as u64;
        let late = rebuilt
            .iter()
            .filter(|l| {
                l.successes > 0
                    && self.limits.links.values().any(|first| {
                        first.export_id == l.export_id
                            && first.built_after_ms == 0
                            && l.first_seen_ms >= first.first_seen_ms + limits.link_ttl_ms
                    })
            })
            .count() as u64;
        self.controls.rebuilt_links_used_to_limit += to_limit;
        self.controls.rebuilt_links_late_downloaded += late;
    }

    /// `g` refused `link` while neither its limit nor its expiry can explain
    /// it: a revocation, after which no status may offer the link again.
    fn judge_revoked_link(&mut self, link: &Link, g: &Gone) {
        self.controls.revoked_links_judged += 1;
        if link.last_offered_sent_ms <= g.at_ms {
            return;
        }
        let detail = format!(
            "a revoked link offered again: exp-{}'s link was refused (410, neither used up nor expired) at {} ms, yet a status request sent at {} ms showed the export ready with the same link: the archive was never withdrawn nor rebuilt",
            link.export_id, g.at_ms, link.last_offered_sent_ms
        );
        self.violate(Invariant::Liveness, g.at_ms, None, Some(link.owner), detail);
    }

    /// The export contract's limits for this run (from the plan).
    pub fn learn_limits(&mut self, limits: ExportLimits) {
        self.limits.learn(limits);
    }

    /// `principal` downloaded `body` again over `channel` (asked at
    /// `requested_ms`, answered at `now`): judged like every delivery.
    pub fn on_archive_downloaded_again(
        &mut self,
        principal: usize,
        channel: &str,
        body: &[u8],
        requested_ms: u64,
        now: u64,
    ) {
        match self.read_archive(body) {
            Ok(contents) => {
                self.judge_archive_delivery(principal, channel, &contents, requested_ms, now)
            }
            Err(e) => {
                let detail = format!("{channel}: not a readable archive: {e}");
                self.violate(
                    Invariant::RequestIntegrity,
                    now,
                    None,
                    Some(principal),
                    detail,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn oracle(max_downloads: u32) -> Oracle {
        let mut oracle = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        oracle.limits.learn(ExportLimits {
            link_ttl_ms: 60_000,
            max_downloads,
        });
        oracle
    }

    fn ready(oracle: &mut Oracle, pending_sent: u64, seen: u64) {
        shown(oracle, ExportState::Pending, None, pending_sent);
        shown(
            oracle,
            ExportState::Ready,
            Some("/v1/downloads/t"),
            seen - 5,
        );
    }

    #[test]
    fn successes_past_the_limit_or_the_lifetime_are_violations() {
        let mut o = oracle(2);
        ready(&mut o, 1_000, 2_000);
        let get = http::Method::GET;
        for at in [3_000, 4_000] {
            o.export_reply(0, &get, "/v1/downloads/t", at, Some(200), b"", at + 5);
        }
        assert!(o.violations.is_empty());
        o.export_reply(0, &get, "/v1/downloads/t", 5_000, Some(200), b"", 5_005);
        assert!(o.violations[0].detail.starts_with("download limit"));
        let mut o = oracle(5);
        ready(&mut o, 1_000, 2_000);
        o.export_reply(0, &get, "/v1/downloads/t", 61_999, Some(200), b"", 62_100);
        assert!(o.violations.is_empty());
        o.export_reply(0, &get, "/v1/downloads/t", 62_000, Some(200), b"", 62_100);
        assert!(o.violations[0].detail.starts_with("expired link"));
    }

    /// A 410 after a deletion is a revocation: a later status offering
    /// the same link again shows an archive never withdrawn nor rebuilt.
    #[test]
    fn a_revoked_link_is_never_offered_again() {
        let get = http::Method::GET;
        let mut o = oracle(2);
        ready(&mut o, 1_000, 2_000);
        o.store_request_sent(0, &http::Method::DELETE, "/v1/recordings/3", 2_500);
        o.export_reply(0, &get, "/v1/downloads/t", 3_000, Some(410), b"", 3_005);
        // Polled again after the refusal: still ready, with the dead link.
        ready(&mut o, 3_010, 3_100);
        o.judge_limits();
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        assert_eq!(o.violations[0].invariant, Invariant::Liveness);
        assert!(
            o.violations[0]
                .detail
                .starts_with("a revoked link offered again")
        );
        assert_eq!(o.controls.revoked_links_judged, 1);
        // The same refusal with no later offer of that link passes.
        let mut o = oracle(2);
        ready(&mut o, 1_000, 2_000);
        o.store_request_sent(0, &http::Method::DELETE, "/v1/recordings/3", 2_500);
        o.export_reply(0, &get, "/v1/downloads/t", 3_000, Some(410), b"", 3_005);
        o.judge_limits();
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.revoked_links_judged, 1);
        // A link used up may well be shown again: not a revocation.
        let mut o = oracle(1);
        ready(&mut o, 1_000, 2_000);
        o.export_reply(0, &get, "/v1/downloads/t", 2_500, Some(200), b"", 2_505);
        o.export_reply(0, &get, "/v1/downloads/t", 3_000, Some(410), b"", 3_005);
        ready(&mut o, 3_010, 3_100);
        o.judge_limits();
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.revoked_links_judged, 0);
    }

    #[test]
    fn a_gone_answer_needs_a_cause() {
        let get = http::Method::GET;
        // Fresh link, nothing downloaded, nothing deleted: a violation.
        let mut o = oracle(2);
        ready(&mut o, 1_000, 2_000);
        o.export_reply(0, &get, "/v1/downloads/t", 3_000, Some(410), b"", 3_005);
        o.judge_limits();
        assert!(o.violations[0].detail.starts_with("a live link refused"));
        // A download of unknown outcome may have used it up.
        let mut o = oracle(1);
        ready(&mut o, 1_000, 2_000);
        o.export_reply(0, &get, "/v1/downloads/t", 3_000, None, b"", 3_005);
        o.export_reply(0, &get, "/v1/downloads/t", 3_100, Some(410), b"", 3_105);
        o.judge_limits();
        assert!(o.violations.is_empty());
        // A deletion sent before the refusal may have revoked it.
        let mut o = oracle(2);
        ready(&mut o, 1_000, 2_000);
        o.store_request_sent(0, &http::Method::DELETE, "/v1/recordings/3", 2_500);
        o.export_reply(0, &get, "/v1/downloads/t", 3_000, Some(410), b"", 3_005);
        o.judge_limits();
        assert!(o.violations.is_empty());
        // Past the earliest possible expiry, and past the sure one.
        let mut o = oracle(2);
        ready(&mut o, 1_000, 2_000);
        o.export_reply(0, &get, "/v1/downloads/t", 61_000, Some(410), b"", 61_005);
        o.export_reply(0, &get, "/v1/downloads/t", 62_000, Some(410), b"", 62_005);
        o.judge_limits();
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.downloads_refused_after_expiry, 1);
    }

    /// A status of export 7 sent at `sent` and arriving 5 ms later.
    fn shown(o: &mut Oracle, state: ExportState, path: Option<&str>, sent: u64) {
        let body = serde_json::to_vec(&ExportStatus {
            export_id: crosstalk_model::ExportId(7),
            state,
            requested_at_ms: 0,
            due_at_ms: 0,
            overdue: false,
            extension_reason: None,
            snapshot_at_ms: None,
            download_path: path.map(str::to_string),
            expires_at_ms: None,
            downloads_left: None,
            failure: None,
        })
        .unwrap();
        let get = http::Method::GET;
        o.export_reply(0, &get, "/v1/exports/7", sent, Some(200), &body, sent + 5);
    }

    fn download(o: &mut Oracle, path: &str, sent: u64, status: u16) {
        let get = http::Method::GET;
        o.export_reply(0, &get, path, sent, Some(status), b"", sent + 5);
    }

    /// Downloaded once, a recording deleted (answered), the page opened
    /// again and the link clicked (revoked), then rebuilt under "/n".
    fn rebuilt(o: &mut Oracle) {
        shown(o, ExportState::Ready, Some("/v1/downloads/o"), 1_000);
        download(o, "/v1/downloads/o", 1_100, 200);
        let delete = http::Method::DELETE;
        o.store_request_sent(0, &delete, "/v1/recordings/3", 1_200);
        o.store_reply_arrived(0, &delete, "/v1/recordings/3", 1_200, Some(200), 1_205);
        shown(o, ExportState::Ready, Some("/v1/downloads/o"), 1_300);
        download(o, "/v1/downloads/o", 1_400, 410);
        shown(o, ExportState::Pending, None, 1_500);
        shown(o, ExportState::Ready, Some("/v1/downloads/n"), 1_600);
    }

    /// A link refused, or replaced by a rebuild, never serves again.
    #[test]
    fn a_dead_link_never_serves_again() {
        let mut o = oracle(3);
        rebuilt(&mut o);
        download(&mut o, "/v1/downloads/n", 1_700, 200);
        download(&mut o, "/v1/downloads/o", 1_800, 410);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.dead_links_tried_again, 1);
        download(&mut o, "/v1/downloads/o", 1_900, 200);
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        assert_eq!(o.violations[0].invariant, Invariant::LinkBinding);
        assert!(o.violations[0].detail.starts_with("a revoked link served"));
        // Replaced without a refusal ever seen: dead from the new link on.
        let mut o = oracle(3);
        shown(&mut o, ExportState::Ready, Some("/v1/downloads/o"), 1_000);
        shown(&mut o, ExportState::Ready, Some("/v1/downloads/n"), 2_000);
        download(&mut o, "/v1/downloads/o", 2_000, 200);
        assert!(o.violations.is_empty(), "sent before the new link arrived");
        download(&mut o, "/v1/downloads/o", 2_005, 200);
        assert!(o.violations[0].detail.starts_with("a revoked link served"));
    }

    /// A deletion answered before the rebuild began explains no refusal of
    /// the rebuilt link: its count and lifetime are its own.
    #[test]
    fn a_rebuilt_link_has_its_own_allowance_and_lifetime() {
        let mut o = oracle(3);
        rebuilt(&mut o);
        for sent in [1_700, 1_800, 1_900] {
            download(&mut o, "/v1/downloads/n", sent, 200);
        }
        download(&mut o, "/v1/downloads/n", 2_000, 410);
        o.judge_limits();
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.rebuilt_links_used_to_limit, 1);
        // Inherited count: refused after one download of the new link.
        let mut o = oracle(3);
        rebuilt(&mut o);
        download(&mut o, "/v1/downloads/n", 1_700, 200);
        download(&mut o, "/v1/downloads/n", 1_800, 410);
        o.judge_limits();
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        assert!(o.violations[0].detail.starts_with("a live link refused"));
        // Published expired (its lifetime counted from the request): the
        // old link's lifetime is over, the new one's is not.
        let mut o = oracle(3);
        rebuilt(&mut o);
        download(&mut o, "/v1/downloads/n", 61_200, 410);
        o.judge_limits();
        assert!(o.violations[0].detail.starts_with("a live link refused"));
        // A deletion whose answer never came may land on the rebuild.
        let mut o = oracle(3);
        rebuilt(&mut o);
        let delete = http::Method::DELETE;
        o.store_request_sent(0, &delete, "/v1/recordings/4", 1_650);
        o.store_reply_arrived(0, &delete, "/v1/recordings/4", 1_650, None, 1_655);
        download(&mut o, "/v1/downloads/n", 1_700, 410);
        o.judge_limits();
        assert!(o.violations.is_empty(), "{:?}", o.violations);
    }
}
