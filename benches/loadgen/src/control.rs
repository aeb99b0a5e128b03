//! A small block of shared memory through which the coordinating process steers its
//! subscriber processes and watches their progress. One process can hold only about 19k
//! sockets here, so 50k subscribers need several processes; the publisher must still see how
//! far behind the subscribers are, many times a second, which pipes would make costly.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Phases, in the order the coordinator moves through them. The block starts zeroed, that is
/// in the connect phase.
#[allow(dead_code)]
pub const PHASE_CONNECT: u64 = 0;
pub const PHASE_RUN: u64 = 1;
/// Publishing is over and `expected` holds the number of events each subscriber should get.
pub const PHASE_DRAIN: u64 = 2;
pub const PHASE_STOP: u64 = 3;

const HEADER_WORDS: usize = 8;
const SLOT_WORDS: usize = 8;
pub const MAX_WORKERS: usize = 64;

/// Words of the header.
const PHASE: usize = 0;
const EXPECTED: usize = 1;

/// Words of each worker's slot.
pub const CONNECTED: usize = 0;
pub const FAILED: usize = 1;
pub const RECEIVED: usize = 2;
pub const CONNECT_DONE: usize = 3;
pub const ALL_RECEIVED: usize = 4;
pub const LAST_RECEIVE_NS: usize = 5;

pub struct Control {
    words: &'static [AtomicU64],
    path: PathBuf,
    owner: bool,
}

const WORDS: usize = HEADER_WORDS + MAX_WORKERS * SLOT_WORDS;

impl Control {
    /// Creates the block (zeroed) in a fresh file that `open` can map from another process.
    pub fn create() -> io::Result<Control> {
        let dir = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let path = dir.join(format!("ssed-loadgen-{}", std::process::id()));
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path)?;
        file.set_len((WORDS * 8) as u64)?;
        Self::map(file, path, true)
    }

    pub fn open(path: &Path) -> io::Result<Control> {
        let file = File::options().read(true).write(true).open(path)?;
        Self::map(file, path.to_path_buf(), false)
    }

    fn map(file: File, path: PathBuf, owner: bool) -> io::Result<Control> {
        // SAFETY: a fresh shared mapping of a file of exactly this size; it is never unmapped,
        // so the 'static slice stays valid for the life of the process. AtomicU64 has the
        // layout of u64 and the file starts zeroed.
        let words = unsafe {
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                WORDS * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            std::slice::from_raw_parts(ptr as *const AtomicU64, WORDS)
        };
        Ok(Control { words, path, owner })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn phase(&self) -> u64 {
        self.words[PHASE].load(Ordering::Acquire)
    }

    pub fn set_phase(&self, phase: u64) {
        self.words[PHASE].store(phase, Ordering::Release);
    }

    pub fn expected(&self) -> u64 {
        self.words[EXPECTED].load(Ordering::Acquire)
    }

    /// Sets how many events each subscriber should receive, then enters the drain phase.
    pub fn start_drain(&self, expected: u64) {
        self.words[EXPECTED].store(expected, Ordering::Release);
        self.set_phase(PHASE_DRAIN);
    }

    pub fn slot(&self, worker: usize, word: usize) -> u64 {
        self.words[HEADER_WORDS + worker * SLOT_WORDS + word].load(Ordering::Acquire)
    }

    pub fn set_slot(&self, worker: usize, word: usize, value: u64) {
        self.words[HEADER_WORDS + worker * SLOT_WORDS + word].store(value, Ordering::Release);
    }

    /// Sum of one word over the first `workers` slots.
    pub fn sum(&self, workers: usize, word: usize) -> u64 {
        (0..workers).map(|w| self.slot(w, word)).sum()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if self.owner {
            let _ = fs::remove_file(&self.path);
        }
    }
}
