//! The history file's format: a header, then records that each carry their own checksums, so
//! that a reader can tell a torn or corrupt record and find the next good one after it.
//!
//! The format is the same on every target, byte for byte: every integer is little-endian
//! whatever the machine's byte order, no field's size depends on the machine's word size, and
//! nothing is aligned or padded. A file written by the x86_64 daemon is read by the armhf and
//! i386 ones, and the other way round (tests/devices.rs moves files between them).
//!
//! **Header**, 24 bytes, at offset 0:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic, ASCII `SSEDHIST` |
//! | 8 | 2 | format version, u16: 1 (a reader refuses a file of a higher version, untouched) |
//! | 10 | 2 | zero (reserved) |
//! | 12 | 8 | the highest id the server had assigned when it wrote the header, u64; 0 for none |
//! | 20 | 4 | CRC-32 of bytes 0 to 19, u32 |
//!
//! **Records**, one per event in publish order, from offset 24 to the end of the file. A record
//! is a 16-byte head and a payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic: bytes `FF 53 52 FE` (`0xFF`, `S`, `R`, `0xFE`) |
//! | 4 | 4 | payload length P, u32, at most 2^30 |
//! | 8 | 4 | CRC-32 of the P payload bytes, u32 |
//! | 12 | 4 | CRC-32 of the record's bytes 0 to 11, u32 |
//! | 16 | P | payload |
//!
//! **Payload**:
//!
//! | size | field |
//! |---|---|
//! | 1 | payload version, u8: 1 |
//! | 1 | flags, u8: bit 0, the id is a number the server assigned; bit 1, a private event; the other bits zero |
//! | 8 | the assigned id, u64, when bit 0 is set; else 0 |
//! | 4 | topic count T, u32 (0: the empty topic alone) |
//! | T × (4 + n) | each topic: its length n, u32, then n bytes of UTF-8 |
//! | 4 | frame length F, u32 |
//! | F | the frame: the event exactly as subscribers receive it (UTF-8 text: `id:`, `event:`, `retry:` and `data:` lines, each ended by LF, then an empty line), an assigned id written in decimal (or as the Mercure hub's `urn:uuid:`) |
//!
//! CRC-32 is the common one (IEEE 802.3, as in zlib and PNG: polynomial 0x04C11DB7,
//! reflected, initial value and final XOR 0xFFFFFFFF; `crc32fast`). The payload must be
//! exactly as long as its fields: no byte after the frame.
//!
//! The head checksum covers the 12 bytes before it, so a damaged length is caught before it is
//! used, and a scan for the next record rejects a false magic after 16 bytes, not after
//! checksumming whatever length it claims. The magic holds 0xFF and 0xFE, which never occur in
//! UTF-8, so it cannot appear inside a frame or a topic. The payload carries its own version, so
//! that a later ssed can add fields; a record of a version this one does not know is cut.
//!
//! Decoding never allocates: it borrows the file image, and every length is checked against
//! what is left of the record before it is used. Offsets in the file are u64 everywhere: a file
//! may pass 4 GiB (see `recover`).

use std::ops::Range;
use std::sync::Arc;

use crate::event::Topics;
use crate::frame::Encoded;
use crate::store::Entry;

/// The file's first eight bytes.
pub const FILE_MAGIC: [u8; 8] = *b"SSEDHIST";
/// The version of the file layout (header and record framing) this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in the file header.
pub const HEADER_LEN: usize = 24;
/// Every record starts with these bytes.
pub const RECORD_MAGIC: [u8; 4] = [0xFF, b'S', b'R', 0xFE];
/// Bytes in a record's head, before its payload.
pub const HEAD_LEN: usize = 16;
/// The version of the payload layout this code writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// The largest payload written or read: a length beyond it is corruption.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Flag: the id is a number the server assigned (otherwise the publisher chose it).
const FLAG_ASSIGNED: u8 = 1;
/// Flag: a private event, for subscribers allowed to read one of its topics only. Files
/// written before it existed have it clear: their events were public.
const FLAG_PRIVATE: u8 = 2;
/// Payload bytes before the topics: version, flags, assigned id, topic count.
const PAYLOAD_FIXED: usize = 1 + 1 + 8 + 4;

