//! The watermark: ground truth the system under test cannot fake.
//!
//! Every utterance the simulator creates gets a fresh nonce. Its audio (a
//! small valid 16-bit mono WAV) carries `MAGIC ‖ nonce ‖ tag` as a run of
//! samples after the spoken content, and its transcript carries the same
//! nonce and tag in a bracketed marker. The tag is a keyed checksum (HMAC
//! under a key derived from the run's seed, which the SUT never sees), so a
//! mark cannot be forged or corrupted unnoticed. The oracle decodes marks
//! from the bytes alone and judges every delivery by them.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = *b"XTWM";
const MARK_LEN: usize = 4 + 8 + 8;
const SAMPLE_RATE: u32 = 8_000;
/// The sample rate of a capture of a real length (`audio_of_length`).
const LONG_SAMPLE_RATE: u32 = 16_000;
const WAV_HEADER_BYTES: usize = 44;
const CONTENT_SAMPLES: usize = 240;
const TRANSCRIPT_OPEN: &str = "[[xt:";
const TRANSCRIPT_CLOSE: &str = "]]";

/// The key the oracle uses to tag and check marks.
#[derive(Clone, Debug)]
pub struct WatermarkKey([u8; 32]);

/// What a decoder found: marks with a valid tag, and marks that looked like
/// ours but failed the tag (corruption or forgery).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub nonces: Vec<u64>,
    pub invalid_marks: usize,
}

impl WatermarkKey {
    pub fn for_seed(seed: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"crosstalk/watermark/v1");
        hasher.update(seed.to_be_bytes());
        Self(hasher.finalize().into())
    }

    fn tag(&self, nonce: u64) -> [u8; 8] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&nonce.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&full[..8]);
        tag
    }

    fn mark(&self, nonce: u64) -> [u8; MARK_LEN] {
        let mut mark = [0u8; MARK_LEN];
        mark[..4].copy_from_slice(&MAGIC);
        mark[4..12].copy_from_slice(&nonce.to_be_bytes());
        mark[12..].copy_from_slice(&self.tag(nonce));
        mark
    }

    /// A WAV file: `content` as a deterministic waveform, then the mark.
    /// Broadcast captures share `content` but each has its own nonce.
    pub fn audio(&self, nonce: u64, content: u64) -> Vec<u8> {
        let mut samples: Vec<i16> = Vec::with_capacity(CONTENT_SAMPLES + MARK_LEN + 8);
        speech(content, CONTENT_SAMPLES, &mut samples);
        self.push_mark(nonce, &mut samples);
        wav(&samples, SAMPLE_RATE, false)
    }

    /// A capture of `bytes` bytes in all (`None`, or too few for a long
    /// capture: the short one of [`WatermarkKey::audio`]): a 16 kHz WAV whose
    /// speech lasts as long as the length allows, then the mark. Its first
    /// samples are those of the short capture of the same content, so the
    /// store's fingerprint hears the same sound. An odd length (one byte
    /// past the API's limit) ends in half a sample.
    pub fn audio_of_length(&self, nonce: u64, content: u64, bytes: Option<u32>) -> Vec<u8> {
        let short = WAV_HEADER_BYTES + 2 * (CONTENT_SAMPLES + MARK_LEN + 8);
        let Some(bytes) = bytes.map(|b| b as usize).filter(|b| *b > short) else {
            return self.audio(nonce, content);
        };
        let data_bytes = bytes - WAV_HEADER_BYTES;
        let speech_samples = data_bytes / 2 - (MARK_LEN + 8);
        let mut samples: Vec<i16> = Vec::with_capacity(data_bytes / 2);
        speech(content, speech_samples, &mut samples);
        self.push_mark(nonce, &mut samples);
        let audio = wav(&samples, LONG_SAMPLE_RATE, data_bytes % 2 == 1);
        debug_assert_eq!(audio.len(), bytes);
        audio
    }

    /// The mark after the speech, padded with silence on both sides.
    fn push_mark(&self, nonce: u64, samples: &mut Vec<i16>) {
        samples.extend_from_slice(&[0; 4]);
        for byte in self.mark(nonce) {
            samples.push(encode_byte(byte));
        }
        samples.extend_from_slice(&[0; 4]);
    }

    /// A transcript: the words, then the bracketed marker.
    pub fn transcript(&self, nonce: u64, words: &str) -> String {
        format!(
            "{words} {TRANSCRIPT_OPEN}{nonce:016x}:{}{TRANSCRIPT_CLOSE}",
            hex::encode(self.tag(nonce))
        )
    }

    /// Every mark in a WAV file's samples (or in any byte string that is not
    /// a WAV: the samples are then read from the raw bytes).
    pub fn decode_audio(&self, bytes: &[u8]) -> Decoded {
        let data = wav_data(bytes).unwrap_or(bytes);
        let samples: Vec<i16> = data
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        let magic: Vec<i16> = MAGIC.iter().map(|&b| encode_byte(b)).collect();
        let mut decoded = Decoded::default();
        let mut i = 0;
        while i + MARK_LEN <= samples.len() {
            if samples[i..i + 4] == magic[..] {
                let bytes: Option<Vec<u8>> = samples[i..i + MARK_LEN]
                    .iter()
                    .map(|&s| decode_byte(s))
                    .collect();
                match bytes {
                    Some(mark) => {
                        let mut nonce = [0u8; 8];
                        nonce.copy_from_slice(&mark[4..12]);
                        let nonce = u64::from_be_bytes(nonce);
                        if mark[12..] == self.tag(nonce) {
                            decoded.nonces.push(nonce);
                        } else {
                            decoded.invalid_marks += 1;
                        }
                    }
                    None => decoded.invalid_marks += 1,
                }
                i += MARK_LEN;
            } else {
                i += 1;
            }
        }
        decoded
    }

    /// Every marker in a transcript.
    pub fn decode_transcript(&self, text: &str) -> Decoded {
        let mut decoded = Decoded::default();
        let mut rest = text;
        while let Some(start) = rest.find(TRANSCRIPT_OPEN) {
            rest = &rest[start + TRANSCRIPT_OPEN.len()..];
            let end = rest.find(TRANSCRIPT_CLOSE).unwrap_or(rest.len());
            let body = &rest[..end];
            let parsed = body.split_once(':').and_then(|(nonce, tag)| {
                let nonce = u64::from_str_radix(nonce, 16).ok()?;
                let tag = hex::decode(tag).ok()?;
                Some((nonce, tag))
            });
            match parsed {
                Some((nonce, tag)) if tag == self.tag(nonce) => decoded.nonces.push(nonce),
                _ => decoded.invalid_marks += 1,
            }
            rest = &rest[end..];
        }
        decoded
    }
}

