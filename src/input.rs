//! Request bytes a connection has received and not yet handled, and how they divide into
//! request heads and publish bodies.
//!
//! This is all of a connection's input handling that does not depend on what a request asks
//! for, kept apart from the loop so that it can be tested (and fuzzed) with any split of the
//! bytes into reads: the loop pushes what it reads and asks for the next head, or for the next
//! `n` bytes once a head has announced a body it will read.

use crate::http::{self, Head, Request, Status};

/// Request bytes received and not yet handled. Handled requests are only skipped over, and the
/// rest moved to the front once per read, so that many pipelined requests cost linear time.
#[derive(Default)]
pub struct Input {
    buf: Vec<u8>,
    start: usize,
}

impl Input {
    /// The bytes not yet handled.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Marks the first `n` pending bytes handled.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
    }

    /// The last `n` bytes handled: a head just taken by `next`, until the next `compact`.
    pub fn just_taken(&self, n: usize) -> &[u8] {
        &self.buf[self.start.saturating_sub(n)..self.start]
    }

    /// Moves what is left to the front, and gives back the memory a burst left behind.
    pub fn compact(&mut self) {
        self.buf.drain(..self.start);
        self.start = 0;
        if self.buf.is_empty() && self.buf.capacity() > INPUT_KEPT {
            self.buf = Vec::new();
        } else if self.buf.capacity() > 2 * self.buf.len().max(INPUT_KEPT) {
            self.buf.shrink_to(self.buf.len().max(INPUT_KEPT));
        }
    }

    /// Frees the buffer: no more requests will be read.
    pub fn release(&mut self) {
        *self = Input::default();
    }
}

/// Input buffer capacity a keep-alive connection keeps between requests.
const INPUT_KEPT: usize = 4 * 1024;

/// The next piece of a connection's input.
// As with `http::Head`: a request is moved on at once, and boxing it would cost an allocation
// per request to save stack bytes no one holds.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A complete request head, consumed.
    Head(Request),
    /// The body that was asked for, consumed.
    Body(Vec<u8>),
    /// More bytes are needed.
    Partial,
    /// The head cannot be accepted: answer with this status and close. Nothing is consumed.
    Invalid(Status, &'static str),
}

impl Input {
    /// Takes the next piece: a request head, or, when `body` is `Some(n)`, the next `n` bytes.
    pub fn next(&mut self, body: Option<usize>) -> Next {
        match body {
            Some(length) if self.len() < length => Next::Partial,
            Some(length) => {
                let bytes = self.pending()[..length].to_vec();
                self.consume(length);
                Next::Body(bytes)
            }
            None if self.is_empty() => Next::Partial,
            None => match http::parse(self.pending()) {
                Head::Partial => Next::Partial,
                Head::Invalid(status, why) => Next::Invalid(status, why),
                Head::Complete { request, len } => {
                    self.consume(len);
                    Next::Head(request)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `bytes` into reads of `step` bytes and collects every piece, reading a body
    /// after each POST head as the loop does.
    fn pieces(bytes: &[u8], step: usize) -> Vec<Next> {
        let mut input = Input::default();
        let mut out = Vec::new();
        let mut body = None;
        for read in bytes.chunks(step) {
            input.push(read);
            loop {
                match input.next(body) {
                    Next::Partial => break,
                    Next::Head(request) => {
                        body = request
                            .content_length
                            .filter(|&n| n > 0)
                            .map(|n| n as usize);
                        out.push(Next::Head(request));
                    }
                    piece @ Next::Body(_) => {
                        body = None;
                        out.push(piece);
                    }
                    invalid @ Next::Invalid(..) => {
                        out.push(invalid);
                        return out;
                    }
                }
            }
            input.compact();
        }
        out
    }

    #[test]
    fn pipelined_requests_come_out_the_same_whatever_the_reads() {
        let stream = b"POST /publish HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                       GET /health HTTP/1.1\r\n\r\n\
                       POST /publish?data=x HTTP/1.1\r\n\r\n\
                       GET /events HTTP/1.1\r\n\r\n";
        let whole = pieces(stream, stream.len());
        assert_eq!(whole.len(), 5);
        assert_eq!(whole[1], Next::Body(b"hello".to_vec()));
        for step in 1..stream.len() {
            assert_eq!(pieces(stream, step), whole, "reads of {step} bytes");
        }
    }

    #[test]
    fn an_invalid_head_consumes_nothing() {
        let mut input = Input::default();
        input.push(b"GET x HTTP/1.1\r\n\r\n");
        assert!(matches!(
            input.next(None),
            Next::Invalid(Status::BAD_REQUEST, _)
        ));
        assert_eq!(input.len(), 18);
    }
}
