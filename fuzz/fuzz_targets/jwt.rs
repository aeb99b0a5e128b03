//! Fuzzes the JWT verifier and the topic selectors (src/auth/).
//!
//! Each input, as UTF-8 text, is tried three ways:
//! 1. as a token: refused or accepted, never a panic;
//! 2. as the claims, then as the header, of a token correctly signed here: the fuzzer cannot
//!    forge an HMAC, so this is how it reaches the claims parser; the signature must verify;
//! 3. split at its first newline into a selector and a topic: the matcher must agree with a
//!    regex engine running the regular expression Mercure builds from the same template.
//!
//! Run from the repository root, with the seeds (Mercure's documentation token and examples):
//! `mkdir -p fuzz/corpus/jwt && cargo fuzz run --sanitizer none jwt fuzz/corpus/jwt fuzz/seeds/jwt`
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use ssed::fuzzing::{JwtError, Key, MAX_TOKEN_LEN, verify};
use ssed::fuzzing::{Selector, Selectors};

const SECRET: &[u8] = b"!ChangeThisMercureHubJWTSecretKey!";

/// Longer selectors are matched but not compared with the regex engine, whose compile time
/// would slow the run down.
const MAX_ORACLE_SELECTOR: usize = 512;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn sign(header: &str, claims: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Verifies a token signed here: it may be refused for what it says, never for its form.
fn verify_signed(key: &Key, token: &str, topic_hint: &str) {
    if token.len() > MAX_TOKEN_LEN {
        return;
    }
    match verify(token, key, now()) {
        Err(e @ (JwtError::BadSignature | JwtError::Base64(_) | JwtError::NotThreeParts)) => {
            panic!("a token signed here was refused: {e}")
        }
        Err(e) => {
            // The message is static text: nothing of the token.
            assert!(!e.to_string().contains(token));
        }
        Ok(claims) => {
            claims.publish.matches(topic_hint);
            claims.subscribe.matches(topic_hint);
            let _ = claims.remaining(now());
        }
    }
}

fn check_selector(selector: &str, topic: &str) {
    let compiled = Selector::compile(selector);
    let got = compiled.matches(topic);
    assert_eq!(got, Selectors::compile([selector]).matches(topic));
    match compiled.regex_source() {
        None => assert_eq!(got, selector == "*" || selector == topic, "{selector:?} {topic:?}"),
        Some(regex) if selector.len() <= MAX_ORACLE_SELECTOR => {
            let engine = regex_lite::Regex::new(&regex).expect("the regex compiles");
            let expected = selector == topic || engine.is_match(topic);
            assert_eq!(got, expected, "{selector:?} {topic:?} {regex}");
        }
        Some(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let key = Key::hs256(SECRET).expect("a 34-byte key");
    let _ = verify(text, &key, now());
    verify_signed(&key, &sign(r#"{"alg":"HS256","typ":"JWT"}"#, text), text);
    verify_signed(&key, &sign(text, "{}"), text);
    if let Some((selector, topic)) = text.split_once('\n') {
        check_selector(selector, topic);
    }
});
