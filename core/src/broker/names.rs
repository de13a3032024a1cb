//! Stream names as publishers and players spell them: validation, the
//! `sha256:` hashed form and the `asis:` prefix.
//!
//! Streams are keyed by the SHA-256 of their plain name, so a player that
//! only knows the hash and one that knows the name land on the same stream
//! without a second index, even before anyone publishes it.

use sha2::{Digest, Sha256};

/// Longest stream name accepted, in bytes. Names are kept per stream and
/// hashed per request, so they must be bounded; 1 KiB is far beyond any
/// real stream key.
pub(super) const MAX_NAME_LEN: usize = 1024;

const ASIS_PREFIX: &str = "asis:";
const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 of a plain stream name: the stream's identity within an App.
pub(super) type NameHash = [u8; 32];

/// Hashes a plain stream name.
pub(super) fn hash_name(name: &str) -> NameHash {
    Sha256::digest(name.as_bytes()).into()
}

/// The `hashname` a publisher is told: `sha256:` and 64 lower-case hex
/// digits.
pub(super) fn hashname(hash: &NameHash) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for byte in hash {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Why a name cannot be published, as the `BadName` description says it.
pub(super) fn check_publish_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("empty name")
    } else if name.len() > MAX_NAME_LEN {
        Err("name too long")
    } else if name.starts_with(ASIS_PREFIX) {
        Err("the asis: prefix is for players only")
    } else if name.starts_with(HASH_PREFIX) {
        Err("hashed names cannot be published")
    } else {
        Ok(())
    }
}

/// What a `play` name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlayName {
    /// `asis:`: the publisher's own timestamps, no rebasing or stitching.
    pub(super) asis: bool,
    /// The stream, by the hash of its plain name.
    pub(super) hash: NameHash,
    /// The plain name when the player gave it (not for `sha256:` names).
    pub(super) name: Option<String>,
}

/// Interprets a `play` name: `NAME`, `asis:NAME`, `sha256:<64 lc hex>` or
/// `asis:sha256:<64 lc hex>`. `None` for a name nobody could ever publish
/// (empty, too long, a malformed hash, a doubled prefix), so no stream is
/// created for it.
pub(super) fn parse_play_name(name: &str) -> Option<PlayName> {
    let (asis, rest) = match name.strip_prefix(ASIS_PREFIX) {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if let Some(hex) = rest.strip_prefix(HASH_PREFIX) {
        return Some(PlayName {
            asis,
            hash: parse_hex_hash(hex)?,
            name: None,
        });
    }
    check_publish_name(rest).ok()?;
    Some(PlayName {
        asis,
        hash: hash_name(rest),
        name: Some(rest.to_owned()),
    })
}

/// Exactly 64 lower-case hex digits (the README's form; upper case would
/// let two spellings name one stream).
fn parse_hex_hash(hex: &str) -> Option<NameHash> {
    let digits = hex.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashname_of_foo_matches_the_readme() {
        assert_eq!(
            hashname(&hash_name("foo")),
            "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        );
    }

    #[test]
    fn play_names_resolve_to_the_same_hash() {
        let plain = parse_play_name("foo").expect("plain");
        let hashed = parse_play_name(
            "asis:sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        )
        .expect("hashed");
        assert_eq!(plain.hash, hashed.hash);
        assert!(!plain.asis);
        assert!(hashed.asis);
        assert_eq!(hashed.name, None);
    }

    #[test]
    fn upper_case_or_short_hashes_are_not_playable() {
        assert_eq!(parse_play_name("sha256:ABCD"), None);
        let upper = "sha256:2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE";
        assert_eq!(parse_play_name(upper), None);
        assert_eq!(parse_play_name("asis:"), None);
        assert_eq!(parse_play_name("asis:asis:foo"), None);
    }
}
