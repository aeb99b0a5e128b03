//! Loading at start: every record of the file image is verified, what is not a good record is
//! cut (and reported for the log), and the last `retained` good records are kept.

use std::collections::VecDeque;

use super::record::{Cut, HeaderState, Piece, Record, Scanner, View, decode_header};

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
            return;
        };
        let kept = good.len().min(retained);
        assert_eq!(loaded.records.len(), kept);
        for (a, b) in loaded.records.iter().zip(&good[good.len() - kept..]) {
            assert_eq!(a.frame, b.frame);
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
