//! The history file on real files in temporary directories: loading, faults, the writer and
//! its fsync policies, compaction, and disk failures. Scenarios that need a process of their own
//! (another user, a file size limit, `kill -9`) run this test binary again as a child.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::testing::{TempDir, record};
use super::*;
use crate::config::FsyncPolicy;
use crate::store::file::record::CutReason;
use crate::store::file::writer::{Op, Status};

const DEADLINE: Duration = Duration::from_secs(20);

fn options(retained: usize, fsync: FsyncPolicy) -> Options {
    Options {
        retained,
        fsync,
        ..Options::default()
    }
}

/// An open file with a channel that the writer's wake callback signals.
struct Opened {
    loaded: Loaded,
    writer: Writer,
    woken: Receiver<()>,
}

fn open_with(path: &Path, options: Options) -> Result<Opened, OpenError> {
    let (tx, woken) = mpsc::channel();
    let (loaded, writer) = open(
        path,
        options,
        Box::new(move || {
            let _ = tx.send(());
        }),
    )?;
    Ok(Opened {
        loaded,
        writer,
        woken,
    })
}

impl Opened {
    /// Waits until `seq` is settled; returns every outcome settled by then.
    fn settle(&self, seq: u64) -> Vec<Settled> {
        let end = Instant::now() + DEADLINE;
        while self.writer.settled_through() < seq {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "sequence {seq} not settled in time");
            let _ = self.woken.recv_timeout(left);
        }
        let mut out = Vec::new();
        self.writer.take_settled(&mut out);
        out
    }

    /// Waits until the writer's status satisfies `done` (compaction and interval syncs come
    /// after the outcomes they follow are settled).
    fn wait_status(&self, done: impl Fn(&Status) -> bool) -> Status {
        let end = Instant::now() + DEADLINE;
        loop {
            let status = self.writer.status();
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < end, "status never came: {status:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Appends `record`, waits for its outcome and returns it.
    fn write(&self, record: Record) -> Outcome {
        let seq = self.writer.append(record).expect("append");
        let settled = self.settle(seq);
        settled.last().expect("an outcome").outcome
    }

    /// Appends events with assigned ids `ids`, waiting whenever the queue is full; returns the
    /// last sequence number.
    fn append_ids(&self, ids: std::ops::RangeInclusive<u64>, topics: &[&str]) -> u64 {
        let mut last = 0;
        for n in ids {
            let end = Instant::now() + DEADLINE;
            loop {
                match self
                    .writer
                    .append(record(Some(n), &n.to_string(), topics, "x"))
                {
                    Ok(seq) => {
                        last = seq;
                        break;
                    }
                    Err(AppendError::Full) => {
                        assert!(Instant::now() < end, "the queue never drained");
                        let _ = self.woken.recv_timeout(Duration::from_millis(100));
                    }
                    Err(e) => panic!("append {n}: {e}"),
                }
            }
        }
        last
    }
}

fn ids(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.id().to_vec()).unwrap())
        .collect()
}

fn numbers(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

#[test]
fn the_writer_can_move_to_the_loop_thread_and_be_shared() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Writer>();
    send_and_sync::<Record>();
}

#[test]
fn round_trip_keeps_the_last_retained_and_the_highest_id() {
    let dir = TempDir::new("file-round-trip");
    let path = dir.join("history");
    let file = open_with(&path, options(5, FsyncPolicy::Always)).unwrap();
    assert!(file.loaded.records.is_empty() && file.loaded.cut.is_empty());
    assert_eq!(file.loaded.last_assigned, None);
    let last = file.append_ids(1..=8, &["news"]);
    let chosen = file.writer.append(record(None, "mine", &[], "y")).unwrap();
    assert_eq!(chosen, last + 1, "sequence numbers follow each other");
    let settled = file.settle(chosen);
    assert_eq!(
        settled.last(),
        Some(&Settled {
            through: chosen,
            outcome: Outcome::Written
        })
    );
    assert!(settled.iter().all(|s| s.outcome == Outcome::Written));
    file.writer.stop().unwrap();

    let file = open_with(&path, options(5, FsyncPolicy::Always)).unwrap();
    assert_eq!(ids(&file.loaded.records), ["5", "6", "7", "8", "mine"]);
    assert_eq!(file.loaded.last_assigned, Some(8));
    assert!(file.loaded.cut.is_empty());
    let entry = file.loaded.records[0].entry();
    assert!(entry.matches(&[Box::from("news")]) && !entry.matches(&[Box::from("other")]));
    assert_eq!(&*entry.frame, b"id: 5\nevent: tick\nretry: 10\ndata: x\n\n");
    drop(file);

    // A smaller history keeps fewer; the id survives in the header even when no record holds it.
    let file = open_with(&path, options(1, FsyncPolicy::Always)).unwrap();
    assert_eq!(ids(&file.loaded.records), ["mine"]);
    assert_eq!(file.loaded.last_assigned, Some(8));
    drop(file);
    let file = open_with(&path, options(5, FsyncPolicy::Always)).unwrap();
    assert_eq!(ids(&file.loaded.records), ["mine"]);
    assert_eq!(file.loaded.last_assigned, Some(8));
}