fn encode_byte(byte: u8) -> i16 {
    // Each byte becomes one loud sample; the low byte 0x5A marks it as ours.
    (((byte as i16) - 128) << 8) | 0x5A
}

fn decode_byte(sample: i16) -> Option<u8> {
    if sample & 0xFF != 0x5A {
        return None;
    }
    Some(((sample >> 8) + 128) as u8)
}

/// `count` samples of the "speech" of `content`: a sawtooth whose period
/// and phase come from the content id.
fn speech(content: u64, count: usize, samples: &mut Vec<i16>) {
    let (period, phase) = speech_shape(content);
    for i in 0..count {
        let position = ((i + phase) % period) as i32;
        let value = (position * 2 * 12_000 / period as i32) - 12_000;
        samples.push(value as i16);
    }
}

/// A mono 16-bit WAV of `samples` at `rate`; with `half_sample`, its data
/// ends in one byte more (a capture one byte past a limit).
fn wav(samples: &[i16], rate: u32, half_sample: bool) -> Vec<u8> {
    let data_len = (samples.len() * 2 + usize::from(half_sample)) as u32;
    let mut out = Vec::with_capacity(WAV_HEADER_BYTES + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    if half_sample {
        out.push(0);
    }
    out
}

/// The `data` chunk of a RIFF/WAVE file, if `bytes` is one. (The store has
/// its own WAV reader for fingerprints; the oracle deliberately shares no
/// parsing code with the system under test.)
fn wav_data(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = at + 8;
        let end = body.checked_add(len)?.min(bytes.len());
        if id == b"data" {
            return Some(&bytes[body..end]);
        }
        at = end + (len & 1);
    }
    None
}

