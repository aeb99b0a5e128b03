//! Rewriting the file to hold only the retained records, so that a crash at any moment leaves
//! either the old file or the new one whole: the new one is written beside it, synced, renamed
//! over it, and the directory synced so that the rename itself survives a power cut.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::record::{Record, encode_header, encode_record};

/// Bytes encoded before each write while rewriting.
const CHUNK: usize = 1 << 20;

/// The file that a rewrite writes before renaming it over `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes a header and `records` to a new file that replaces `path`. Returns that file, open
/// for writing and locked, and its length. On error `path` is left as it was.
pub fn rewrite<'a>(
    path: &Path,
    last_assigned: Option<u64>,
    records: impl IntoIterator<Item = &'a Record>,
) -> io::Result<(File, u64)> {
    let temp = temp_path(path);
    let result = write_then_rename(path, &temp, last_assigned, records);
    if result.is_err() {
        // Best effort: a stale temp file is truncated by the next rewrite anyway.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn write_then_rename<'a>(
    path: &Path,
    temp: &Path,
    last_assigned: Option<u64>,
    records: impl IntoIterator<Item = &'a Record>,
) -> io::Result<(File, u64)> {
    let mut file = create(temp)?;
    // Locked before it takes the name, so that another ssed never finds it unlocked there.
    lock(&file)?;
    let mut buf = Vec::with_capacity(CHUNK);
    let mut len = 0u64;
    encode_header(&mut buf, last_assigned);
    for record in records {
        encode_record(&mut buf, record);
        if buf.len() >= CHUNK {
            file.write_all(&buf)?;
            len += buf.len() as u64;
            buf.clear();
        }
    }
    file.write_all(&buf)?;
    len += buf.len() as u64;
    file.sync_all()?;
    std::fs::rename(temp, path)?;
    sync_dir(path)?;
    Ok((file, len))
}

/// Creates (or truncates) a file only its owner can read: events may be private.
pub fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Takes the file's lock without waiting: two servers appending to one file would interleave.
pub fn lock(file: &File) -> io::Result<()> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => io::Error::new(
            io::ErrorKind::WouldBlock,
            "locked by another process (is another ssed using it?)",
        ),
        std::fs::TryLockError::Error(e) => e,
    })
}

/// Syncs the directory that holds `path`, so that a rename into it is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
