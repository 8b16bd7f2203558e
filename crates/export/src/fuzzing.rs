//! Entry points for the fuzz targets in `fuzz/` (and for the ordinary test
//! that replays their committed corpora). Each takes raw bytes and panics
//! only when it finds a real defect.

use crate::archive::{ArchiveItem, build_archive, read_archive};
use crate::link::{self, LinkClaims};
use crate::worker::in_snapshot;
use crosstalk_model::api::RecordingView;
use crosstalk_model::{AccountId, DeviceId, ExportId, RecordingId};
use std::collections::BTreeMap;

/// Link tokens: arbitrary input never panics the verifier, no token is
/// accepted unless it is exactly the one minted for its claims under the
/// same key, and minted tokens always verify (and only under their key).
///
/// Input layout: 32 bytes of key, 40 bytes of claims, the rest a candidate
/// token (lossy UTF-8). Shorter inputs are padded with zeros.
pub fn link_token(data: &[u8]) {
    let mut fixed = [0u8; 72];
    let head = data.len().min(72);
    fixed[..head].copy_from_slice(&data[..head]);
    let candidate = String::from_utf8_lossy(data.get(72..).unwrap_or(&[]));
    let key = &fixed[..32];
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&fixed[32 + i * 8..40 + i * 8]);
        u64::from_be_bytes(b)
    };
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&fixed[56..72]);
    let claims = LinkClaims {
        export_id: ExportId(word(0)),
        subject: AccountId(word(1)),
        expires_at_ms: word(2),
        nonce,
    };

    // Arbitrary candidates: accepted only if canonical for their claims.
    if let Ok(accepted) = link::verify(key, &candidate) {
        assert_eq!(
            link::mint(key, &accepted),
            candidate,
            "a token was accepted that is not the one minted for its claims"
        );
    }
    // Minted tokens verify to their claims, and not under another key.
    let minted = link::mint(key, &claims);
    assert_eq!(link::verify(key, &minted), Ok(claims));
    let mut other_key = fixed[..32].to_vec();
    other_key[0] ^= 0x80;
    assert!(
        link::verify(&other_key, &minted).is_err(),
        "a token verified under the wrong key"
    );
    // A token for another subject or export never verifies as this one.
    let mut foreign = claims;
    foreign.subject = AccountId(claims.subject.0 ^ 1);
    let foreign_token = link::mint(key, &foreign);
    assert_ne!(
        link::verify(key, &foreign_token).map(|c| c.subject),
        Ok(claims.subject)
    );
}

/// Archive parsing: arbitrary bytes never panic the reader, and whatever it
/// accepts is internally consistent (every manifest entry has its file with
/// a matching digest, no unnamed files).
pub fn archive_bytes(data: &[u8]) {
    if let Ok((manifest, files)) = crate::archive::read_archive(data) {
        assert_eq!(manifest.recordings.len(), files.len());
        for entry in &manifest.recordings {
            let audio = files
                .get(&entry.audio_path)
                .expect("read_archive checked presence");
            assert_eq!(crosstalk_model::sha256_hex(audio), entry.sha256);
        }
    }
}

/// The packager, end to end: arbitrary recordings of several accounts and
/// an export request (subject, snapshot time) → the worker's selection of
/// the subject's listing → [`build_archive`](crate::archive::build_archive)
/// → [`read_archive`](crate::archive::read_archive) → exactly the model's set
/// for that subject: every one of its recordings received by the snapshot,
/// byte for byte with its transcript, and nothing else. Packaging is
/// deterministic and does not depend on the order items arrive in; an item
/// whose audio does not match its digest, or a repeated id, is refused.
///
/// Input layout: byte 0 the subject (of 4 accounts), bytes 1..3 the
/// snapshot time; then records of `owner, id, received (2 bytes), length,
/// audio bytes, transcript length, transcript bytes`, until the input ends.
pub fn archive(data: &[u8]) {
    let Some((subject, snapshot_at_ms, store)) = archive_input(data) else {
        return;
    };
    // The model's set for the subject, decided here from ground truth.
    let expected: BTreeMap<u64, &ArchiveItem> = store
        .iter()
        .filter(|(_, (owner, item))| {
            *owner == subject && item.recording.received_at_ms <= snapshot_at_ms
        })
        .map(|(id, (_, item))| (*id, item))
        .collect();
    // What the worker stages: the subject's listing (the store scopes it),
    // filtered by the worker's snapshot rule.
    let staged: Vec<ArchiveItem> = store
        .values()
        .filter(|(owner, _)| *owner == subject)
        .map(|(_, item)| item.clone())
        .filter(|item| in_snapshot(&item.recording, snapshot_at_ms))
        .collect();
    let export_id = ExportId(7);
    let bytes = match build_archive(subject, export_id, snapshot_at_ms, &staged) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a consistent selection was refused by the packager: {e}"),
    };
    let (manifest, files) = match read_archive(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => panic!("the packager's own archive does not parse: {e}"),
    };
    assert_eq!(
        (
            manifest.subject,
            manifest.export_id,
            manifest.snapshot_at_ms
        ),
        (subject, export_id, snapshot_at_ms)
    );
    let got: Vec<u64> = manifest.recordings.iter().map(|e| e.id.0).collect();
    let want: Vec<u64> = expected.keys().copied().collect();
    assert_eq!(
        got, want,
        "the archive is not exactly the subject's recordings at the snapshot"
    );
    for entry in &manifest.recordings {
        let item = expected[&entry.id.0];
        assert_eq!(
            entry.transcript, item.recording.transcript,
            "a transcript changed in the archive"
        );
        assert_eq!(
            files.get(&entry.audio_path),
            Some(&item.audio),
            "audio changed in the archive"
        );
    }
    assert_eq!(
        files.len(),
        expected.len(),
        "the archive holds files outside its manifest"
    );
    check_packaging_order_and_refusals(subject, export_id, snapshot_at_ms, &staged, bytes);
}

