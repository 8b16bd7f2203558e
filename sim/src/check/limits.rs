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
    /// Principal -> the first send of a request that may revoke an archive.
    revoking_sent_ms: BTreeMap<usize, u64>,
    gone: Vec<Gone>,
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
                let published_after_ms = self.pending_sent_ms.get(&id).copied().unwrap_or(0);
                let (successes, unknown) = self.unseen.remove(path).unwrap_or_default();
                let link = self.links.entry(path.clone()).or_insert(Link {
                    owner: principal,
                    export_id: id,
                    first_seen_ms: at_ms,
                    published_after_ms,
                    successes,
                    unknown,
                    last_offered_sent_ms: sent_ms,
                });
                link.last_offered_sent_ms = link.last_offered_sent_ms.max(sent_ms);
            }
            _ => {}
        }
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
        if may_revoke(method, path) {
            self.limits
                .revoking_sent_ms
                .entry(principal)
                .or_insert(sent_ms);
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
        let Some(limits) = self.limits.limits else {
            return;
        };
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
            let maybe_revoked = self
                .limits
                .revoking_sent_ms
                .get(&link.owner)
                .is_some_and(|&sent| sent < g.at_ms);
            if maybe_revoked {
                continue;
            }
            let detail = format!(
                "a live link refused: exp-{}'s link (first seen ready at {} ms, published after {} ms, lifetime {} ms) was answered 410 at {} ms after {} of {} downloads, with no deletion by its subject and no download of unknown outcome",
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
        let status = |state: ExportState, path: Option<&str>| {
            serde_json::to_vec(&ExportStatus {
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
            .unwrap()
        };
        let get = http::Method::GET;
        oracle.export_reply(
            0,
            &get,
            "/v1/exports/7",
            pending_sent,
            Some(200),
            &status(ExportState::Pending, None),
            pending_sent + 5,
        );
        oracle.export_reply(
            0,
            &get,
            "/v1/exports/7",
            seen - 5,
            Some(200),
            &status(ExportState::Ready, Some("/v1/downloads/t")),
            seen,
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
}
