//! Devices: registration, device tokens (stored as digests) and their
//! authentication, resale (transfer to another account) and factory reset.
//!
//! Ownership is kept in epochs. Every transfer or reset starts a new epoch
//! and issues a new device token (the old one stops working). A capture
//! carries the epoch its device was in when it heard it, so a capture made
//! before a resale but uploaded after it still belongs to the seller: the
//! history of a device is never handed to its next owner.

use crate::schema::{
    ACCOUNTS, AccountRecord, DEVICE_TOKENS, DEVICES, DeviceRecord, EMAILS, NEXT_DEVICE,
};
use crate::store::{Store, internal, next_id, token_digest};
use crosstalk_model::api::DeviceCredentials;
use crosstalk_model::{AccountId, DeviceId};
use crosstalk_service::ApiError;
use redb::{ReadableDatabase, ReadableTable};

/// Upper bound on ownership epochs per device (transfers plus resets).
pub const MAX_EPOCHS: usize = 1_000;

impl Store {
    /// Register a new device owned by `owner`; returns its id and bearer token.
    pub fn register_device(
        &self,
        owner: AccountId,
        name: &str,
    ) -> Result<(DeviceId, String), ApiError> {
        let now = self.clock.now_ms();
        let token = self.entropy.token_hex();
        let txn = self.db.begin_write().map_err(internal)?;
        let id = next_id(&txn, NEXT_DEVICE)?;
        let record = DeviceRecord {
            id: DeviceId(id),
            owner,
            name: name.to_string(),
            registered_at_ms: now,
            epoch: 0,
            owners: vec![owner],
            token_digest: token_digest(&token),
        };
        let json = serde_json::to_string(&record).map_err(internal)?;
        txn.open_table(DEVICES)
            .map_err(internal)?
            .insert(id, json.as_str())
            .map_err(internal)?;
        txn.open_table(DEVICE_TOKENS)
            .map_err(internal)?
            .insert(token_digest(&token).as_str(), id)
            .map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok((DeviceId(id), token))
    }

    /// The device a device token belongs to, with its current owner.
    pub fn authenticate_device(&self, token: &str) -> Result<DeviceRecord, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let tokens = txn.open_table(DEVICE_TOKENS).map_err(internal)?;
        let id = match tokens.get(token_digest(token).as_str()).map_err(internal)? {
            Some(id) => id.value(),
            None => {
                crosstalk_service::probe!("store.device.unknown_token");
                return Err(ApiError::unauthorized("unknown device token"));
            }
        };
        let devices = txn.open_table(DEVICES).map_err(internal)?;
        let json = devices
            .get(id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("device token without device"))?;
        let device: DeviceRecord = serde_json::from_str(json.value()).map_err(internal)?;
        match self.account_in(&txn, device.owner)? {
            Some(owner) if owner.closed_at_ms.is_none() => Ok(device),
            _ => {
                crosstalk_service::probe!("store.device.account_closed");
                Err(ApiError::unauthorized("this device's account is closed"))
            }
        }
    }

    /// Hand `device` from `owner` to the account registered under `to_email`.
    pub fn transfer_device(
        &self,
        owner: AccountId,
        device: DeviceId,
        to_email: &str,
    ) -> Result<DeviceCredentials, ApiError> {
        let email = to_email.trim().to_ascii_lowercase();
        let recipient = {
            let txn = self.db.begin_read().map_err(internal)?;
            let emails = txn.open_table(EMAILS).map_err(internal)?;
            let id = emails
                .get(email.as_str())
                .map_err(internal)?
                .map(|v| AccountId(v.value()));
            match id {
                Some(id)
                    if self
                        .account_in(&txn, id)?
                        .is_some_and(|a| a.closed_at_ms.is_none()) =>
                {
                    id
                }
                _ => return Err(ApiError::not_found("no account with that email")),
            }
        };
        if recipient == owner {
            return Err(ApiError::bad_request(
                "the device already belongs to this account",
            ));
        }
        self.new_epoch(owner, device, recipient)
    }

    /// Factory reset: a new epoch under the same owner and a new token; the
    /// device forgets whatever it had not uploaded.
    pub fn reset_device(
        &self,
        owner: AccountId,
        device: DeviceId,
    ) -> Result<DeviceCredentials, ApiError> {
        self.new_epoch(owner, device, owner)
    }

    fn new_epoch(
        &self,
        owner: AccountId,
        device: DeviceId,
        next_owner: AccountId,
    ) -> Result<DeviceCredentials, ApiError> {
        let token = self.entropy.token_hex();
        let txn = self.db.begin_write().map_err(internal)?;
        let credentials = {
            let mut devices = txn.open_table(DEVICES).map_err(internal)?;
            let mut record: DeviceRecord = match devices.get(device.0).map_err(internal)? {
                Some(json) => serde_json::from_str(json.value()).map_err(internal)?,
                None => return Err(ApiError::not_found("no such device")),
            };
            // Someone else's device is reported like one that does not exist.
            if record.owner != owner {
                return Err(ApiError::not_found("no such device"));
            }
            if record.owners.len() >= MAX_EPOCHS {
                return Err(ApiError::conflict(
                    "this device has changed hands too often",
                ));
            }
            let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
            let recipient: Option<AccountRecord> =
                match accounts.get(next_owner.0).map_err(internal)? {
                    Some(json) => Some(serde_json::from_str(json.value()).map_err(internal)?),
                    None => None,
                };
            if recipient.is_none_or(|a| a.closed_at_ms.is_some()) {
                return Err(ApiError::not_found("no account with that email"));
            }
            let mut tokens = txn.open_table(DEVICE_TOKENS).map_err(internal)?;
            tokens
                .remove(record.token_digest.as_str())
                .map_err(internal)?;
            record.token_digest = token_digest(&token);
            tokens
                .insert(record.token_digest.as_str(), device.0)
                .map_err(internal)?;
            record.epoch += 1;
            record.owners.push(next_owner);
            record.owner = next_owner;
            let json = serde_json::to_string(&record).map_err(internal)?;
            devices.insert(device.0, json.as_str()).map_err(internal)?;
            DeviceCredentials {
                device_id: device,
                device_token: token,
                ownership_epoch: record.epoch,
            }
        };
        txn.commit().map_err(internal)?;
        Ok(credentials)
    }
}
