//! Incremental client-side parsing of an SSE response: the HTTP response head, an optional
//! chunked transfer coding, and the event stream itself (WHATWG "Server-sent events").
//!
//! Everything works on whatever slice a `read` returned, so a line, a chunk header or the head
//! may be split anywhere. The common case (a whole line inside the slice) is parsed in place;
//! only a line that straddles two reads is copied into a small per-connection buffer.

/// Longest line or response head kept across reads. Benchmark events are a few hundred bytes;
/// anything far longer means the stream is not what the benchmark sent.
const MAX_CARRY: usize = 64 * 1024;

/// One dispatched event, reduced to what the benchmark checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The stream's last event id when the event was dispatched, if it is a decimal number
    /// (ids ssed assigns are); 0 otherwise.
    pub id: u64,
    /// Sequence number and send timestamp, read from the first data line ("SEQ TS [TAG]").
    pub seq: u64,
    pub sent_ns: u64,
    /// An optional third number on that line (the robustness scenarios put a topic there).
    pub tag: u64,
    /// True when the first data line held both numbers.
    pub numbered: bool,
    /// Length of the event's data once its lines are joined with LF, as `event.data` would be.
    pub data_len: usize,
}

/// Finds the first CR or LF, eight bytes at a time (the load generator parses every byte that
/// every subscriber receives, so this loop is the hot path).
pub fn find_line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LFS: u64 = ONES * b'\n' as u64;
    const CRS: u64 = ONES * b'\r' as u64;
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let lf = word ^ LFS;
        let cr = word ^ CRS;
        // A zero byte in `lf` or `cr` marks an LF or CR. The lowest flagged byte is always a
        // true match, which is the one we want.
        let found = ((lf.wrapping_sub(ONES) & !lf) | (cr.wrapping_sub(ONES) & !cr)) & HIGHS;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| b == b'\n' || b == b'\r').map(|p| i + p)
}

/// Parses "SEQ TS" at the start of a data line, and a third number TAG after them if there is
/// one (0 otherwise); anything after is ignored.
fn parse_seq_and_timestamp(value: &[u8]) -> Option<(u64, u64, u64)> {
    let (seq, rest) = parse_decimal(value)?;
    let rest = rest.strip_prefix(b" ")?;
    let (ts, rest) = parse_decimal(rest)?;
    let tag = rest.strip_prefix(b" ").and_then(parse_decimal).map_or(0, |(tag, _)| tag);
    Some((seq, ts, tag))
}

/// A whole field value as a decimal number.
fn parse_whole_decimal(bytes: &[u8]) -> Option<u64> {
    match parse_decimal(bytes)? {
        (n, []) => Some(n),
        _ => None,
    }
}

fn parse_decimal(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let mut n = 0u64;
    for &b in &bytes[..digits] {
        n = n * 10 + (b - b'0') as u64;
    }
    Some((n, &bytes[digits..]))
}

/// The event-stream parser proper, fed with the decoded response body.
#[derive(Default)]
pub struct SseParser {
    /// A line that straddles reads; empty almost always.
    carry: Vec<u8>,
    /// The previous slice ended in CR: an LF starting the next slice ends the same line.
    skip_lf: bool,
    data_lines: u32,
    data_len: usize,
    /// The last event id buffer: it persists from event to event until an `id` line changes it.
    id: u64,
    seq: u64,
    sent_ns: u64,
    tag: u64,
    numbered: bool,
    pub comments: u64,
    /// `: gap` comments: ssed sends one before a replay that may miss events.
    pub gaps: u64,
}

