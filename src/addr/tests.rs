use super::*;
use sha3::{Digest, Sha3_256};

const DDG: &str = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion";

fn parse(s: &str) -> Result<Addr, AddrParseError> {
    s.parse()
}

fn err_kind(s: &str) -> AddrErrorKind {
    match parse(s) {
        Ok(a) => panic!("{s:?} parsed as {a:?}, expected an error"),
        Err(e) => e.kind().clone(),
    }
}

fn err_msg(s: &str) -> String {
    parse(s).expect_err(s).to_string()
}

/// Test-only RFC 4648 base32 encoder (lower case, no padding).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Builds a v3 onion host from a public key, computing the checksum
/// independently of the code under test.
fn make_onion_with(pubkey: [u8; 32], version: u8) -> String {
    let mut h = Sha3_256::new();
    h.update(b".onion checksum");
    h.update(pubkey);
    h.update([version]);
    let d = h.finalize();
    let mut raw = pubkey.to_vec();
    raw.extend_from_slice(&[d[0], d[1], version]);
    format!("{}.onion", base32(&raw))
}

fn make_onion(seed: u8) -> String {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
    }
    make_onion_with(key, 3)
}

/// Replaces the character at `idx` (ASCII input) with a different base32 one.
fn flip(host: &str, idx: usize) -> String {
    let mut b = host.as_bytes().to_vec();
    b[idx] = if b[idx] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

// ---- parsing of every form ----

#[test]
fn parses_ipv4() {
    let a = parse("192.0.2.1:8333").unwrap();
    assert_eq!(a, Addr::Ip("192.0.2.1:8333".parse().unwrap()));
    assert_eq!(a.kind(), AddrKind::Ipv4);
    assert_eq!(a.port(), Some(8333));
    assert_eq!(a.host().as_deref(), Some("192.0.2.1"));
    assert_eq!(a.ip(), Some("192.0.2.1".parse().unwrap()));
    assert!(!a.is_onion());
}

#[test]
fn parses_ipv6_and_scope() {
    let a = parse("[2001:DB8::1]:18444").unwrap();
    assert_eq!(a.kind(), AddrKind::Ipv6);
    assert_eq!(a.host().as_deref(), Some("2001:db8::1"));
    assert_eq!(a.to_string(), "[2001:db8::1]:18444");
    let s = parse("[fe80::1%3]:8333").unwrap();
    match s.socket_addr() {
        Some(SocketAddr::V6(v6)) => assert_eq!(v6.scope_id(), 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.to_string(), "[fe80::1%3]:8333");
    assert_eq!(parse("[::1]:1").unwrap().port(), Some(1));
    assert_eq!(parse("[::1]:65535").unwrap().port(), Some(65535));
}

#[test]
fn parses_dns_lowercased_without_trailing_dot() {
    let a = parse("Seed.Example.COM.:8333").unwrap();
    assert_eq!(
        a,
        Addr::Dns {
            host: "seed.example.com".into(),
            port: 8333
        }
    );
    assert_eq!(a.kind(), AddrKind::Dns);
    assert_eq!(a.host().as_deref(), Some("seed.example.com"));
    assert_eq!(a.socket_addr(), None);
    assert_eq!(a.ip(), None);
    assert!(parse("localhost:1").is_ok());
    assert!(parse("_srv.my_host-1.example:80").is_ok());
    assert!(parse("a1-b2.c3:80").is_ok());
    assert!(parse("123.example:80").is_ok());
    assert!(parse("1.2.3.com:80").is_ok());
}

#[test]
fn parses_onion() {
    let host = make_onion(1);
    let a = parse(&format!("{host}:9050")).unwrap();
    assert!(a.is_onion());
    assert_eq!(a.kind(), AddrKind::Onion);
    assert_eq!(a.host().as_deref(), Some(host.as_str()));
    assert_eq!(a.port(), Some(9050));
    assert_eq!(Addr::onion(&host, 9050).unwrap(), a);
    // A trailing dot is accepted like for other host names.
    assert_eq!(parse(&format!("{host}.:9050")).unwrap(), a);
}

#[test]
fn display_parse_round_trip() {
    let onion = make_onion(2);
    let inputs = [
        "1.2.3.4:8333".to_string(),
        "0.0.0.0:1".to_string(),
        "255.255.255.255:65535".to_string(),
        "[::1]:8333".to_string(),
        "[2001:db8::1]:8333".to_string(),
        "[::ffff:1.2.3.4]:8333".to_string(),
        "[fe80::1%7]:8333".to_string(),
        "example.com:8333".to_string(),
        "xn--bcher-kva.example:1".to_string(),
        format!("{onion}:9050"),
        format!("{DDG}:443"),
    ];
    for s in &inputs {
        let a = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(&a.to_string(), s);
        assert_eq!(parse(&a.to_string()).unwrap(), a);
    }
    // Non-canonical inputs round-trip through their canonical form.
    for s in ["EXAMPLE.com.:80", "[2001:0DB8:0::1]:80"] {
        let a = parse(s).unwrap();
        assert_eq!(parse(&a.to_string()).unwrap(), a);
    }
}

#[test]
fn from_impls_and_flowinfo() {
    let sa: SocketAddr = "[2001:db8::1]:8333".parse().unwrap();
    assert_eq!(Addr::from(sa), Addr::Ip(sa));
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(Addr::from((ip, 5)).to_string(), "10.0.0.1:5");
    let with_flow = SocketAddr::V6(SocketAddrV6::new(
        "2001:db8::1".parse().unwrap(),
        8333,
        77,
        0,
    ));
    assert_eq!(Addr::from(with_flow), Addr::Ip(sa));
}

// ---- constructors ----

#[test]
fn dns_constructor() {
    assert_eq!(
        Addr::dns("Example.ORG", 80).unwrap(),
        Addr::Dns {
            host: "example.org".into(),
            port: 80
        }
    );
    // IP literals become Addr::Ip.
    assert_eq!(
        Addr::dns("1.2.3.4", 80).unwrap(),
        parse("1.2.3.4:80").unwrap()
    );
    assert_eq!(Addr::dns("::1", 80).unwrap(), parse("[::1]:80").unwrap());
    assert_eq!(Addr::dns("[::1]", 80).unwrap(), parse("[::1]:80").unwrap());
    // Onion names can't go through DNS; they are validated as onions.
    assert!(Addr::dns(DDG, 80).unwrap().is_onion());
    let e = Addr::dns("example.com", 0).unwrap_err();
    assert_eq!(e.kind(), &AddrErrorKind::InvalidPort);
    assert_eq!(e.input(), "example.com:0");
    assert!(e.to_string().contains("\"example.com:8333\""), "{e}");
    let e = Addr::dns("example.com:8333", 1).unwrap_err();
    assert!(matches!(e.kind(), AddrErrorKind::InvalidHostName(r) if r.contains("port separately")));
    assert_eq!(e.input(), "example.com:8333");
    let e = Addr::dns("[1.2.3.4]", 1).unwrap_err();
    assert!(e.to_string().contains("brackets are only for IPv6"), "{e}");
    assert!(matches!(
        Addr::dns("", 1).unwrap_err().kind(),
        AddrErrorKind::InvalidHostName(_)
    ));
}

#[test]
fn onion_constructor() {
    let host = make_onion(3);
    assert!(Addr::onion(&host, 1).is_ok());
    let e = Addr::onion(&host, 0).unwrap_err();
    assert_eq!(e.kind(), &AddrErrorKind::InvalidPort);
    // The suffix is required, and the message shows the fixed form.
    let bare = host.strip_suffix(".onion").unwrap();
    let e = Addr::onion(bare, 80).unwrap_err();
    assert!(matches!(e.kind(), AddrErrorKind::InvalidOnion(_)));
    assert!(e.to_string().contains(&host), "{e}");
    assert!(matches!(
        Addr::onion("example.com", 80).unwrap_err().kind(),
        AddrErrorKind::InvalidOnion(_)
    ));
}

#[test]
fn custom_addresses() {
    let a = Addr::custom("i2p", "abc.b32.i2p").unwrap();
    assert_eq!(a.kind(), AddrKind::Custom);
    assert_eq!(a.to_string(), "i2p/abc.b32.i2p");
    assert_eq!(a.port(), None);
    assert_eq!(a.host(), None);
    assert_eq!(a.ip(), None);
    assert_eq!(a.socket_addr(), None);
    let Addr::Custom(c) = &a else { panic!() };
    assert_eq!(c.network(), "i2p");
    assert_eq!(c.address(), "abc.b32.i2p");
    assert!(CustomAddr::new("unix", "/tmp/x y/sock").is_ok());
    for (net, addr) in [
        ("", "x"),
        ("my net", "x"),
        ("a/b", "x"),
        ("ünï", "x"),
        ("tab\t", "x"),
        ("i2p", ""),
    ] {
        let e = CustomAddr::new(net, addr).unwrap_err();
        assert!(
            matches!(e.kind(), AddrErrorKind::InvalidCustom(_)),
            "{net:?}"
        );
        assert_eq!(e.input(), format!("{net}/{addr}"));
        assert!(
            e.to_string().contains("e.g.") || e.to_string().contains("give"),
            "{e}"
        );
    }
    // The display form is not parseable: '/' is rejected with a pointer to Addr::custom.
    let e = parse("i2p/abc:1").unwrap_err();
    assert!(e.to_string().contains("Addr::custom"), "{e}");
}

// ---- errors ----

#[test]
fn empty_and_whitespace() {
    assert_eq!(err_kind(""), AddrErrorKind::Empty);
    assert_eq!(err_kind("  \t"), AddrErrorKind::Empty);
    assert!(err_msg("").contains("e.g."));
    for s in [" 1.2.3.4:8333", "1.2.3.4:8333 ", "\nexample.com:1"] {
        let e = parse(s).unwrap_err();
        assert!(
            matches!(e.kind(), AddrErrorKind::InvalidHostName(r) if r.contains("whitespace")),
            "{s:?}"
        );
        assert!(e.to_string().contains("remove it: \""), "{e}");
    }
    // No suggestion when trimming would not help.
    assert!(!err_msg(" foo ").contains("remove it: "));
}

#[test]
fn missing_port() {
    assert_eq!(err_kind("foo"), AddrErrorKind::MissingPort);
    assert_eq!(
        err_msg("foo"),
        "invalid address \"foo\": missing port; add one, e.g. \"foo:8333\""
    );
    assert_eq!(err_kind("1.2.3.4"), AddrErrorKind::MissingPort);
    assert_eq!(err_kind("foo:"), AddrErrorKind::MissingPort);
    assert!(err_msg("foo:").ends_with("e.g. \"foo:8333\""));
    assert_eq!(err_kind("[::1]"), AddrErrorKind::MissingPort);
    assert!(err_msg("[::1]").ends_with("e.g. \"[::1]:8333\""));
    assert_eq!(err_kind("[::1]:"), AddrErrorKind::MissingPort);
}

#[test]
fn invalid_port() {
    for s in [
        "foo:0",
        "foo:65536",
        "foo:99999999999999999999",
        "foo:abc",
        "foo:+80",
        "foo:-1",
        "foo:8 0",
        "foo:８０",
        "[::1]:0",
        "[::1]:x",
        "1.2.3.4:1e3",
    ] {
        assert_eq!(err_kind(s), AddrErrorKind::InvalidPort, "{s}");
        assert!(err_msg(s).contains("port must be 1-65535"), "{s}");
    }
    assert!(err_msg("foo:0").ends_with("e.g. \"foo:8333\""));
    assert!(err_msg("[::1]:0").ends_with("e.g. \"[::1]:8333\""));
    assert_eq!(parse("foo:08333").unwrap().port(), Some(8333));
}

#[test]
fn unbracketed_ipv6() {
    assert_eq!(err_kind("::1"), AddrErrorKind::UnbracketedIpv6);
    assert!(err_msg("::1").contains("\"[::1]:8333\""));
    let m = err_msg("2001:db8::1:8333");
    assert!(
        m.contains("\"[2001:db8::1]:8333\"") && m.contains("\"[2001:db8::1:8333]:8333\""),
        "{m}"
    );
    let m = err_msg("fe80::1%eth0:80");
    assert!(
        m.contains("IPv6 addresses need brackets, e.g. \"[2001:db8::1]:8333\""),
        "{m}"
    );
    assert_eq!(err_kind("a:b:c"), AddrErrorKind::UnbracketedIpv6);
}

#[test]
fn bracket_errors() {
    for s in [
        "[1.2.3.4]:80",
        "[example.com]:80",
        "[::1:80",
        "[::1]80",
        "[fe80::1%eth0]:80",
        "[fe80::1%]:80",
        "[fe80::1%+1]:80",
    ] {
        let e = parse(s).unwrap_err();
        assert!(
            matches!(e.kind(), AddrErrorKind::InvalidHostName(_)),
            "{s}: {e:?}"
        );
        assert!(e.to_string().contains("e.g."), "{e}");
    }
    assert!(err_msg("[1.2.3.4]:80").contains("\"1.2.3.4:8333\""));
}

#[test]
fn url_rejected_with_suggestion() {
    let m = err_msg("tcp://example.com:8333/x");
    assert!(
        m.contains("URL") && m.contains("\"example.com:8333\""),
        "{m}"
    );
    assert!(err_msg("http://").contains("URL"));
}

#[test]
fn host_name_errors() {
    let cases = [
        (":80", "missing"),
        ("-foo.com:80", "starts with '-'"),
        ("foo-.com:80", "ends with '-'"),
        ("foo..com:80", "empty part"),
        (".foo.com:80", "empty part"),
        ("..:80", "empty part"),
        (".:80", "alone"),
        ("foo!.com:80", "'!'"),
        ("foo bar:80", "whitespace"),
        ("bücher.de:80", "punycode"),
        ("a/b:80", "'/'"),
        ("foo%1:80", "zone"),
        ("1.2.3:80", "looks like an incomplete IPv4 address"),
        ("1.2:80", "incomplete IPv4"),
        ("12345:80", "only digits"),
        ("256.1.1.1:80", "0-255"),
        ("01.2.3.4:80", "leading zeros"),
        ("1.2.3.4.5:80", "exactly"),
        ("1.2.3.4.:80", "remove it: \"1.2.3.4\""),
    ];
    for (s, needle) in cases {
        let e = parse(s).unwrap_err();
        let AddrErrorKind::InvalidHostName(reason) = e.kind() else {
            panic!("{s}: {e:?}")
        };
        assert!(reason.contains(needle), "{s}: {reason}");
        assert!(
            ["e.g.", "remove", "write", "use"]
                .iter()
                .any(|w| reason.contains(w)),
            "{s}: no suggestion in {reason}"
        );
    }
    let long_label = format!("{}.com:80", "a".repeat(64));
    assert!(
        matches!(err_kind(&long_label), AddrErrorKind::InvalidHostName(r) if r.contains("at most 63"))
    );
    assert!(parse(&format!("{}.com:80", "a".repeat(63))).is_ok());
}

#[test]
fn host_name_length_limit() {
    // 63+1+63+1+63+1+61 = 253 characters: the maximum.
    let ok = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
    assert_eq!(ok.len(), 253);
    assert!(parse(&format!("{ok}:80")).is_ok());
    // With a trailing dot it is still 253 characters of name.
    assert!(parse(&format!("{ok}.:80")).is_ok());
    let long = format!("{ok}c");
    assert_eq!(long.len(), 254);
    assert_eq!(
        err_kind(&format!("{long}:80")),
        AddrErrorKind::HostNameTooLong(254)
    );
    let m = err_msg(&format!("{long}:80"));
    assert!(
        m.contains("254") && m.contains("253") && m.contains("shorter"),
        "{m}"
    );
    assert!(m.contains('…'), "long inputs are shortened: {m}");
    assert_eq!(
        Addr::dns(&long, 80).unwrap_err().kind(),
        &AddrErrorKind::HostNameTooLong(254)
    );
}

// ---- onion validation ----

#[test]
fn real_onion_validates() {
    let a = parse(&format!("{DDG}:443")).unwrap();
    assert_eq!(a.host().as_deref(), Some(DDG));
    for seed in 0..20 {
        assert!(Addr::onion(&make_onion(seed), 1).is_ok(), "seed {seed}");
    }
    assert!(Addr::onion(&make_onion_with([0; 32], 3), 1).is_ok());
    assert!(Addr::onion(&make_onion_with([0xff; 32], 3), 1).is_ok());
}

#[test]
fn uppercase_onion_is_lowercased() {
    let host = make_onion(4);
    let upper = host.to_uppercase();
    let a = parse(&format!("{upper}:80")).unwrap();
    assert_eq!(a.host().as_deref(), Some(host.as_str()));
    let mixed = format!("{}.OnIoN", &DDG[..56].to_uppercase());
    assert_eq!(
        Addr::onion(&mixed, 80).unwrap().host().as_deref(),
        Some(DDG)
    );
}

#[test]
fn flipped_character_breaks_checksum() {
    let host = make_onion(5);
    // Characters 0..=50 only touch the public key and checksum bytes.
    for idx in [0, 10, 30, 51] {
        let bad = flip(&host, idx);
        match Addr::onion(&bad, 80).unwrap_err().kind() {
            AddrErrorKind::InvalidOnion(r) => assert!(r.contains("checksum"), "{idx}: {r}"),
            k => panic!("{k:?}"),
        }
    }
    let ddg_bad = flip(DDG, 3);
    assert!(err_msg(&format!("{ddg_bad}:1")).contains("checksum"));
}

#[test]
fn wrong_version_rejected() {
    for version in [0, 2, 4, 255] {
        let host = make_onion_with([9; 32], version);
        let e = Addr::onion(&host, 80).unwrap_err();
        let AddrErrorKind::InvalidOnion(r) = e.kind() else {
            panic!()
        };
        assert!(r.contains(&format!("version byte is {version}")), "{r}");
    }
    // Mistyping the last character shows up as a version problem.
    let host = make_onion(6);
    let last = host.len() - ".onion".len() - 1;
    let m = Addr::onion(&flip(&host, last), 1).unwrap_err().to_string();
    assert!(m.contains("version"), "{m}");
}

#[test]
fn onion_shape_errors() {
    let onion = |s: &str| match parse(s).unwrap_err().kind() {
        AddrErrorKind::InvalidOnion(r) => r.clone(),
        k => panic!("{s}: {k:?}"),
    };
    // v2
    let r = onion("expyuzz4wqqyqhjn.onion:80");
    assert!(r.contains("v2") && r.contains("no longer supported"), "{r}");
    // wrong lengths
    let r = onion(&format!("{}.onion:80", "a".repeat(55)));
    assert!(r.contains("has 55"), "{r}");
    assert!(onion(&format!("{}.onion:80", "a".repeat(57))).contains("has 57"));
    assert!(onion(".onion:80").contains("nothing before"));
    assert!(onion("ONION.onion:80").contains("has 5"));
    // bad characters
    let good = make_onion(7);
    let with_digit = format!("0{}", &good[1..]);
    let r = onion(&format!("{with_digit}:80"));
    assert!(r.contains("'0' at position 1") && r.contains("2-7"), "{r}");
    let with_multibyte = format!("é{}", &good[1..]);
    assert_eq!(with_multibyte.chars().count(), good.chars().count());
    assert!(onion(&format!("{with_multibyte}:80")).contains("'é' at position 1"));
    // subdomains
    let r = onion(&format!("www.{good}:80"));
    assert!(
        r.contains("subdomain") && r.contains(&format!("\"{good}\"")),
        "{r}"
    );
    assert!(onion("a.b.onion:80").contains("subdomain"));
}

// ---- netgroups ----

#[test]
fn netgroups() {
    let g = |s: &str| parse(s).unwrap().netgroup();
    assert_eq!(g("10.1.2.3:1"), NetGroup::Ipv4([10, 1]));
    assert_eq!(g("10.1.2.3:1"), g("10.1.99.4:2"));
    assert_ne!(g("10.1.2.3:1"), g("10.2.2.3:1"));
    assert_eq!(g("10.1.2.3:1").to_string(), "10.1.0.0/16");
    // IPv4-mapped IPv6 shares the IPv4 group.
    assert_eq!(g("[::ffff:10.1.2.3]:1"), NetGroup::Ipv4([10, 1]));
    assert_eq!(
        g("[2001:db8:1:2::1]:1"),
        NetGroup::Ipv6([0x20, 0x01, 0x0d, 0xb8])
    );
    assert_eq!(g("[2001:db8:1:2::1]:1"), g("[2001:db8:ffff::9]:1"));
    assert_eq!(g("[2001:db8::1]:1").to_string(), "2001:db8::/32");
    assert_eq!(g("[::1]:1").to_string(), "::/32");
    // IPv6 that embeds an IPv4 address groups by that address's /16:
    // 6to4 (2002:0a01:0203::), Teredo (the last 4 bytes inverted) and NAT64.
    assert_eq!(g("[2002:a01:203::1]:1"), NetGroup::Ipv4([10, 1]));
    assert_eq!(
        g("[2001:0:4136:e378:8000:63bf:f5fe:fdfc]:1"),
        NetGroup::Ipv4([10, 1])
    );
    assert_eq!(g("[64:ff9b::a01:203]:1"), NetGroup::Ipv4([10, 1]));
    assert_eq!(
        g("[64:ff9b:1::a01:203]:1"),
        NetGroup::Ipv6([0, 0x64, 0xff, 0x9b])
    );
    // Onion, I2P and CJDNS: 16 groups each, by the first 4 key bits.
    let mut key = [0u8; 32];
    key[0] = 0xa7;
    let onion = Addr::onion_from_key(&key, 1).unwrap();
    assert_eq!(onion.overlay_key(), Some(key));
    assert_eq!(onion.netgroup(), NetGroup::Onion(0xa));
    assert_eq!(onion.netgroup().to_string(), "onion:a");
    key[0] = 0xaf;
    assert_eq!(
        Addr::onion_from_key(&key, 1).unwrap().netgroup(),
        NetGroup::Onion(0xa)
    );
    key[0] = 0x17;
    let i2p = Addr::i2p_from_hash(&key, 0);
    assert_eq!(i2p.netgroup(), NetGroup::I2p(1));
    assert_eq!(i2p.overlay_key(), Some(key));
    assert_ne!(i2p.netgroup(), NetGroup::Onion(1));
    let cjdns = Addr::cjdns("fc5e::1".parse().unwrap(), 1).unwrap();
    assert_eq!(cjdns.netgroup(), NetGroup::Cjdns(5));
    assert_eq!(cjdns.netgroup().to_string(), "cjdns:5");
    assert_eq!(g("Seed.Example:1"), NetGroup::Dns("seed.example".into()));
    assert_eq!(g("seed.example:1").to_string(), "dns:seed.example");
    let c = Addr::custom("i2p", "xyz").unwrap().netgroup();
    assert_eq!(c, NetGroup::Custom("i2p".into(), "xyz".into()));
    assert_eq!(c.to_string(), "custom:i2p/xyz");
}

#[test]
fn kind_display() {
    let names: Vec<String> = [
        AddrKind::Ipv4,
        AddrKind::Ipv6,
        AddrKind::Dns,
        AddrKind::Onion,
        AddrKind::I2p,
        AddrKind::Cjdns,
        AddrKind::Custom,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        names,
        ["IPv4", "IPv6", "DNS name", "onion", "I2P", "CJDNS", "custom"]
    );
}

#[test]
fn error_is_std_error() {
    let e: Box<dyn std::error::Error> = Box::new(parse("x").unwrap_err());
    assert!(e.to_string().starts_with("invalid address \"x\": "));
    assert_eq!(parse("x").unwrap_err().input(), "x");
}

// ---- robustness ----

#[test]
fn multibyte_input_does_not_panic() {
    let inputs = [
        "ü:80",
        "üüü",
        "[ü]:80",
        "[::1%ü]:80",
        "[::1]ü",
        "例え.jp:80",
        "€.onion:80",
        "a€onion:1",
        "€onion:1",
        "é.onion",
        "x.oni€n:1",
        "\u{0}:1",
        "::€",
        "€:€:€",
        "a\u{301}.com:1",
        "🦀🦀🦀🦀🦀🦀.onion:1",
        "[🦀]:1",
        "🦀://🦀/:1",
        "ÿ.:1",
        "€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€.onion:1",
    ];
    for s in inputs {
        if let Err(e) = parse(s) {
            let _ = e.to_string();
        }
        for h in [s, &s[..s.char_indices().last().map_or(0, |(i, _)| i)]] {
            let _ = Addr::dns(h, 1).map_err(|e| e.to_string());
            let _ = Addr::onion(h, 1).map_err(|e| e.to_string());
            let _ = Addr::custom(h, h).map_err(|e| e.to_string());
        }
    }
    let huge = "€".repeat(10_000);
    let m = err_msg(&format!("{huge}:1"));
    assert!(
        m.chars().count() < 400,
        "message not shortened: {} chars",
        m.chars().count()
    );
}

/// Tiny xorshift64 so the fuzz test needs no `rand` dependency and is
/// reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzz_random_strings_never_panic() {
    const PIECES: &[&str] = &[
        ":",
        "[",
        "]",
        ".",
        "%",
        "/",
        "://",
        "-",
        "_",
        " ",
        "0",
        "1",
        "9",
        "255",
        "65535",
        "8333",
        "::",
        "ffff",
        "a",
        "Z",
        "x",
        ".onion",
        ".ONION",
        ".b32.i2p",
        ".i2p",
        "cjdns:",
        "fc00",
        "é",
        "€",
        "🦀",
        "\u{0}",
        "\t",
        "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad",
        "www",
        "7",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let seeds = [
        "1.2.3.4:8333".to_string(),
        "[2001:db8::1]:8333".to_string(),
        "[fe80::1%2]:1".to_string(),
        "example.com:80".to_string(),
        format!("{DDG}:443"),
        make_onion(9) + ":9050",
        format!("{}.b32.i2p:0", "a".repeat(52)),
        "cjdns:[fc00::1]:8333".to_string(),
    ];
    let mut parsed = 0;
    for round in 0..6000 {
        let s = if round % 3 == 0 {
            // A valid address with a few random character edits.
            let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
            for _ in 0..rng.below(3) {
                let piece = PIECES[rng.below(PIECES.len())]
                    .chars()
                    .next()
                    .unwrap_or('a');
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 => chars.insert(at, piece),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ if at < chars.len() => chars[at] = piece,
                    _ => {}
                }
            }
            chars.into_iter().collect()
        } else if round % 3 == 1 {
            // Arbitrary bytes, made valid UTF-8.
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            // Structured pieces, more likely to reach deep code paths.
            (0..rng.below(12))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect()
        };
        match s.parse::<Addr>() {
            Ok(a) => {
                parsed += 1;
                let shown = a.to_string();
                assert_eq!(shown.parse::<Addr>().as_ref(), Ok(&a), "{s:?}");
                let _ = (a.netgroup().to_string(), a.host(), a.kind());
                let port_ok = |p: u16| p != 0 || a.kind() == AddrKind::I2p;
                assert!(a.port().is_some_and(port_ok), "{a}");
            }
            Err(e) => {
                assert_eq!(e.input(), s);
                assert!(e.to_string().starts_with("invalid address "));
            }
        }
        let _ = Addr::dns(&s, 1).map_err(|e| e.to_string());
        let _ = Addr::onion(&s, 1).map_err(|e| e.to_string());
        let _ = Addr::custom(&s, &s).map_err(|e| e.to_string());
    }
    // About a sixth parse; make sure the round-trip check really ran.
    assert!(
        parsed > 300,
        "only {parsed} fuzz inputs were valid addresses"
    );
}

// ---- I2P and CJDNS ----

#[test]
fn parses_i2p() {
    let hash: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29));
    let host = Addr::i2p_from_hash(&hash, 0).host().unwrap();
    assert_eq!(host.len(), 52 + ".b32.i2p".len());
    let a = parse(&format!("{}:0", host.to_uppercase())).unwrap();
    assert_eq!(a.kind(), AddrKind::I2p);
    assert_eq!(a.host().as_deref(), Some(host.as_str()));
    assert_eq!(a.port(), Some(0));
    assert_eq!(a.overlay_key(), Some(hash));
    assert_eq!(a.to_string(), format!("{host}:0"));
    assert_eq!(Addr::dns(&host, 0).unwrap(), a);
    assert_eq!(Addr::i2p(&format!("{host}."), 0).unwrap(), a);
    assert_eq!(parse(&format!("{host}:8333")).unwrap().port(), Some(8333));
    assert!(parse(&host).is_err(), "a port is required");
}