/// One event as the history file keeps it: the frame that subscribers were sent, what topic
/// filtering needs, and the numeric id when the server assigned it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The encoded frame, shared with the memory ring.
    pub frame: Arc<[u8]>,
    /// Where the id is in the frame (empty: none).
    pub id: Range<usize>,
    /// Where the event type is in the frame (empty: the default type).
    pub event_type: Range<usize>,
    /// The topics the event went to.
    pub topics: Topics,
    /// The id when the server assigned it, so that ids continue above it after a restart.
    pub assigned: Option<u64>,
    /// A private event.
    pub private: bool,
}

impl Record {
    /// A record of an event as published; it shares `encoded`'s frame.
    #[cfg(test)]
    pub fn new(encoded: &Encoded, topics: Topics, assigned: Option<u64>) -> Record {
        Record {
            frame: encoded.bytes.clone(),
            id: encoded.id.clone(),
            event_type: encoded.event_type.clone(),
            topics,
            assigned,
            private: false,
        }
    }

    /// The memory ring's entry for this record, sharing its frame.
    pub fn entry(&self) -> Entry {
        let encoded = Encoded {
            bytes: self.frame.clone(),
            id: self.id.clone(),
            event_type: self.event_type.clone(),
        };
        Entry::new(encoded, self.topics.clone(), self.private)
    }

    /// The id as written in the frame (empty when it has none).
    #[cfg(test)]
    pub fn id(&self) -> &[u8] {
        &self.frame[self.id.clone()]
    }

    /// Bytes this record takes in the file.
    pub fn encoded_len(&self) -> usize {
        HEAD_LEN + payload_len(&self.topics, self.frame.len())
    }
}

fn payload_len(topics: &Topics, frame_len: usize) -> usize {
    let topics: usize = written_topics(topics).iter().map(|t| 4 + t.len()).sum();
    PAYLOAD_FIXED + topics + 4 + frame_len
}

/// The topics as the file lists them: the empty topic of `Topics::Default` is no topic at all.
fn written_topics(topics: &Topics) -> &[Box<str>] {
    match topics {
        Topics::Default => &[],
        Topics::One(topic) => std::slice::from_ref(topic),
        Topics::Many(many) => many,
    }
}

/// Why a stretch of the file was cut instead of loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutReason {
    /// The file does not start with a header whose checksum verifies.
    BadHeader,
    /// The file ends in the middle of a record: a write that a crash interrupted.
    Torn,
    /// Bytes that are no record whose checksums verify.
    Corrupt,
    /// A record whose checksums verify, of a version this ssed does not know.
    UnknownVersion(u8),
    /// A record whose checksums verify but whose content is not an event this ssed writes.
    Invalid(&'static str),
}

impl std::fmt::Display for CutReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutReason::BadHeader => f.write_str("no valid file header"),
            CutReason::Torn => f.write_str("torn record at the end (interrupted write)"),
            CutReason::Corrupt => f.write_str("checksum mismatch (corrupt bytes)"),
            CutReason::UnknownVersion(v) => write!(f, "record of unknown format version {v}"),
            CutReason::Invalid(why) => write!(f, "invalid record: {why}"),
        }
    }
}

/// A stretch of the file that was cut, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Offset of the first byte cut.
    pub at: u64,
    /// Bytes cut.
    pub len: u64,
    /// Why.
    pub why: CutReason,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cut {} bytes at offset {}: {}",
            self.len, self.at, self.why
        )
    }
}