impl SseParser {
    /// Parses `bytes`, calling `on_event` for each completed event. Err if a single line
    /// grows beyond what the benchmark could have sent.
    pub fn feed(&mut self, bytes: &[u8], on_event: &mut impl FnMut(Event)) -> Result<(), ()> {
        let mut pos = 0;
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                pos = 1;
            }
        }
        while pos < bytes.len() {
            let Some(offset) = find_line_end(&bytes[pos..]) else {
                if self.carry.len() + bytes.len() - pos > MAX_CARRY {
                    return Err(());
                }
                self.carry.extend_from_slice(&bytes[pos..]);
                return Ok(());
            };
            let end = pos + offset;
            if self.carry.is_empty() {
                self.process_line(&bytes[pos..end], on_event);
            } else {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&bytes[pos..end]);
                self.process_line(&line, on_event);
                line.clear();
                self.carry = line;
            }
            pos = end + 1;
            if bytes[end] == b'\r' {
                if pos == bytes.len() {
                    self.skip_lf = true;
                } else if bytes[pos] == b'\n' {
                    pos += 1;
                }
            }
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(Event)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            self.gaps += (line == b": gap") as u64;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &line[line.len()..]),
        };
        // event and retry are valid fields the benchmark does not need; unknown fields are
        // ignored, as a browser does.
        if field == b"data" {
            self.append_data_line(value);
        } else if field == b"id" && !value.contains(&0) {
            self.id = parse_whole_decimal(value).unwrap_or(0);
        }
    }

    fn append_data_line(&mut self, value: &[u8]) {
        if self.data_lines == 0 {
            if let Some((seq, ts, tag)) = parse_seq_and_timestamp(value) {
                self.seq = seq;
                self.sent_ns = ts;
                self.tag = tag;
                self.numbered = true;
            }
        } else {
            self.data_len += 1; // the LF that joins data lines
        }
        self.data_lines += 1;
        self.data_len += value.len();
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Event)) {
        // An event without data lines is not dispatched (same as a browser).
        if self.data_lines > 0 {
            on_event(Event {
                id: self.id,
                seq: self.seq,
                sent_ns: self.sent_ns,
                tag: self.tag,
                numbered: self.numbered,
                data_len: self.data_len,
            });
        }
        self.data_lines = 0;
        self.data_len = 0;
        self.tag = 0;
        self.numbered = false;
    }
}

/// Decoder for `Transfer-Encoding: chunked` (used by nginx for streamed responses).
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    state: ChunkState,
    /// The size being read; kept here so a size line split across reads resumes.
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// After `;` in the size line: extensions are skipped up to LF.
    Extension,
    Data(u64),
    /// After a chunk's data, its CRLF.
    DataEnd,
    /// The zero-size chunk was seen: the body is over.
    Done,
}

impl ChunkDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Pushes the data in `input` to `out`, slice by slice, without copying. Returns how many
    /// bytes of `input` belonged to the body (all of them until the last chunk is seen).
    pub fn decode(&mut self, input: &[u8], out: &mut impl FnMut(&[u8]) -> Result<(), ()>) -> Result<usize, ()> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                ChunkState::Size => {
                    let b = input[pos];
                    pos += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).unwrap() as u64;
                            self.size = self.size.checked_mul(16).ok_or(())? + digit;
                        }
                        b';' => self.state = ChunkState::Extension,
                        b'\r' | b' ' | b'\t' => {}
                        b'\n' => self.end_size_line(),
                        _ => return Err(()),
                    }
                }
                ChunkState::Extension => {
                    if input[pos] == b'\n' {
                        self.end_size_line();
                    }
                    pos += 1;
                }
                ChunkState::Data(remaining) => {
                    let take = remaining.min((input.len() - pos) as u64) as usize;
                    out(&input[pos..pos + take])?;
                    pos += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                }
                ChunkState::DataEnd => {
                    if input[pos] == b'\n' {
                        self.state = ChunkState::Size;
                    }
                    pos += 1;
                }
                ChunkState::Done => return Ok(pos),
            }
        }
        Ok(pos)
    }

    fn end_size_line(&mut self) {
        let size = std::mem::take(&mut self.size);
        self.state = if size == 0 { ChunkState::Done } else { ChunkState::Data(size) };
    }
}

/// What the response head said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    pub event_stream: bool,
    pub content_length: Option<u64>,
    /// Bytes the head took, including its blank line.
    pub len: usize,
}

/// Parses an HTTP/1.x response head at the start of `buf`. Ok(None) while incomplete.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, ()> {
    let Some(len) = head_end(buf) else {
        return if buf.len() > MAX_CARRY { Err(()) } else { Ok(None) };
    };
    let text = std::str::from_utf8(&buf[..len]).map_err(|_| ())?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().ok_or(())?;
    let mut parts = status_line.split(' ');
    if !parts.next().ok_or(())?.starts_with("HTTP/1.") {
        return Err(());
    }
    let status = parts.next().ok_or(())?.parse::<u16>().map_err(|_| ())?;
    let mut head = ResponseHead { status, chunked: false, event_stream: false, content_length: None, len };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            head.event_stream = value.to_ascii_lowercase().starts_with("text/event-stream");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        }
    }
    Ok(Some(head))
}

