//! The request head parser on arbitrary bytes. It must never panic; a complete head lies within
//! the input and within the 8 KiB limit; bytes after a head never change what it says; and a
//! head cut anywhere before its end is only ever incomplete: the server parses again as more
//! bytes arrive, so anything else would refuse a valid request that came in pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssed::fuzzing::{Head, MAX_HEAD, Status, parse};

/// Most cuts of one head that are parsed, so that every input costs a bounded time.
const MAX_CUTS: usize = 64;

fuzz_target!(|input: &[u8]| {
    let whole = parse(input);
    match &whole {
        Head::Partial => assert!(
            input.len() < MAX_HEAD,
            "still partial at {} bytes",
            input.len()
        ),
        Head::Invalid(status, why) => {
            assert!(
                *status == Status::BAD_REQUEST || *status == Status::HEAD_TOO_LARGE,
                "{status:?}"
            );
            assert!(!why.is_empty());
        }
        Head::Complete { request, len } => {
            let len = *len;
            assert!(
                len <= input.len(),
                "a head of {len} in {} bytes",
                input.len()
            );
            assert!(len <= MAX_HEAD, "a head of {len} bytes");
            assert!(request.path.starts_with('/'), "{:?}", request.path);
            assert!(!request.path.contains('?'), "{:?}", request.path);
            assert!(!(request.chunked && request.content_length.is_some()));
            assert_eq!(
                parse(&input[..len]),
                whole,
                "the bytes after the head changed it"
            );
            for cut in cuts(&input[..len]) {
                assert_eq!(parse(&input[..cut]), Head::Partial, "cut at {cut} of {len}");
            }
        }
    }
});

/// Where to cut a complete head: everywhere in a short one; in a long one, around each line
/// break, near the end and at a few spread-out places.
fn cuts(head: &[u8]) -> Vec<usize> {
    let len = head.len();
    if len <= MAX_CUTS {
        return (0..len).collect();
    }
    let near_end = len - 4..len;
    let spread = (1..8).map(|k| len * k / 8);
    let around_breaks = head
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b, b'\r' | b'\n'))
        .flat_map(|(i, _)| [i, i + 1]);
    let mut cuts: Vec<usize> = near_end.chain(spread).chain(around_breaks).collect();
    cuts.retain(|&cut| cut < len);
    cuts.truncate(MAX_CUTS);
    cuts
}