/// Writes events 1..=n to a new file and closes it; returns the file's length before the
/// last record and at the end.
fn written(path: &Path, n: u64) -> (u64, u64) {
    let file = open_with(path, options(1000, FsyncPolicy::Never)).unwrap();
    let seq = file.append_ids(1..=n - 1, &["t"]);
    file.settle(seq);
    let before_last = std::fs::metadata(path).unwrap().len();
    let seq = file.append_ids(n..=n, &["t"]);
    assert_eq!(file.settle(seq).last().unwrap().outcome, Outcome::Written);
    file.writer.stop().unwrap();
    (before_last, std::fs::metadata(path).unwrap().len())
}

#[test]
fn a_torn_last_record_is_cut_and_the_rest_kept() {
    let dir = TempDir::new("file-torn");
    let path = dir.join("history");
    let (before_last, end) = written(&path, 5);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(end - 3).unwrap();
    drop(file);

    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    let expected = numbers(1..=4);
    assert_eq!(ids(&file.loaded.records), expected);
    assert_eq!(file.loaded.last_assigned, Some(4));
    assert_eq!(
        file.loaded.cut,
        [Cut {
            at: before_last,
            len: end - 3 - before_last,
            why: CutReason::Torn
        }]
    );
    assert!(file.loaded.cut[0].to_string().contains("torn"));
    drop(file);
    // The cut is gone from the file.
    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    assert!(file.loaded.cut.is_empty());
    assert_eq!(ids(&file.loaded.records), expected);
}

#[test]
fn a_file_truncated_inside_its_header_starts_empty_and_works() {
    let dir = TempDir::new("file-truncated");
    let path = dir.join("history");
    written(&path, 3);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(10)
        .unwrap();
    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    assert!(file.loaded.records.is_empty());
    assert_eq!(file.loaded.last_assigned, None);
    assert_eq!(
        file.loaded.cut,
        [Cut {
            at: 0,
            len: 10,
            why: CutReason::BadHeader
        }]
    );
    assert_eq!(
        file.write(record(Some(9), "9", &[], "after")),
        Outcome::Written
    );
    file.writer.stop().unwrap();
    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    assert_eq!(ids(&file.loaded.records), ["9"]);
    assert!(file.loaded.cut.is_empty());
}

#[test]
fn flipped_bytes_in_the_middle_cut_one_record_and_keep_the_ones_after() {
    let dir = TempDir::new("file-flipped");
    let path = dir.join("history");
    written(&path, 50);
    let mut image = std::fs::read(&path).unwrap();
    let len = record(Some(20), "20", &["t"], "x").encoded_len();
    // Records 1..=9 are one byte shorter (one-digit ids): find record 20 by its frame.
    let at = image
        .windows(6)
        .position(|w| w == b"id: 20")
        .expect("record 20");
    image[at + 1] ^= 0x04;
    image[at + 12] ^= 0xFF;
    std::fs::write(&path, &image).unwrap();

    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    let mut expected: Vec<String> = numbers(1..=19);
    expected.extend(numbers(21..=50));
    assert_eq!(ids(&file.loaded.records), expected);
    assert_eq!(file.loaded.cut.len(), 1);
    assert_eq!(file.loaded.cut[0].len as usize, len);
    assert_eq!(file.loaded.cut[0].why, CutReason::Corrupt);
    assert_eq!(file.loaded.last_assigned, Some(50));
}

