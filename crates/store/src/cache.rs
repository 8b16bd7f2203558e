//! Bounded in-memory caches of recording audio, one set per process.
//!
//! Stored audio never changes, so the store keeps recently played audio in
//! memory twice over: the *playback cache* behind [`Store::audio`] (own
//! playback and the export's service reads), keyed by account and recording
//! and consulted only after the ownership check, and the *response cache* in
//! front of `GET /v1/recordings/{id}/audio`, keyed by account and path. Both
//! are per process: a crash or a restart starts them empty.
//!
//! Every entry remembers which recording it holds and for which account, so
//! deleting a recording or closing an account evicts it from both caches
//! before the deletion is acknowledged (erasure holds). A device transfer
//! moves no recording (captures stay with the owner of their ownership
//! epoch), so it evicts nothing. A fill carries the eviction generation it
//! read under: if anything was evicted since, the fill is dropped, so a
//! read that raced a deletion on another thread cannot put the deleted audio
//! back.
//!
//! Eviction is first in, first out by insertion order (a `VecDeque`), never
//! by map order, so the caches behave the same on every run of a seed.
//!
//! [`Store::audio`]: crate::Store::audio

use crosstalk_model::{AccountId, RecordingId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Most entries one cache holds.
pub const CACHE_MAX_ENTRIES: usize = 256;
/// Most audio bytes one cache holds (a single recording is at most
/// `crosstalk_model::MAX_AUDIO_BYTES`).
pub const CACHE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The playback cache's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PlaybackKey {
    /// The correct key: whose recording, and which.
    Recording { account: u64, recording: u64 },
    /// The planted fingerprint-cache key: what the audio sounds like.
    Fingerprint(u64),
}

struct Entry {
    /// The account the audio was served to when it was cached.
    account: AccountId,
    recording: RecordingId,
    audio: Vec<u8>,
}

struct Inner<K> {
    entries: BTreeMap<K, Entry>,
    /// Insertion order, oldest first: the eviction order.
    order: VecDeque<K>,
    bytes: usize,
    /// Bumped by every eviction for erasure (not by capacity evictions).
    generation: u64,
}

pub(crate) struct AudioCache<K> {
    inner: Mutex<Inner<K>>,
}

impl<K: Ord + Clone> AudioCache<K> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: BTreeMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // Nothing panics while holding the lock; if something ever did, the
        // maps are still consistent (every update is complete or not begun).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &K) -> Option<Vec<u8>> {
        self.lock().entries.get(key).map(|e| e.audio.clone())
    }

    /// The eviction generation: read it before reading the database, and
    /// pass it to [`AudioCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Cache `audio` (recording `recording`, served to `account`) under
    /// `key`, unless something was evicted since `generation` was read.
    pub(crate) fn insert(
        &self,
        generation: u64,
        key: K,
        account: AccountId,
        recording: RecordingId,
        audio: &[u8],
    ) {
        if audio.len() > CACHE_MAX_BYTES {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            // Something was erased since the fill read the database.
            crosstalk_service::probe!("store.cache.stale_fill_dropped");
            return;
        }
        if inner.entries.contains_key(&key) {
            return;
        }
        while inner.entries.len() >= CACHE_MAX_ENTRIES
            || inner.bytes + audio.len() > CACHE_MAX_BYTES
        {
            crosstalk_service::probe!("store.cache.capacity_eviction");
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes = inner.bytes.saturating_sub(gone.audio.len());
            }
        }
        inner.bytes += audio.len();
        inner.order.push_back(key.clone());
        inner.entries.insert(
            key,
            Entry {
                account,
                recording,
                audio: audio.to_vec(),
            },
        );
    }

    /// Evict every entry holding one of `recordings`, or cached for
    /// `account` when it is given.
    pub(crate) fn evict(&self, recordings: &[RecordingId], account: Option<AccountId>) {
        let mut inner = self.lock();
        inner.generation += 1;
        let doomed: Vec<K> = inner
            .entries
            .iter()
            .filter(|(_, e)| recordings.contains(&e.recording) || Some(e.account) == account)
            .map(|(k, _)| k.clone())
            .collect();
        if doomed.is_empty() {
            return;
        }
        crosstalk_service::probe!("store.cache.erasure_eviction");
        for key in &doomed {
            if let Some(gone) = inner.entries.remove(key) {
                inner.bytes = inner.bytes.saturating_sub(gone.audio.len());
            }
        }
        let Inner { entries, order, .. } = &mut *inner;
        order.retain(|k| entries.contains_key(k));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_first_in_first_out() {
        let cache: AudioCache<u64> = AudioCache::new();
        for i in 0..(CACHE_MAX_ENTRIES as u64 + 10) {
            let g = cache.generation();
            cache.insert(g, i, AccountId(1), RecordingId(i), &[i as u8]);
        }
        assert_eq!(cache.len(), CACHE_MAX_ENTRIES);
        assert_eq!(cache.get(&0), None, "the oldest went first");
        assert_eq!(cache.get(&(CACHE_MAX_ENTRIES as u64 + 9)), Some(vec![9]));
    }

    #[test]
    fn eviction_drops_entries_and_stale_fills() {
        let cache: AudioCache<u64> = AudioCache::new();
        let g = cache.generation();
        cache.insert(g, 1, AccountId(1), RecordingId(10), b"a");
        cache.insert(g, 2, AccountId(2), RecordingId(20), b"b");
        cache.insert(g, 3, AccountId(2), RecordingId(30), b"c");
        cache.evict(&[RecordingId(10)], None);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), Some(b"b".to_vec()));
        cache.evict(&[], Some(AccountId(2)));
        assert_eq!(cache.len(), 0);
        // A fill that read before the eviction is dropped.
        cache.insert(g, 4, AccountId(1), RecordingId(40), b"d");
        assert_eq!(cache.get(&4), None);
        let g = cache.generation();
        cache.insert(g, 4, AccountId(1), RecordingId(40), b"d");
        assert_eq!(cache.get(&4), Some(b"d".to_vec()));
    }

    #[test]
    fn byte_budget_holds() {
        let cache: AudioCache<u64> = AudioCache::new();
        let big = vec![0u8; CACHE_MAX_BYTES / 2 + 1];
        let g = cache.generation();
        cache.insert(g, 1, AccountId(1), RecordingId(1), &big);
        cache.insert(g, 2, AccountId(1), RecordingId(2), &big);
        assert_eq!(cache.get(&1), None);
        assert!(cache.get(&2).is_some());
        cache.insert(
            g,
            3,
            AccountId(1),
            RecordingId(3),
            &vec![0u8; CACHE_MAX_BYTES + 1],
        );
        assert_eq!(cache.get(&3), None, "too large to cache at all");
    }
}
