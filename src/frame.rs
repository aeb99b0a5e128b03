//! The event-stream wire format (WHATWG "server-sent events").
//!
//! An event is encoded exactly once into an immutable frame that every subscriber shares. Field
//! values that would let a publisher inject other fields (CR, LF or NUL in a type or id) are
//! refused before anything is encoded.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The heartbeat comment: never reaches a browser's `onmessage`.
pub const HEARTBEAT: &[u8] = b":\n\n";

/// The comment that precedes a replay when the requested id is no longer retained.
pub const GAP: &[u8] = b": gap\n\n";

/// Why an event was refused. Nothing is published when one of these is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// The event type contains CR, LF or NUL.
    EventType,
    /// The id contains CR, LF or NUL.
    Id,
    /// A field is not valid UTF-8.
    Utf8,
    /// `retry` is not a number of milliseconds written in ASCII digits.
    Retry,
    /// The event is private, and the server has no subscriber key: no subscriber could ever
    /// read it.
    Unreadable,
}

impl FieldError {
    /// A short sentence for an HTTP error body or a C caller.
    pub fn message(self) -> &'static str {
        match self {
            FieldError::EventType => "the event type must not contain CR, LF or NUL",
            FieldError::Id => "the id must not contain CR, LF or NUL",
            FieldError::Utf8 => "the event must be valid UTF-8",
            FieldError::Retry => "retry must be a number of milliseconds (ASCII digits)",
            FieldError::Unreadable => {
                "a private event reaches only subscribers whose token allows it, and this server \
                 has no subscriber key (--subscriber-jwt-key, or an issuer's): no subscriber could \
                 ever read it"
            }
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FieldError {}

/// True when `value` can be written as one field line.
pub fn is_single_line(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Parses a `retry` value: ASCII digits only, fitting a `u32`.
pub fn parse_retry(value: &str) -> Result<u32, FieldError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::Retry);
    }
    value.parse().map_err(|_| FieldError::Retry)
}

/// Encodes one event into a frame that subscribers and the history share. The caller has
/// validated `event_type` and `id`.
///
/// The type `message` is the default and is omitted. Data is split on LF, CRLF and lone CR, so
/// that a browser's `event.data` is the data with line breaks normalised to LF; empty data still
/// yields one `data:` line. The length is computed first, so the frame is allocated once, at
/// its final size, and never copied.
pub fn encode(id: &str, event_type: &str, retry: Option<u32>, data: &str) -> Encoded {
    let mut digits = [0u8; 20];
    let retry = retry.map(|ms| decimal(u64::from(ms), &mut digits));
    let fields = Fields {
        id,
        event_type: named_type(event_type),
        retry,
        data,
    };
    let mut bytes = zeroed_shared(fields.len());
    let (id, event_type) = match Arc::get_mut(&mut bytes) {
        Some(buf) => fields.write(&mut Out { bytes: buf, at: 0 }),
        None => (0..0, 0..0), // A fresh Arc is never shared.
    };
    Encoded {
        bytes,
        id,
        event_type,
    }
}

/// The data of an encoded event: its `data:` lines joined with LF, as a browser reads them.
#[cfg(feature = "jwt")]
pub fn data_of(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame);
    let mut lines = text
        .split('\n')
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|value| value.strip_prefix(' ').unwrap_or(value));
    let mut data = lines.next().unwrap_or_default().to_owned();
    for line in lines {
        data.push('\n');
        data.push_str(line);
    }
    data
}

/// An encoded event, with where its id and type sit in the frame, so that they need no
/// allocation of their own.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Arc<[u8]>,
    pub id: Range<usize>,
    pub event_type: Range<usize>,
}

/// The decimal digits of `n`, written into `buf`.
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// How an id the server assigns is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdForm {
    /// A decimal integer: ssed's own endpoints and APIs.
    #[default]
    Decimal,
    /// `urn:uuid:...`, an IRI as the Mercure protocol requires of the hub's ids (see [`urn_uuid`]).
    Urn,
}

/// Bytes of an id written as [`urn_uuid`].
pub const URN_UUID_LEN: usize = 45;