#[test]
fn an_empty_or_missing_file_is_an_empty_history() {
    let dir = TempDir::new("file-empty");
    let path = dir.join("history");
    std::fs::File::create(&path).unwrap();
    let file = open_with(&path, options(10, FsyncPolicy::Always)).unwrap();
    assert!(file.loaded.records.is_empty() && file.loaded.cut.is_empty());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 24, "a header only");
    drop(file);
    let missing = dir.join("missing");
    let file = open_with(&missing, options(10, FsyncPolicy::Always)).unwrap();
    assert!(file.loaded.records.is_empty() && missing.exists());
    assert!(!dir.join("missing.tmp").exists());
}

#[test]
fn a_directory_is_refused_naming_the_path() {
    let dir = TempDir::new("file-dir");
    let err = open_with(dir.path(), options(10, FsyncPolicy::Always))
        .err()
        .expect("a directory must be refused");
    assert!(matches!(err, OpenError::IsDirectory(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&*dir.path().to_string_lossy()),
        "{message}"
    );
    assert!(message.contains("is a directory"), "{message}");
}

#[test]
fn a_parent_that_is_a_file_is_refused_naming_the_path() {
    // Root bypasses permissions, but not this: the path cannot exist.
    let dir = TempDir::new("file-parent");
    std::fs::write(dir.join("plain"), b"x").unwrap();
    let path = dir.join("plain").join("history");
    let err = open_with(&path, options(10, FsyncPolicy::Always))
        .err()
        .expect("must be refused");
    match &err {
        OpenError::Open(p, e) => {
            assert_eq!(p, &path);
            assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&*path.to_string_lossy()));
}

#[test]
fn a_newer_format_is_refused_and_left_untouched() {
    let dir = TempDir::new("file-newer");
    let path = dir.join("history");
    written(&path, 2);
    let mut image = std::fs::read(&path).unwrap();
    image[8] = 7;
    let crc = crc32fast::hash(&image[..20]);
    image[20..24].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &image).unwrap();
    let err = open_with(&path, options(10, FsyncPolicy::Always))
        .err()
        .expect("must be refused");
    assert!(matches!(err, OpenError::NewerFormat(_, 7)), "{err:?}");
    assert!(err.to_string().contains("version 7"));
    assert_eq!(std::fs::read(&path).unwrap(), image);
}

#[test]
fn a_second_server_cannot_open_the_same_file() {
    let dir = TempDir::new("file-lock");
    let path = dir.join("history");
    let first = open_with(&path, options(10, FsyncPolicy::Always)).unwrap();
    let err = open_with(&path, options(10, FsyncPolicy::Always))
        .err()
        .expect("a held file must be refused");
    assert!(err.to_string().contains("another"), "{err}");
    // Compaction hands the lock on to the new file.
    first.append_ids(1..=3000, &[]);
    let seq = first.append_ids(3001..=3001, &[]);
    first.settle(seq);
    first.wait_status(|s| s.compactions >= 1);
    assert!(open_with(&path, options(10, FsyncPolicy::Always)).is_err());
    first.writer.stop().unwrap();
    assert!(open_with(&path, options(10, FsyncPolicy::Always)).is_ok());
}

#[test]
fn every_fsync_policy_writes_and_reloads() {
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = TempDir::new("file-policy");
        let path = dir.join("history");
        let file = open_with(&path, options(1000, policy)).unwrap();
        let seq = file.append_ids(1..=300, &[]);
        assert!(
            file.settle(seq)
                .iter()
                .all(|s| s.outcome == Outcome::Written)
        );
        let syncs = file.writer.status().syncs;
        match policy {
            FsyncPolicy::Always => assert!(syncs >= 1),
            FsyncPolicy::Never => assert_eq!(syncs, 0, "no fsync before stop"),
            FsyncPolicy::Interval(_) => {
                // Synced soon after the last write, without another append.
                file.wait_status(|s| s.syncs >= 1);
            }
        }
        file.writer.stop().unwrap();
        let file = open_with(&path, options(1000, policy)).unwrap();
        assert_eq!(ids(&file.loaded.records), numbers(1..=300), "{policy:?}");
    }
}

