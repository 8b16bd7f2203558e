//! Recordings: uploads (idempotent per device and upload key, filed under
//! the owner of the capture's ownership epoch), the owner index every
//! listing and the export read, HMAC-bound list cursors (bound to the
//! account and the scope), playback behind the ownership check (through the
//! playback cache), deletion (one / capture-time range / all) with cache
//! eviction before the acknowledgement, and the export's liveness check.

use crate::cache::PlaybackKey;
use crate::schema::{ACCOUNTS, AccountRecord, DeviceRecord};
use crate::schema::{
    AUDIO, BY_OWNER, NEXT_RECORDING, PRINT_OF, RECORDINGS, UPLOAD_KEYS, UploadKeyRecord,
};
use crate::store::{Store, internal, next_id};
use base64::Engine;
use crosstalk_model::api::{RecordingPage, RecordingView};
use crosstalk_model::{AccountId, Recording, RecordingId, sha256_hex};
use crosstalk_service::{ApiError, Bug};
use hmac::{Hmac, Mac};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use sha2::Sha256;

/// Largest page a listing returns, whatever the caller asks for.
pub const MAX_PAGE_ITEMS: usize = 100;

fn content_digest(audio_sha256: &str, transcript: &str) -> String {
    sha256_hex(format!("{audio_sha256}\n{transcript}").as_bytes())
}

/// Which of an account's recordings to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteSelection {
    One(RecordingId),
    /// Captured (device time) within `[from_ms, to_ms]`.
    CapturedBetween {
        from_ms: u64,
        to_ms: u64,
    },
    All,
}

/// Who a listing is for: the owner reading their own history, or the export
/// service reading on a subject's behalf. Cursors are bound to the scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListScope {
    Owner,
    Service,
}

impl ListScope {
    fn tag(self) -> &'static str {
        match self {
            ListScope::Owner => "owner",
            ListScope::Service => "service",
        }
    }
}

/// A validated upload, ready to store.
pub struct NewRecording {
    pub upload_key: String,
    pub captured_at_ms: u64,
    pub transcript: String,
    pub audio: Vec<u8>,
    /// The device's ownership epoch at capture; `None` means the current one.
    pub ownership_epoch: Option<u32>,
    pub intent: Option<crosstalk_model::api::Intent>,
}

