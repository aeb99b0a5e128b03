//! Fuzzes Mercure 1.0's matcher parameters (src/params.rs, src/auth/selector.rs,
//! src/auth/urlpattern.rs).
//!
//! Each input, as UTF-8 text:
//! 1. is read as a subscription's query string: refused (naming a parameter of the `match`
//!    namespace, or a decoding error) or accepted, never a panic; every matcher accepted
//!    compiles or is refused with a reason, and an `exact` matcher matches its own value and,
//!    unless it is `*`, nothing else tried here;
//! 2. split at its first newline, is a URL pattern and a topic: the pattern compiles or is
//!    refused, and a compiled one matches or not, never a panic; matching through the topic
//!    parsed once (as the fan-out does) agrees with matching the topic text.
//!
//! Inputs with a `]` are skipped (see below); src/auth/urlpattern.rs's unit tests cover them.
//!
//! Run from fuzz/: `mkdir -p corpus/matchers && cargo fuzz run --sanitizer none matchers corpus/matchers seeds/matchers`
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssed::fuzzing::{Hub, MatchType, Pattern, Selector, TopicUrl, subscribe};

const HUB: &str = "https://hub.example.com/.well-known/mercure";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // urlpattern 0.6.0's constructor parser counts host brackets in a usize and subtracts
    // below zero on some `]` (one inside a regular expression group, then one outside): a
    // panic under --debug-assertions only (release wraps, and ssed compiles patterns under
    // catch_unwind). Such inputs are left out until the crate is fixed.
    if text.contains(']') {
        return;
    }
    let hub = Hub::new(HUB, None).expect("a valid hub URL");
    if let Ok(query) = subscribe(text) {
        for (match_type, value, parameter) in &query.matchers {
            assert!(parameter.starts_with("match"));
            match Selector::matcher(*match_type, value, &hub) {
                Ok(selector) => {
                    if *match_type == MatchType::Exact {
                        assert!(selector.matches(value));
                        if value != "*" {
                            assert!(!selector.matches(&format!("{value}x")));
                        }
                    } else {
                        let _ = selector.matches(value);
                    }
                }
                Err(why) => assert!(!why.is_empty()),
            }
        }
    }
    if let Some((pattern, topic)) = text.split_once('\n') {
        let Ok(compiled) = Pattern::compile(pattern, Some(hub.base())) else {
            return;
        };
        let parsed = TopicUrl::parse(topic, Some(hub.base()));
        let once = parsed.as_ref().is_some_and(|url| compiled.matches(url));
        let selector = Selector::matcher(MatchType::UrlPattern, pattern, &hub);
        if let Ok(selector) = selector {
            if pattern != "*" {
                assert_eq!(selector.matches(topic), once, "{pattern:?} {topic:?}");
            }
        }
    }
});