#[test]
fn a_full_queue_refuses_at_once_and_stop_writes_what_is_queued() {
    let dir = TempDir::new("file-full");
    let path = dir.join("history");
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    // The first wake holds the writer thread, so that the queue fills behind it.
    let (_, writer) = open(
        &path,
        Options {
            queue_records: 2,
            ..options(100, FsyncPolicy::Never)
        },
        Box::new(move || {
            let _ = entered_tx.send(());
            let _ = released.recv();
        }),
    )
    .unwrap();
    writer.append(record(Some(1), "1", &[], "x")).unwrap();
    entered
        .recv_timeout(DEADLINE)
        .expect("the writer settled 1");
    writer.append(record(Some(2), "2", &[], "x")).unwrap();
    writer.append(record(Some(3), "3", &[], "x")).unwrap();
    let start = Instant::now();
    assert_eq!(
        writer.append(record(Some(4), "4", &[], "x")),
        Err(AppendError::Full)
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(release); // every later wake returns at once
    writer.stop().unwrap();
    let file = open_with(&path, options(100, FsyncPolicy::Never)).unwrap();
    assert_eq!(ids(&file.loaded.records), ["1", "2", "3"]);
}

#[test]
fn a_writer_thread_that_dies_settles_everything_and_refuses_appends() {
    let dir = TempDir::new("file-panic");
    let (entered_tx, entered) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let first = std::sync::atomic::AtomicBool::new(true);
    // The first wake waits until 2 and 3 are queued, then panics, as a bug in the writer would.
    let (_, writer) = open(
        &dir.join("history"),
        options(100, FsyncPolicy::Never),
        Box::new(move || {
            let _ = entered_tx.send(());
            if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let _ = released.recv();
                panic!("the writer thread dies (on purpose, in a test)");
            }
        }),
    )
    .unwrap();
    writer.append(record(Some(1), "1", &[], "x")).unwrap();
    entered
        .recv_timeout(DEADLINE)
        .expect("the writer settled 1");
    writer.append(record(Some(2), "2", &[], "x")).unwrap();
    writer.append(record(Some(3), "3", &[], "x")).unwrap();
    drop(release);
    entered
        .recv_timeout(DEADLINE)
        .expect("woken once more as it died");
    assert_eq!(writer.settled_through(), 3);
    let mut settled = Vec::new();
    writer.take_settled(&mut settled);
    assert_eq!(settled.len(), 2, "{settled:?}");
    assert_eq!(settled[0].through, 1);
    assert_eq!(settled[0].outcome, Outcome::Written);
    assert_eq!(settled[1].through, 3);
    assert!(matches!(settled[1].outcome, Outcome::Failed(_)));
    assert_eq!(
        writer.append(record(Some(4), "4", &[], "x")),
        Err(AppendError::Stopped)
    );
    assert!(writer.stop().is_err(), "the panic is reported at stop");
}

#[test]
fn compaction_keeps_the_file_near_the_retained_size() {
    let dir = TempDir::new("file-compact");
    let path = dir.join("history");
    let retained = 1024;
    let file = open_with(&path, options(retained, FsyncPolicy::Never)).unwrap();
    let total = 200_000u64;
    let chunk = 10_000;
    let mut largest = 0;
    for start in (1..=total).step_by(chunk) {
        // Appended as fast as the queue takes them, so that batches are as large as they get.
        let seq = file.append_ids(start..=start + chunk as u64 - 1, &["t"]);
        largest = largest.max(std::fs::metadata(&path).unwrap().len());
        file.settle(seq);
        largest = largest.max(std::fs::metadata(&path).unwrap().len());
    }
    let status = file.wait_status(|s| s.records_in_file <= 2 * retained as u64);
    let one = record(Some(total), &total.to_string(), &["t"], "x").encoded_len() as u64;
    // At most the retained records, as many again (at least 1024) and one batch (half that).
    let bound = 24 + (2 * retained as u64 + retained as u64 / 2) * one;
    assert!(
        largest <= bound,
        "file grew to {largest} bytes (bound {bound})"
    );
    assert!(status.compactions >= 90, "{status:?}");
    assert_eq!(status.file_bytes, std::fs::metadata(&path).unwrap().len());
    println!(
        "{total} events, --history {retained}: file at most {largest} bytes, now {} bytes, \
         {} compactions",
        status.file_bytes, status.compactions
    );
    file.writer.stop().unwrap();
    let file = open_with(&path, options(retained, FsyncPolicy::Never)).unwrap();
    assert_eq!(
        ids(&file.loaded.records),
        numbers(total - retained as u64 + 1..=total)
    );
    assert_eq!(file.loaded.last_assigned, Some(total));
}

#[test]
fn with_no_history_the_file_still_remembers_the_last_id() {
    let dir = TempDir::new("file-zero");
    let path = dir.join("history");
    let file = open_with(&path, options(0, FsyncPolicy::Never)).unwrap();
    let seq = file.append_ids(1..=5000, &[]);
    file.settle(seq);
    file.wait_status(|s| s.compactions >= 1);
    file.writer.stop().unwrap();
    let file = open_with(&path, options(0, FsyncPolicy::Never)).unwrap();
    assert!(file.loaded.records.is_empty());
    assert_eq!(file.loaded.last_assigned, Some(5000));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
}

