//! Every archive entry judged whole.
//!
//! An archive's manifest lists one entry per recording: its id, device,
//! capture time, transcript, the path of its audio file and that file's
//! digest. Judging the audio marks and the transcript marks as two bags
//! (isolation, exactness) misses an entry whose parts are of different
//! utterances. Here each entry must hold together: its audio file exists
//! and matches the digest the manifest gives; the audio and the transcript
//! each carry exactly one mark, of one and the same utterance; the id the
//! manifest names is the id the store acknowledged that utterance under (or
//! no other utterance's); the transcript is, character for character, the
//! one its device sent; the capture time is the one its device sent; the
//! audio is the capture's own bytes, whole, whatever its length
//! (`check/audio.rs`); and no audio file is left that the manifest does not
//! name. Whose utterance
//! it is and whether it was live at the snapshot stay the judgement of
//! `Oracle::receive` and `Oracle::check_archive`.

use super::{Invariant, Oracle};
use crosstalk_model::api::Manifest;
use std::collections::BTreeMap;

/// One manifest entry as the oracle read it from the archive's bytes.
#[derive(Clone, Debug)]
pub struct EntryView {
    pub recording_id: u64,
    pub captured_at_ms: u64,
    pub audio_path: String,
    /// `None`: the archive has no file at `audio_path`.
    pub audio_marks: Option<Vec<u64>>,
    pub transcript_marks: Vec<u64>,
    /// The transcript as the manifest gives it.
    pub transcript: String,
    /// The manifest's digest matches the file's bytes.
    pub digest_matches: bool,
    /// The audio file's length and SHA-256, when there is one.
    pub audio_len: usize,
    pub audio_sha256: String,
}

/// Read `manifest` against the archive's `files` (name -> bytes): one view
/// per entry, and the names of files the manifest does not name.
pub fn entry_views(
    oracle: &Oracle,
    manifest: &Manifest,
    files: &BTreeMap<String, Vec<u8>>,
) -> (Vec<EntryView>, Vec<String>) {
    let mut named = std::collections::BTreeSet::new();
    let views = manifest
        .recordings
        .iter()
        .map(|entry| {
            named.insert(entry.audio_path.clone());
            let audio = files.get(&entry.audio_path);
            let audio_sha256 = audio
                .map(|b| crosstalk_model::sha256_hex(b))
                .unwrap_or_default();
            EntryView {
                recording_id: entry.id.0,
                captured_at_ms: entry.captured_at_ms,
                audio_path: entry.audio_path.clone(),
                audio_marks: audio.map(|bytes| oracle.key().decode_audio(bytes).nonces),
                transcript_marks: oracle.key().decode_transcript(&entry.transcript).nonces,
                transcript: entry.transcript.clone(),
                digest_matches: audio.is_some() && audio_sha256 == entry.sha256,
                audio_len: audio.map_or(0, Vec::len),
                audio_sha256,
            }
        })
        .collect();
    let unnamed = files
        .keys()
        .filter(|name| !named.contains(*name))
        .cloned()
        .collect();
    (views, unnamed)
}

impl Oracle {
    /// Judge each entry of an archive `subject` received through `channel`.
    pub fn judge_entries_whole(
        &mut self,
        subject: usize,
        channel: &str,
        contents: &super::ArchiveContents,
        at_ms: u64,
    ) {
        if contents.manifest_missing {
            let detail =
                format!("{channel}: the archive has no manifest.json in the contract's format");
            self.violate(Invariant::Exactness, at_ms, None, Some(subject), detail);
        }
        for name in &contents.unnamed_files {
            let detail =
                format!("{channel}: file {name} is in the archive but not in its manifest");
            self.violate(Invariant::Exactness, at_ms, None, Some(subject), detail);
        }
        for entry in &contents.entries {
            match self.entry_fault(entry) {
                None => {
                    self.controls.archive_entries_judged_whole += 1;
                    if let Some(&[nonce]) = entry.audio_marks.as_deref() {
                        self.audio_judged_whole(nonce);
                    }
                }
                Some((nonce, fault)) => {
                    let detail = format!(
                        "{channel}: the manifest entry of rec-{} ({}) is not one utterance's: {fault}",
                        entry.recording_id, entry.audio_path
                    );
                    self.violate(Invariant::Exactness, at_ms, nonce, Some(subject), detail);
                }
            }
        }
    }

