//! Loading at start: every record of the file is verified, what is not a good record is cut
//! (and reported for the log), and the last `retained` good records are kept.
//!
//! [`load`] reads the file through a window, so that memory holds the retained records and
//! about a megabyte of the file, never the whole file: it may have grown larger than memory, or
//! than a 32-bit address space (4 GiB), while compactions failed. [`load_image`] does the same
//! from a whole image in memory; the fuzz target checks that the two always agree.

use std::collections::VecDeque;
use std::io::{self, Read};

use super::record::{
    Bad, Cut, CutReason, HEADER_LEN, HeaderState, Piece, Record, Resync, Scanner, View,
    decode_header, resync_within, try_record,
};

/// What a file image holds once its corrupt stretches are cut.
#[derive(Debug)]
pub struct Recovered {
    /// The last `retained` good records, oldest first.
    pub records: Vec<Record>,
    /// The highest id the server assigned, from the header and every good record.
    pub last_assigned: Option<u64>,
    /// What was cut, in file order.
    pub cut: Vec<Cut>,
}

/// Loads a file image. Fails only when its header is of a newer format (the version is
/// returned): such a file is never cut, since this ssed cannot tell good records in it.
pub fn load_image(image: &[u8], retained: usize) -> Result<Recovered, u16> {
    let mut last_assigned = match decode_header(image) {
        HeaderState::Newer(version) => return Err(version),
        HeaderState::Good { last_assigned } => last_assigned,
        HeaderState::Bad => None,
    };
    // Views borrow the image, so that records outside the retained tail cost no allocation.
    let mut tail: VecDeque<View> = VecDeque::with_capacity(retained.min(4096));
    let mut cut = Vec::new();
    for piece in Scanner::new(image) {
        match piece {
            Piece::Header => {}
            Piece::Cut(c) => cut.push(c),
            Piece::Record { view, .. } => {
                last_assigned = last_assigned.max(view.assigned);
                if retained > 0 {
                    if tail.len() == retained {
                        tail.pop_front();
                    }
                    tail.push_back(view);
                }
            }
        }
    }
    Ok(Recovered {
        records: tail.into_iter().map(View::to_record).collect(),
        last_assigned,
        cut,
    })
}

/// Bytes read from the file at a time: the window's usual size.
const WINDOW: usize = 1 << 20;

/// Loads the file that `reader` reads from its first byte: what [`load_image`] finds in the
/// same bytes, holding only the retained records and a window of the file. Fails with the
/// version when the header is of a newer format, or with the read's error.
pub fn load(reader: impl Read, retained: usize) -> io::Result<Result<Recovered, u16>> {
    Ok(load_through(reader, retained, WINDOW)?.map(|(recovered, _)| recovered))
}

/// The part of the file in memory: `bytes` are those from offset `base` on.
struct Window<R> {
    reader: R,
    bytes: Vec<u8>,
    base: u64,
    /// The reader has no more bytes: `bytes` run to the end of the file.
    eof: bool,
    chunk: usize,
    /// The most bytes the window ever held, for the tests.
    peak: usize,
}

impl<R: Read> Window<R> {
    /// The offset of the end of the bytes read so far.
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Where the file offset `at` (at or after `base`) is in `bytes`.
    fn index(&self, at: u64) -> usize {
        usize::try_from(at - self.base).expect("an offset within the window")
    }

