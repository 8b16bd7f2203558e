//! The packager: recordings in, a zip archive out (and back again).
//!
//! An archive holds `manifest.json` and one `audio/{recording id}.wav` per
//! recording. Entries are written in recording-id order with fixed
//! timestamps and no compression, so identical inputs give identical bytes.
//! Entry names are built from numeric ids only, so none can escape the
//! archive. [`build_archive`] reads its own output back and checks every
//! digest before returning it.

use crosstalk_model::api::{MANIFEST_FORMAT, Manifest, ManifestEntry, RecordingView};
use crosstalk_model::{AccountId, ExportId, sha256_hex};
use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// One recording with its audio, as collected from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveItem {
    pub recording: RecordingView,
    pub audio: Vec<u8>,
}

/// Largest archive [`read_archive`] will inflate, in bytes.
pub const MAX_ARCHIVE_BYTES: u64 = 256 * 1024 * 1024;

pub const MANIFEST_PATH: &str = "manifest.json";

/// The path of a recording's audio inside the archive.
pub fn audio_path(recording: &RecordingView) -> String {
    format!("audio/{}.wav", recording.id.0)
}

fn options() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644)
}

/// Package `items` for `subject`. Fails if an item's audio does not match
/// its recorded digest, if an id repeats, or if the written archive does not
/// read back to exactly the input.
pub fn build_archive(
    subject: AccountId,
    export_id: ExportId,
    snapshot_at_ms: u64,
    items: &[ArchiveItem],
) -> Result<Vec<u8>, String> {
    let mut sorted: Vec<&ArchiveItem> = items.iter().collect();
    sorted.sort_by_key(|item| item.recording.id);
    for pair in sorted.windows(2) {
        if pair[0].recording.id == pair[1].recording.id {
            return Err(format!("recording {} appears twice", pair[0].recording.id));
        }
    }
    let mut entries = Vec::with_capacity(sorted.len());
    for item in &sorted {
        let digest = sha256_hex(&item.audio);
        if digest != item.recording.audio_sha256 {
            return Err(format!(
                "audio of {} does not match its digest",
                item.recording.id
            ));
        }
        entries.push(ManifestEntry {
            id: item.recording.id,
            device: item.recording.device,
            captured_at_ms: item.recording.captured_at_ms,
            transcript: item.recording.transcript.clone(),
            audio_path: audio_path(&item.recording),
            sha256: digest,
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_string(),
        subject,
        export_id,
        snapshot_at_ms,
        recordings: entries,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;

    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    writer
        .start_file(MANIFEST_PATH, options())
        .map_err(|e| e.to_string())?;
    writer
        .write_all(&manifest_json)
        .map_err(|e| e.to_string())?;
    for item in &sorted {
        writer
            .start_file(audio_path(&item.recording), options())
            .map_err(|e| e.to_string())?;
        writer.write_all(&item.audio).map_err(|e| e.to_string())?;
    }
    let bytes = writer.finish().map_err(|e| e.to_string())?.into_inner();

    // Read back what was written: the manifest must round-trip and every
    // audio file must match its digest (checked on both paths).
    let (read_manifest, files) = read_archive(&bytes)?;
    if read_manifest != manifest {
        return Err("archive manifest did not read back identically".to_string());
    }
    if files.len() != manifest.recordings.len() {
        return Err(
            "archive holds a different number of audio files than its manifest".to_string(),
        );
    }
    Ok(bytes)
}

/// Parse an archive: its manifest, and every audio file by path, each checked
/// against the manifest's digest. Refuses entries the manifest does not name.
pub fn read_archive(bytes: &[u8]) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), String> {
    let mut zip =
        ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip archive: {e}"))?;
    let mut manifest_bytes = None;
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let mut file = zip
            .by_index(index)
            .map_err(|e| format!("bad entry {index}: {e}"))?;
        let name = file
            .name()
            .map_err(|e| format!("entry {index} has a bad name: {e}"))?
            .to_string();
        total = total.saturating_add(file.size());
        if total > MAX_ARCHIVE_BYTES {
            return Err("archive inflates beyond the limit".to_string());
        }
        let mut contents = Vec::with_capacity(file.size().min(MAX_ARCHIVE_BYTES) as usize);
        file.read_to_end(&mut contents)
            .map_err(|e| format!("reading {name}: {e}"))?;
        if name == MANIFEST_PATH {
            if manifest_bytes.replace(contents).is_some() {
                return Err("two manifests".to_string());
            }
        } else if files.insert(name.clone(), contents).is_some() {
            return Err(format!("duplicate entry {name}"));
        }
    }
    let manifest_bytes = manifest_bytes.ok_or("archive has no manifest.json")?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| format!("malformed manifest: {e}"))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(format!("unknown manifest format {:?}", manifest.format));
    }
    for entry in &manifest.recordings {
        let audio = files
            .get(&entry.audio_path)
            .ok_or_else(|| format!("manifest names missing file {}", entry.audio_path))?;
        if sha256_hex(audio) != entry.sha256 {
            return Err(format!("{} does not match its digest", entry.audio_path));
        }
    }
    if files.len() != manifest.recordings.len() {
        return Err("archive holds files its manifest does not name".to_string());
    }
    Ok((manifest, files))
}
