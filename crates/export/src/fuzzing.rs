//! Entry points for the fuzz targets in `fuzz/` (and for the ordinary test
//! that replays their committed corpora). Each takes raw bytes and panics
//! only when it finds a real defect.

use crate::link::{self, LinkClaims};
use crosstalk_model::{AccountId, ExportId};

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