    /// Forgets the bytes before the offset `keep` and reads one more chunk (less at the end of
    /// the file). A record larger than a chunk grows the window chunk by chunk until it is whole.
    fn advance(&mut self, keep: u64) -> io::Result<()> {
        let drop = self.index(keep);
        self.bytes.drain(..drop);
        self.base = keep;
        let mut filled = self.bytes.len();
        self.bytes.resize(filled + self.chunk, 0);
        while filled < self.bytes.len() {
            match self.reader.read(&mut self.bytes[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes.truncate(filled);
        self.peak = self.peak.max(self.bytes.len());
        Ok(())
    }

    /// The first offset at or after `from` where a record's framing verifies, or the end of
    /// the file. The bytes before it are dropped as the search goes.
    fn resync(&mut self, from: u64) -> io::Result<u64> {
        let mut at = from;
        loop {
            if at >= self.end() && self.eof {
                return Ok(self.end());
            }
            let found = if at >= self.end() {
                Resync::End
            } else {
                resync_within(&self.bytes, self.index(at), self.eof)
            };
            match found {
                Resync::At(i) => return Ok(self.base + i as u64),
                Resync::End if self.eof => return Ok(self.end()),
                Resync::End => at = self.end(),
                Resync::NeedMore(i) => at = self.base + i as u64,
            }
            self.advance(at)?;
        }
    }
}

/// [`load`] with a window of `chunk` bytes; also returns the most bytes the window held.
fn load_through(
    reader: impl Read,
    retained: usize,
    chunk: usize,
) -> io::Result<Result<(Recovered, usize), u16>> {
    let mut window = Window {
        reader,
        bytes: Vec::new(),
        base: 0,
        eof: false,
        chunk: chunk.max(1),
        peak: 0,
    };
    while window.bytes.len() < HEADER_LEN && !window.eof {
        window.advance(0)?;
    }
    let (mut last_assigned, header) = match decode_header(&window.bytes) {
        HeaderState::Newer(version) => return Ok(Err(version)),
        HeaderState::Good { last_assigned } => (last_assigned, true),
        HeaderState::Bad => (None, false),
    };
    let mut tail: VecDeque<Record> = VecDeque::with_capacity(retained.min(4096));
    let mut cut = Vec::new();
    let mut at = if header {
        HEADER_LEN as u64
    } else {
        // Records may still follow a header that is missing or damaged.
        let next = window.resync(0)?;
        if next > 0 {
            cut.push(stretch(0, next, CutReason::BadHeader));
        }
        next
    };
    loop {
        if at >= window.end() {
            if window.eof {
                break;
            }
            window.advance(at)?;
            continue;
        }
        match try_record(&window.bytes, window.index(at)) {
            Ok((len, view)) => {
                last_assigned = last_assigned.max(view.assigned);
                if retained > 0 {
                    if tail.len() == retained {
                        tail.pop_front();
                    }
                    tail.push_back(view.to_record());
                }
                at += len as u64;
            }
            Err(Bad::Content { len, why }) => {
                cut.push(stretch(at, at + len as u64, why));
                at += len as u64;
            }
            // The rest of the file may complete it.
            Err(Bad::Framing { torn: true }) if !window.eof => window.advance(at)?,
            Err(Bad::Framing { torn }) => {
                let next = window.resync(at + 1)?;
                let why = if torn && next == window.end() && window.eof {
                    CutReason::Torn
                } else {
                    CutReason::Corrupt
                };
                cut.push(stretch(at, next, why));
                at = next;
            }
        }
    }
    let recovered = Recovered {
        records: tail.into(),
        last_assigned,
        cut,
    };
    Ok(Ok((recovered, window.peak)))
}

fn stretch(from: u64, to: u64, why: CutReason) -> Cut {
    Cut {
        at: from,
        len: to - from,
        why,
    }
}

/// For the fuzz target: checks `data` as a file image, then as the payload of records whose
/// checksums verify (so that the payload checks are reached, which random bytes never pass).
/// Panics if an invariant of the decoder fails.
pub fn fuzz_check(data: &[u8]) {
    check_image(data);
    if data.len() <= super::record::MAX_PAYLOAD {
        let mut image = Vec::with_capacity(2 * data.len() + 64);
        super::record::encode_header(&mut image, None);
        super::record::encode_raw_record(&mut image, data);
        super::record::encode_raw_record(&mut image, data);
        check_image(&image);
    }
}

/// Loads `image` and panics if any invariant of the decoder fails: the pieces cover the image
/// in order; every record returned is bytes of the image whose checksums verify, and encodes
/// back to exactly those bytes; loading keeps the last good records.
fn check_image(image: &[u8]) {
    use super::record::{HEAD_LEN, encode_record};
    let mut next = 0;
    let mut good = Vec::new();
    let mut buf = Vec::new();
    for piece in Scanner::new(image) {
        let (at, len) = match piece {
            Piece::Header => (0, super::record::HEADER_LEN),
            Piece::Cut(c) => (c.at as usize, c.len as usize),
            Piece::Record { at, len, view } => {
                let bytes = &image[at..at + len];
                let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                assert_eq!(crc32fast::hash(&bytes[..12]), le32(&bytes[12..16]));
                assert_eq!(crc32fast::hash(&bytes[HEAD_LEN..]), le32(&bytes[8..12]));
                let record = view.to_record();
                buf.clear();
                encode_record(&mut buf, &record);
                assert_eq!(buf, bytes, "a record must encode back to its bytes");
                assert!(record.frame.ends_with(b"\n\n"));
                assert!(record.id.end <= record.frame.len());
                assert!(record.event_type.end <= record.frame.len());
                good.push(record);
                (at, len)
            }
        };
        assert_eq!(at, next, "pieces must follow each other");
        assert!(len > 0, "every piece moves forward");
        next = at + len;
    }
    assert_eq!(next, image.len(), "pieces must cover the image");
    for retained in [0, 1, 3, usize::MAX] {
        let Ok(loaded) = load_image(image, retained) else {
            assert!(
                load(image, retained).unwrap().is_err(),
                "a newer format either way"
            );
            return;
        };
        let kept = good.len().min(retained);
        assert_eq!(loaded.records.len(), kept);
        for (a, b) in loaded.records.iter().zip(&good[good.len() - kept..]) {
            assert_eq!(a.frame, b.frame);
        }
        // Read through a window of any size, the file loads as from a whole image.
        for chunk in [1, 7, 100, 4096] {
            let (streamed, _) = load_through(image, retained, chunk).unwrap().unwrap();
            assert_eq!(streamed.cut, loaded.cut, "cut through a window of {chunk}");
            assert_eq!(streamed.last_assigned, loaded.last_assigned);
            assert_eq!(streamed.records.len(), loaded.records.len());
            for (a, b) in streamed.records.iter().zip(&loaded.records) {
                assert_eq!(
                    (&a.frame, &a.topics, a.assigned),
                    (&b.frame, &b.topics, b.assigned)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::record::{CutReason, encode_header, encode_record};
    use crate::store::file::testing::record;

    fn image(last: Option<u64>, records: &[Record]) -> Vec<u8> {
        let mut image = Vec::new();
        encode_header(&mut image, last);
        for r in records {
            encode_record(&mut image, r);
        }
        image
    }

    fn ids(r: &Recovered) -> Vec<String> {
        r.records
            .iter()
            .map(|r| String::from_utf8(r.id().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn keeps_the_last_retained_and_the_highest_assigned_id() {
        let records: Vec<Record> = (1..=5)
            .map(|n| record(Some(n), &n.to_string(), &["t"], "x"))
            .chain([record(None, "chosen", &[], "y")])
            .collect();
        let image = image(None, &records);
        let r = load_image(&image, 3).unwrap();
        assert_eq!(ids(&r), ["4", "5", "chosen"]);
        assert_eq!(r.last_assigned, Some(5));
        assert!(r.cut.is_empty());
        assert_eq!(load_image(&image, 0).unwrap().records.len(), 0);
        fuzz_check(&image);
    }

    #[test]
    fn the_header_remembers_ids_the_records_no_longer_hold() {
        let image = image(Some(99), &[record(None, "a", &[], "x")]);
        assert_eq!(load_image(&image, 10).unwrap().last_assigned, Some(99));
    }

    #[test]
    fn empty_image_is_an_empty_history() {
        let r = load_image(&[], 10).unwrap();
        assert!(r.records.is_empty() && r.cut.is_empty() && r.last_assigned.is_none());
        fuzz_check(&[]);
    }

    #[test]
    fn a_damaged_header_is_cut_and_the_records_after_it_kept() {
        let mut image = image(Some(50), &[record(Some(3), "3", &[], "x")]);
        image[2] ^= 1;
        let r = load_image(&image, 10).unwrap();
        assert_eq!(ids(&r), ["3"]);
        assert_eq!(r.last_assigned, Some(3), "the header's id is lost with it");
        assert_eq!(r.cut[0].why, CutReason::BadHeader);
        assert_eq!((r.cut[0].at, r.cut[0].len), (0, 24));
        // Records without any header are kept, with nothing cut.
        let r = load_image(&image[24..], 10).unwrap();
        assert_eq!((ids(&r), r.cut.len()), (vec!["3".to_string()], 0));
        fuzz_check(&image[24..]);
        // A file cut inside its header holds nothing to keep.
        let r = load_image(&image[..10], 10).unwrap();
        assert!(r.records.is_empty());
        assert_eq!((r.cut[0].len, r.cut[0].why), (10, CutReason::BadHeader));
    }

    #[test]
    fn a_newer_file_format_is_refused_not_cut() {
        let mut image = image(None, &[]);
        image[8] = 2;
        let crc = crc32fast::hash(&image[..20]);
        image[20..24].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(load_image(&image, 10).unwrap_err(), 2);
    }

    #[test]
    fn a_record_of_an_unknown_version_is_cut_with_its_own_reason() {
        let good = record(Some(1), "1", &[], "x");
        let mut image = image(None, std::slice::from_ref(&good));
        let at = image.len();
        encode_record(&mut image, &record(Some(2), "2", &[], "y"));
        encode_record(&mut image, &record(Some(3), "3", &[], "z"));
        // Version 2, with both checksums made right again: a record a newer ssed wrote.
        image[at + 16] = 2;
        let payload_end = at + 16 + good.encoded_len() - 16;
        let payload_crc = crc32fast::hash(&image[at + 16..payload_end]);
        image[at + 8..at + 12].copy_from_slice(&payload_crc.to_le_bytes());
        let head_crc = crc32fast::hash(&image[at..at + 12]);
        image[at + 12..at + 16].copy_from_slice(&head_crc.to_le_bytes());
        let r = load_image(&image, 10).unwrap();
        assert_eq!(ids(&r), ["1", "3"]);
        assert_eq!(r.cut.len(), 1);
        assert_eq!(r.cut[0].why, CutReason::UnknownVersion(2));
        assert_eq!(r.cut[0].at, at as u64);
        fuzz_check(&image);
    }

    #[test]
    fn flipped_bytes_in_the_middle_lose_only_the_records_they_hit() {
        let records: Vec<Record> = (100..200)
            .map(|n| record(Some(n), &n.to_string(), &["a", "b"], "some data"))
            .collect();
        let mut image = image(None, &records);
        let len = records[0].encoded_len();
        // Records 130 and 131 each get a flipped byte.
        image[24 + 30 * len + 40] ^= 0x01;
        image[24 + 31 * len + 3] ^= 0x80;
        let r = load_image(&image, 1000).unwrap();
        assert_eq!(r.records.len(), 98);
        assert!(!ids(&r).contains(&"130".to_string()) && !ids(&r).contains(&"131".to_string()));
        assert_eq!(ids(&r)[30], "132");
        assert_eq!(r.cut.len(), 1, "{:?}", r.cut);
        assert_eq!(r.cut[0].len as usize, 2 * len);
        assert_eq!(r.cut[0].why, CutReason::Corrupt);
        fuzz_check(&image);
    }

    #[test]
    fn a_file_is_read_through_a_window_whatever_its_size() {
        let small: Vec<Record> = (1..=20_000)
            .map(|n| record(Some(n), &n.to_string(), &["t"], "some data"))
            .collect();
        let many = image(None, &small);
        assert!(many.len() > 1 << 20);
        let (r, peak) = load_through(&many[..], 3, 4096).unwrap().unwrap();
        assert_eq!(ids(&r), ["19998", "19999", "20000"]);
        assert!(peak <= 2 * 4096, "the window held {peak} bytes");
        // A record larger than the window is read whole, and then the window shrinks back.
        let big = record(Some(1), "1", &[], &"x".repeat(100_000));
        let large = image(None, &[big.clone(), small[0].clone(), small[1].clone()]);
        let (r, peak) = load_through(&large[..], 10, 4096).unwrap().unwrap();
        assert_eq!(r.records.len(), 3);
        assert!(peak <= big.encoded_len() + 4096, "{peak}");
    }

    #[test]
    fn offsets_beyond_4_gib_are_reported_exactly_on_every_target() {
        // A file of more than 4 GiB, never in memory: a record, 4 GiB and a bit of zeros (what
        // a crash can leave where blocks were allocated but not written), then two records.
        let first = image(Some(7), &[record(Some(8), "8", &["t"], "before")]);
        let hole = (4u64 << 30) + 12_345;
        let mut after = Vec::new();
        encode_record(&mut after, &record(Some(9), "9", &["t"], "after"));
        encode_record(&mut after, &record(Some(10), "10", &["t"], "after too"));
        let file = (&first[..])
            .chain(std::io::repeat(0).take(hole))
            .chain(&after[..]);
        let r = load(file, 10).unwrap().unwrap();
        assert_eq!(ids(&r), ["8", "9", "10"]);
        assert_eq!(r.last_assigned, Some(10));
        assert_eq!(r.cut.len(), 1);
        assert_eq!(r.cut[0].at, first.len() as u64);
        assert_eq!(r.cut[0].len, hole);
        assert_eq!(r.cut[0].why, CutReason::Corrupt);
    }

    #[test]
    fn garbage_and_truncations_never_panic() {
        let records: Vec<Record> = (1..=20)
            .map(|n| record(Some(n), &n.to_string(), &["t"], "payload"))
            .collect();
        let image = image(Some(1), &records);
        for end in 0..image.len() {
            fuzz_check(&image[..end]);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut damaged = image.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % damaged.len() as u64) as usize;
                damaged[at] = (seed >> 32) as u8;
            }
            fuzz_check(&damaged);
        }
    }
}