/// Writes the file header.
pub fn encode_header(out: &mut Vec<u8>, last_assigned: Option<u64>) {
    let start = out.len();
    out.extend_from_slice(&FILE_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&last_assigned.unwrap_or(0).to_le_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// What the start of a file image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderState {
    /// A verified header of this format.
    Good {
        /// The highest id the server had assigned when the header was written.
        last_assigned: Option<u64>,
    },
    /// A verified header of a format this ssed cannot read.
    Newer(u16),
    /// No verified header: the image is scanned for records from its first byte.
    Bad,
}

/// Reads the header at the start of `image`.
pub fn decode_header(image: &[u8]) -> HeaderState {
    let Some(header) = image.get(..HEADER_LEN) else {
        return HeaderState::Bad;
    };
    if header[..8] != FILE_MAGIC || crc32fast::hash(&header[..20]) != le32(&header[20..]) {
        return HeaderState::Bad;
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != FORMAT_VERSION {
        return HeaderState::Newer(version);
    }
    let last = le64(&header[12..20]);
    HeaderState::Good {
        last_assigned: (last != 0).then_some(last),
    }
}

/// Appends one record to `out`. The caller keeps payloads under [`MAX_PAYLOAD`].
pub fn encode_record(out: &mut Vec<u8>, record: &Record) {
    let head = out.len();
    out.extend_from_slice(&[0; HEAD_LEN]);
    out.push(RECORD_VERSION);
    let assigned = if record.assigned.is_some() {
        FLAG_ASSIGNED
    } else {
        0
    };
    let private = if record.private { FLAG_PRIVATE } else { 0 };
    out.push(assigned | private);
    out.extend_from_slice(&record.assigned.unwrap_or(0).to_le_bytes());
    let topics = written_topics(&record.topics);
    out.extend_from_slice(&(topics.len() as u32).to_le_bytes());
    for topic in topics {
        out.extend_from_slice(&(topic.len() as u32).to_le_bytes());
        out.extend_from_slice(topic.as_bytes());
    }
    out.extend_from_slice(&(record.frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&record.frame);
    seal(out, head);
}

/// Appends a record around `payload` as it is, valid or not: the fuzz target's way to reach
/// the payload checks past the checksums.
pub fn encode_raw_record(out: &mut Vec<u8>, payload: &[u8]) {
    let head = out.len();
    out.extend_from_slice(&[0; HEAD_LEN]);
    out.extend_from_slice(payload);
    seal(out, head);
}

/// Fills in the head of the record at `head`, whose payload runs to the end of `out`.
fn seal(out: &mut [u8], head: usize) {
    let payload = head + HEAD_LEN;
    let payload_len = (out.len() - payload) as u32;
    let payload_crc = crc32fast::hash(&out[payload..]);
    out[head..head + 4].copy_from_slice(&RECORD_MAGIC);
    out[head + 4..head + 8].copy_from_slice(&payload_len.to_le_bytes());
    out[head + 8..head + 12].copy_from_slice(&payload_crc.to_le_bytes());
    let head_crc = crc32fast::hash(&out[head..head + 12]);
    out[head + 12..head + 16].copy_from_slice(&head_crc.to_le_bytes());
}

/// A verified record, borrowed from the file image.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The id the server assigned, if it did.
    pub assigned: Option<u64>,
    /// A private event.
    pub private: bool,
    /// How many topics `topic_bytes` holds.
    topic_count: usize,
    /// The topics as written: (length, bytes) pairs, already checked.
    topic_bytes: &'a [u8],
    /// The frame, already checked.
    pub frame: &'a [u8],
    /// Where the id is in the frame.
    pub id: (usize, usize),
    /// Where the event type is in the frame.
    pub event_type: (usize, usize),
}

impl View<'_> {
    /// Copies the record out of the image.
    pub fn to_record(self) -> Record {
        Record {
            frame: Arc::from(self.frame),
            id: self.id.0..self.id.1,
            event_type: self.event_type.0..self.event_type.1,
            topics: self.topics(),
            assigned: self.assigned,
            private: self.private,
        }
    }

    fn topics(&self) -> Topics {
        let mut topics = Vec::with_capacity(self.topic_count);
        let mut rest = self.topic_bytes;
        while let Some((topic, after)) = take_str(rest) {
            topics.push(Box::<str>::from(topic));
            rest = after;
        }
        match topics.len() {
            0 => Topics::Default,
            1 => Topics::One(topics.swap_remove(0)),
            _ => Topics::Many(topics.into_boxed_slice()),
        }
    }
}

/// One stretch of a file image, in order: together they cover it from the first byte to the last.
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    /// The verified header, the first `HEADER_LEN` bytes.
    Header,
    /// A verified record.
    Record {
        /// Where it starts.
        at: usize,
        /// Bytes it takes, head included.
        len: usize,
        /// What it holds.
        view: View<'a>,
    },
    /// Bytes that are no good record.
    Cut(Cut),
}