    /// What is wrong with one entry, if anything (and the utterance at fault).
    fn entry_fault(&self, entry: &EntryView) -> Option<(Option<u64>, String)> {
        let Some(audio) = &entry.audio_marks else {
            return Some((None, "its audio file is missing".into()));
        };
        if !entry.digest_matches {
            return Some((
                None,
                "its digest does not match its audio file's bytes".into(),
            ));
        }
        let (&[audio_nonce], &[text_nonce]) = (audio.as_slice(), entry.transcript_marks.as_slice())
        else {
            let fault = format!(
                "its audio carries {} marks and its transcript {} (one each expected)",
                audio.len(),
                entry.transcript_marks.len()
            );
            return Some((None, fault));
        };
        if audio_nonce != text_nonce {
            let fault = format!(
                "its audio is utterance {audio_nonce:016x} but its transcript is utterance {text_nonce:016x}"
            );
            return Some((Some(audio_nonce), fault));
        }
        if let Some(fault) = self.audio_fault(audio_nonce, entry.audio_len, &entry.audio_sha256) {
            return Some((
                Some(audio_nonce),
                format!("its audio is not as captured: {fault}"),
            ));
        }
        let truth = self.utterances.get(&audio_nonce)?;
        match truth.recording_id {
            Some(id) if id != entry.recording_id => {
                let fault =
                    format!("its bytes are utterance {audio_nonce:016x}, stored as rec-{id}");
                return Some((Some(audio_nonce), fault));
            }
            None => {
                if let Some(other) = self.nonce_of_recording(entry.recording_id) {
                    let fault = format!(
                        "its bytes are utterance {audio_nonce:016x}, but rec-{} is utterance {other:016x}",
                        entry.recording_id
                    );
                    return Some((Some(audio_nonce), fault));
                }
            }
            Some(_) => {}
        }
        if let Some(sent) = &truth.transcript
            && *sent != entry.transcript
        {
            let fault = format!(
                "its transcript is not the one its device sent: sent {sent:?}, given {:?}",
                entry.transcript
            );
            return Some((Some(audio_nonce), fault));
        }
        match truth.captured_at_ms {
            Some(at) if at != entry.captured_at_ms => Some((
                Some(audio_nonce),
                format!(
                    "it says captured at {} ms; its device sent {at} ms",
                    entry.captured_at_ms
                ),
            )),
            _ => None,
        }
    }

    /// Judge an archive delivered to `subject` outside the export flow
    /// (a link tried again): isolation and erasure of every mark, and every
    /// entry whole.
    pub fn judge_archive_delivery(
        &mut self,
        subject: usize,
        channel: &str,
        contents: &super::ArchiveContents,
        requested_ms: u64,
        at_ms: u64,
    ) {
        let audio = crate::watermark::Decoded {
            nonces: contents.audio.clone(),
            invalid_marks: contents.invalid_marks,
        };
        self.receive(subject, channel, &audio, requested_ms, at_ms);
        let text = crate::watermark::Decoded {
            nonces: contents.text.clone(),
            invalid_marks: 0,
        };
        self.receive(
            subject,
            &format!("{channel} (manifest)"),
            &text,
            requested_ms,
            at_ms,
        );
        self.judge_entries_whole(subject, channel, contents, at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    #[test]
    fn an_entry_whose_transcript_is_not_the_one_sent_is_not_whole() {
        let mut oracle = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        let nonce = 7;
        let sent = oracle.key().transcript(nonce, "add milk & <eggs> — 🎂");
        oracle.utterance_started(nonce, 0, 0, 1);
        oracle.utterance_captured_at(nonce, 5);
        oracle.transcript_sent(&sent);
        oracle.utterance_acked(nonce, 70, 2);
        let entry = |transcript: &str| EntryView {
            recording_id: 70,
            captured_at_ms: 5,
            audio_path: "audio/70.wav".into(),
            audio_marks: Some(vec![nonce]),
            transcript_marks: oracle.key().decode_transcript(transcript).nonces,
            transcript: transcript.to_string(),
            digest_matches: true,
            audio_len: 0,
            audio_sha256: String::new(),
        };
        assert_eq!(oracle.entry_fault(&entry(&sent)), None);
        let escaped = sent.replace('&', "&amp;");
        let fault = oracle.entry_fault(&entry(&escaped));
        assert!(
            fault
                .as_ref()
                .is_some_and(|(_, f)| f.contains("not the one its device sent")),
            "{fault:?}"
        );
    }
}
