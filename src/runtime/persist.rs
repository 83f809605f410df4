//! Persistence: the ban file and the anchors file. Files are read on the
//! caller's thread when the manager is made and started, and written by
//! the `connmgr-persist` thread, which coalesces bursts of saves, so no
//! disk I/O ever runs on the handler thread.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use log::warn;

use crate::addr::Addr;
use crate::policy::banlist::{clock_error, BanFileError, BanList, MAX_BAN_FILE_BYTES};
use crate::runtime::event::Event;
use crate::runtime::notifier::Batch;

const LOG: &str = "connmgr";
const HEADER: &str = "# connmgr anchors v1";

/// Largest anchors file read: far more than `limits::MAX_ANCHORS` lines.
const MAX_ANCHORS_FILE_BYTES: u64 = 64 * 1024;

/// Reads the anchors file and deletes it, so that a crash before the next
/// clean stop does not reuse stale anchors. A missing file gives none; a
/// line that does not parse is skipped with a warning.
pub(crate) fn take_anchors(path: &Path) -> Vec<Addr> {
    let text = match read_regular(path, MAX_ANCHORS_FILE_BYTES) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => return Vec::new(),
        Err(ReadError::TooLarge) => {
            warn!(
                target: LOG,
                "anchors file {} is over {MAX_ANCHORS_FILE_BYTES} bytes; ignoring it",
                path.display()
            );
            return Vec::new();
        }
        Err(ReadError::Io(e)) => {
            warn!(target: LOG, "cannot read anchors file {}: {e}", path.display());
            return Vec::new();
        }
    };
    if let Err(e) = fs::remove_file(path) {
        warn!(target: LOG, "cannot remove anchors file {}: {e}", path.display());
    }
    parse_anchors(&text, &path.display().to_string())
}

/// The addresses in an anchors file's text, at most `MAX_ANCHORS`; a line
/// that does not parse is skipped with a warning naming `file`.
pub(crate) fn parse_anchors(text: &str, file: &str) -> Vec<Addr> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| match l.parse::<Addr>() {
            Ok(addr) => Some(addr),
            Err(e) => {
                warn!(target: LOG, "anchors file {file}: skipping line: {e}");
                None
            }
        })
        .take(crate::limits::MAX_ANCHORS)
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

// The ban list's file operations; the format itself is pure and lives with
// the list.
impl BanList {
    /// Writes the bans in force at `now` to `path`, replacing the file
    /// atomically: readers and crashes see either the old or the new file.
    ///
    /// `wall_now` is the wall-clock time matching `now`; expiries are stored
    /// as Unix seconds, rounded up so that a saved ban is never shorter.
    /// Expired bans are left out.
    pub fn save(
        &self,
        path: impl AsRef<Path>,
        now: Instant,
        wall_now: SystemTime,
    ) -> io::Result<()> {
        let text = self.to_file_text(now, wall_now)?;
        write_atomically(path.as_ref(), text.as_bytes())
    }