/// Position just past the blank line that ends a head (CRLF CRLF, or bare LF LF).
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let next = nl + 1;
        if buf.get(next) == Some(&b'\n') {
            return Some(next + 1);
        }
        if buf.get(next) == Some(&b'\r') && buf.get(next + 1) == Some(&b'\n') {
            return Some(next + 2);
        }
        i = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<Event> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, &mut |e| events.push(e)).unwrap();
        }
        events
    }

    #[test]
    fn finds_line_ends_in_every_position() {
        for len in 0..40 {
            for at in 0..len {
                for eol in [b'\n', b'\r'] {
                    let mut v = vec![b'x'; len];
                    v[at] = eol;
                    assert_eq!(find_line_end(&v), Some(at));
                }
            }
            assert_eq!(find_line_end(&vec![b'y'; len]), None);
        }
    }

    #[test]
    fn parses_lf_cr_and_crlf_split_anywhere() {
        let lf = b": hi\n\nid: 1\ndata: 7 123\ndata: abc\n\nid: 2\ndata: 8 124\n\n";
        let crlf = b": hi\r\n\r\nid: 1\r\ndata: 7 123\r\ndata: abc\r\n\r\nid: 2\r\ndata: 8 124\r\n\r\n";
        let cr = b": hi\r\rid: 1\rdata: 7 123\rdata: abc\r\rid: 2\rdata: 8 124\r\r";
        for stream in [&lf[..], &crlf[..], &cr[..]] {
            for piece in 1..stream.len() {
                let events = parse_in_pieces(stream, piece);
                assert_eq!(events.len(), 2, "piece {piece}");
                assert_eq!(events[0], Event { id: 1, seq: 7, sent_ns: 123, tag: 0, numbered: true, data_len: 9 });
                assert_eq!(events[1], Event { id: 2, seq: 8, sent_ns: 124, tag: 0, numbered: true, data_len: 5 });
            }
        }
    }

    #[test]
    fn keeps_the_last_event_id_and_reads_a_tag_and_gaps() {
        let stream = b": gap\n\nid: 41\ndata: 1 2 3 pad\n\ndata: 4 5\n\nid: x7\ndata: 6 7 8\n\n:\n\n";
        for piece in 1..stream.len() {
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            for chunk in stream.chunks(piece) {
                parser.feed(chunk, &mut |e| events.push(e)).unwrap();
            }
            let seen: Vec<(u64, u64, u64)> = events.iter().map(|e| (e.id, e.seq, e.tag)).collect();
            // An event without an id line keeps the previous id, as a browser's lastEventId does.
            assert_eq!(seen, [(41, 1, 3), (41, 4, 0), (0, 6, 8)], "piece {piece}");
            assert_eq!((parser.gaps, parser.comments), (1, 2));
        }
    }

    #[test]
    fn ignores_comments_and_events_without_data() {
        let events = parse_in_pieces(b": ping\n\nevent: x\n\ndata\n\ndata:1 2\n\n", 3);
        assert_eq!(events.len(), 2);
        assert!(!events[0].numbered);
        assert_eq!(events[0].data_len, 0);
        assert_eq!((events[1].seq, events[1].sent_ns), (1, 2));
    }

    #[test]
    fn decodes_chunked_bodies_split_anywhere() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\na\r\n0123456789\r\n0\r\n\r\n";
        for piece in 1..body.len() {
            let mut decoder = ChunkDecoder::default();
            let mut out = Vec::new();
            for chunk in body.chunks(piece) {
                decoder.decode(chunk, &mut |s| {
                    out.extend_from_slice(s);
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(out, b"hello world0123456789", "piece {piece}");
            assert!(decoder.is_done());
        }
    }

    #[test]
    fn parses_response_heads() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\ndata";
        let parsed = parse_response_head(head).unwrap().unwrap();
        assert_eq!(parsed.status, 200);
        assert!(parsed.chunked && parsed.event_stream);
        assert_eq!(&head[parsed.len..], b"data");
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n").unwrap(), None);
        let plain = parse_response_head(b"HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n").unwrap().unwrap();
        assert_eq!(plain.content_length, Some(12));
    }
}