/// Splits a file image into its header, good records and cut stretches.
pub struct Scanner<'a> {
    image: &'a [u8],
    at: usize,
    header_read: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner over `image`. A header of a newer format is for the caller to refuse first:
    /// this scanner cuts it as a bad header.
    pub fn new(image: &'a [u8]) -> Scanner<'a> {
        Scanner {
            image,
            at: 0,
            header_read: false,
        }
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let image = self.image;
        if self.at >= image.len() {
            return None;
        }
        if !self.header_read {
            self.header_read = true;
            if let HeaderState::Good { .. } = decode_header(image) {
                self.at = HEADER_LEN;
                return Some(Piece::Header);
            }
            // Records may still follow a header that is missing or damaged.
            let next = resync(image, 0);
            if next > 0 {
                self.at = next;
                return Some(Piece::Cut(cut(0, next, CutReason::BadHeader)));
            }
        }
        let at = self.at;
        match try_record(image, at) {
            Ok((len, view)) => {
                self.at = at + len;
                Some(Piece::Record { at, len, view })
            }
            Err(Bad::Content { len, why }) => {
                self.at = at + len;
                Some(Piece::Cut(cut(at, at + len, why)))
            }
            Err(Bad::Framing { torn }) => {
                let next = resync(image, at + 1);
                self.at = next;
                let why = if torn && next == image.len() {
                    CutReason::Torn
                } else {
                    CutReason::Corrupt
                };
                Some(Piece::Cut(cut(at, next, why)))
            }
        }
    }
}

fn cut(from: usize, to: usize, why: CutReason) -> Cut {
    Cut {
        at: from as u64,
        len: (to - from) as u64,
        why,
    }
}

/// Why no good record starts at an offset.
pub(super) enum Bad {
    /// The framing does not verify: the bytes are scanned for the next record. `torn`: they
    /// could be the start of a record that the end of the file cut short.
    Framing { torn: bool },
    /// The framing verifies (both checksums) but the payload is no event: the record is cut
    /// whole and the scan goes on after it.
    Content { len: usize, why: CutReason },
}

/// The record at `at`, with the bytes it takes.
pub(super) fn try_record(image: &[u8], at: usize) -> Result<(usize, View<'_>), Bad> {
    let rest = &image[at..];
    if rest.len() < HEAD_LEN {
        let n = rest.len().min(RECORD_MAGIC.len());
        return Err(Bad::Framing {
            torn: rest[..n] == RECORD_MAGIC[..n],
        });
    }
    let corrupt = Bad::Framing { torn: false };
    if rest[..4] != RECORD_MAGIC || crc32fast::hash(&rest[..12]) != le32(&rest[12..16]) {
        return Err(corrupt);
    }
    let len = le32(&rest[4..8]) as usize;
    if len > MAX_PAYLOAD {
        return Err(corrupt);
    }
    let Some(payload) = rest.get(HEAD_LEN..HEAD_LEN + len) else {
        return Err(Bad::Framing { torn: true });
    };
    if crc32fast::hash(payload) != le32(&rest[8..12]) {
        return Err(corrupt);
    }
    match decode_payload(payload) {
        Ok(view) => Ok((HEAD_LEN + len, view)),
        Err(why) => Err(Bad::Content {
            len: HEAD_LEN + len,
            why,
        }),
    }
}

/// The first offset at or after `from` where a record's framing verifies (the end of the
/// image when there is none).
fn resync(image: &[u8], from: usize) -> usize {
    match resync_within(image, from, true) {
        Resync::At(at) => at,
        Resync::End | Resync::NeedMore(_) => image.len(),
    }
}

/// Where the search for the next record stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resync {
    /// A record's framing verifies here.
    At(usize),
    /// None starts before the end of the bytes.
    End,
    /// Only with bytes that are not the whole file: a record may start here, and the bytes
    /// after the end are needed to tell. Nothing before it can start one.
    NeedMore(usize),
}