/// The store [`archive`] models: recording id -> (owner, item).
type StoreModel = BTreeMap<u64, (AccountId, ArchiveItem)>;

/// Every account's recordings by id in the store, as [`archive`]'s input
/// lays them out, with the subject and the snapshot time; `None` when the
/// input is too short for its head.
fn archive_input(data: &[u8]) -> Option<(AccountId, u64, StoreModel)> {
    let mut at = 0usize;
    let mut next = |n: usize| -> Option<&[u8]> {
        let slice = data.get(at..at.checked_add(n)?)?;
        at += n;
        Some(slice)
    };
    let head = next(3)?;
    let subject = AccountId(u64::from(head[0] % 4));
    let snapshot_at_ms = u64::from(u16::from_be_bytes([head[1], head[2]]));
    // The store: recordings of every account, ids unique (a later record
    // with the same id is another upload, so it is skipped like the store's
    // counter would never produce it).
    let mut store: BTreeMap<u64, (AccountId, ArchiveItem)> = BTreeMap::new();
    while let Some(record) = next(5) {
        let owner = AccountId(u64::from(record[0] % 4));
        let id = u64::from(record[1]);
        let received_at_ms = u64::from(u16::from_be_bytes([record[2], record[3]]));
        let audio = next(usize::from(record[4] % 64))
            .unwrap_or_default()
            .to_vec();
        let text_len = next(1).map(|b| usize::from(b[0] % 48)).unwrap_or(0);
        let transcript = String::from_utf8_lossy(next(text_len).unwrap_or_default()).into_owned();
        let recording = RecordingView {
            id: RecordingId(id),
            device: DeviceId(owner.0 * 10),
            captured_at_ms: received_at_ms.saturating_sub(u64::from(record[4])),
            received_at_ms,
            transcript,
            audio_sha256: crosstalk_model::sha256_hex(&audio),
            audio_len: audio.len() as u64,
        };
        store
            .entry(id)
            .or_insert((owner, ArchiveItem { recording, audio }));
    }
    Some((subject, snapshot_at_ms, store))
}

/// The packaging of `staged` is deterministic and independent of the order
/// items arrive in (it gives `bytes` again), and refuses a repeated item or
/// audio off its digest.
fn check_packaging_order_and_refusals(
    subject: AccountId,
    export_id: ExportId,
    snapshot_at_ms: u64,
    staged: &[ArchiveItem],
    bytes: Vec<u8>,
) {
    // Deterministic, and independent of the order items were staged in.
    let mut reversed = staged.to_vec();
    reversed.reverse();
    assert_eq!(
        build_archive(subject, export_id, snapshot_at_ms, &reversed).ok(),
        Some(bytes)
    );
    // Refusals: a repeated item, or audio that is not what the listing said.
    if let Some(first) = staged.first() {
        let mut twice = staged.to_vec();
        twice.push(first.clone());
        assert!(
            build_archive(subject, export_id, snapshot_at_ms, &twice).is_err(),
            "a repeated id was packaged"
        );
        let mut tampered = staged.to_vec();
        tampered[0].audio.push(0x5a);
        assert!(
            build_archive(subject, export_id, snapshot_at_ms, &tampered).is_err(),
            "audio off its digest was packaged"
        );
    }
}
