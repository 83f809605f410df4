//! RFC 4648 base32 without padding, the spelling of onion and I2P keys.

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Why a base32 text did not decode.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Base32Error {
    /// A character outside the alphabet: its 1-based position and itself.
    BadChar(usize, char),
    /// The text does not spell exactly the expected number of bytes, or its
    /// unused last bits are not zero (so another text spells the same bytes).
    NotCanonical,
}

/// Decodes `text` (either case, no padding) into exactly `N` bytes. The
/// bits left over after the last whole byte must be zero, so that each byte
/// string has one spelling and equal keys compare equal as text.
pub(super) fn decode<const N: usize>(text: &str) -> Result<[u8; N], Base32Error> {
    let mut out = [0u8; N];
    let (mut acc, mut bits, mut len) = (0u32, 0u32, 0usize);
    for (i, c) in text.chars().enumerate() {
        let value = match c {
            'a'..='z' => c as u32 - 'a' as u32,
            'A'..='Z' => c as u32 - 'A' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return Err(Base32Error::BadChar(i + 1, c)),
        };
        acc = (acc << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(len).ok_or(Base32Error::NotCanonical)? = (acc >> bits) as u8;
            len += 1;
            acc &= (1 << bits) - 1;
        }
    }
    if len != N || acc != 0 || bits >= 5 {
        return Err(Base32Error::NotCanonical);
    }
    Ok(out)
}

/// Encodes `bytes` as lower-case base32 without padding.
pub(super) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_spellings() {
        let bytes: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37)).collect();
        let text = encode(&bytes);
        assert_eq!(text.len(), 52);
        assert_eq!(decode::<32>(&text).unwrap().to_vec(), bytes);
        assert_eq!(decode::<32>(&text.to_uppercase()).unwrap().to_vec(), bytes);
        // The last character carries 1 data bit and 4 unused ones; setting
        // an unused bit spells the same bytes differently.
        let mut other = text.clone().into_bytes();
        let last = other.len() - 1;
        other[last] = ALPHABET[(ALPHABET.iter().position(|&c| c == other[last]).unwrap()) | 1];
        let other = String::from_utf8(other).unwrap();
        assert_ne!(other, text);
        assert_eq!(decode::<32>(&other), Err(Base32Error::NotCanonical));
        assert_eq!(decode::<32>(&text[..51]), Err(Base32Error::NotCanonical));
        assert_eq!(
            decode::<32>(&format!("{text}a")),
            Err(Base32Error::NotCanonical)
        );
        assert_eq!(decode::<1>("a1"), Err(Base32Error::BadChar(2, '1')));
        // RFC 4648 test vector, without padding.
        assert_eq!(encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(decode::<6>("MZXW6YTBOI").unwrap(), *b"foobar");
    }
}
