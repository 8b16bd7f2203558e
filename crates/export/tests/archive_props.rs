//! Properties of the packager: whatever recordings go in come back out of
//! the archive exactly, the bytes are a pure function of the input, and
//! inconsistent input is refused.

use crosstalk_export::archive::{
    ArchiveItem, MANIFEST_PATH, audio_path, build_archive, read_archive,
};
use crosstalk_model::api::{MANIFEST_FORMAT, Manifest, ManifestEntry, RecordingView};
use crosstalk_model::{AccountId, DeviceId, ExportId, RecordingId, sha256_hex};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;
use std::io::{Cursor, Write};

fn item(
    id: u64,
    device: u64,
    captured_at_ms: u64,
    received_at_ms: u64,
    transcript: String,
    audio: Vec<u8>,
) -> ArchiveItem {
    ArchiveItem {
        recording: RecordingView {
            id: RecordingId(id),
            device: DeviceId(device),
            captured_at_ms,
            received_at_ms,
            transcript,
            audio_sha256: sha256_hex(&audio),
            audio_len: audio.len() as u64,
        },
        audio,
    }
}

fn transcript() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,64}",
        Just(String::new()),
        Just("héllo wörld — 你好 🎤🔊 \u{200b}\u{feff} \"quoted\" \\ back\nslash\t".to_string()),
    ]
}

/// Recordings with unique ids, in a random order.
fn items() -> impl Strategy<Value = Vec<ArchiveItem>> {
    let fields = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        transcript(),
        prop::collection::vec(any::<u8>(), 0..600),
    );
    prop::collection::btree_map(prop_oneof![0u64..64, any::<u64>()], fields, 0..10)
        .prop_map(|by_id| {
            by_id
                .into_iter()
                .map(|(id, (device, captured, received, transcript, audio))| {
                    item(id, device, captured, received, transcript, audio)
                })
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
}

fn expected_entries(items: &[ArchiveItem]) -> Vec<ManifestEntry> {
    let mut entries: Vec<ManifestEntry> = items
        .iter()
        .map(|i| ManifestEntry {
            id: i.recording.id,
            device: i.recording.device,
            captured_at_ms: i.recording.captured_at_ms,
            transcript: i.recording.transcript.clone(),
            audio_path: format!("audio/{}.wav", i.recording.id.0),
            sha256: sha256_hex(&i.audio),
        })
        .collect();
    entries.sort_by_key(|e| e.id);
    entries
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn round_trips_exactly_and_deterministically(
        items in items(),
        subject in any::<u64>(),
        export in any::<u64>(),
        snapshot in any::<u64>(),
    ) {
        let (subject, export) = (AccountId(subject), ExportId(export));
        let bytes = build_archive(subject, export, snapshot, &items).expect("consistent input builds");
        let (manifest, files) = read_archive(&bytes).expect("own output reads back");

        prop_assert_eq!(&manifest, &Manifest {
            format: MANIFEST_FORMAT.to_string(),
            subject,
            export_id: export,
            snapshot_at_ms: snapshot,
            recordings: expected_entries(&items),
        });
        let expected_files: BTreeMap<String, Vec<u8>> =
            items.iter().map(|i| (audio_path(&i.recording), i.audio.clone())).collect();
        prop_assert_eq!(&files, &expected_files);

        // Same input, same bytes; the input order does not matter.
        let again = build_archive(subject, export, snapshot, &items).expect("builds again");
        prop_assert_eq!(&again, &bytes);
        let mut reversed = items.clone();
        reversed.reverse();
        let reordered = build_archive(subject, export, snapshot, &reversed).expect("builds reordered");
        prop_assert_eq!(&reordered, &bytes);
    }

    #[test]
    fn refuses_audio_that_does_not_match_its_digest(
        mut items in items().prop_filter("need an item", |v| !v.is_empty()),
        pick in any::<Index>(),
        flip in any::<Index>(),
        mode in 0u8..3,
    ) {
        let at = pick.index(items.len());
        let target = &mut items[at];
        match mode {
            0 if !target.audio.is_empty() => {
                let at = flip.index(target.audio.len());
                target.audio[at] ^= 0x01;
            }
            0 | 1 => target.audio.push(0),
            _ => target.recording.audio_sha256 = sha256_hex(b"something else"),
        }
        prop_assert!(build_archive(AccountId(1), ExportId(1), 0, &items).is_err());
    }

    #[test]
    fn refuses_repeated_recording_ids(
        mut items in items().prop_filter("need an item", |v| !v.is_empty()),
        pick in any::<Index>(),
        other_audio in prop::collection::vec(any::<u8>(), 0..64),
        same_audio in any::<bool>(),
    ) {
        let original = items[pick.index(items.len())].clone();
        let duplicate = if same_audio {
            original.clone()
        } else {
            let r = &original.recording;
            item(r.id.0, r.device.0 ^ 1, r.captured_at_ms, r.received_at_ms, "another".into(), other_audio)
        };
        items.push(duplicate);
        let error = build_archive(AccountId(1), ExportId(1), 0, &items).expect_err("duplicate id refused");
        prop_assert!(error.contains("twice"), "{}", error);
    }

    #[test]
    fn read_archive_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read_archive(&bytes);
    }
}

