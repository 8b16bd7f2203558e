//! Captures judged whole, whatever their length.
//!
//! A capture is as long as its speaker spoke: most in a plan are short, a
//! share last 5 to 15 s (160 to 480 KB), some are exactly at the API's limit
//! ([`MAX_AUDIO_BYTES`]) and some one byte past it (`plan/data.rs`). The
//! oracle keeps each capture's length and SHA-256 as its device made it,
//! and judges:
//!
//! - an upload the store answered: a capture past the limit stored is an
//!   api contract violation; one refused must be refused with 413 and the
//!   contract's JSON error (`{"error", "message"}`), and a capture within
//!   the limit refused as too large is a violation too;
//! - every delivery of one capture's audio (playback, inbox audio, an
//!   archive entry, whatever else a person was given): the bytes must be
//!   the capture's, byte for byte. The mark sits at the capture's end, so
//!   a delivery cut short carries none: where the capture asked for is
//!   known (one's own playback, a message's audio, an archive entry named
//!   by its transcript), a delivery without its mark is judged as well.
//!
//! Controls: large captures stored, captures stored at the limit, captures
//! refused past it, large captures delivered whole, and every delivery of
//! one capture judged byte for byte.

use super::{Invariant, Oracle};
use crosstalk_model::MAX_AUDIO_BYTES;
use std::collections::BTreeMap;

/// Captures at least this long count as large (a few seconds of speech).
pub const LARGE_CAPTURE_BYTES: usize = 128 * 1024;

/// One capture's audio as its device made it.
#[derive(Clone, Debug)]
struct Captured {
    bytes: usize,
    sha256: String,
}

/// Every capture's length and digest, by nonce.
#[derive(Debug, Default)]
pub struct AudioLedger {
    captured: BTreeMap<u64, Captured>,
}

impl Oracle {
    /// The audio a device made for utterance `nonce` (before any upload).
    pub fn utterance_audio(&mut self, nonce: u64, audio: &[u8]) {
        let captured = Captured {
            bytes: audio.len(),
            sha256: crosstalk_model::sha256_hex(audio),
        };
        self.audio.captured.insert(nonce, captured);
    }

    /// The length of `nonce`'s capture, if the oracle saw it made.
    fn captured_bytes(&self, nonce: u64) -> Option<usize> {
        self.audio.captured.get(&nonce).map(|c| c.bytes)
    }

    /// The store stored the upload of `nonce` (answered 200 or 201) at `at_ms`.
    pub fn on_capture_stored(&mut self, nonce: u64, at_ms: u64) {
        let Some(bytes) = self.captured_bytes(nonce) else {
            return;
        };
        if bytes >= LARGE_CAPTURE_BYTES {
            self.controls.large_captures_uploaded += 1;
        }
        if bytes == MAX_AUDIO_BYTES {
            self.controls.captures_at_limit_uploaded += 1;
        }
        if bytes > MAX_AUDIO_BYTES {
            let detail = format!(
                "the store stored a capture of {bytes} bytes of audio, past the API's limit of {MAX_AUDIO_BYTES} (it must refuse it: 413)"
            );
            self.violate(Invariant::ApiContract, at_ms, Some(nonce), None, detail);
        }
    }

    /// The store refused the upload of `nonce` with a client error `status`
    /// and `body` at `at_ms`. True when the refusal was judged here (413, or
    /// a capture past the limit): the device then drops the capture, as an
    /// app tells its user the recording was too long.
    pub fn on_capture_refused(&mut self, nonce: u64, status: u16, body: &[u8], at_ms: u64) -> bool {
        let Some(bytes) = self.captured_bytes(nonce) else {
            return false;
        };
        let json_error = serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["error"].is_string() && v["message"].is_string());
        let fault = match (bytes > MAX_AUDIO_BYTES, status, json_error) {
            (true, 413, true) => None,
            (true, 413, false) => Some("refused it with 413 but without the contract's JSON error"),
            (true, _, _) => Some("refused it, but not with 413"),
            (false, 413, _) => Some("refused it as too large, though it is within the limit"),
            (false, _, _) => return false, // Judged as any other answer.
        };
        let Some(fault) = fault else {
            self.controls.oversized_captures_refused += 1;
            return true;
        };
        let detail = format!(
            "an upload of a capture of {bytes} bytes (the API's limit is {MAX_AUDIO_BYTES}): the store {fault} ({status}: {})",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        self.violate(Invariant::ApiContract, at_ms, Some(nonce), None, detail);
        true
    }

    /// What is wrong with `len` bytes (whose SHA-256 is `sha256`) delivered
    /// as the audio of `nonce`'s capture, if anything; `None` too when the
    /// oracle never saw the capture made.
    pub(super) fn audio_fault(&self, nonce: u64, len: usize, sha256: &str) -> Option<String> {
        let captured = self.audio.captured.get(&nonce)?;
        if captured.sha256 == sha256 {
            return None;
        }
        Some(if captured.bytes == len {
            format!("its {len} bytes are not the capture's")
        } else {
            format!("{len} bytes of the capture's {}", captured.bytes)
        })
    }

    /// Count one delivery of `nonce`'s audio judged whole (and large).
    pub(super) fn audio_judged_whole(&mut self, nonce: u64) {
        self.controls.audio_deliveries_judged_whole += 1;
        if self
            .captured_bytes(nonce)
            .is_some_and(|b| b >= LARGE_CAPTURE_BYTES)
        {
            self.controls.large_captures_delivered_whole += 1;
        }
    }

