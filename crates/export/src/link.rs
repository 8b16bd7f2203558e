//! Download links: HMAC-SHA256 tokens bound to one export and its subject.
//!
//! A token is `base64url(export id ‖ subject ‖ expiry ‖ nonce ‖ tag)` where
//! the tag is HMAC-SHA256 over everything before it under a key only the
//! export service holds. Verification is constant time. A valid token is
//! necessary but never sufficient: the download also needs the subject's own
//! session, so a forwarded or guessed link gives nothing to anyone else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crosstalk_model::{AccountId, ExportId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const BODY_LEN: usize = 8 + 8 + 8 + 16;
const TAG_LEN: usize = 32;
const DOMAIN: &[u8] = b"crosstalk/link/v1";

/// What a verified token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkClaims {
    pub export_id: ExportId,
    pub subject: AccountId,
    pub expires_at_ms: u64,
    pub nonce: [u8; 16],
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(DOMAIN);
    mac
}

/// Mint a token for `claims` under `key`.
pub fn mint(key: &[u8], claims: &LinkClaims) -> String {
    let mut body = Vec::with_capacity(BODY_LEN + TAG_LEN);
    body.extend_from_slice(&claims.export_id.0.to_be_bytes());
    body.extend_from_slice(&claims.subject.0.to_be_bytes());
    body.extend_from_slice(&claims.expires_at_ms.to_be_bytes());
    body.extend_from_slice(&claims.nonce);
    let mut mac = mac(key);
    mac.update(&body);
    body.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(body)
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    BadSignature,
}

/// Check a token's signature and return its claims. Expiry, revocation and
/// the caller's identity are the caller's to check against the claims.
pub fn verify(key: &[u8], token: &str) -> Result<LinkClaims, LinkError> {
    if token.len() > 128 {
        return Err(LinkError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LinkError::Malformed)?;
    if bytes.len() != BODY_LEN + TAG_LEN {
        return Err(LinkError::Malformed);
    }
    let (body, tag) = bytes.split_at(BODY_LEN);
    let mut mac = mac(key);
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| LinkError::BadSignature)?;
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&body[i * 8..i * 8 + 8]);
        u64::from_be_bytes(b)
    };
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&body[24..40]);
    Ok(LinkClaims {
        export_id: ExportId(word(0)),
        subject: AccountId(word(1)),
        expires_at_ms: word(2),
        nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> LinkClaims {
        LinkClaims {
            export_id: ExportId(7),
            subject: AccountId(3),
            expires_at_ms: 1_000,
            nonce: [9; 16],
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = b"k".repeat(32);
        let token = mint(&key, &claims());
        assert_eq!(verify(&key, &token), Ok(claims()));
        // Wrong key.
        assert_eq!(verify(b"other", &token), Err(LinkError::BadSignature));
        // Every single-character change is refused.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..token.len() {
            let original = token.as_bytes()[i] as char;
            let replacement = alphabet.chars().find(|&c| c != original).unwrap_or('A');
            let mut forged = token.clone();
            forged.replace_range(i..i + 1, &replacement.to_string());
            assert!(
                verify(&key, &forged).is_err(),
                "forged token at {i} accepted"
            );
        }
        // Truncated and garbage tokens.
        assert_eq!(
            verify(&key, &token[..token.len() - 2]),
            Err(LinkError::Malformed)
        );
        assert_eq!(verify(&key, "not a token"), Err(LinkError::Malformed));
        assert_eq!(verify(&key, ""), Err(LinkError::Malformed));
    }
}