fn sample() -> Vec<ArchiveItem> {
    vec![
        item(
            3,
            1,
            10,
            11,
            "third ünïcødé".into(),
            b"AUDIO-THREE-distinctive-payload".to_vec(),
        ),
        item(
            1,
            1,
            5,
            6,
            "first".into(),
            b"AUDIO-ONE-distinctive-payload".to_vec(),
        ),
    ]
}

#[test]
fn a_flipped_audio_byte_in_the_archive_is_refused() {
    let bytes = build_archive(AccountId(7), ExportId(9), 100, &sample()).expect("builds");
    let needle = b"AUDIO-THREE-distinctive-payload";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("audio is stored uncompressed");
    let mut tampered = bytes.clone();
    tampered[at + 5] ^= 0x20;
    assert!(read_archive(&tampered).is_err());
    assert!(read_archive(&bytes[..bytes.len() / 2]).is_err());
    assert!(read_archive(b"").is_err());
}

/// Write a zip with the given entries, like the packager does.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, contents) in entries {
        writer.start_file(*name, options).expect("start entry");
        writer.write_all(contents).expect("write entry");
    }
    writer.finish().expect("finish").into_inner()
}

#[test]
fn archives_that_disagree_with_their_manifest_are_refused() {
    let items = sample();
    let bytes = build_archive(AccountId(7), ExportId(9), 100, &items).expect("builds");
    let (manifest, files) = read_archive(&bytes).expect("reads");
    let manifest_json = serde_json::to_vec(&manifest).expect("json");
    let one = files.get("audio/1.wav").expect("audio 1").as_slice();
    let three = files.get("audio/3.wav").expect("audio 3").as_slice();

    // The same content rewritten is accepted (the reader is not tied to the
    // writer's exact bytes).
    let rewritten = zip_of(&[
        (MANIFEST_PATH, &manifest_json),
        ("audio/1.wav", one),
        ("audio/3.wav", three),
    ]);
    assert_eq!(read_archive(&rewritten).expect("reads").0, manifest);

    // A file the manifest does not name.
    let extra = zip_of(&[
        (MANIFEST_PATH, &manifest_json),
        ("audio/1.wav", one),
        ("audio/3.wav", three),
        ("audio/4.wav", b"someone else's"),
    ]);
    assert!(read_archive(&extra).is_err());
    // A file the manifest names is missing.
    let missing = zip_of(&[(MANIFEST_PATH, &manifest_json), ("audio/1.wav", one)]);
    assert!(read_archive(&missing).is_err());
    // Audio swapped between entries.
    let swapped = zip_of(&[
        (MANIFEST_PATH, &manifest_json),
        ("audio/1.wav", three),
        ("audio/3.wav", one),
    ]);
    assert!(read_archive(&swapped).is_err());
    // No manifest.
    assert!(read_archive(&zip_of(&[("audio/1.wav", one)])).is_err());
    // Another format tag.
    let mut other = manifest.clone();
    other.format = "something-else/1".into();
    let other_json = serde_json::to_vec(&other).expect("json");
    let wrong_format = zip_of(&[
        (MANIFEST_PATH, &other_json),
        ("audio/1.wav", one),
        ("audio/3.wav", three),
    ]);
    assert!(read_archive(&wrong_format).is_err());
}
