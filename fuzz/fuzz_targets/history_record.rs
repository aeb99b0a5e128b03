//! Arbitrary bytes as a history file image: loading must never panic, every record it returns
//! must be bytes of the image whose checksums verify, and the pieces must cover the image.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|image: &[u8]| {
    ssed::fuzzing::history_file_check(image);
});
