//! Mercure 1.0's `urlpattern` matcher type: the WHATWG URL Pattern standard, through the
//! `urlpattern` crate (cargo feature `urlpattern`).
//!
//! A pattern is compiled once, relative to the hub's URL, into one anchored regular expression
//! per URL component, on the `regex-lite` crate's engine, whose matching time is linear in the
//! input whatever the pattern (the draft requires that, or a cost limit, against crafted
//! patterns). A topic is parsed once per event into its components ([`TopicUrl`], relative
//! topics resolved against the hub's URL) and every pattern subscriber tests those: matching
//! allocates nothing. A topic that does not parse as a URL matches no pattern.

use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternOptions};

/// A component's regular expression, on `regex-lite`: linear-time matching (a PikeVM and a
/// bounded backtracker, never exponential) in a few kilobytes, where the `regex` crate's
/// faster engines held about 75 KB per pattern, too much for a subscription per user.
pub struct Lean(regex_lite::Regex);

impl urlpattern::regexp::RegExp for Lean {
    fn syntax() -> urlpattern::RegexSyntax {
        urlpattern::RegexSyntax::Rust
    }

    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Lean, ()> {
        regex_lite::Regex::new(pattern).map(Lean).map_err(|_| ())
    }

    fn matches<'a>(&self, text: &'a str) -> Option<Vec<Option<&'a str>>> {
        let captures = self.0.captures(text)?;
        Some(
            captures
                .iter()
                .skip(1)
                .map(|c| c.map(|m| m.as_str()))
                .collect(),
        )
    }

    fn pattern_string(&self) -> &str {
        self.0.as_str()
    }
}

/// A compiled URL pattern.
pub struct Pattern {
    compiled: UrlPattern<Lean>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pattern")
    }
}

impl Pattern {
    /// Compiles `source` (absolute, or relative to `base`) as `new URLPattern(source, base)`
    /// would, case-sensitively; the error says why it is not a well-formed pattern.
    pub fn compile(source: &str, base: Option<&Url>) -> Result<Pattern, String> {
        // The parser is a dependency's: whatever it does with a crafted pattern, the loop that
        // compiles it must go on.
        let compiled = std::panic::catch_unwind(|| {
            let init = UrlPatternInit::parse_constructor_string::<Lean>(source, base.cloned())
                .map_err(|e| format!("not a URL pattern: {e}"))?;
            UrlPattern::<Lean>::parse(init, UrlPatternOptions::default())
                .map_err(|e| format!("not a URL pattern: {e}"))
        })
        .unwrap_or_else(|_| Err("not a URL pattern: the parser gave up".into()))?;
        // A component whose regular expression failed to build would never match: refuse it
        // now rather than subscribe to nothing.
        for component in components(&compiled) {
            if component.regexp.is_err() {
                return Err(
                    "not a URL pattern: a regular expression group does not compile".into(),
                );
            }
        }
        Ok(Pattern { compiled })
    }

    /// Whether the pattern matches the topic parsed as `url`.
    pub fn matches(&self, url: &TopicUrl) -> bool {
        components(&self.compiled)
            .into_iter()
            .zip(url.parts.iter())
            .all(|(component, part)| {
                component
                    .regexp
                    .as_ref()
                    .is_ok_and(|regexp| regexp.0.is_match(part))
            })
    }
}

fn components(pattern: &UrlPattern<Lean>) -> [&urlpattern::component::Component<Lean>; 8] {
    [
        &pattern.protocol,
        &pattern.username,
        &pattern.password,
        &pattern.hostname,
        &pattern.port,
        &pattern.pathname,
        &pattern.search,
        &pattern.hash,
    ]
}

/// A topic parsed as a URL (relative ones resolved against the hub's URL), split into the eight
/// components URL patterns test, in the pattern's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicUrl {
    parts: [Box<str>; 8],
}

