//! The history file (`--history-file`): every accepted event appended to a log on disk, so that
//! the retained history survives a restart.
//!
//! [`open`] loads the file (cutting what is torn or corrupt, and saying so), rewrites it to hold
//! only the retained records, and starts the [`Writer`] thread that appends to it from then on.
//! The file is locked while open, so that two servers never append to one file.
//!
//! What is on disk when: see [`FsyncPolicy`] and the writer's module docs. In short, a record
//! is settled `Written` once the OS has it (and, with `FsyncPolicy::Always`, once the device
//! has it); a failed record is not in the file.

mod compact;
mod record;
mod recover;
mod writer;

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use record::{Cut, Record};
pub use recover::fuzz_check;
pub use writer::{AppendError, Options, Outcome, Settled, Writer};

/// What the file held at start.
#[derive(Debug)]
pub struct Loaded {
    /// The last `retained` good records, oldest first.
    pub records: Vec<Record>,
    /// The highest id the server ever assigned in this file: new ids go above it.
    pub last_assigned: Option<u64>,
    /// What was cut, in file order, for the log. The file no longer holds it.
    pub cut: Vec<Cut>,
}

/// Why the file cannot be used. Each names the path; the daemon refuses to start.
#[derive(Debug)]
pub enum OpenError {
    /// The path is a directory.
    IsDirectory(PathBuf),
    /// The file cannot be opened for reading and writing (permissions, a missing or read-only
    /// directory, a parent that is not a directory), or another process holds it.
    Open(PathBuf, io::Error),
    /// The file cannot be read.
    Read(PathBuf, io::Error),
    /// The file was written by a newer ssed, in a format this one cannot read. It is left
    /// untouched.
    NewerFormat(PathBuf, u16),
    /// The file cannot be rewritten (through `PATH.tmp` in the same directory).
    Write(PathBuf, io::Error),
    /// The writer thread cannot be started.
    Thread(io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::IsDirectory(p) => {
                write!(f, "history file {}: is a directory", p.display())
            }
            OpenError::Open(p, e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new("."));
                write!(
                    f,
                    "history file {}: the directory {} does not exist (create it first)",
                    p.display(),
                    dir.display()
                )
            }
            OpenError::Open(p, e) => write!(f, "history file {}: cannot open: {e}", p.display()),
            OpenError::Read(p, e) => write!(f, "history file {}: cannot read: {e}", p.display()),
            OpenError::NewerFormat(p, v) => write!(
                f,
                "history file {}: format version {v} is newer than this ssed reads ({}); \
                 upgrade ssed or move the file away",
                p.display(),
                record::FORMAT_VERSION
            ),
            OpenError::Write(p, e) => write!(
                f,
                "history file {}: cannot write (through {}): {e}",
                p.display(),
                compact::temp_path(p).display()
            ),
            OpenError::Thread(e) => write!(f, "history file: cannot start its writer: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Opens (or creates) the history file at `path`, loads its last `options.retained` good
/// records, rewrites it to hold only those, and starts the writer. `wake` is called on the
/// writer's thread whenever appends have been settled (see [`Writer::take_settled`]).
pub fn open(
    path: &Path,
    options: Options,
    wake: Box<dyn Fn() + Send>,
) -> Result<(Loaded, Writer), OpenError> {
    let path = path.to_path_buf();
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => return Err(OpenError::IsDirectory(path)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(OpenError::Open(path, e)),
    }
    let old = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) => return Err(OpenError::Open(path, e)),
    };
    if let Err(e) = compact::lock(&old) {
        return Err(OpenError::Open(path, e));
    }
    // Read through a window: the file may be larger than memory (or than a 32-bit address
    // space) when compactions failed for long.
    let recovered = match recover::load(&old, options.retained) {
        Ok(Ok(recovered)) => recovered,
        Ok(Err(version)) => return Err(OpenError::NewerFormat(path, version)),
        Err(e) => return Err(OpenError::Read(path, e)),
    };
    // Always rewritten: the cut stretches go, the header records the last id, and a directory
    // where the file cannot be replaced is found now rather than at the first compaction.
    let (file, len) = match compact::rewrite(&path, recovered.last_assigned, &recovered.records) {
        Ok(new) => new,
        Err(e) => return Err(OpenError::Write(path, e)),
    };
    // The old file's lock is held until the new one has taken its name.
    drop(old);
    let disk = writer::Disk::new(
        path,
        file,
        len,
        recovered.records.clone(),
        recovered.last_assigned,
        &options,
    );
    let writer = Writer::spawn(disk, &options, wake).map_err(OpenError::Thread)?;
    let loaded = Loaded {
        records: recovered.records,
        last_assigned: recovered.last_assigned,
        cut: recovered.cut,
    };
    Ok((loaded, writer))
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Record;
    use crate::event::{Event, Topics};

    /// A record of an event of type `tick` with `retry: 10`.
    pub fn record(assigned: Option<u64>, id: &str, topics: &[&str], data: &str) -> Record {
        let mut event = Event::new(data);
        for t in topics {
            event = event.topic(*t);
        }
        let encoded = crate::frame::encode(id, "tick", Some(10), data);
        Record::new(&encoded, Topics::of(&event), assigned)
    }

    /// A directory of its own under the system's temporary directory, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ssed-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        pub fn join(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod measure;
#[cfg(test)]
mod tests;
