//! Tor v3 onion service names: validation (checksum and version), the
//! name for a public key, and the key of a name.

use sha3::{Digest, Sha3_256};

use super::base32::{self, Base32Error};
use super::AddrErrorKind;

/// Number of base32 characters before ".onion" in a v3 onion address.
pub(super) const ONION_V3_LEN: usize = 56;
/// Number of base32 characters in an obsolete v2 onion address.
const ONION_V2_LEN: usize = 16;
/// Decoded size of a v3 onion address: public key, checksum, version.
const ONION_V3_BYTES: usize = 35;
/// The only onion service version Tor still supports.
const ONION_VERSION: u8 = 3;

/// Returns the part before a case-insensitive ".onion" suffix.
pub(super) fn strip_onion_suffix(host: &str) -> Option<&str> {
    strip_suffix_ignore_case(host, ".onion")
}

/// Returns the part of `host` before `suffix` (ASCII, any case).
pub(super) fn strip_suffix_ignore_case<'a>(host: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = host.len().checked_sub(suffix.len())?;
    // Comparing bytes avoids slicing inside a multibyte character; if they
    // match, `cut` is at the suffix's ASCII first byte, hence a char boundary.
    if host.as_bytes()[cut..].eq_ignore_ascii_case(suffix.as_bytes()) {
        Some(&host[..cut])
    } else {
        None
    }
}

/// The onion name of a v3 service's ed25519 public key.
pub(super) fn host_from_key(pubkey: &[u8; 32]) -> String {
    let mut raw = [0u8; ONION_V3_BYTES];
    raw[..32].copy_from_slice(pubkey);
    raw[32..34].copy_from_slice(&onion_checksum(pubkey, ONION_VERSION));
    raw[34] = ONION_VERSION;
    format!("{}.onion", base32::encode(&raw))
}

/// The public key of a validated onion name.
pub(super) fn key_of(host: &str) -> Option<[u8; 32]> {
    let service = strip_onion_suffix(host)?;
    let raw = base32::decode::<ONION_V3_BYTES>(service).ok()?;
    raw[..32].try_into().ok()
}

/// Explains a character outside base32 in an onion or I2P name.
pub(super) fn bad_base32_char(network: &str, pos: usize, c: char) -> String {
    let digit_hint = if matches!(c, '0' | '1' | '8' | '9') {
        " (the digits 0, 1, 8 and 9 never appear in them)"
    } else {
        ""
    };
    format!(
        "the character {c:?} at position {pos} is not base32; {network} addresses use only the \
         letters a-z and the digits 2-7{digit_hint}, so check for a typo"
    )
}

/// Validates "<56 base32>.onion" (any case, optional trailing dot) and
/// returns it lower-cased without the trailing dot.
pub(super) fn validate_onion(host: &str) -> Result<String, AddrErrorKind> {
    let invalid = |reason: String| Err(AddrErrorKind::InvalidOnion(reason));
    let host = host.strip_suffix('.').unwrap_or(host);
    let Some(service) = strip_onion_suffix(host) else {
        let hint = if host.chars().count() == ONION_V3_LEN {
            format!("add it: \"{}.onion\"", host.to_lowercase())
        } else {
            "write e.g. \"<56 base32 characters>.onion\"".to_string()
        };
        return invalid(format!(
            "the \".onion\" suffix of the onion address is missing; {hint}"
        ));
    };
    if service.is_empty() {
        return invalid(
            "there is nothing before \".onion\"; write the service's 56-character v3 address, \
             e.g. \"<56 base32 characters>.onion\""
                .into(),
        );
    }
    if let Some((_, last)) = service.rsplit_once('.') {
        let hint = if last.chars().count() == ONION_V3_LEN {
            format!(": \"{}.onion\"", last.to_lowercase())
        } else {
            ", e.g. \"<56 base32 characters>.onion\"".to_string()
        };
        return invalid(format!(
            "subdomains of onion services (like \"www.<service>.onion\") are not supported; \
             use only the service address{hint}"
        ));
    }
    match service.chars().count() {
        ONION_V3_LEN => {}
        ONION_V2_LEN => {
            return invalid(
                "this is a 16-character v2 onion address; v2 addresses are no longer \
                 supported by Tor, so use the service's 56-character v3 address"
                    .into(),
            );
        }
        n => {
            return invalid(format!(
                "a v3 onion address has 56 base32 characters before \".onion\", this one has \
                 {n}; check for missing or extra characters"
            ));
        }
    }
    let bytes = base32::decode::<ONION_V3_BYTES>(service).map_err(|e| match e {
        Base32Error::BadChar(pos, c) => {
            AddrErrorKind::InvalidOnion(bad_base32_char("onion", pos, c))
        }
        // 56 characters always spell 35 bytes exactly.
        Base32Error::NotCanonical => AddrErrorKind::InvalidOnion(
            "the address does not decode to a key; copy it again from its source".into(),
        ),
    })?;
    let (pubkey, rest) = bytes.split_at(32);
    let (checksum, version) = (&rest[..2], rest[2]);
    if version != ONION_VERSION {
        return invalid(format!(
            "the version byte is {version}, but only version 3 onion addresses are supported; \
             v3 addresses end in 'd', so check the last characters for a typo"
        ));
    }
    if checksum != &onion_checksum(pubkey, version)[..] {
        return invalid(
            "the checksum does not match, so the address has a typo; copy it again from \
             its source"
                .into(),
        );
    }
    Ok(format!("{}.onion", service.to_ascii_lowercase()))
}

/// First two bytes of SHA3-256(".onion checksum" || pubkey || version), as
/// specified for v3 onion addresses in Tor's rend-spec-v3.
fn onion_checksum(pubkey: &[u8], version: u8) -> [u8; 2] {
    let mut hasher = Sha3_256::new();
    hasher.update(b".onion checksum");
    hasher.update(pubkey);
    hasher.update([version]);
    let digest = hasher.finalize();
    [digest[0], digest[1]]
}
