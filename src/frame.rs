//! The event-stream wire format (WHATWG "server-sent events").
//!
//! An event is encoded exactly once into an immutable frame that every subscriber shares. Field
//! values that would let a publisher inject other fields (CR, LF or NUL in a type or id) are
//! refused before anything is encoded.

use std::fmt;

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
}

impl FieldError {
    /// A short sentence for an HTTP error body or a C caller.
    pub fn message(self) -> &'static str {
        match self {
            FieldError::EventType => "the event type must not contain CR, LF or NUL",
            FieldError::Id => "the id must not contain CR, LF or NUL",
            FieldError::Utf8 => "the event must be valid UTF-8",
            FieldError::Retry => "retry must be a number of milliseconds (ASCII digits)",
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

/// Appends one event to `out`. The caller has validated `event_type` and `id`.
///
/// The type `message` is the default and is omitted. Data is split on LF, CRLF and lone CR, so
/// that a browser's `event.data` is the data with line breaks normalised to LF; empty data still
/// yields one `data:` line.
pub fn encode(out: &mut Vec<u8>, id: &str, event_type: &str, retry: Option<u32>, data: &str) {
    out.reserve(id.len() + event_type.len() + data.len() + 32);
    if !id.is_empty() {
        push_field(out, b"id: ", id.as_bytes());
    }
    if !event_type.is_empty() && event_type != "message" {
        push_field(out, b"event: ", event_type.as_bytes());
    }
    if let Some(ms) = retry {
        push_field(out, b"retry: ", ms.to_string().as_bytes());
    }
    for line in split_lines(data.as_bytes()) {
        push_field(out, b"data: ", line);
    }
    out.push(b'\n');
}

/// Encodes the block that tells a client how long to wait before reconnecting.
pub fn retry_block(ms: u32) -> Vec<u8> {
    format!("retry: {ms}\n\n").into_bytes()
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.push(b'\n');
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

    fn frame(id: &str, ty: &str, retry: Option<u32>, data: &str) -> String {
        let mut out = Vec::new();
        encode(&mut out, id, ty, retry, data);
        String::from_utf8(out).unwrap()
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