    /// Reads a ban list written by [`save`](Self::save).
    ///
    /// `now` and `wall_now` are matching readings of the two clocks; stored
    /// expiries are converted to instants relative to them, and bans that
    /// have expired are skipped. A missing (or empty) file gives an empty
    /// list.
    pub fn load(
        path: impl AsRef<Path>,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<BanList, BanFileError> {
        let mut list = BanList::new();
        list.merge_from_file(path, now, wall_now)?;
        Ok(list)
    }

    /// Adds the bans stored in `path` to this list (extending existing ones
    /// as [`ban`](Self::ban) does) and returns how many unexpired bans the
    /// file held.
    ///
    /// The whole file is checked before anything is added, so on error this
    /// list is left exactly as it was.
    pub fn merge_from_file(
        &mut self,
        path: impl AsRef<Path>,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<usize, BanFileError> {
        let path = path.as_ref();
        if wall_now < std::time::UNIX_EPOCH {
            return Err(BanFileError::Io {
                path: path.to_path_buf(),
                source: clock_error(),
            });
        }
        let bytes = read_limited(path)?;
        self.merge_file_text(&bytes, now, wall_now)
    }
}

/// Reads the whole ban file, treating a missing file as empty.
fn read_limited(path: &Path) -> Result<Vec<u8>, BanFileError> {
    match read_regular(path, MAX_BAN_FILE_BYTES) {
        Ok(bytes) => Ok(bytes.unwrap_or_default()),
        Err(ReadError::TooLarge) => Err(BanFileError::TooLarge {
            path: path.to_path_buf(),
        }),
        Err(ReadError::Io(source)) => Err(BanFileError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Why [`read_regular`] gave up.
enum ReadError {
    Io(io::Error),
    TooLarge,
}

/// Reads `path` if it is a regular file of at most `limit` bytes; `None`
/// if it does not exist. Anything else (a directory, a FIFO that would
/// block the open, a device) is an error, and so is a longer file.
fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file: point the setting at a plain file",
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let mut bytes = Vec::new();
    // Reading one byte past the limit tells "at the limit" from "over it".
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge);
    }
    Ok(Some(bytes))
}

/// Counter making temporary file names unique within the process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to a temporary file next to `path`, flushes it to disk
/// and renames it over `path`, so the file is never seen half-written.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ban list path {} has no file name", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(temp_name(name));
    let result = write_synced(&tmp, contents).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: the original error matters more than cleanup failing.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir);
    Ok(())
}

/// A hidden temporary name derived from the target's file name.
fn temp_name(name: &std::ffi::OsStr) -> OsString {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}-{n}", std::process::id()));
    tmp
}

/// Creates `path` (which must not exist), writes `contents` and fsyncs it.
fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Flushes the directory entry of a rename so that it survives a crash.
/// Best effort: some platforms and file systems cannot sync directories, and
/// the file content is already safe.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// A file write for the persistence thread.
pub(crate) enum SaveJob {
    /// Save the bans in force at `now` (`wall` is the matching wall time).
    Bans {
        list: BanList,
        now: Instant,
        wall: SystemTime,
    },
    /// Save the anchors of a clean stop.
    Anchors(Vec<Addr>),
}

/// Where the persistence thread writes.
pub(crate) struct Files {
    pub(crate) bans: Option<PathBuf>,
    pub(crate) anchors: Option<PathBuf>,
}

/// Starts the persistence thread. It runs until every sender of `jobs` is
/// gone, writing only the newest of each kind of job that queued up while
/// it was busy; a failed write is logged and reported as
/// [`Event::SaveFailed`].
pub(crate) fn spawn_writer(
    jobs: Receiver<SaveJob>,
    files: Files,
    events: Sender<Batch>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("connmgr-persist".into())
        .spawn(move || {
            while let Ok(first) = jobs.recv() {
                let (mut bans, mut anchors) = (None, None);
                for job in std::iter::once(first).chain(jobs.try_iter()) {
                    match job {
                        SaveJob::Bans { list, now, wall } => bans = Some((list, now, wall)),
                        SaveJob::Anchors(addrs) => anchors = Some(addrs),
                    }
                }
                if let (Some((list, now, wall)), Some(path)) = (bans, &files.bans) {
                    report(&events, path, list.save(path, now, wall));
                }
                if let (Some(addrs), Some(path)) = (anchors, &files.anchors) {
                    report(&events, path, save_anchors(path, &addrs));
                }
            }
        })
}

fn report(events: &Sender<Batch>, path: &Path, result: io::Result<()>) {
    if let Err(e) = result {
        warn!(target: LOG, "cannot save {}: {e}", path.display());
        let _ = events.send(Batch::one(Event::SaveFailed {
            path: path.to_path_buf(),
            error: e.to_string(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_plain_or_too_long_are_refused() {
        let dir = std::env::temp_dir().join(format!("connmgr-dir-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(take_anchors(&dir).is_empty());
        let now = Instant::now();
        let err = BanList::load(&dir, now, SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("regular file"), "{err}");
        fs::remove_dir(&dir).unwrap();

        let big = std::env::temp_dir().join(format!("connmgr-big-{}", std::process::id()));
        fs::write(&big, vec![b'#'; MAX_ANCHORS_FILE_BYTES as usize + 1]).unwrap();
        assert!(take_anchors(&big).is_empty());
        let _ = fs::remove_file(&big);
    }

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
