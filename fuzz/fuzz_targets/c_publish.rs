//! `sse_publish`, the C API's hot path, with arbitrary arguments on one running server. The
//! input is a flags byte, then `topic 0xFF type 0xFF id 0xFF data`; each string is passed as C
//! would pass it (NUL-terminated, so C sees it up to its first NUL) or as NULL, per the flags.
//!
//! Checked: the result is exactly the one the header documents for those arguments (NULL data
//! with a length, invalid UTF-8, CR or LF in the type or id), a refusal leaves a message in
//! `sse_last_error`, an accepted event with its own id returns 0, and the ids the server assigns
//! only ever grow. The queue to the loop may be full (a documented result), never anything else.
#![no_main]

use std::ffi::{CStr, c_char};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use ssed::ffi::{
    sse_config, sse_config_init, sse_last_error, sse_publish, sse_result, sse_server,
    sse_server_new, sse_server_start,
};

const SEPARATOR: u8 = 0xFF;
const TOPIC_NULL: u8 = 1;
const TYPE_NULL: u8 = 2;
const ID_NULL: u8 = 4;
const DATA_NULL: u8 = 8;
const DATA_LEN_ZERO: u8 = 16;

/// The address of the one server every input publishes to (a pointer is not `Sync`).
static SERVER: OnceLock<usize> = OnceLock::new();
/// The last id the server assigned.
static LAST_ASSIGNED: AtomicI64 = AtomicI64::new(0);
/// How often the queue to the loop was full.
static QUEUE_FULL: AtomicU64 = AtomicU64::new(0);

fn server() -> *const sse_server {
    let address = *SERVER.get_or_init(|| {
        let mut config = std::mem::MaybeUninit::<sse_config>::uninit();
        // SAFETY: `config` has room for one `sse_config`, which init fills.
        let mut config = unsafe {
            let code = sse_config_init(config.as_mut_ptr(), size_of::<sse_config>());
            assert_eq!(code, sse_result::Ok);
            config.assume_init()
        };
        config.listen = c"127.0.0.1:0".as_ptr();
        config.history = 16;
        // SAFETY: a config filled by sse_config_init whose strings are static.
        let server = unsafe { sse_server_new(&config) };
        assert!(!server.is_null(), "sse_server_new failed");
        // SAFETY: a live server; it is never freed, the process ends first.
        assert_eq!(unsafe { sse_server_start(server) }, sse_result::Ok);
        server as usize
    });
    address as *const sse_server
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |&b| b == SEPARATOR);
    let [topic, event_type, id, data] = [(); 4].map(|_| parts.next().unwrap_or_default());
    let topic = CString::of(topic, flags & TOPIC_NULL != 0);
    let event_type = CString::of(event_type, flags & TYPE_NULL != 0);
    let id = CString::of(id, flags & ID_NULL != 0);
    let data_ptr = if flags & DATA_NULL != 0 {
        std::ptr::null()
    } else {
        data.as_ptr()
    };
    let data_len = if flags & DATA_LEN_ZERO != 0 {
        0
    } else {
        data.len()
    };
    let sent_data = if flags & DATA_NULL != 0 {
        None
    } else {
        Some(&data[..data_len])
    };

    let want = expected(&topic, &event_type, &id, sent_data, data_len);
    // SAFETY: a live server; each string is NULL or NUL-terminated; `data_ptr` is NULL or
    // points to `data.len() >= data_len` bytes.
    let got = unsafe {
        sse_publish(
            server(),
            topic.ptr(),
            event_type.ptr(),
            data_ptr.cast(),
            data_len,
            id.ptr(),
        )
    };
    match want {
        Err(code) => {
            assert_eq!(
                got, code as i64,
                "{topic:?} {event_type:?} {id:?} {sent_data:?}"
            );
            assert!(!last_error().is_empty(), "no message for {code:?}");
        }
        Ok(()) if got == sse_result::QueueFull as i64 => {
            let times = QUEUE_FULL.fetch_add(1, Ordering::Relaxed) + 1;
            if times.is_power_of_two() {
                eprintln!("c_publish: the queue to the loop was full {times} times");
            }
        }
        Ok(()) if id.seen().is_some_and(|id| !id.is_empty()) => assert_eq!(got, 0),
        Ok(()) => {
            let previous = LAST_ASSIGNED.swap(got, Ordering::Relaxed);
            assert!(got > previous, "assigned {got} after {previous}");
        }
    }
});

/// What the header says `sse_publish` returns for these arguments: `Ok` for an event that is
/// published.
fn expected(
    topic: &CString,
    event_type: &CString,
    id: &CString,
    data: Option<&[u8]>,
    data_len: usize,
) -> Result<(), sse_result> {
    if data.is_none() && data_len > 0 {
        return Err(sse_result::NullArgument);
    }
    let strings = [topic, event_type, id].map(|s| s.seen().map(std::str::from_utf8));
    let data = std::str::from_utf8(data.unwrap_or_default());
    if data.is_err() || strings.iter().any(|s| matches!(s, Some(Err(_)))) {
        return Err(sse_result::InvalidUtf8);
    }
    let [_, event_type, id] = strings.map(|s| s.and_then(Result::ok).unwrap_or_default());
    if event_type.contains(['\r', '\n']) || id.contains(['\r', '\n']) {
        return Err(sse_result::InvalidField);
    }
    Ok(())
}

/// A string as a C caller hands it over: NULL, or bytes with a NUL after them.
#[derive(Debug)]
struct CString(Option<Vec<u8>>);

impl CString {
    fn of(bytes: &[u8], null: bool) -> CString {
        CString((!null).then(|| [bytes, b"\0"].concat()))
    }

    fn ptr(&self) -> *const c_char {
        self.0
            .as_ref()
            .map_or(std::ptr::null(), |bytes| bytes.as_ptr().cast())
    }

    /// What C sees: the bytes up to the first NUL; `None` for NULL.
    fn seen(&self) -> Option<&[u8]> {
        let bytes = self.0.as_deref()?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Some(&bytes[..end])
    }
}

fn last_error() -> String {
    // SAFETY: sse_last_error never returns NULL; the string lives until the next failing call
    // on this thread, and is copied at once.
    unsafe { CStr::from_ptr(sse_last_error()) }
        .to_string_lossy()
        .into_owned()
}
