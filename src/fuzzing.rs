//! Entry points for the fuzz targets in `fuzz/`: every parser of bytes
//! from outside, callable on a byte slice without files or sockets.
//! Built only with the `fuzzing` feature; not a stable API.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use crate::addr::Addr;
use crate::policy::banlist::BanList;
use crate::transport::socks::{self, SocksTarget};

/// Parses `text` as an address and as a subnet, and checks that what
/// parses prints back to text that parses to the same value.
pub fn addr_and_subnet(text: &str) {
    if let Ok(addr) = text.parse::<Addr>() {
        let again: Addr = addr.to_string().parse().expect("a printed address parses");
        assert_eq!(again, addr, "address round trip of {text:?}");
        let _ = addr.kind();
        let _ = crate::policy::diversity::diversity_group(&addr);
    }
    if let Ok(subnet) = text.parse::<crate::policy::banlist::Subnet>() {
        let again: crate::policy::banlist::Subnet =
            subnet.to_string().parse().expect("a printed subnet parses");
        assert_eq!(again, subnet, "subnet round trip of {text:?}");
    }
}

/// Reads `bytes` as a ban file's contents, at a fixed pair of clocks; a
/// list that loads must save and load again to the same bans.
pub fn ban_file(bytes: &[u8]) {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let mut list = BanList::new();
    if list.merge_file_text(bytes, now, wall).is_ok() {
        let text = list.to_file_text(now, wall).expect("a loaded list saves");
        let mut again = BanList::new();
        again
            .merge_file_text(text.as_bytes(), now, wall)
            .expect("a saved list loads");
        assert_eq!(again.bans(now).len(), list.bans(now).len());
    }
}

/// Reads `bytes` as an anchors file's contents.
pub fn anchors_file(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let addrs = crate::runtime::persist::parse_anchors(&text, "fuzz");
    assert!(addrs.len() <= crate::limits::MAX_ANCHORS);
}

/// Plays `bytes` as everything a SOCKS5 proxy answers, to a CONNECT, a
/// Tor RESOLVE or a Tor RESOLVE_PTR (chosen by the first byte), with or
/// without credentials. A host name that comes back must be a clean one.
pub fn socks_replies(bytes: &[u8]) {
    let Some((&mode, answers)) = bytes.split_first() else {
        return;
    };
    let creds = ("user".to_string(), "pass".to_string());
    let creds = (mode & 4 != 0).then_some(&creds);
    let (cmd, target) = match mode % 3 {
        0 => (
            socks::CMD_CONNECT,
            SocksTarget::domain("peer.example", 8333).unwrap(),
        ),
        1 => (
            socks::CMD_RESOLVE,
            SocksTarget::domain("peer.example", 0).unwrap(),
        ),
        _ => (
            socks::CMD_RESOLVE_PTR,
            SocksTarget::Ip(SocketAddr::new(IpAddr::from([192, 0, 2, 1]), 0)),
        ),
    };
    let mut io = Replay {
        answers,
        written: 0,
    };
    if let Ok(SocksTarget::Domain { host, .. }) =
        socks::client_exchange(&mut io, creds, cmd, &target)
    {
        assert!(!host.is_empty() && host.len() <= 255);
        assert!(host.bytes().all(|b| b.is_ascii_graphic()), "{host:?}");
    }
}

/// A proxy that answers with fixed bytes and takes whatever is written.
struct Replay<'a> {
    answers: &'a [u8],
    written: usize,
}

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.answers.read(buf)
    }
}

impl Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A client that wrote without bound would be a bug of its own.
        self.written += buf.len();
        assert!(
            self.written < 4096,
            "the client wrote {} bytes",
            self.written
        );
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The answer records in `bytes`: 17-byte records, a family byte then 16
/// address bytes (IPv4 in the first four).
fn answer_ips(records: &[u8]) -> Vec<IpAddr> {
    records
        .chunks_exact(17)
        .map(|r| {
            let mut v6 = [0u8; 16];
            v6.copy_from_slice(&r[1..]);
            match r[0] & 1 {
                0 => IpAddr::from([r[1], r[2], r[3], r[4]]),
                _ => IpAddr::from(v6),
            }
        })
        .collect()
}

/// Reads `bytes` as a DNS seed's answer (a flags byte, then records as in
/// `answer_ips`) and checks what seeding keeps: dialable, distinct,
/// canonical, and no local address unless allowed.
pub fn seed_answers(bytes: &[u8]) {
    let Some((&flags, records)) = bytes.split_first() else {
        return;
    };
    let allow_local = flags & 1 != 0;
    let kept = crate::seed::usable_ips(answer_ips(records), allow_local);
    let mut seen = std::collections::HashSet::new();
    for ip in &kept {
        assert!(seen.insert(*ip), "{ip} kept twice");
        assert_eq!(ip.to_canonical(), *ip);
        assert!(allow_local || !crate::seed::is_local(ip), "{ip} is local");
    }
}

/// Runs the whole of [`seed_from_dns`](crate::seed::seed_from_dns) (its
/// lookup thread, the cap, ages and services) on an answer read as in
/// [`seed_answers`]: every address it gives is one seeding keeps, at most
/// the cap of them.
pub fn seed_run(bytes: &[u8]) {
    let Some((&flags, records)) = bytes.split_first() else {
        return;
    };
    let allow_local = flags & 1 != 0;
    let cap = usize::from(flags >> 1 & 7) + 1;
    let ips = answer_ips(records);
    let kept = crate::seed::usable_ips(ips.clone(), allow_local);
    let net = crate::seed::NetParams::new("fuzz", 8333).seed("seed.fuzz", false);
    let options = crate::seed::SeedOptions::new()
        .allow_local(allow_local)
        .max_per_seed(cap)
        .timeout(Duration::from_secs(5));
    let answer = move |_: &str, _: Duration| Ok(ips.clone());
    crate::seed::seed_from_dns(&net, &answer, &options, |result| {
        assert!(result.addrs.len() <= cap);
        for a in &result.addrs {
            let Addr::Ip(sa) = &a.addr else {
                panic!("not an IP: {:?}", a.addr)
            };
            assert!(kept.contains(&sa.ip()), "{sa} was not kept");
        }
    });
}

/// Decodes `bytes` as an addrv2 payload with rust-bitcoin and converts
/// each entry: what converts must convert back to the same entry and print
/// to text that parses to the same address.
#[cfg(feature = "bitcoin")]
pub fn addr_v2(bytes: &[u8]) {
    use bitcoin::p2p::address::AddrV2Message;
    let Ok(msgs) = bitcoin::consensus::deserialize::<Vec<AddrV2Message>>(bytes) else {
        return;
    };
    for msg in &msgs {
        let Ok(addr) = Addr::try_from(msg) else {
            continue;
        };
        let back = addr
            .to_addr_v2_message(msg.services, msg.time)
            .expect("a converted entry converts back");
        assert_eq!(&back, msg, "addrv2 round trip of {addr}");
        let again: Addr = addr.to_string().parse().expect("a printed address parses");
        assert_eq!(again, addr);
        let _ = addr.netgroup();
    }
}
