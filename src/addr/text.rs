//! The text of IPv4 socket addresses, written without the formatting
//! machinery: every connection's default peer id is its address text, and
//! `core::fmt` spends about five times as long on `203.0.113.7:8333` as
//! writing the digits directly.

use std::net::SocketAddrV4;

/// Longest text of an IPv4 socket address: `255.255.255.255:65535`.
pub(super) const MAX_V4_TEXT: usize = 21;

/// Writes `a.b.c.d:port` into `buf` and returns it; the same text as
/// `SocketAddrV4`'s `Display`.
pub(super) fn v4_text<'a>(sa: &SocketAddrV4, buf: &'a mut [u8; MAX_V4_TEXT]) -> &'a str {
    let mut len = 0;
    for (i, octet) in sa.ip().octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        len += write_decimal(u32::from(octet), &mut buf[len..]);
    }
    buf[len] = b':';
    len += 1;
    len += write_decimal(u32::from(sa.port()), &mut buf[len..]);
    // Only ASCII digits, dots and a colon were written.
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

/// Writes `n` (at most 65535) in decimal at the start of `out`; how many
/// bytes it took.
fn write_decimal(mut n: u32, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 5];
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (slot, digit) in out.iter_mut().zip(digits[..count].iter().rev()) {
        *slot = *digit;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn matches_the_standard_text() {
        let cases = [
            (Ipv4Addr::new(0, 0, 0, 0), 0),
            (Ipv4Addr::new(255, 255, 255, 255), 65535),
            (Ipv4Addr::new(203, 0, 113, 7), 8333),
            (Ipv4Addr::new(10, 9, 99, 100), 10),
            (Ipv4Addr::new(1, 20, 100, 255), 1),
        ];
        for (ip, port) in cases {
            let sa = SocketAddrV4::new(ip, port);
            let mut buf = [0; MAX_V4_TEXT];
            assert_eq!(v4_text(&sa, &mut buf), sa.to_string());
        }
        // Every octet and a spread of ports.
        for n in 0..=255u8 {
            let sa = SocketAddrV4::new(Ipv4Addr::new(n, n / 3, 255 - n, n / 7), u16::from(n) * 257);
            let mut buf = [0; MAX_V4_TEXT];
            assert_eq!(v4_text(&sa, &mut buf), sa.to_string());
        }
    }
}