/// The assigned id `n` as a `urn:uuid:` IRI, the form Mercure hubs give their events: a
/// UUIDv7 (RFC 9562) whose timestamp is `n` read as microseconds since the epoch, which is
/// what assigned ids start from: milliseconds in the first 48 bits, the microsecond within the
/// millisecond in the 12 bits after the version. Distinct ids give distinct UUIDs, and a later
/// id a greater one, compared as numbers or as text; replay finds an event by this text like by
/// any other id.
pub fn urn_uuid(n: u64, buf: &mut [u8; URN_UUID_LEN]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let millis = n / 1000;
    let micros = n % 1000;
    // Ids beyond the year 10889 overflow the 48-bit timestamp: what is left goes in the last
    // bits, so that the UUID stays unique.
    let overflow = millis >> 48;
    let value: u128 = (u128::from(millis & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7 << 76)
        | (u128::from(micros) << 64)
        | (0b10 << 62)
        | u128::from(overflow);
    buf[..9].copy_from_slice(b"urn:uuid:");
    let mut at = 9;
    for nibble in (0..32).rev() {
        if matches!(nibble, 23 | 19 | 15 | 11) {
            buf[at] = b'-';
            at += 1;
        }
        buf[at] = HEX[(value >> (nibble * 4)) as usize & 0xF];
        at += 1;
    }
    // Only ASCII was written.
    std::str::from_utf8(&buf[..]).unwrap_or("urn:uuid:")
}

fn named_type(event_type: &str) -> &str {
    if event_type == "message" {
        ""
    } else {
        event_type
    }
}

/// The parts of one frame, measured and then written.
struct Fields<'a> {
    id: &'a str,
    event_type: &'a str,
    retry: Option<&'a str>,
    data: &'a str,
}

impl Fields<'_> {
    fn len(&self) -> usize {
        let field = |name: &[u8], value: &str| name.len() + value.len() + 1;
        let mut len = 1;
        if !self.id.is_empty() {
            len += field(b"id: ", self.id);
        }
        if !self.event_type.is_empty() {
            len += field(b"event: ", self.event_type);
        }
        if let Some(ms) = self.retry {
            len += field(b"retry: ", ms);
        }
        for line in split_lines(self.data.as_bytes()) {
            len += b"data: ".len() + line.len() + 1;
        }
        len
    }

    /// Writes the frame; returns where the id and the event type are.
    fn write(&self, out: &mut Out) -> (Range<usize>, Range<usize>) {
        let mut id = 0..0;
        let mut event_type = 0..0;
        if !self.id.is_empty() {
            id = out.field(b"id: ", self.id.as_bytes());
        }
        if !self.event_type.is_empty() {
            event_type = out.field(b"event: ", self.event_type.as_bytes());
        }
        if let Some(ms) = self.retry {
            out.field(b"retry: ", ms.as_bytes());
        }
        for line in split_lines(self.data.as_bytes()) {
            out.field(b"data: ", line);
        }
        out.put(b"\n");
        (id, event_type)
    }
}

/// A cursor over a buffer measured to fit exactly.
struct Out<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, piece: &[u8]) {
        self.bytes[self.at..self.at + piece.len()].copy_from_slice(piece);
        self.at += piece.len();
    }

    /// Writes one field line; returns where its value is.
    fn field(&mut self, name: &[u8], value: &[u8]) -> Range<usize> {
        self.put(name);
        let start = self.at;
        self.put(value);
        self.put(b"\n");
        start..start + value.len()
    }
}

/// A shared buffer of `len` zero bytes, allocated once.
#[allow(unsafe_code)]
fn zeroed_shared(len: usize) -> Arc<[u8]> {
    // SAFETY: every byte is initialised, to zero, which is a valid u8.
    unsafe { Arc::<[u8]>::new_zeroed_slice(len).assume_init() }
}

/// Encodes the block that tells a client how long to wait before reconnecting.
pub fn retry_block(ms: u32) -> Vec<u8> {
    format!("retry: {ms}\n\n").into_bytes()
}

