//! Email addresses as real people have and type them.
//!
//! Most simulated people sign up as `person{i}.s{seed}@example.test`; a
//! share of them (the scenario's `[data] awkward_address_per_mille`, drawn in
//! `plan/data.rs`) have an address of the kinds real users have and naive
//! code mangles: plus-addressing on a family's shared mailbox, apostrophes
//! and hyphens, mixed case as typed at sign-up (the store keeps addresses in
//! lower case), a hyphenated subdomain, and the characters RFC 5321 allows
//! in a local part that a URL query or a form must percent-encode
//! (`+ & = % # ' ! $ * / ? ^ { | } ~`, and a `%` before hex digits, which a
//! second decoding turns into another character). Every address is one the
//! store's sign-up accepts, and it names its person's index between fixed
//! delimiters, so no two people share one, even in lower case.
//!
//! People also type an address differently from one time to the next
//! ([`as_typed`]: a capital first letter from a phone's keyboard, a trailing
//! space from autocomplete); the services compare addresses trimmed and in
//! lower case ([`normalized`]), and so does the oracle. The address in a
//! URL query is percent-encoded ([`query_encoded`]) and read back the way a
//! form is ([`form_decoded`]: `+` is a space).

/// First names the awkward addresses are built from.
const FIRST_NAMES: &[&str] = &[
    "ana", "bea", "chloe", "dara", "emeka", "farah", "goran", "hana", "ines", "jo", "kofi",
];

/// The shared family mailboxes of plus-addressing.
const SURNAMES: &[&str] = &["silva", "nguyen", "okafor", "kowalski", "haddad"];

/// How many kinds of awkward address there are (see [`awkward`]).
pub const STYLES: u32 = 6;

/// An address as the services compare them: trimmed, lower-cased.
pub fn normalized(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Whether `email` is one naive code mangles: it has capitals, or its local
/// part holds anything but lower-case letters, digits and dots.
pub fn is_awkward(email: &str) -> bool {
    let local = email.split('@').next().unwrap_or_default();
    email.chars().any(|c| c.is_ascii_uppercase())
        || local
            .chars()
            .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'))
}

/// The address of person `index` in the run of `seed` when it is awkward,
/// in kind `style` (modulo [`STYLES`]).
pub fn awkward(index: usize, seed: u64, style: u32) -> String {
    let first = FIRST_NAMES[index % FIRST_NAMES.len()];
    let family = SURNAMES[(seed % SURNAMES.len() as u64) as usize];
    match style % STYLES {
        // Plus-addressing on a family's shared mailbox: each member's tag
        // differs, the mailbox is the same for all of them.
        0 => format!("{family}.family.s{seed}+{first}{index}@example.test"),
        // An apostrophe and a hyphen, as many surnames have.
        1 => format!("{first}.o'brien-{index}.s{seed}@example.test"),
        // Mixed case, as typed at sign-up.
        2 => format!("{}.McKay{index}.S{seed}@Example.Test", capitalised(first)),
        // Dots and hyphens, and a hyphenated subdomain.
        3 => format!("{first}.j.r-{index}.s{seed}@mail.post-office.example.test"),
        // Every character a query or a form must percent-encode.
        4 => format!("{first}&co={index}#s{seed}!$*/?^{{|}}~'x+y@example.test"),
        // A `%` before hex digits: decoded twice, `%41` is an `A`.
        _ => format!("{first}%41{index}%2b.s{seed}@example.test"),
    }
}

/// `text` with its first letter in capitals.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// How a person types `email` this time, `how` picking the way: as at
/// sign-up, in lower case, with a capital first letter (a phone's
/// keyboard), with the domain in capitals, or with a trailing space
/// (autocomplete). A plain address is always typed as it is, so that
/// plans without awkward addresses send what they always sent.
pub fn as_typed(email: &str, how: u64) -> String {
    if !is_awkward(email) {
        return email.to_string();
    }
    match how % 5 {
        0 => email.to_string(),
        1 => email.to_ascii_lowercase(),
        2 => capitalised(email),
        3 => match email.split_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_uppercase()),
            None => email.to_string(),
        },
        _ => format!("{email} "),
    }
}

/// The way of typing (for [`as_typed`]) of one occasion, `what`, in the run
/// of `seed`: the same occasion is always typed the same way.
pub fn way_of_typing(seed: u64, what: &str) -> u64 {
    let digest = crate::streams::derive(seed, &format!("typed/{what}"));
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .unwrap_or_else(|_| unreachable!("a 32-byte digest has 8 bytes")),
    )
}

/// `value` percent-encoded for a URL query: everything but the unreserved
/// characters of RFC 3986.
pub fn query_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A query value read the way a form is (`application/x-www-form-urlencoded`,
/// as the services' query extractor reads it): `+` is a space, `%XX` a byte;
/// a malformed escape is kept as sent.
pub fn form_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The store's sign-up rule, applied to the address as the store reads
    /// it (trimmed, lower case).
    fn store_accepts(email: &str) -> bool {
        crosstalk_store::valid_email(&normalized(email))
    }

    #[test]
    fn every_awkward_address_is_valid_awkward_and_unique_in_lower_case() {
        for seed in [0, 7, u64::MAX] {
            let mut seen = BTreeSet::new();
            for index in 0..600 {
                assert!(seen.insert(normalized(&format!("person{index}.s{seed}@example.test"))));
                for style in 0..STYLES {
                    let email = awkward(index, seed, style);
                    assert!(store_accepts(&email), "{email}");
                    assert!(is_awkward(&email), "{email}");
                    assert!(seen.insert(normalized(&email)), "{email} twice");
                    for how in 0..5 {
                        let typed = as_typed(&email, how);
                        assert_eq!(normalized(&typed), normalized(&email));
                    }
                }
            }
        }
        assert!(!is_awkward("person3.s9@example.test"));
        assert_eq!(
            as_typed("person3.s9@example.test", 2),
            "person3.s9@example.test"
        );
    }

    #[test]
    fn the_characters_a_query_must_encode_are_encoded_and_read_back() {
        for style in 0..STYLES {
            let email = awkward(4, 11, style);
            let encoded = query_encoded(&email);
            assert!(!encoded.contains(['+', '&', '=', '#', '?', '\'', '/', '@']));
            assert_eq!(form_decoded(&encoded), email);
        }
        // Unencoded, a plus is a space; a malformed escape stays as sent.
        assert_eq!(form_decoded("ana+x%40y.z"), "ana x@y.z");
        assert_eq!(form_decoded("a%4"), "a%4");
    }
}