/// The first offset at or after `from` in `bytes` where a record's framing verifies. `complete`
/// says whether `bytes` run to the end of the file; when they do not, a record that may start
/// near their end is not taken for garbage, but asked to be read whole (`NeedMore`).
pub(super) fn resync_within(bytes: &[u8], from: usize, complete: bool) -> Resync {
    let mut at = from;
    while let Some(i) = bytes.get(at..).and_then(find_ff) {
        at += i;
        let rest = &bytes[at..];
        let n = rest.len().min(RECORD_MAGIC.len());
        if rest[..n] == RECORD_MAGIC[..n] {
            match try_record(bytes, at) {
                Ok(_) | Err(Bad::Content { .. }) => return Resync::At(at),
                Err(Bad::Framing { torn: true }) if !complete => return Resync::NeedMore(at),
                Err(Bad::Framing { .. }) => {}
            }
        }
        at += 1;
    }
    Resync::End
}

/// Where the first 0xFF (a record magic's first byte) is, looked for eight bytes at a time:
/// the search may cross gigabytes of zeros, what a crash can leave in a file.
fn find_ff(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    for word in bytes.chunks_exact(8) {
        // A word holds 0xFF where its complement holds a zero byte.
        let complement = !u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if complement.wrapping_sub(ONES) & !complement & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == 0xFF).map(|i| at + i)
}

fn decode_payload(payload: &[u8]) -> Result<View<'_>, CutReason> {
    let invalid = CutReason::Invalid;
    let version = *payload.first().ok_or(invalid("empty payload"))?;
    if version != RECORD_VERSION {
        return Err(CutReason::UnknownVersion(version));
    }
    let fixed = payload
        .get(..PAYLOAD_FIXED)
        .ok_or(invalid("short payload"))?;
    let flags = fixed[1];
    let id = le64(&fixed[2..10]);
    let topic_count = le32(&fixed[10..14]) as usize;
    if flags & !(FLAG_ASSIGNED | FLAG_PRIVATE) != 0 {
        return Err(invalid("unknown flags"));
    }
    let assigned = match flags & FLAG_ASSIGNED {
        FLAG_ASSIGNED => Some(id),
        _ if id == 0 => None,
        _ => return Err(invalid("a chosen id with a number")),
    };
    let topics_start = PAYLOAD_FIXED;
    let mut rest = &payload[topics_start..];
    for _ in 0..topic_count {
        let (topic, after) = take_bytes(rest).ok_or(invalid("topic past the end"))?;
        std::str::from_utf8(topic).map_err(|_| invalid("topic not UTF-8"))?;
        if topic_count == 1 && topic.is_empty() {
            return Err(invalid("a single empty topic"));
        }
        rest = after;
    }
    let topic_bytes = &payload[topics_start..payload.len() - rest.len()];
    let (frame, after) = take_bytes(rest).ok_or(invalid("frame past the end"))?;
    if !after.is_empty() {
        return Err(invalid("bytes after the frame"));
    }
    let (id, event_type) = check_frame(frame, assigned).map_err(invalid)?;
    Ok(View {
        assigned,
        private: flags & FLAG_PRIVATE != 0,
        topic_count,
        topic_bytes,
        frame,
        id,
        event_type,
    })
}

/// Checks that `frame` is what the encoder writes: `id:`, `event:`, `retry:` lines (each at
/// most once, in that order), one or more `data:` lines, then a blank line and nothing after.
/// Returns where the id and the event type are.
#[allow(clippy::type_complexity)]
fn check_frame(
    frame: &[u8],
    assigned: Option<u64>,
) -> Result<((usize, usize), (usize, usize)), &'static str> {
    let text = std::str::from_utf8(frame).map_err(|_| "frame not UTF-8")?;
    let body = text
        .strip_suffix("\n\n")
        .ok_or("frame does not end with a blank line")?;
    let mut id = (0, 0);
    let mut event_type = (0, 0);
    let mut stage = 0; // 0: id next, 1: event, 2: retry, 3: data, 4: more data
    let mut at = 0;
    for line in body.split('\n') {
        let value = |name: &str| line.strip_prefix(name).map(|v| (at + name.len(), v));
        if line.contains(['\r', '\0']) && !line.starts_with("data: ") {
            return Err("CR or NUL in a field");
        }
        if let (0, Some((start, v))) = (stage, value("id: ")) {
            id = (start, start + v.len());
            stage = 1;
        } else if let (0..=1, Some((start, v))) = (stage, value("event: ")) {
            event_type = (start, start + v.len());
            stage = 2;
        } else if let (0..=2, Some((_, v))) = (stage, value("retry: ")) {
            if crate::frame::parse_retry(v).is_err() {
                return Err("bad retry");
            }
            stage = 3;
        } else if let Some((_, v)) = value("data: ") {
            if v.contains('\r') {
                return Err("CR in data");
            }
            stage = 4;
        } else {
            return Err("unexpected line in frame");
        }
        at += line.len() + 1;
    }
    if stage != 4 {
        return Err("frame without data");
    }
    if id.0 == id.1 && id.0 != 0 {
        return Err("empty id");
    }
    if let Some(n) = assigned {
        // Written as a decimal number, or as a Mercure hub writes its ids.
        let mut digits = [0u8; 20];
        let mut urn = [0u8; crate::frame::URN_UUID_LEN];
        let written = &frame[id.0..id.1];
        if written != crate::frame::decimal(n, &mut digits).as_bytes()
            && written != crate::frame::urn_uuid(n, &mut urn).as_bytes()
        {
            return Err("assigned id differs from the frame's");
        }
    }
    Ok((id, event_type))
}

