//! Broadcast audio and the commands in it.
//!
//! When a television says "Alexa, order me a dollhouse", every speaker in
//! earshot hears the same audio at the same moment. The store therefore
//! never acts on a spoken command at once: a purchase is *held* for
//! the configured hold (`StoreConfig::hold_ms`, [`DEFAULT_HOLD_MS`] in
//! production). Each capture gets an acoustic fingerprint of its leading
//! audio; when captures with the same fingerprint arrive from at least
//! [`MEDIA_EVENT_HOUSEHOLDS`] different accounts — within [`MEDIA_WINDOW_MS`]
//! of each other by the devices' capture times (which survive late
//! uploads), or within the hold of each other by the store's own receive
//! times (which survive wrong device clocks, and wait for devices that were
//! offline when the broadcast aired) — they are a *media event*, and none of their held commands is
//! ever carried out. Each capture still belongs to
//! the household that captured it, and to no one else.

use crate::schema::{
    FINGERPRINTS, FINGERPRINTS_RECEIVED, HELD_ORDERS, NEXT_ORDER, ORDERS, ORDERS_BY_ACCOUNT,
    OrderRecord, PRINT_OF, RECORDINGS,
};
use crate::store::{Store, internal, next_id, rows_of_account};
use crosstalk_model::api::{Intent, OrderState, OrderView};
use crosstalk_model::{AccountId, Recording};
use crosstalk_service::{ApiError, Bug};
use redb::{ReadableDatabase, ReadableTable};
use std::collections::BTreeSet;

/// How long a spoken purchase is held before it is placed, unless
/// configured otherwise (`StoreConfig::hold_ms`): "your order will go
/// through in two minutes; say cancel to stop it". Long enough for the
/// other homes' captures of a broadcast to arrive through outages.
pub const DEFAULT_HOLD_MS: u64 = 120_000;
/// Captures this close in capture time with one fingerprint are one event.
pub const MEDIA_WINDOW_MS: u64 = 60_000;
/// Distinct accounts that make identical audio a media event.
pub const MEDIA_EVENT_HOUSEHOLDS: usize = 3;

/// Samples the fingerprint reads, and how coarsely it quantizes them.
const FINGERPRINT_SAMPLES: usize = 192;
const QUANTIZE_SHIFT: u32 = 11;

/// An acoustic fingerprint of a WAV's leading audio: its first samples,
/// coarsely quantized, hashed. Identical sound gives identical prints; the
/// trailing part of a capture (room noise, a device's own marks) does not
/// enter it. `None` for audio too short to fingerprint.
pub fn fingerprint(audio: &[u8]) -> Option<u64> {
    use sha2::{Digest, Sha256};
    let data = wav_data(audio).unwrap_or(audio);
    if data.len() < FINGERPRINT_SAMPLES * 2 {
        return None;
    }
    let mut hasher = Sha256::new();
    hasher.update(b"crosstalk/fingerprint/v1");
    for pair in data[..FINGERPRINT_SAMPLES * 2].chunks_exact(2) {
        let sample = i16::from_le_bytes([pair[0], pair[1]]);
        hasher.update([(sample >> QUANTIZE_SHIFT) as u8]);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Some(u64::from_be_bytes(first))
}

/// The `data` chunk of a RIFF/WAVE file.
fn wav_data(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12usize;
    while at.checked_add(8)? <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = at + 8;
        let end = body.checked_add(len)?.min(bytes.len());
        if id == b"data" {
            return Some(&bytes[body..end]);
        }
        at = end.checked_add(len & 1)?;
    }
    None
}

impl Store {
    /// Record a capture's fingerprint and hold its command, inside the
    /// ingest transaction.
    pub(crate) fn note_capture(
        &self,
        txn: &redb::WriteTransaction,
        recording: &Recording,
        print: Option<u64>,
        intent: Option<&Intent>,
    ) -> Result<(), ApiError> {
        if let Some(print) = print {
            txn.open_table(FINGERPRINTS)
                .map_err(internal)?
                .insert(
                    (print, recording.captured_at_ms, recording.id.0),
                    recording.owner.0,
                )
                .map_err(internal)?;
            txn.open_table(FINGERPRINTS_RECEIVED)
                .map_err(internal)?
                .insert(
                    (print, recording.received_at_ms, recording.id.0),
                    recording.owner.0,
                )
                .map_err(internal)?;
            if self.injected.on(Bug::FingerprintCache) {
                // fingerprint-cache: the lookup the planted playback cache keys by.
                txn.open_table(PRINT_OF)
                    .map_err(internal)?
                    .insert(recording.id.0, print)
                    .map_err(internal)?;
            }
        }
        if let Some(Intent::Message { contact_name }) = intent {
            self.hold_spoken_message(txn, recording, print, contact_name)?;
        }
        if let Some(Intent::Purchase { item }) = intent {
            let id = next_id(txn, NEXT_ORDER)?;
            let order = OrderRecord {
                id,
                account: recording.owner,
                item: item.clone(),
                source: recording.id,
                fingerprint: print,
                captured_at_ms: recording.captured_at_ms,
                received_at_ms: recording.received_at_ms,
                state: OrderState::Held,
            };
            let json = serde_json::to_string(&order).map_err(internal)?;
            txn.open_table(ORDERS)
                .map_err(internal)?
                .insert(id, json.as_str())
                .map_err(internal)?;
            txn.open_table(ORDERS_BY_ACCOUNT)
                .map_err(internal)?
                .insert((recording.owner.0, id), ())
                .map_err(internal)?;
            txn.open_table(HELD_ORDERS)
                .map_err(internal)?
                .insert(id, ())
                .map_err(internal)?;
        }
        Ok(())
    }