#[test]
fn rejects_bad_i2p() {
    let i2p = |s: &str| match parse(s) {
        Err(e) => {
            assert!(matches!(e.kind(), AddrErrorKind::InvalidI2p(_)), "{s}: {e}");
            e.to_string()
        }
        Ok(a) => panic!("{s:?} parsed as {a:?}"),
    };
    assert!(i2p("stats.i2p:0").contains("address-book"));
    assert!(i2p(&format!("{}.b32.i2p:0", "a".repeat(51))).contains("has 51"));
    assert!(i2p(&format!("{}.b32.i2p:0", "a".repeat(60))).contains("only the 52-character"));
    assert!(i2p(&format!("x.{}.b32.i2p:0", "a".repeat(52))).contains("subdomains"));
    assert!(i2p(&format!("{}1.b32.i2p:0", "a".repeat(51))).contains("not base32"));
    // "b" sets an unused bit in the last character.
    assert!(i2p(&format!("{}b.b32.i2p:0", "a".repeat(51))).contains("typo"));
    assert!(i2p(".b32.i2p:0").contains("nothing before"));
}

#[test]
fn parses_cjdns() {
    let a = parse("CJDNS:[fc00::1]:8333").unwrap();
    assert_eq!(a.kind(), AddrKind::Cjdns);
    assert_eq!(a.to_string(), "cjdns:[fc00::1]:8333");
    assert_eq!(a.socket_addr(), Some("[fc00::1]:8333".parse().unwrap()));
    assert_eq!(a.host().as_deref(), Some("fc00::1"));
    // Without the prefix the same text is plain IPv6.
    assert_eq!(parse("[fc00::1]:8333").unwrap().kind(), AddrKind::Ipv6);
    let cjdns = |s: &str| match parse(s) {
        Err(e) => e.to_string(),
        Ok(a) => panic!("{s:?} parsed as {a:?}"),
    };
    assert!(cjdns("cjdns:[2001:db8::1]:8333").contains("fc00::/8"));
    assert!(cjdns("cjdns:fc00::1:8333").contains("brackets"));
    assert!(cjdns("cjdns:[fc00::1%2]:8333").contains("zone"));
    assert!(cjdns("cjdns:[fc00::1]:0").contains("port"));
    assert!(cjdns("cjdns:[fc00::1]").contains("port"));
    assert!(Addr::cjdns("fc00::1".parse().unwrap(), 0).is_err());
}
