//! The frame encoder against the browser: an event is encoded, placed in a stream after the
//! blocks a stream starts with (`retry:`, `: gap`) and before a heartbeat, and the stream is read
//! by the WHATWG "interpret an event stream" algorithm, written out below from the HTML
//! standard. Exactly one event must be dispatched, with the published data (line breaks
//! normalised to LF), type and id, and the reconnection time must be the event's `retry`.
//!
//! The input is `id 0xFF type 0xFF retry 0xFF data`; inputs that publishing refuses are
//! checked to be refused and go no further.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssed::Event;
use ssed::fuzzing::{GAP, HEARTBEAT, encode, parse_retry, retry_block};

const SEPARATOR: u8 = 0xFF;
/// The `retry` block at the start of the stream, which an event's own `retry` overrides.
const STREAM_RETRY: u32 = 3000;

fuzz_target!(|input: &[u8]| {
    let mut parts = input
        .splitn(4, |&b| b == SEPARATOR)
        .map(std::str::from_utf8);
    let (Some(Ok(id)), Some(Ok(event_type)), Some(Ok(retry)), Some(Ok(data))) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let retry = match retry {
        "" => None,
        digits => match parse_retry(digits) {
            Ok(ms) => Some(ms),
            Err(_) => return,
        },
    };
    let event = Event::new(data).id(id).event_type(event_type);
    let single_line = |text: &str| !text.contains(['\r', '\n', '\0']);
    if event.validate().is_err() {
        assert!(
            !single_line(id) || !single_line(event_type),
            "{event:?} refused"
        );
        return;
    }
    assert!(
        single_line(id) && single_line(event_type),
        "{event:?} accepted"
    );

    let encoded = encode(id, event_type, retry, data);
    let named_type = if event_type == "message" {
        ""
    } else {
        event_type
    };
    assert_eq!(&encoded.bytes[encoded.id.clone()], id.as_bytes());
    assert_eq!(
        &encoded.bytes[encoded.event_type.clone()],
        named_type.as_bytes()
    );

    let mut stream = retry_block(STREAM_RETRY);
    stream.extend_from_slice(GAP);
    stream.extend_from_slice(&encoded.bytes);
    stream.extend_from_slice(HEARTBEAT);
    let stream = std::str::from_utf8(&stream).expect("a frame is UTF-8");
    let mut source = EventSource::default();
    let dispatched = source.interpret(stream);

    let want = Dispatched {
        event_type: if event_type.is_empty() {
            "message"
        } else {
            event_type
        }
        .to_owned(),
        data: data.replace("\r\n", "\n").replace('\r', "\n"),
        last_event_id: id.to_owned(),
    };
    assert_eq!(dispatched, [want], "stream {stream:?}");
    let reconnection = retry.unwrap_or(STREAM_RETRY);
    assert_eq!(source.reconnection_time, Some(u64::from(reconnection)));
});

/// What a browser's `EventSource` hands to a listener.
#[derive(Debug, PartialEq, Eq)]
struct Dispatched {
    event_type: String,
    data: String,
    last_event_id: String,
}

/// The state of one EventSource while it reads a stream (HTML standard, "Server-sent events",
/// section "Interpreting an event stream").
#[derive(Default)]
struct EventSource {
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

impl EventSource {
    /// Reads a whole stream, already decoded from UTF-8; returns the events dispatched. A last
    /// line without its line break is never processed, as when a connection ends.
    fn interpret(&mut self, stream: &str) -> Vec<Dispatched> {
        let mut dispatched = Vec::new();
        // One leading byte order mark is skipped.
        let mut rest = stream.strip_prefix('\u{FEFF}').unwrap_or(stream);
        // Lines end with CRLF, a lone LF or a lone CR.
        while let Some(end) = rest.find(['\r', '\n']) {
            let line = &rest[..end];
            let after = if rest[end..].starts_with("\r\n") {
                end + 2
            } else {
                end + 1
            };
            rest = &rest[after..];
            if let Some(event) = self.process_line(line) {
                dispatched.push(event);
            }
        }
        dispatched
    }

    fn process_line(&mut self, line: &str) -> Option<Dispatched> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // A comment.
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_event_id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Far longer values than ssed writes still fit; a browser saturates instead.
                self.reconnection_time = Some(value.parse().unwrap_or(u64::MAX));
            }
            _ => {} // Unknown fields are ignored.
        }
        None
    }

    fn dispatch(&mut self) -> Option<Dispatched> {
        self.last_event_id = self.last_event_id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event_type = match std::mem::take(&mut self.event_type) {
            named if !named.is_empty() => named,
            _ => "message".to_owned(),
        };
        Some(Dispatched {
            event_type,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        })
    }
}