    /// Whether a capture with `print` at time `at_ms` (capture or receive
    /// time, matching `table`) is part of a media event: enough distinct
    /// accounts captured the same audio around then.
    fn is_media_event(
        table: &impl ReadableTable<(u64, u64, u64), u64>,
        print: u64,
        at_ms: u64,
        window_ms: u64,
    ) -> Result<bool, ApiError> {
        let from = at_ms.saturating_sub(window_ms);
        let to = at_ms.saturating_add(window_ms);
        let mut households = BTreeSet::new();
        for entry in table
            .range((print, from, 0)..=(print, to, u64::MAX))
            .map_err(internal)?
        {
            let (_, owner) = entry.map_err(internal)?;
            households.insert(owner.value());
            if households.len() >= MEDIA_EVENT_HOUSEHOLDS {
                crosstalk_service::probe!("store.media.event_detected");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Decide every held order whose hold has passed: suppressed if its
    /// capture is a media event, cancelled if its recording was deleted,
    /// placed otherwise; and every held spoken message the same way
    /// (pending its owner's confirmation instead of placed). Returns how
    /// many commands were decided.
    pub fn sweep_held_orders(&self) -> Result<usize, ApiError> {
        let now = self.clock.now_ms();
        let hold_ms = self.config.hold_ms;
        let txn = self.db.begin_write().map_err(internal)?;
        let decided = {
            let mut held = txn.open_table(HELD_ORDERS).map_err(internal)?;
            let mut orders = txn.open_table(ORDERS).map_err(internal)?;
            let prints = txn.open_table(FINGERPRINTS).map_err(internal)?;
            let received_prints = txn.open_table(FINGERPRINTS_RECEIVED).map_err(internal)?;
            let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
            let mut ids = Vec::new();
            for entry in held.iter().map_err(internal)? {
                ids.push(entry.map_err(internal)?.0.value());
            }
            let mut decided = 0;
            for id in ids {
                let mut order: OrderRecord = match orders.get(id).map_err(internal)? {
                    Some(json) => serde_json::from_str(json.value()).map_err(internal)?,
                    None => return Err(ApiError::internal("held order without record")),
                };
                if order.received_at_ms.saturating_add(hold_ms) > now {
                    continue;
                }
                order.state = if recordings.get(order.source.0).map_err(internal)?.is_none() {
                    crosstalk_service::probe!("store.order.cancelled_deleted");
                    OrderState::Cancelled
                } else if let Some(print) = order.fingerprint
                    && (Self::is_media_event(
                        &prints,
                        print,
                        order.captured_at_ms,
                        MEDIA_WINDOW_MS,
                    )? || Self::is_media_event(
                        &received_prints,
                        print,
                        order.received_at_ms,
                        hold_ms,
                    )?)
                {
                    crosstalk_service::probe!("store.order.suppressed_media_event");
                    OrderState::SuppressedMediaEvent
                } else {
                    crosstalk_service::probe!("store.order.placed");
                    OrderState::Placed
                };
                let json = serde_json::to_string(&order).map_err(internal)?;
                orders.insert(id, json.as_str()).map_err(internal)?;
                held.remove(id).map_err(internal)?;
                decided += 1;
            }
            decided
        };
        // redb opens a table once per transaction: the order tables above are
        // closed before the message sweep opens what it needs.
        let decided = decided + {
            let prints = txn.open_table(FINGERPRINTS).map_err(internal)?;
            let received_prints = txn.open_table(FINGERPRINTS_RECEIVED).map_err(internal)?;
            Self::sweep_held_messages(&txn, now, hold_ms, |print, captured, received| {
                Ok(
                    Self::is_media_event(&prints, print, captured, MEDIA_WINDOW_MS)?
                        || Self::is_media_event(&received_prints, print, received, hold_ms)?,
                )
            })?
        };
        txn.commit().map_err(internal)?;
        Ok(decided)
    }

    /// Sweep held orders every `interval` until the task is dropped.
    pub async fn run_order_sweeper(self: std::sync::Arc<Self>, interval: std::time::Duration) {
        loop {
            tokio::time::sleep(interval).await;
            // A failed sweep (say, a disk error) is retried at the next tick.
            let _ = self.sweep_held_orders();
        }
    }

    /// `account`'s orders, oldest first.
    pub fn orders(&self, account: AccountId) -> Result<Vec<OrderView>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let orders: Vec<OrderRecord> = rows_of_account(
            &txn,
            ORDERS_BY_ACCOUNT,
            ORDERS,
            account,
            "order index without order",
        )?;
        let mut out = Vec::new();
        for order in orders {
            if order.account != account {
                return Err(ApiError::internal("order index and order disagree"));
            }
            out.push(OrderView {
                order_id: order.id,
                item: order.item,
                source_recording: order.source,
                state: order.state,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: &[i16]) -> Vec<u8> {
        let mut out = b"RIFF\0\0\0\0WAVEdata".to_vec();
        out.extend_from_slice(&((samples.len() * 2) as u32).to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    #[test]
    fn same_leading_audio_same_print_whatever_follows() {
        let speech: Vec<i16> = (0..240)
            .map(|i| ((i * 997) % 20_000 - 10_000) as i16)
            .collect();
        let mut a = speech.clone();
        a.extend_from_slice(&[1, 2, 3]);
        let mut b = speech.clone();
        b.extend_from_slice(&[9, 9, 9, 9]);
        assert_eq!(fingerprint(&wav(&a)), fingerprint(&wav(&b)));
        let other: Vec<i16> = (0..240)
            .map(|i| ((i * 331) % 20_000 - 10_000) as i16)
            .collect();
        assert_ne!(fingerprint(&wav(&a)), fingerprint(&wav(&other)));
        assert_eq!(fingerprint(&wav(&speech[..10])), None);
    }
}