// ---- Scenarios in a child process -------------------------------------------------------------

const CHILD_ENV: &str = "SSED_FILE_TEST_CHILD";
const DIR_ENV: &str = "SSED_FILE_TEST_DIR";

/// Runs this test binary again, as a child that plays `scenario` in `dir`.
fn spawn_child(scenario: &str, dir: &Path, uid: Option<u32>) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "store::file::tests::child_scenario",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(uid);
    }
    command.spawn().expect("start the child")
}

/// Waits for the child to exit (killing it after the deadline); returns its success and output.
fn finish_child(mut child: Child) -> (bool, String) {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = out.join().unwrap() + &err.join().unwrap();
    (status.success(), text)
}

/// The child's side: does nothing unless a test started this binary as a child.
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    match scenario.as_str() {
        "no-permission" => child_without_permission(&dir),
        "file-size-limit" => child_at_the_file_size_limit(&dir),
        "append-until-killed" => child_appends_until_killed(&dir),
        other => panic!("unknown scenario {other}"),
    }
    println!("child scenario {scenario}: ok");
}

#[test]
fn a_file_without_permission_is_refused_naming_the_path() {
    // Root reads and writes any file, so the open is tried by a child that runs as `nobody`.
    let dir = TempDir::new("file-perm");
    std::fs::write(dir.join("history"), b"").unwrap(); // root's, mode 0600
    let is_root = std::fs::metadata(dir.path())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !is_root {
        // Not root: this process itself lacks permission on a file made unreadable.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("history"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        child_without_permission(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        return;
    }
    let (ok, output) = finish_child(spawn_child("no-permission", dir.path(), Some(65534)));
    assert!(ok, "{output}");
    assert!(
        output.contains("child scenario no-permission: ok"),
        "{output}"
    );
}