/// The sawtooth "speech" of content id `content`: its period and its phase
/// within the period (samples). Two contents of one shape sound the same:
/// the store's fingerprint cannot tell them apart.
pub fn speech_shape(content: u64) -> (usize, usize) {
    let period = 8 + (content % 41) as usize;
    let phase = (content / 41 % 997) as usize % period;
    (period, phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_and_transcript_round_trip() {
        let key = WatermarkKey::for_seed(7);
        for nonce in [0u64, 1, 0xdead_beef, u64::MAX] {
            let audio = key.audio(nonce, 12345);
            assert_eq!(&audio[..4], b"RIFF");
            assert_eq!(
                key.decode_audio(&audio),
                Decoded {
                    nonces: vec![nonce],
                    invalid_marks: 0
                }
            );
            let text = key.transcript(nonce, "alexa, what's the weather");
            assert_eq!(
                key.decode_transcript(&text),
                Decoded {
                    nonces: vec![nonce],
                    invalid_marks: 0
                }
            );
        }
    }

    #[test]
    fn another_seed_key_rejects_the_mark() {
        let key = WatermarkKey::for_seed(7);
        let other = WatermarkKey::for_seed(8);
        let audio = key.audio(42, 1);
        assert_eq!(
            other.decode_audio(&audio),
            Decoded {
                nonces: vec![],
                invalid_marks: 1
            }
        );
        let text = key.transcript(42, "hi");
        assert_eq!(
            other.decode_transcript(&text),
            Decoded {
                nonces: vec![],
                invalid_marks: 1
            }
        );
    }

    #[test]
    fn corrupted_marks_are_counted_not_trusted() {
        let key = WatermarkKey::for_seed(1);
        let mut audio = key.audio(99, 5);
        // Flip one bit in the nonce's samples: the tag no longer matches.
        let mark_start = audio.len() - (MARK_LEN + 4) * 2;
        audio[mark_start + 4 * 2 + 1] ^= 0x01;
        let decoded = key.decode_audio(&audio);
        assert!(decoded.nonces.is_empty());
        assert_eq!(decoded.invalid_marks, 1);
        let text = key.transcript(99, "x").replace(":", ":0");
        assert_eq!(key.decode_transcript(&text).invalid_marks, 1);
    }

    #[test]
    fn two_marks_in_one_blob_are_both_found() {
        let key = WatermarkKey::for_seed(3);
        let mut blob = key.audio(1, 1);
        blob.extend_from_slice(&key.audio(2, 1));
        // Not a single WAV any more past the first header: raw scan finds both.
        let raw: Vec<u8> = blob[1..].to_vec();
        let decoded = key.decode_audio(&raw[1..]);
        assert_eq!(decoded.nonces, vec![1, 2]);
    }

    #[test]
    fn captures_of_real_lengths_keep_their_length_their_mark_and_their_sound() {
        let key = WatermarkKey::for_seed(5);
        let max = crosstalk_model::MAX_AUDIO_BYTES as u32;
        for bytes in [160_000, 480_000, max, max + 1] {
            let audio = key.audio_of_length(77, 1234, Some(bytes));
            assert_eq!(audio.len(), bytes as usize);
            assert_eq!(key.decode_audio(&audio).nonces, vec![77]);
            // The same first samples as the short capture of the content.
            let short = key.audio(78, 1234);
            assert_eq!(
                audio[44..44 + CONTENT_SAMPLES * 2],
                short[44..44 + CONTENT_SAMPLES * 2]
            );
            // Cut short, the mark is gone.
            assert!(
                key.decode_audio(&audio[..audio.len() / 2])
                    .nonces
                    .is_empty()
            );
        }
        assert_eq!(key.audio_of_length(9, 1, None), key.audio(9, 1));
    }

    #[test]
    fn same_content_different_nonce_differs_only_in_the_mark() {
        let key = WatermarkKey::for_seed(3);
        let a = key.audio(10, 77);
        let b = key.audio(11, 77);
        assert_eq!(a.len(), b.len());
        assert_eq!(a[..44 + CONTENT_SAMPLES * 2], b[..44 + CONTENT_SAMPLES * 2]);
        assert_ne!(a, b);
    }
}