/// Splits on LF, CRLF and lone CR. Always yields at least one (possibly empty) line; a trailing
/// line break yields a trailing empty line, as the browser would see it.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                rest = None;
                Some(text)
            }
            Some(i) => {
                let skip = if text[i] == b'\r' && text.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = Some(&text[i + skip..]);
                Some(&text[..i])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jwt")]
    #[test]
    fn data_is_read_back_from_a_frame() {
        let frame = encode("1", "t", Some(5), "a\nb\r\n data: c");
        assert_eq!(data_of(&frame.bytes), "a\nb\n data: c");
        assert_eq!(data_of(&encode("", "", None, "").bytes), "");
    }

    #[test]
    fn urn_ids_are_uuid_v7_growing_with_the_number() {
        let mut buf = [0u8; URN_UUID_LEN];
        // 2023-11-14T22:13:20.000123Z in microseconds.
        let n = 1_700_000_000_000_123;
        assert_eq!(
            urn_uuid(n, &mut buf),
            "urn:uuid:018bcfe5-6800-707b-8000-000000000000"
        );
        let mut ids = Vec::new();
        for n in [
            0,
            1,
            999,
            1000,
            n,
            n + 1,
            n + 877,
            (1 << 48) * 1000 - 1,
            u64::MAX,
        ] {
            let id = urn_uuid(n, &mut buf).to_owned();
            assert_eq!(id.len(), URN_UUID_LEN);
            assert_eq!(&id[23..24], "7", "version 7: {id}");
            assert!(
                matches!(&id[28..29], "8" | "9" | "a" | "b"),
                "variant: {id}"
            );
            ids.push(id);
        }
        assert!(ids[..8].is_sorted(), "text order is number order: {ids:#?}");
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "distinct, even past the timestamp's range"
        );
    }

    fn frame(id: &str, ty: &str, retry: Option<u32>, data: &str) -> String {
        String::from_utf8(encode(id, ty, retry, data).bytes.to_vec()).unwrap()
    }

    #[test]
    fn id_and_type_positions_point_into_the_frame() {
        let e = encode("42", "tick", Some(5), "x");
        assert_eq!(&e.bytes[e.id.clone()], b"42");
        assert_eq!(&e.bytes[e.event_type.clone()], b"tick");
        let plain = encode("", "message", None, "x");
        assert!(plain.id.is_empty() && plain.event_type.is_empty());
    }

    #[test]
    fn decimals() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), "0");
        assert_eq!(decimal(1795239431233342, &mut buf), "1795239431233342");
        assert_eq!(decimal(u64::MAX, &mut buf), "18446744073709551615");
    }

    #[test]
    fn plain_message_with_id() {
        assert_eq!(frame("7", "", None, "hello"), "id: 7\ndata: hello\n\n");
    }

    #[test]
    fn default_type_is_omitted_named_type_is_written() {
        assert_eq!(frame("1", "message", None, "x"), "id: 1\ndata: x\n\n");
        assert_eq!(
            frame("1", "tick", None, "x"),
            "id: 1\nevent: tick\ndata: x\n\n"
        );
    }

    #[test]
    fn every_line_ending_splits() {
        assert_eq!(frame("", "", None, "a\nb"), "data: a\ndata: b\n\n");
        assert_eq!(frame("", "", None, "a\r\nb"), "data: a\ndata: b\n\n");
        assert_eq!(frame("", "", None, "a\rb"), "data: a\ndata: b\n\n");
        assert_eq!(
            frame("", "", None, "a\r\rb"),
            "data: a\ndata: \ndata: b\n\n"
        );
        assert_eq!(
            frame("", "", None, "a\n\r\nb"),
            "data: a\ndata: \ndata: b\n\n"
        );
        assert_eq!(frame("", "", None, "a\n"), "data: a\ndata: \n\n");
        assert_eq!(frame("", "", None, "\r"), "data: \ndata: \n\n");
    }

    #[test]
    fn empty_data_still_has_a_data_line() {
        assert_eq!(frame("3", "", None, ""), "id: 3\ndata: \n\n");
    }

    #[test]
    fn multibyte_utf8_is_kept_whole() {
        assert_eq!(
            frame("", "", None, "héllo\n世界 🎉"),
            "data: héllo\ndata: 世界 🎉\n\n"
        );
    }

    #[test]
    fn retry_is_written_and_validated() {
        assert_eq!(frame("", "", Some(1500), "x"), "retry: 1500\ndata: x\n\n");
        assert_eq!(parse_retry("250"), Ok(250));
        for bad in ["", "-1", "1.5", " 1", "1e3", "99999999999"] {
            assert_eq!(parse_retry(bad), Err(FieldError::Retry), "{bad:?}");
        }
    }

    #[test]
    fn single_line_check_refuses_cr_lf_nul() {
        assert!(is_single_line("update"));
        assert!(is_single_line("été"));
        for bad in ["a\nb", "a\rb", "a\0b", "\n"] {
            assert!(!is_single_line(bad), "{bad:?}");
        }
    }

    #[test]
    fn retry_block_is_its_own_block() {
        assert_eq!(retry_block(3000), b"retry: 3000\n\n");
    }
}
