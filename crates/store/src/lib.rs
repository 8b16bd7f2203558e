//! The crosstalk recording store: a real HTTP service on redb.
//!
//! People sign up and get a session; they register devices; a device uploads
//! captures (audio + transcript + the device's capture time); the owner lists
//! their history and fetches audio. The export service reads a subject's
//! recordings through a service API, authenticated with a service token and
//! scoped to one subject per request.
//!
//! The same [`router`] runs behind a real socket with the database in a file
//! (`crosstalk-store serve`) and on a simulated host with the database on a
//! simulated disk. Time and randomness are injected ([`Clock`], [`Entropy`]).
//!
//! | method | path | who |
//! |---|---|---|
//! | POST | `/v1/accounts` | anyone: sign up (email + password), returns a session |
//! | POST | `/v1/sessions` | anyone: log in with email + password |
//! | POST | `/v1/devices` | session |
//! | POST | `/v1/recordings` | device token |
//! | GET | `/v1/recordings?cursor=&limit=` | session (own recordings only) |
//! | GET | `/v1/recordings/{id}/audio` | session (own recordings only) |
//! | DELETE | `/v1/recordings/{id}` | session (own recordings only) |
//! | POST | `/v1/recordings/delete` | session: a capture-time range, or all |
//! | DELETE | `/v1/accounts/me` | session: close the account |
//! | POST | `/v1/devices/{id}/transfer` | session of the owner: resale |
//! | POST | `/v1/devices/{id}/reset` | session of the owner: factory reset |
//! | POST, GET | `/v1/contacts` | session |
//! | POST | `/v1/messages` | session: resolve a contact, hold the message |
//! | POST | `/v1/messages/{id}/confirm` | session of the sender, naming the contact |
//! | GET | `/v1/inbox`, `/v1/inbox/{id}/audio` | session of the recipient |
//! | GET | `/v1/orders` | session: purchases spoken to one's devices |
//! | GET | `/v1/notifications?after=` | session: the account's own feed |
//! | GET | `/v1/service/lookup?email=` | service token |
//! | POST | `/v1/service/accounts/{id}/notifications` | service token |
//! | POST | `/v1/service/accounts/{id}/recordings/live` | service token: which ids still exist |
//! | POST | `/v1/service/introspect` | service token |
//! | GET | `/v1/service/accounts/{id}/recordings?cursor=&limit=` | service token |
//! | GET | `/v1/service/accounts/{id}/recordings/{rid}/audio` | service token |

mod accounts;
mod cache;
mod devices;
mod health;
mod http;
pub mod media;
mod messages;
mod notify;
mod recordings;
mod schema;
mod store;

pub use cache::{CACHE_MAX_BYTES, CACHE_MAX_ENTRIES};
pub use crosstalk_model::{Clock, Entropy};
pub use http::{MAX_REQUEST_BYTES, REPLY_STALL, router, valid_email};
pub use recordings::{DeleteSelection, ListScope, MAX_PAGE_ITEMS, NewRecording};
pub use schema::DeviceRecord;
pub use store::{PRODUCTION_PASSWORD_ITERATIONS, Store, StoreConfig};

/// Every code probe (`crosstalk_service::probe!`) in this crate, by name: the
/// decisions a simulation must reach (see `crosstalk_service::probes`). The
/// test `tests/probes.rs` fails if this list and the source disagree.
pub const PROBES: &[&str] = &[
    "store.audio.not_owned_refused",
    "store.cache.capacity_eviction",
    "store.cache.erasure_eviction",
    "store.cache.stale_fill_dropped",
    "store.delete.not_owned_refused",
    "store.device.account_closed",
    "store.device.unknown_token",
    "store.ingest.duplicate_upload",
    "store.ingest.owner_closed",
    "store.ingest.upload_key_conflict",
    "store.media.event_detected",
    "store.message.confirm_broadcast_refused",
    "store.message.confirm_cancelled",
    "store.message.confirm_not_own_refused",
    "store.message.confirm_recipient_closed",
    "store.message.confirm_still_held",
    "store.message.confirm_wrong_contact_refused",
    "store.message.delivered",
    "store.message.held_cancelled_deleted",
    "store.message.held_pending_confirmation",
    "store.message.held_suppressed_media_event",
    "store.message.inbox_audio_deleted",
    "store.message.inbox_audio_not_own_refused",
    "store.message.no_such_contact",
    "store.message.sent_pending_confirmation",
    "store.order.cancelled_deleted",
    "store.order.placed",
    "store.order.suppressed_media_event",
    "store.playback_cache.hit",
    "store.response_cache.hit",
    "store.service.token_refused",
    "store.service_list.no_account",
    "store.session.account_closed",
    "store.session.unknown",
    "store.signup.email_taken",
];
