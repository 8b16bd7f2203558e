//! Notifications: the account's verified contact channel.
//!
//! Services (the export service) deliver identity challenges and download
//! links here, to the account itself; only the account's own session reads
//! them. Nothing is ever sent to an address typed by a person or an agent.

use crate::schema::{ACCOUNTS, AccountRecord, NEXT_NOTIFICATION, NOTIFICATIONS};
use crate::store::{Store, internal, next_id};
use crosstalk_model::AccountId;
use crosstalk_model::api::Notification;
use crosstalk_service::ApiError;
use redb::{ReadableDatabase, ReadableTable};

/// Largest notification text, in bytes.
pub const MAX_NOTIFICATION_BYTES: usize = 4 * 1024;

impl Store {
    /// Deliver a notification to `account`'s own feed.
    pub fn notify(
        &self,
        account: AccountId,
        kind: &str,
        text: &str,
    ) -> Result<Notification, ApiError> {
        if kind.is_empty() || kind.len() > 64 || text.len() > MAX_NOTIFICATION_BYTES {
            return Err(ApiError::bad_request(
                "kind must be 1 to 64 bytes, text at most 4 KiB",
            ));
        }
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        let notification = {
            let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
            let record: Option<AccountRecord> = match accounts.get(account.0).map_err(internal)? {
                Some(json) => Some(serde_json::from_str(json.value()).map_err(internal)?),
                None => None,
            };
            if record.is_none_or(|a| a.closed_at_ms.is_some()) {
                return Err(ApiError::not_found("no such account"));
            }
            let seq = next_id(&txn, NEXT_NOTIFICATION)?;
            let notification = Notification {
                seq,
                kind: kind.to_string(),
                text: text.to_string(),
                at_ms: now,
            };
            let json = serde_json::to_string(&notification).map_err(internal)?;
            txn.open_table(NOTIFICATIONS)
                .map_err(internal)?
                .insert((account.0, seq), json.as_str())
                .map_err(internal)?;
            notification
        };
        txn.commit().map_err(internal)?;
        Ok(notification)
    }

    /// `account`'s notifications after `after` (a seq), oldest first.
    pub fn notifications(
        &self,
        account: AccountId,
        after: u64,
    ) -> Result<Vec<Notification>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let table = txn.open_table(NOTIFICATIONS).map_err(internal)?;
        let mut out = Vec::new();
        let start = after.saturating_add(1);
        for entry in table
            .range((account.0, start)..=(account.0, u64::MAX))
            .map_err(internal)?
        {
            let (_, json) = entry.map_err(internal)?;
            out.push(serde_json::from_str(json.value()).map_err(internal)?);
            if out.len() == 200 {
                break;
            }
        }
        Ok(out)
    }
}