impl TopicUrl {
    /// `None` when `topic` is no URL reference against `base` (no URL, without one).
    pub fn parse(topic: &str, base: Option<&Url>) -> Option<TopicUrl> {
        let url = match base {
            Some(base) => base.join(topic).ok()?,
            None => Url::parse(topic).ok()?,
        };
        Some(TopicUrl {
            parts: [
                url.scheme().into(),
                url.username().into(),
                url.password().unwrap_or_default().into(),
                url.host_str().unwrap_or_default().into(),
                url::quirks::port(&url).into(),
                url::quirks::pathname(&url).into(),
                url.query().unwrap_or_default().into(),
                url.fragment().unwrap_or_default().into(),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example.com/.well-known/mercure").unwrap()
    }

    fn matches(pattern: &str, topic: &str) -> bool {
        let base = base();
        let pattern = Pattern::compile(pattern, Some(&base)).unwrap();
        TopicUrl::parse(topic, Some(&base)).is_some_and(|url| pattern.matches(&url))
    }

    #[test]
    fn stray_brackets_are_refused_or_compiled_never_fatal() {
        let base = base();
        for pattern in [
            "https://]/books",
            "https://a]b[/books",
            "https://(\\[)]/books",
            "https://([a-z])]/x",
            "https://[::1]/books/:id",
            // Opened before the `@`, closed in the host: the crate's count goes below zero.
            "https://a[[b:c@d]e/books",
        ] {
            // Refused with a reason or compiled: either way the caller goes on.
            if let Err(why) = Pattern::compile(pattern, Some(&base)) {
                assert!(why.starts_with("not a URL pattern"), "{pattern}: {why}");
            }
        }
        assert!(Pattern::compile("https://]/books", Some(&base)).is_err());
        // A bracket outside the host is a character like any other.
        assert!(matches(
            "https://example.com/a]b/:id",
            "https://example.com/a]b/1"
        ));
    }

    #[test]
    fn absolute_and_relative_patterns_and_topics() {
        assert!(matches(
            "https://example.com/books/:id",
            "https://example.com/books/1"
        ));
        assert!(!matches(
            "https://example.com/books/:id",
            "https://example.com/books/1/2"
        ));
        assert!(!matches(
            "https://example.com/books/:id",
            "https://example.com/users/1"
        ));
        assert!(matches(
            "https://EXAMPLE.com/books/:id",
            "https://example.com/books/1"
        ));
        assert!(!matches(
            "https://example.com/Books/:id",
            "https://example.com/books/1"
        ));
        let events = "/.well-known/mercure/subscriptions/:type/:match/:subscriber";
        assert!(matches(
            events,
            "/.well-known/mercure/subscriptions/exact/a/urn%3Auuid%3A1"
        ));
        assert!(matches(
            events,
            "https://hub.example.com/.well-known/mercure/subscriptions/exact/a/b"
        ));
        assert!(!matches(
            events,
            "https://other.test/.well-known/mercure/subscriptions/exact/a/b"
        ));
        assert!(matches(
            "https://example.com/users/42/*",
            "https://example.com/users/42/books/1"
        ));
        assert!(matches(
            "https://example.com/books/(\\d+)",
            "https://example.com/books/12"
        ));
        assert!(!matches(
            "https://example.com/books/(\\d+)",
            "https://example.com/books/x"
        ));
        // Not a URL at all: matches no pattern.
        assert!(!matches("*://*/*", "http://[::1"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "https://example.com/:",
            "https://example.com/(",
            "https://example.com/(a",
            "{",
        ] {
            assert!(Pattern::compile(bad, Some(&base())).is_err(), "{bad}");
        }
    }

    /// The URL Pattern standard's own cases (the web-platform-tests' `urlpatterntestdata.json`,
    /// which the `urlpattern` crate ships in its source), read where cargo unpacked the crate:
    /// every case that gives a pattern string (with or without a base URL) and tests string
    /// inputs, the form a hub meets, must agree on whether the pattern compiles and matches.
    #[cfg(feature = "jwt")]
    #[test]
    fn the_standards_cases_agree() {
        use serde_json::Value;
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let metadata = std::process::Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--features",
                "urlpattern",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata");
        let metadata: Value = serde_json::from_slice(&metadata.stdout).expect("metadata JSON");
        let manifest = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "urlpattern")
            .and_then(|p| p["manifest_path"].as_str())
            .expect("the urlpattern crate's source")
            .to_owned();
        let data =
            std::path::Path::new(&manifest).with_file_name("src/testdata/urlpatterntestdata.json");
        let cases: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&data).expect("the test data")).unwrap();
        let (mut run, mut compiled) = (0, 0);
        for case in &cases {
            let Some(pattern) = case["pattern"].as_array() else {
                continue;
            };
            let (source, base) = match pattern.as_slice() {
                [Value::String(source)] => (source, None),
                [Value::String(source), Value::String(base)] => (source, Some(base)),
                _ => continue, // Init dictionaries and options: not what a hub receives.
            };
            let base = match base.map(|b| Url::parse(b)) {
                Some(Ok(base)) => Some(base),
                Some(Err(_)) => continue,
                None => None,
            };
            let pattern = Pattern::compile(source, base.as_ref());
            if case["expected_obj"] == "error" {
                assert!(pattern.is_err(), "{source:?} must be refused");
                run += 1;
                continue;
            }
            let Ok(pattern) = pattern else {
                panic!(
                    "{source:?} must compile: {}",
                    pattern.err().unwrap_or_default()
                );
            };
            compiled += 1;
            let Some(inputs) = case["inputs"].as_array() else {
                continue;
            };
            let (input, input_base) = match inputs.as_slice() {
                [Value::String(input)] => (input, None),
                [Value::String(input), Value::String(base)] => (input, Some(base)),
                _ => continue,
            };
            if case["expected_match"] == "error" {
                continue;
            }
            let input_base = match input_base.map(|b| Url::parse(b)) {
                Some(Ok(base)) => Some(base),
                Some(Err(_)) => None,
                None => None,
            };
            let url = TopicUrl::parse(input, input_base.as_ref());
            let matched = url.is_some_and(|url| pattern.matches(&url));
            assert_eq!(
                matched,
                !case["expected_match"].is_null(),
                "{source:?} against {input:?}"
            );
            run += 1;
        }
        eprintln!("{run} of the standard's cases run, {compiled} patterns compiled");
        assert!(
            run >= 50 && compiled >= 40,
            "{run} cases run, {compiled} patterns"
        );
    }

    /// A pattern that sends a backtracking engine into exponential time (nested repetition,
    /// no match) on a 64 KiB topic: the linear engine answers at once. A backtracking one would
    /// not finish before the universe ends; the test bounds it at the usual patience.
    #[test]
    fn a_crafted_pattern_stays_linear() {
        let base = base();
        let pattern = Pattern::compile("https://example.com/:x((?:a*)*b)", Some(&base)).unwrap();
        for n in [1 << 12, 1 << 14, 1 << 16] {
            let topic = format!("https://example.com/{}", "a".repeat(n));
            let url = TopicUrl::parse(&topic, Some(&base)).unwrap();
            let start = std::time::Instant::now();
            assert!(!pattern.matches(&url));
            let took = start.elapsed();
            eprintln!("{n} bytes: {took:?}");
            assert!(
                took < std::time::Duration::from_secs(10),
                "{n} bytes took {took:?}"
            );
        }
    }
}
