//! A connection's input handling across split and pipelined reads: the bytes a client sends,
//! cut into reads at points the fuzzer chooses, give the same requests and bodies, in the same
//! order, as the same bytes in one read; nothing panics; what is left unhandled is never more
//! than one request head and one body can be.
//!
//! Input: one byte `k`, then `k` read sizes (one byte each, 0 taken as 1), then the bytes the
//! client sends. Bodies are read as the loop reads them: after a `POST` head with a
//! `Content-Length` of at most the default `--max-body`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssed::fuzzing::{Input, MAX_HEAD, Method, Next, Request};

const MAX_BODY: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Head(Request),
    Body(Vec<u8>),
    Refused,
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = (count as usize).min(rest.len());
    let (sizes, bytes) = rest.split_at(count);
    let whole = pieces(bytes, &[]);
    let split = pieces(bytes, sizes);
    assert_eq!(whole, split, "reads of {sizes:?}");
});

/// Every piece the input yields when `bytes` arrive in reads of `sizes` (then the rest at once).
fn pieces(bytes: &[u8], sizes: &[u8]) -> Vec<Piece> {
    let mut input = Input::default();
    let mut out = Vec::new();
    let mut body = None;
    let mut at = 0;
    let mut reads = sizes.iter().map(|&s| usize::from(s.max(1)));
    while at < bytes.len() {
        let size = reads.next().unwrap_or(bytes.len() - at).min(bytes.len() - at);
        input.push(&bytes[at..at + size]);
        at += size;
        loop {
            match input.next(body) {
                Next::Partial => break,
                Next::Invalid(..) => {
                    out.push(Piece::Refused);
                    return out;
                }
                Next::Head(request) => {
                    body = match request.content_length {
                        _ if request.chunked => {
                            out.push(Piece::Refused);
                            return out;
                        }
                        Some(n) if request.method() == Method::Post && n > MAX_BODY as u64 => {
                            out.push(Piece::Refused);
                            return out;
                        }
                        Some(n) if request.method() == Method::Post && n > 0 => Some(n as usize),
                        _ => None,
                    };
                    out.push(Piece::Head(request));
                }
                Next::Body(bytes) => {
                    body = None;
                    out.push(Piece::Body(bytes));
                }
            }
        }
        // What is waiting is at most a head still arriving, or a body still arriving.
        let bound = match body {
            Some(n) => n,
            None => MAX_HEAD,
        };
        assert!(input.len() <= bound.max(size_of_last_read(size)), "{} waiting", input.len());
        input.compact();
    }
    out
}

/// A head is refused once 8 KiB of it have arrived, so a read may leave that much and more.
fn size_of_last_read(size: usize) -> usize {
    MAX_HEAD + size
}