    /// Judge `bytes` delivered to `receiver` through `channel` as the audio
    /// of `nonce`'s capture, byte for byte (request integrity).
    fn judge_delivered_audio(
        &mut self,
        receiver: usize,
        channel: &str,
        nonce: u64,
        bytes: &[u8],
        at_ms: u64,
    ) {
        let sha256 = crosstalk_model::sha256_hex(bytes);
        let Some(fault) = self.audio_fault(nonce, bytes.len(), &sha256) else {
            if self.audio.captured.contains_key(&nonce) {
                self.audio_judged_whole(nonce);
            }
            return;
        };
        let detail = format!(
            "the audio of utterance {nonce:016x} delivered via {channel} is not as captured: {fault}"
        );
        self.violate(
            Invariant::RequestIntegrity,
            at_ms,
            Some(nonce),
            Some(receiver),
            detail,
        );
    }

    /// Audio `receiver` obtained through `channel` by a request sent at
    /// `requested_ms`: judged by its marks (`receive`) and, when it holds
    /// one, byte for byte against that capture. The nonces that were
    /// the receiver's own.
    pub fn receive_audio(
        &mut self,
        receiver: usize,
        channel: &str,
        bytes: &[u8],
        requested_ms: u64,
        at_ms: u64,
    ) -> Vec<u64> {
        let decoded = self.key().decode_audio(bytes);
        let own = self.receive(receiver, channel, &decoded, requested_ms, at_ms);
        if let [nonce] = decoded.nonces[..] {
            self.judge_delivered_audio(receiver, channel, nonce, bytes, at_ms);
        }
        own
    }

    /// `receiver` played the audio of inbox message `message_id`, whose
    /// listing's transcript carried the mark of `expected`: judged by its
    /// marks, and it must be that capture, whole.
    pub fn on_inbox_audio(
        &mut self,
        receiver: usize,
        message_id: u64,
        expected: Option<u64>,
        bytes: &[u8],
        requested_ms: u64,
        at_ms: u64,
    ) {
        let channel = format!("inbox audio {message_id}");
        let decoded = self.key().decode_audio(bytes);
        self.receive(receiver, &channel, &decoded, requested_ms, at_ms);
        let Some(nonce) = expected else {
            return;
        };
        if decoded.nonces == [nonce] {
            self.judge_delivered_audio(receiver, &channel, nonce, bytes, at_ms);
            return;
        }
        let detail = format!(
            "{channel} listed with utterance {nonce:016x}'s transcript, but its audio ({} bytes) carries {:?}",
            bytes.len(),
            decoded.nonces
        );
        self.violate(
            Invariant::RequestIntegrity,
            at_ms,
            Some(nonce),
            Some(receiver),
            detail,
        );
    }

    /// One's own playback of `nonce` (its mark already judged): whole.
    pub(super) fn judge_own_audio_whole(
        &mut self,
        receiver: usize,
        id: u64,
        nonce: u64,
        bytes: &[u8],
        at_ms: u64,
    ) {
        let channel = format!("playback of rec-{id}");
        self.judge_delivered_audio(receiver, &channel, nonce, bytes, at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn oracle_with(nonce: u64, bytes: u32) -> (Oracle, Vec<u8>) {
        let mut o = Oracle::new(WatermarkKey::for_seed(3), vec!["a@x.test".into()]);
        let audio = o.key().audio_of_length(nonce, 5, Some(bytes));
        o.utterance_started(nonce, 0, 1, 10);
        o.utterance_audio(nonce, &audio);
        (o, audio)
    }

    #[test]
    fn a_capture_past_the_limit_is_refused_with_413_and_one_within_it_stored() {
        let max = MAX_AUDIO_BYTES as u32;
        let (mut o, _) = oracle_with(1, max + 1);
        let error = br#"{"error":"too_large","message":"audio exceeds 524288 bytes"}"#;
        assert!(o.on_capture_refused(1, 413, error, 20));
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.oversized_captures_refused, 1);
        assert!(o.on_capture_refused(1, 413, b"too large", 20));
        o.on_capture_stored(1, 30);
        let (mut within, _) = oracle_with(2, max);
        within.on_capture_stored(2, 30);
        assert_eq!(within.controls.captures_at_limit_uploaded, 1);
        assert!(!within.on_capture_refused(2, 400, error, 20));
        assert!(within.violations.is_empty());
        within.on_capture_refused(2, 413, error, 20);
        for v in o.violations.iter().chain(&within.violations) {
            assert_eq!(v.invariant, Invariant::ApiContract);
        }
        assert_eq!((o.violations.len(), within.violations.len()), (2, 1));
    }

    #[test]
    fn a_large_capture_cut_short_or_altered_is_not_delivered_whole() {
        let (mut o, audio) = oracle_with(7, 300_000);
        o.utterance_acked(7, 70, 40);
        o.judge_own_audio_whole(0, 70, 7, &audio, 50);
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.large_captures_delivered_whole, 1);
        // Cut at 64 KiB: no mark left where the message's audio is known.
        o.on_inbox_audio(0, 3, Some(7), &audio[..64 * 1024], 40, 50);
        // Altered in the middle: the mark is there, the bytes are not.
        let mut altered = audio.clone();
        altered[100_000] ^= 0x40;
        o.receive_audio(0, "guessed", &altered, 40, 50);
        assert_eq!(o.violations.len(), 2);
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::RequestIntegrity)
        );
    }
}
