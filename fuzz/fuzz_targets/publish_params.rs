//! The parameters of `POST /publish` (SPEC section 2) against a model of the rules: the input is
//! `query 0xFF content-type 0xFF body` (0xFF never occurs in UTF-8, so it cannot be part of a
//! query or a header value; the body may hold anything). Fewer parts mean no Content-Type and an
//! empty body.
//!
//! Checked: an accepted event validates and is exactly what the rules make of the parameters; a
//! refusal has a message, and happens exactly when the rules refuse. A parameter that is not a
//! publish parameter refuses the request with a message naming it (its first 64 characters);
//! `authorization` in the query is the publisher's token, no parameter of the event; `private`
//! makes the event private whatever its value, as in Mercure. Also: percent-decoding undoes
//! percent-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssed::Event;
use ssed::fuzzing::{Body, pairs, publish};

const SEPARATOR: u8 = 0xFF;
const KNOWN: [&str; 7] = ["topic", "data", "event", "type", "id", "retry", "private"];
/// Known in the query only: the publisher's token.
const TOKEN: &str = "authorization";

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(3, |&b| b == SEPARATOR);
    let query = parts.next().unwrap_or_default();
    let content_type = parts.next().map(std::str::from_utf8);
    let body = parts.next().unwrap_or_default();
    let Ok(query) = std::str::from_utf8(query) else {
        return; // The request line is UTF-8 by the time parameters are read.
    };
    let content_type = match content_type {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => return, // So is a Content-Type header.
    };
    check_decoding(query.as_bytes());
    check_decoding(body);

    let body = Body::new(content_type, body);
    let got = publish(query, body);
    let (want, unknown) = model(query, body);
    match (got, want) {
        (Ok(event), Ok(want)) => {
            assert!(unknown.is_empty(), "accepted unknown {unknown:?}: query {query:?}");
            assert_eq!(event.validate(), Ok(()));
            assert_eq!(event, want, "query {query:?}, body {body:?}");
        }
        (Err(why), Err(())) => assert!(!why.to_string().is_empty()),
        // Refused for an unknown parameter (SPEC section 2).
        (Err(why), Ok(want)) => {
            let why = why.to_string();
            assert!(
                unknown.iter().any(|name| names(&why, name)),
                "refused ({why:?}) instead of {want:?}: query {query:?}, body {body:?}"
            );
        }
        (Ok(event), Err(())) => {
            panic!("accepted {event:?}, which the rules refuse: query {query:?}, body {body:?}")
        }
    }
});

/// What SPEC section 2 makes of a publish request, unknown parameters ignored; and the names of
/// the unknown parameters.
fn model(query: &str, body: Body) -> (Result<Event, ()>, Vec<String>) {
    let Ok(query_pairs) = pairs(query.as_bytes()) else {
        return (Err(()), Vec::new());
    };
    let (body_pairs, raw) = match body {
        Body::Form(bytes) => match pairs(bytes) {
            Ok(fields) => (fields, None),
            Err(_) => return (Err(()), Vec::new()),
        },
        Body::Raw([]) => (Vec::new(), None),
        Body::Raw(bytes) => (Vec::new(), Some(bytes)),
    };
    let query_pairs: Vec<(String, String)> = query_pairs
        .into_iter()
        .filter(|(name, _)| name != TOKEN)
        .collect();
    let all: Vec<(String, String)> = query_pairs.into_iter().chain(body_pairs).collect();
    let unknown = all
        .iter()
        .filter(|(name, _)| !KNOWN.contains(&name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    (event_of(&all, raw), unknown)
}

fn event_of(all: &[(String, String)], raw: Option<&[u8]>) -> Result<Event, ()> {
    let last = |names: &[&str]| {
        all.iter()
            .rev()
            .find(|(name, _)| names.contains(&name.as_str()))
            .map(|(_, value)| value.clone())
    };
    let data = match raw {
        Some(_) if last(&["data"]).is_some() => return Err(()),
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| ())?.to_owned(),
        None => last(&["data"]).unwrap_or_default(),
    };
    let retry = match last(&["retry"]).filter(|value| !value.is_empty()) {
        None => None,
        Some(value) if value.bytes().all(|b| b.is_ascii_digit()) => {
            Some(value.parse::<u32>().map_err(|_| ())?)
        }
        Some(_) => return Err(()),
    };
    let event_type = last(&["event", "type"]).unwrap_or_default();
    let id = last(&["id"]).unwrap_or_default();
    let one_line = |text: &str| !text.contains(['\r', '\n', '\0']);
    if !one_line(&event_type) || !one_line(&id) {
        return Err(());
    }
    let mut event = Event::new(data);
    event.topics = all
        .iter()
        .filter(|(name, _)| name == "topic")
        .map(|(_, value)| value.clone())
        .collect();
    event.event_type = event_type;
    event.id = id;
    event.retry = retry;
    event.private = all.iter().any(|(name, _)| name == "private");
    Ok(event)
}

/// True when the message `why` names the parameter `name`, as written or escaped.
fn names(why: &str, name: &str) -> bool {
    let shown: String = name.chars().take(64).collect();
    why.contains(&format!("'{shown}"))
}

/// Percent-encoding what `pairs` decoded, then decoding it again, gives the same pairs.
fn check_decoding(text: &[u8]) {
    let Ok(decoded) = pairs(text) else {
        return;
    };
    let encoded: Vec<String> = decoded
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect();
    let again = pairs(encoded.join("&").as_bytes());
    assert_eq!(
        again.as_ref(),
        Ok(&decoded),
        "{:?}",
        String::from_utf8_lossy(text)
    );
}

fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
    }
    out
}
