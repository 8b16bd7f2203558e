//! The crosstalk DSAR export service.
//!
//! A data subject asks for their data (GDPR Art. 15), either directly with
//! their store session or through a support ticket verified by a challenge
//! sent to their account ([`tickets`]). Every accepted request is a durable
//! job ([`jobs`]) with a due date. Stateless workers ([`worker`]) claim jobs
//! over HTTP with leases and fencing tokens, collect the subject's
//! recordings from the store's service API with snapshot semantics, build
//! the archive ([`archive`]) and publish it; a worker that lost its lease
//! can never publish. The subject downloads with a link ([`link`]) that is
//! bound to the export and the subject, expires, is limited in downloads,
//! and needs the subject's own session. At every download the service asks
//! the store whether each archived recording still exists: if one was
//! deleted, the archive is revoked and rebuilt. Support agents work tickets
//! through a console ([`agent`]) that cannot send anything to anyone but the
//! ticket's verified subject, and that audits every action.
//!
//! | method | path | who |
//! |---|---|---|
//! | POST | `/v1/exports` | session: request an export of one's own data |
//! | GET | `/v1/exports/{id}` | session of the export's subject |
//! | GET | `/v1/downloads/{token}` | session of the export's subject, valid link |
//! | POST | `/v1/tickets` | anyone: ask for an account's data by email |
//! | POST | `/v1/tickets/{id}/verify` | anyone holding the code sent to the account |
//! | GET | `/v1/agent/tickets` | agent token |
//! | POST | `/v1/agent/tickets/{id}/resend-link` | agent token; no body or `{}` (an `export_id` is refused: 400) |
//! | POST | `/v1/agent/tickets/{id}/manual-verification` | agent token (always refused) |
//! | POST | `/v1/agent/exports/{id}/extend` | agent token |
//! | GET | `/v1/agent/overdue`, `/v1/agent/audit?after=` | agent token |
//! | POST | `/v1/internal/jobs/claim` | worker token |
//! | POST | `/v1/internal/jobs/{id}/renew`, `/complete`, `/fail` | worker token, with the job's fence |

pub mod agent;
pub mod archive;
pub mod fuzzing;
pub mod jobs;
pub mod link;
pub mod store_client;
pub mod tickets;
pub mod worker;

mod exports;
mod http;
mod schema;
mod service;

pub use http::{MAX_PUBLISH_BYTES, router};
pub use service::{ExportConfig, ExportService};
pub use store_client::StoreClient;

/// Every code probe (`crosstalk_service::probe!`) in this crate, by name: the
/// decisions a simulation must reach (see `crosstalk_service::probes`). The
/// test `tests/probes.rs` fails if this list and the source disagree.
pub const PROBES: &[&str] = &[
    "export.agent.archive_attachment_refused",
    "export.agent.export_not_ready",
    "export.agent.manual_verification_refused",
    "export.agent.no_such_ticket",
    "export.agent.token_refused",
    "export.agent.unverified_ticket_refused",
    "export.download.bad_link",
    "export.download.expired",
    "export.download.foreign_caller_refused",
    "export.download.live_check_failed",
    "export.download.recordings_deleted",
    "export.download.revoked_in_commit",
    "export.download.revoked_link",
    "export.download.subject_mismatch",
    "export.download.used_up",
    "export.download.used_up_in_commit",
    "export.job.attempt_backed_off",
    "export.job.attempts_exhausted",
    "export.job.fenced_out",
    "export.job.lapsed_lease_reclaimed",
    "export.job.poison_failed",
    "export.job.revoked_for_rebuild",
    "export.publish.archive_mismatch_refused",
    "export.request.duplicate_joined",
    "export.request.rate_limited",
    "export.status.not_own",
    "export.ticket.closed_refused",
    "export.ticket.joined_open_export",
    "export.ticket.rejected_after_attempts",
    "export.ticket.right_code_repeated",
    "export.ticket.verified",
    "export.ticket.wrong_code_refused",
    "export.worker.token_refused",
];