/// The fingerprint the planted fingerprint-cache files a recording under;
/// `None` when there is none (or the table was never written).
fn print_of(txn: &redb::ReadTransaction, id: RecordingId) -> Result<Option<u64>, ApiError> {
    match txn.open_table(PRINT_OF) {
        Ok(prints) => Ok(prints.get(id.0).map_err(internal)?.map(|p| p.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

/// The capture's owner must still be open *inside* the ingest transaction:
/// a capture from before a transfer belongs to an earlier owner who may
/// have closed their account since, and on a multi-threaded server an
/// account may close between authentication and here.
fn capture_owner_open(txn: &WriteTransaction, owner: AccountId) -> Result<(), ApiError> {
    let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
    let record: Option<AccountRecord> = match accounts.get(owner.0).map_err(internal)? {
        Some(json) => Some(serde_json::from_str(json.value()).map_err(internal)?),
        None => None,
    };
    if record.is_none_or(|a| a.closed_at_ms.is_some()) {
        crosstalk_service::probe!("store.ingest.owner_closed");
        return Err(ApiError::gone(
            "the account that owned this device then is closed",
        ));
    }
    Ok(())
}

impl Store {
    /// The account that owned `device` in the capture's ownership epoch
    /// (`None`: the current one); refused if the epoch is ahead of the
    /// device's.
    fn capture_owner(
        &self,
        device: &DeviceRecord,
        ownership_epoch: Option<u32>,
    ) -> Result<AccountId, ApiError> {
        let epoch = ownership_epoch.unwrap_or(device.epoch);
        if epoch > device.epoch {
            return Err(ApiError::bad_request(
                "ownership_epoch is ahead of the device's",
            ));
        }
        let owner = if self.injected.on(Bug::ResaleHistory) {
            // resale-history (Nest/Wink 2019): history follows the device, not the epoch.
            device.owner
        } else {
            *device
                .owners
                .get(epoch as usize)
                .ok_or_else(|| ApiError::internal("device without owner for an epoch"))?
        };
        Ok(owner)
    }

    /// Store one capture from `device` for the account that owned the device
    /// when it captured it (its ownership epoch). Idempotent per (device,
    /// upload key): a retry returns the first recording's id.
    pub fn ingest(
        &self,
        device: &DeviceRecord,
        upload: NewRecording,
    ) -> Result<(RecordingId, bool), ApiError> {
        let now = self.clock.now_ms();
        let digest = sha256_hex(&upload.audio);
        let owner = self.capture_owner(device, upload.ownership_epoch)?;
        let print = crate::media::fingerprint(&upload.audio);
        // The owner's account may close on another thread here.
        self.injected.interleave("store.ingest.before_write");
        let txn = self.db.begin_write().map_err(internal)?;
        capture_owner_open(&txn, owner)?;
        let id = {
            let mut keys = txn.open_table(UPLOAD_KEYS).map_err(internal)?;
            let content = content_digest(&digest, &upload.transcript);
            if let Some(existing) = keys
                .get((device.id.0, upload.upload_key.as_str()))
                .map_err(internal)?
            {
                let existing: UploadKeyRecord =
                    serde_json::from_str(existing.value()).map_err(internal)?;
                if existing.content != content {
                    crosstalk_service::probe!("store.ingest.upload_key_conflict");
                    return Err(ApiError::conflict(
                        "upload key reused for different content",
                    ));
                }
                crosstalk_service::probe!("store.ingest.duplicate_upload");
                // Stored before (and possibly deleted since): never stored twice.
                return Ok((existing.recording, true));
            }
            let id = if self.injected.on(Bug::ClockIdCollision) {
                // clock-id-collision (broadcast burst): "ids from device time".
                upload.captured_at_ms
            } else {
                next_id(&txn, NEXT_RECORDING)?
            };
            let key_record = serde_json::to_string(&UploadKeyRecord {
                recording: RecordingId(id),
                content,
            })
            .map_err(internal)?;
            keys.insert(
                (device.id.0, upload.upload_key.as_str()),
                key_record.as_str(),
            )
            .map_err(internal)?;
            let record = Recording {
                id: RecordingId(id),
                owner,
                device: device.id,
                captured_at_ms: upload.captured_at_ms,
                received_at_ms: now,
                transcript: upload.transcript,
                audio_sha256: digest,
                audio_len: upload.audio.len() as u64,
            };
            let json = serde_json::to_string(&record).map_err(internal)?;
            txn.open_table(RECORDINGS)
                .map_err(internal)?
                .insert(id, json.as_str())
                .map_err(internal)?;
            txn.open_table(AUDIO)
                .map_err(internal)?
                .insert(id, upload.audio.as_slice())
                .map_err(internal)?;
            txn.open_table(BY_OWNER)
                .map_err(internal)?
                .insert((owner.0, id), ())
                .map_err(internal)?;
            self.note_capture(&txn, &record, print, upload.intent.as_ref())?;
            id
        };
        txn.commit().map_err(internal)?;
        Ok((RecordingId(id), false))
    }

    fn cursor_mac(&self, scope: ListScope, account: AccountId, after: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cursor_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(format!("cursor/v1|{}|{}|{}", scope.tag(), account.0, after).as_bytes());
        mac
    }

    fn encode_cursor(&self, scope: ListScope, account: AccountId, after: u64) -> String {
        let tag = self
            .cursor_mac(scope, account, after)
            .finalize()
            .into_bytes();
        format!("{after}.{}", hex::encode(&tag[..16]))
    }

    /// The recording id a cursor continues after, if the cursor was minted
    /// by this store for this account and scope.
    fn decode_cursor(
        &self,
        scope: ListScope,
        account: AccountId,
        cursor: &str,
    ) -> Result<u64, ApiError> {
        let invalid = || ApiError::bad_request("invalid cursor");
        let (after, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let after: u64 = after.parse().map_err(|_| invalid())?;
        let tag = hex::decode(tag).map_err(|_| invalid())?;
        self.cursor_mac(scope, account, after)
            .verify_truncated_left(&tag)
            .map_err(|_| invalid())?;
        if tag.len() != 16 {
            return Err(invalid());
        }
        Ok(after)
    }

    /// One page of `account`'s recordings in id order.
    pub fn list(
        &self,
        scope: ListScope,
        account: AccountId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordingPage, ApiError> {
        if self.injected.on(Bug::UnscopedCursor)
            && let Some(cursor) = cursor
        {
            // unscoped-cursor (paging bugs): the cursor is a global offset, not bound to the account.
            return self.list_from_offset(account, cursor, limit);
        }
        let after = match cursor {
            Some(c) => self.decode_cursor(scope, account, c)?,
            None => 0,
        };
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
        let start = after
            .checked_add(1)
            .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
        let mut items = Vec::new();
        let mut more = false;
        for entry in index
            .range((account.0, start)..=(account.0, u64::MAX))
            .map_err(internal)?
        {
            let (key, _) = entry.map_err(internal)?;
            if items.len() == limit {
                more = true;
                break;
            }
            let (_, id) = key.value();
            let json = recordings
                .get(id)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("index entry without recording"))?;
            let record: Recording = serde_json::from_str(json.value()).map_err(internal)?;
            if record.owner != account {
                return Err(ApiError::internal("owner index and recording disagree"));
            }
            items.push(RecordingView::from(&record));
        }
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) if self.injected.on(Bug::UnscopedCursor) => {
                // unscoped-cursor (paging bugs): how far into the whole index this page ended.
                let offset = index
                    .range(..=(account.0, last.id.0))
                    .map_err(internal)?
                    .count();
                Some(offset.to_string())
            }
            (true, Some(last)) => Some(self.encode_cursor(scope, account, last.id.0)),
            _ => None,
        };
        Ok(RecordingPage {
            account_id: account,
            items,
            next_cursor,
        })
    }

    /// The planted unscoped-cursor's continuation page: `limit` entries of
    /// the whole owner index from a plain offset, whoever owns them.
    fn list_from_offset(
        &self,
        account: AccountId,
        cursor: &str,
        limit: usize,
    ) -> Result<RecordingPage, ApiError> {
        let offset: usize = cursor
            .parse()
            .map_err(|_| ApiError::bad_request("invalid cursor"))?;
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
        let mut entries = index.iter().map_err(internal)?.skip(offset);
        let mut items = Vec::new();
        for entry in entries.by_ref().take(limit) {
            let (key, _) = entry.map_err(internal)?;
            let json = recordings
                .get(key.value().1)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("index entry without recording"))?;
            let record: Recording = serde_json::from_str(json.value()).map_err(internal)?;
            items.push(RecordingView::from(&record));
        }
        let more = match entries.next() {
            Some(entry) => entry.map_err(internal)?.0.value().0 == account.0,
            None => false,
        };
        let next_cursor = more.then(|| offset.saturating_add(items.len()).to_string());
        Ok(RecordingPage {
            account_id: account,
            items,
            next_cursor,
        })
    }

    /// The audio of recording `id` if `account` owns it. A recording that
    /// exists but belongs to someone else is reported exactly like one that
    /// does not exist.
    ///
    /// Served from the playback cache when it holds the recording; the
    /// ownership check always comes first.
    pub fn audio(&self, account: AccountId, id: RecordingId) -> Result<Vec<u8>, ApiError> {
        let generation = self.playback_cache.generation();
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        if index.get((account.0, id.0)).map_err(internal)?.is_none() {
            crosstalk_service::probe!("store.audio.not_owned_refused");
            return Err(ApiError::not_found("no such recording"));
        }
        let mut key = PlaybackKey::Recording {
            account: account.0,
            recording: id.0,
        };
        if self.injected.on(Bug::FingerprintCache) {
            // fingerprint-cache (San Diego broadcast, Wyze 2024): "perceptual dedupe", one entry per sound.
            if let Some(print) = print_of(&txn, id)? {
                key = PlaybackKey::Fingerprint(print);
            }
        }
        if let Some(bytes) = self.playback_cache.get(&key) {
            crosstalk_service::probe!("store.playback_cache.hit");
            return Ok(bytes);
        }
        let audio = txn.open_table(AUDIO).map_err(internal)?;
        let bytes = audio
            .get(id.0)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("recording without audio"))?
            .value()
            .to_vec();
        // A deletion on another thread may commit here (the race the
        // generation check exists for).
        self.injected.interleave("store.audio.before_fill");
        let generation = if self.injected.on(Bug::StaleCacheFill) {
            // stale-cache-fill (Steam 2015, Wyze 2024): "read the generation when the entry goes in".
            self.playback_cache.generation()
        } else {
            generation
        };
        self.playback_cache
            .insert(generation, key, account, id, &bytes);
        Ok(bytes)
    }

    /// Drop `recordings` (and, when given, everything cached for `account`)
    /// from both audio caches. Called after a deletion committed and before
    /// it is acknowledged.
    pub(crate) fn evict_cached(&self, recordings: &[RecordingId], account: Option<AccountId>) {
        self.playback_cache.evict(recordings, account);
        self.response_cache.evict(recordings, account);
        // Whatever follows an eviction races the playbacks it was for.
        self.injected.interleave("store.cache.after_evict");
    }

    /// Delete `selection` of `account`'s recordings from every table and
    /// index (the listing, the audio, the index the export reads) in one
    /// transaction. Returns the ids deleted; returns only once durable.
    pub fn delete(
        &self,
        account: AccountId,
        selection: DeleteSelection,
    ) -> Result<Vec<RecordingId>, ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let deleted = {
            let mut index = txn.open_table(BY_OWNER).map_err(internal)?;
            let mut recordings = txn.open_table(RECORDINGS).map_err(internal)?;
            let mut audio = txn.open_table(AUDIO).map_err(internal)?;
            let candidates: Vec<u64> = match selection {
                DeleteSelection::One(id) => {
                    if index.get((account.0, id.0)).map_err(internal)?.is_none() {
                        crosstalk_service::probe!("store.delete.not_owned_refused");
                        return Err(ApiError::not_found("no such recording"));
                    }
                    vec![id.0]
                }
                _ => {
                    let mut ids = Vec::new();
                    for entry in index
                        .range((account.0, 0)..=(account.0, u64::MAX))
                        .map_err(internal)?
                    {
                        ids.push(entry.map_err(internal)?.0.value().1);
                    }
                    ids
                }
            };
            let mut deleted = Vec::new();
            for id in candidates {
                let record: Recording = {
                    let json = recordings
                        .get(id)
                        .map_err(internal)?
                        .ok_or_else(|| ApiError::internal("index entry without recording"))?;
                    serde_json::from_str(json.value()).map_err(internal)?
                };
                let selected = match selection {
                    DeleteSelection::One(_) | DeleteSelection::All => true,
                    DeleteSelection::CapturedBetween { from_ms, to_ms } => {
                        (from_ms..=to_ms).contains(&record.captured_at_ms)
                    }
                };
                if !selected {
                    continue;
                }
                index.remove((account.0, id)).map_err(internal)?;
                recordings.remove(id).map_err(internal)?;
                audio.remove(id).map_err(internal)?;
                deleted.push(RecordingId(id));
            }
            deleted
        };
        txn.commit().map_err(internal)?;
        self.evict_cached(&deleted, None);
        Ok(deleted)
    }

    /// Which of `ids` `account` still has (not deleted).
    pub fn live_recordings(
        &self,
        account: AccountId,
        ids: &[RecordingId],
    ) -> Result<Vec<RecordingId>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        let audio = txn.open_table(AUDIO).map_err(internal)?;
        let mut live = Vec::new();
        for id in ids {
            if index.get((account.0, id.0)).map_err(internal)?.is_some()
                && audio.get(id.0).map_err(internal)?.is_some()
            {
                live.push(*id);
            }
        }
        Ok(live)
    }
}

/// Decode and validate an upload's base64 audio.
pub fn decode_audio(audio_base64: &str) -> Result<Vec<u8>, ApiError> {
    // Base64 inflates by 4/3; refuse before decoding anything too large.
    if audio_base64.len() / 4 * 3 > crosstalk_model::MAX_AUDIO_BYTES + 3 {
        return Err(ApiError::too_large(format!(
            "audio exceeds {} bytes",
            crosstalk_model::MAX_AUDIO_BYTES
        )));
    }
    let audio = base64::engine::general_purpose::STANDARD
        .decode(audio_base64)
        .map_err(|e| ApiError::bad_request(format!("audio_base64 is not valid base64: {e}")))?;
    if audio.len() > crosstalk_model::MAX_AUDIO_BYTES {
        return Err(ApiError::too_large(format!(
            "audio exceeds {} bytes",
            crosstalk_model::MAX_AUDIO_BYTES
        )));
    }
    if audio.is_empty() {
        return Err(ApiError::bad_request("audio is empty"));
    }
    Ok(audio)
}