/// A length-prefixed byte string and what follows it.
fn take_bytes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = le32(bytes.get(..4)?) as usize;
    let rest = &bytes[4..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// A length-prefixed string that decoding has checked already.
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (s, rest) = take_bytes(bytes)?;
    Some((std::str::from_utf8(s).ok()?, rest))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::file::testing::record;

    fn pieces(image: &[u8]) -> Vec<Piece<'_>> {
        Scanner::new(image).collect()
    }

    #[test]
    fn the_search_for_a_record_finds_the_first_ff_wherever_it_is() {
        for len in 0..40 {
            assert_eq!(find_ff(&vec![0u8; len]), None);
            for at in 0..len {
                let mut bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 255) as u8).collect();
                bytes
                    .iter_mut()
                    .filter(|b| **b == 0xFF)
                    .for_each(|b| *b = 0);
                bytes[at] = 0xFF;
                if at + 1 < len {
                    bytes[len - 1] = 0xFF;
                }
                assert_eq!(find_ff(&bytes), Some(at), "{len} {at}");
            }
        }
    }

    #[test]
    fn records_round_trip_with_every_kind_of_topics() {
        let records = [
            record(Some(7), "7", &[], "a"),
            record(None, "mine", &["x"], "b\nc"),
            record(Some(9), "9", &["", "y", "z"], ""),
        ];
        let mut image = Vec::new();
        encode_header(&mut image, Some(5));
        for r in &records {
            let start = image.len();
            encode_record(&mut image, r);
            assert_eq!(image.len() - start, r.encoded_len());
        }
        assert_eq!(
            decode_header(&image),
            HeaderState::Good {
                last_assigned: Some(5)
            }
        );
        let got: Vec<Record> = pieces(&image)
            .into_iter()
            .filter_map(|p| match p {
                Piece::Record { view, .. } => Some(view.to_record()),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), 3);
        for (g, r) in got.iter().zip(&records) {
            assert_eq!(g.frame, r.frame);
            assert_eq!((&g.id, &g.event_type), (&r.id, &r.event_type));
            assert_eq!(g.topics, r.topics);
            assert_eq!(g.assigned, r.assigned);
            assert_eq!(g.entry().event_type(), "tick");
            assert!(!g.private && !g.entry().is_private());
        }
    }

    #[test]
    fn a_private_event_stays_private_and_a_mercure_id_stays_assigned() {
        let n = 1_700_000_000_000_123;
        let mut urn = [0u8; crate::frame::URN_UUID_LEN];
        let mut private = record(Some(n), crate::frame::urn_uuid(n, &mut urn), &["a"], "p");
        private.private = true;
        let public = record(Some(n + 1), &(n + 1).to_string(), &["a"], "q");
        let mut image = Vec::new();
        encode_header(&mut image, None);
        encode_record(&mut image, &private);
        encode_record(&mut image, &public);
        let got: Vec<Record> = pieces(&image)
            .into_iter()
            .filter_map(|p| match p {
                Piece::Record { view, .. } => Some(view.to_record()),
                Piece::Header => None,
                Piece::Cut(cut) => panic!("{cut}"),
            })
            .collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].private && got[0].entry().is_private());
        assert_eq!(got[0].assigned, Some(n));
        assert_eq!(got[0].id(), private.id());
        assert!(!got[1].private);
    }

    #[test]
    fn a_record_without_the_private_bit_reads_as_public_and_unknown_bits_are_cut() {
        let mut image = Vec::new();
        encode_header(&mut image, None);
        encode_record(&mut image, &record(Some(1), "1", &["t"], "one"));
        let flags_at = HEADER_LEN + HEAD_LEN + 1;
        assert_eq!(
            image[flags_at], FLAG_ASSIGNED,
            "as written before FLAG_PRIVATE"
        );
        match pieces(&image)[1] {
            Piece::Record { view, .. } => assert!(!view.private),
            other => panic!("{other:?}"),
        }
        let payload = &image[HEADER_LEN + HEAD_LEN..];
        let mut flagged = payload.to_vec();
        flagged[1] |= 4;
        let mut bad = Vec::new();
        encode_header(&mut bad, None);
        encode_raw_record(&mut bad, &flagged);
        assert!(matches!(
            pieces(&bad)[1],
            Piece::Cut(Cut {
                why: CutReason::Invalid("unknown flags"),
                ..
            })
        ));
    }

    #[test]
    fn a_damaged_byte_anywhere_in_a_record_cuts_only_that_record() {
        let mut image = Vec::new();
        encode_header(&mut image, None);
        let first = image.len();
        encode_record(&mut image, &record(Some(1), "1", &["t"], "one"));
        let second = image.len();
        encode_record(&mut image, &record(Some(2), "2", &["t"], "two"));
        let third = image.len();
        encode_record(&mut image, &record(Some(3), "3", &["t"], "three"));
        for at in second..third {
            let mut damaged = image.clone();
            damaged[at] ^= 0x20;
            let p = pieces(&damaged);
            assert!(matches!(p[1], Piece::Record { at, .. } if at == first));
            assert!(
                matches!(p[2], Piece::Cut(Cut { at: a, len, why: CutReason::Corrupt })
                    if a as usize == second && len as usize == third - second),
                "byte {at}: {:?}",
                p[2]
            );
            assert!(matches!(p[3], Piece::Record { at, .. } if at == third));
            assert_eq!(p.len(), 4);
        }
    }

    #[test]
    fn a_record_cut_short_by_the_end_of_the_file_is_torn() {
        let mut image = Vec::new();
        encode_header(&mut image, None);
        encode_record(&mut image, &record(Some(1), "1", &[], "one"));
        let whole = image.len();
        encode_record(&mut image, &record(Some(2), "2", &[], "two"));
        for end in whole + 1..image.len() {
            let p = pieces(&image[..end]);
            assert_eq!(p.len(), 3, "end {end}");
            assert!(
                matches!(p[2], Piece::Cut(Cut { why: CutReason::Torn, len, .. })
                    if len as usize == end - whole),
                "end {end}: {:?}",
                p[2]
            );
        }
    }

    #[test]
    fn frames_that_the_encoder_would_not_write_are_refused() {
        let ok = |f: &str, a| check_frame(f.as_bytes(), a);
        assert_eq!(ok("id: 5\ndata: x\n\n", Some(5)), Ok(((4, 5), (0, 0))));
        assert!(ok("id: a\nevent: t\nretry: 5\ndata: x\ndata: \n\n", None).is_ok());
        for bad in [
            "",
            "\n",
            "data: x\n",
            "data: x\n\n\n",
            "id: 1\n\n",
            "event: t\nid: 1\ndata: x\n\n",
            "data: x\nid: 1\n\n",
            "retry: x\ndata: x\n\n",
            "id: \ndata: x\n\n",
            "id: 1\rid: 2\ndata: x\n\n",
            "data: \r\n\n",
            "junk\ndata: x\n\n",
        ] {
            assert!(ok(bad, None).is_err(), "{bad:?}");
        }
        assert_eq!(
            ok("id: 5\ndata: x\n\n", Some(6)),
            Err("assigned id differs from the frame's")
        );
        let urn = "id: urn:uuid:018bcfe5-6800-707b-8000-000000000000\ndata: x\n\n";
        assert!(ok(urn, Some(1_700_000_000_000_123)).is_ok());
        assert!(ok(urn, Some(1_700_000_000_000_124)).is_err());
    }
}