fn child_without_permission(dir: &Path) {
    for name in ["history", "not-yet"] {
        let path = dir.join(name);
        let err = open_with(&path, options(10, FsyncPolicy::Always))
            .err()
            .expect("must be refused");
        match &err {
            OpenError::Open(p, e) => {
                assert_eq!(p, &path);
                assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(&*path.to_string_lossy()));
        println!("refused as expected: {err}");
    }
}

#[test]
fn a_write_failure_fails_appends_and_the_writer_recovers() {
    let dir = TempDir::new("file-fsize");
    let (ok, output) = finish_child(spawn_child("file-size-limit", dir.path(), None));
    assert!(ok, "{output}");
    assert!(
        output.contains("child scenario file-size-limit: ok"),
        "{output}"
    );
}

/// Sets this process's file size limit (soft only), with SIGXFSZ ignored so that writes past
/// it fail with `EFBIG` instead of killing the process.
#[allow(unsafe_code)]
fn limit_file_size(bytes: Option<u64>) {
    // SAFETY: ignoring a signal and setting a resource limit touch no Rust state.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.unwrap_or(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

fn child_at_the_file_size_limit(dir: &Path) {
    let path = dir.join("history");
    let retry = Duration::from_millis(300);
    let file = open_with(
        &path,
        Options {
            retry_after: retry,
            ..options(100, FsyncPolicy::Always)
        },
    )
    .unwrap();
    let seq = file.append_ids(1..=5, &[]);
    file.settle(seq);
    let good_len = std::fs::metadata(&path).unwrap().len();
    limit_file_size(Some(good_len + 100));

    let big = "b".repeat(1000);
    let tried = Instant::now();
    let outcome = file.write(record(Some(6), "6", &[], &big));
    let Outcome::Failed(why) = outcome else {
        panic!("a write past the limit must fail: {outcome:?}");
    };
    assert_eq!(why.os_error, Some(libc::EFBIG), "{why}");
    assert_eq!(why.during, Op::Write);
    println!("failed as expected: {why}");
    assert_eq!(file.writer.status().failing, Some(why));
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good_len,
        "the partial record is trimmed off"
    );
    // Until the retry delay has passed, appends fail at once.
    match file.writer.append(record(Some(7), "7", &[], "small")) {
        Err(AppendError::Failing(w)) => assert_eq!(w, why),
        Ok(_) => assert!(tried.elapsed() >= retry, "accepted while failing"),
        Err(e) => panic!("{e}"),
    }

    // Space returns: the next attempt after the delay succeeds.
    limit_file_size(None);
    let end = Instant::now() + DEADLINE;
    let recovered_at = loop {
        assert!(Instant::now() < end, "never recovered");
        match file.writer.append(record(Some(8), "8", &[], "again")) {
            Ok(seq) => match file.settle(seq).last().unwrap().outcome {
                Outcome::Written => break seq,
                Outcome::Failed(_) => {}
            },
            Err(AppendError::Failing(_)) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    };
    assert!(recovered_at > 6);
    assert_eq!(file.writer.status().failing, None);
    file.writer.stop().unwrap();
    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    let loaded = ids(&file.loaded.records);
    assert_eq!(&loaded[..5], numbers(1..=5).as_slice());
    assert!(
        !loaded.contains(&"6".to_string()),
        "a failed record is not in the file"
    );
    assert_eq!(loaded.last().unwrap(), "8");
    assert!(file.loaded.cut.is_empty());
}

#[test]
fn kill_9_loses_no_event_settled_as_written() {
    // With the weakest policy: settled means handed to the OS, which a killed process cannot
    // take back (a power cut can).
    let dir = TempDir::new("file-kill");
    let mut child = spawn_child("append-until-killed", dir.path(), None);
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    let end = Instant::now() + DEADLINE;
    while acked.len() < 2000 && Instant::now() < end {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(n) = line.strip_prefix("written through ") {
                    acked.push(n.parse::<u64>().unwrap());
                }
            }
            _ => break,
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(acked.len() >= 2000, "the child wrote too little: {acked:?}");
    let last = *acked.last().unwrap();
    let file = open_with(&dir.join("history"), options(1 << 20, FsyncPolicy::Never)).unwrap();
    let loaded = ids(&file.loaded.records);
    assert!(loaded.len() as u64 >= last, "{} < {last}", loaded.len());
    assert_eq!(&loaded[..last as usize], numbers(1..=last).as_slice());
    for cut in &file.loaded.cut {
        assert_eq!(cut.why, CutReason::Torn, "only a torn end: {cut}");
    }
}

fn child_appends_until_killed(dir: &Path) {
    let file = open_with(&dir.join("history"), options(1 << 20, FsyncPolicy::Never)).unwrap();
    let mut n = 0u64;
    loop {
        let seq = file.append_ids(n + 1..=n + 10, &["t"]);
        n += 10;
        // Sequence numbers equal ids here: every event is settled as written up to `seq`.
        assert!(
            file.settle(seq)
                .iter()
                .all(|s| s.outcome == Outcome::Written)
        );
        println!("written through {seq}");
    }
}

#[test]
fn a_full_disk_fails_appends_and_space_returning_recovers() {
    // A real ENOSPC needs a small file system: a tmpfs, which only root may mount.
    let dir = TempDir::new("file-enospc");
    let mount = dir.join("mnt");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mount)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!("skipped: cannot mount a tmpfs here: {other:?}");
            return;
        }
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());

    let path = mount.join("history");
    let file = open_with(
        &path,
        Options {
            retry_after: Duration::from_millis(50),
            ..options(100, FsyncPolicy::Always)
        },
    )
    .unwrap();
    let seq = file.append_ids(1..=3, &[]);
    file.settle(seq);
    // Fill the file system.
    let filler = mount.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    let full = loop {
        if let Err(e) = std::io::Write::write_all(&mut f, &block) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
    drop(f);

    let outcome = file.write(record(Some(4), "4", &[], &"d".repeat(8000)));
    let Outcome::Failed(why) = outcome else {
        panic!("a write to a full disk must fail: {outcome:?}");
    };
    assert_eq!(why.os_error, Some(libc::ENOSPC), "{why}");
    assert!(why.to_string().contains("No space left"), "{why}");

    std::fs::remove_file(&filler).unwrap();
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "never recovered");
        match file.writer.append(record(Some(5), "5", &[], "again")) {
            Ok(seq) => {
                if file.settle(seq).last().unwrap().outcome == Outcome::Written {
                    break;
                }
            }
            Err(AppendError::Failing(_)) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
    file.writer.stop().unwrap();
    let file = open_with(&path, options(100, FsyncPolicy::Always)).unwrap();
    assert_eq!(ids(&file.loaded.records), ["1", "2", "3", "5"]);
}
