//! Anchors: the addresses of the longest-lived outbound connections,
//! written at a clean stop and dialed first at the next start, so that a
//! restart does not hand every outbound slot to whatever the address
//! source offers (an eclipse opportunity).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use log::warn;

use crate::addr::Addr;

const LOG: &str = "connmgr";
const HEADER: &str = "# connmgr anchors v1";

/// Reads the anchors file and deletes it, so that a crash before the next
/// clean stop does not reuse stale anchors. A missing file gives none; a
/// line that does not parse is skipped with a warning.
pub(crate) fn take_anchors(path: &Path) -> Vec<Addr> {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            warn!(target: LOG, "cannot read anchors file {}: {e}", path.display());
            return Vec::new();
        }
    };
    if let Err(e) = fs::remove_file(path) {
        warn!(target: LOG, "cannot remove anchors file {}: {e}", path.display());
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match l.parse::<Addr>() {
            Ok(addr) => Some(addr),
            Err(e) => {
                warn!(target: LOG, "anchors file {}: skipping line: {e}", path.display());
                None
            }
        })
        .collect()
}

/// Writes `addrs` to `path` atomically (temporary file, then rename).
pub(crate) fn save_anchors(path: &Path, addrs: &[Addr]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{HEADER}")?;
        for addr in addrs {
            writeln!(f, "{addr}")?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_then_gone() {
        let path = std::env::temp_dir().join(format!("connmgr-anchors-{}", std::process::id()));
        let addrs: Vec<Addr> = vec![
            "1.2.3.4:8333".parse().unwrap(),
            "[2001:db8::1]:18333".parse().unwrap(),
        ];
        save_anchors(&path, &addrs).unwrap();
        assert_eq!(take_anchors(&path), addrs);
        assert!(!path.exists(), "taken anchors are deleted");
        assert!(take_anchors(&path).is_empty());
    }

    #[test]
    fn bad_lines_are_skipped() {
        let path = std::env::temp_dir().join(format!("connmgr-anchors-bad-{}", std::process::id()));
        fs::write(&path, b"# header\nnot an address\n1.2.3.4:8333\n\xff\xfe\n").unwrap();
        assert_eq!(
            take_anchors(&path),
            vec!["1.2.3.4:8333".parse::<Addr>().unwrap()]
        );
    }
}
