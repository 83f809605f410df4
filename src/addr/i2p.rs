//! I2P destinations in their ".b32.i2p" form: 52 base32 characters that
//! spell the SHA-256 hash of the destination, as Bitcoin's addrv2 carries it.

use super::base32::{self, Base32Error};
use super::onion::{bad_base32_char, strip_suffix_ignore_case};
use super::AddrErrorKind;

/// Base32 characters before ".b32.i2p": 32 hash bytes.
pub(super) const I2P_B32_LEN: usize = 52;

/// Whether `host` (any case, optional trailing dot) is in the ".i2p" domain.
pub(super) fn is_i2p_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    strip_suffix_ignore_case(host, ".i2p").is_some()
}

/// Validates "<52 base32>.b32.i2p" (any case, optional trailing dot) and
/// returns it lower-cased without the trailing dot.
pub(super) fn validate_i2p(host: &str) -> Result<String, AddrErrorKind> {
    let invalid = |reason: String| Err(AddrErrorKind::InvalidI2p(reason));
    let host = host.strip_suffix('.').unwrap_or(host);
    let Some(hash) = strip_suffix_ignore_case(host, ".b32.i2p") else {
        return invalid(
            "only \".b32.i2p\" I2P addresses are supported; look up an address-book name \
             such as \"example.i2p\" in your I2P router and use its \
             \"<52 base32 characters>.b32.i2p\" form"
                .into(),
        );
    };
    if hash.contains('.') {
        return invalid(
            "subdomains of I2P destinations are not supported; use only \
             \"<52 base32 characters>.b32.i2p\""
                .into(),
        );
    }
    match hash.chars().count() {
        I2P_B32_LEN => {}
        0 => {
            return invalid(
                "there is nothing before \".b32.i2p\"; write the destination's 52-character \
                 hash, e.g. \"<52 base32 characters>.b32.i2p\""
                    .into(),
            )
        }
        n if n > I2P_B32_LEN => {
            return invalid(format!(
                "this I2P name has {n} base32 characters; only the 52-character form (an \
                 unencrypted destination's hash) is supported, as in Bitcoin's addrv2"
            ))
        }
        n => {
            return invalid(format!(
                "an I2P address has 52 base32 characters before \".b32.i2p\", this one has \
                 {n}; check for missing or extra characters"
            ))
        }
    }
    base32::decode::<32>(hash).map_err(|e| {
        AddrErrorKind::InvalidI2p(match e {
            Base32Error::BadChar(pos, c) => bad_base32_char("I2P", pos, c),
            Base32Error::NotCanonical => "the last character has bits set that no hash uses, \
                                          so the address has a typo; copy it again from its \
                                          source"
                .into(),
        })
    })?;
    Ok(format!("{}.b32.i2p", hash.to_ascii_lowercase()))
}

/// The ".b32.i2p" name of a destination hash.
pub(super) fn host_from_hash(hash: &[u8; 32]) -> String {
    format!("{}.b32.i2p", base32::encode(hash))
}

/// The destination hash of a validated ".b32.i2p" name.
pub(super) fn hash_of(host: &str) -> Option<[u8; 32]> {
    base32::decode::<32>(strip_suffix_ignore_case(host, ".b32.i2p")?).ok()
}
