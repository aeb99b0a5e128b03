//! Mercure 1.0's `urlpattern` matcher type: the WHATWG URL Pattern standard, through the
//! `urlpattern` crate (cargo feature `urlpattern`).
//!
//! A pattern is compiled once, relative to the hub's URL, into one anchored regular expression
//! per URL component, on the `regex` crate's engine, whose matching time is linear in the
//! input whatever the pattern (the draft requires that, or a cost limit, against crafted
//! patterns). A topic is parsed once per event into its components ([`TopicUrl`], relative
//! topics resolved against the hub's URL) and every pattern subscriber tests those: matching
//! allocates nothing. A topic that does not parse as a URL matches no pattern.

use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternOptions};

/// A compiled URL pattern.
pub struct Pattern {
    compiled: UrlPattern<regex::Regex>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pattern")
    }
}

impl Pattern {
    /// Compiles `source` (absolute, or relative to `base`) as `new URLPattern(source, base)`
    /// would, case-sensitively; the error says why it is not a well-formed pattern.
    pub fn compile(source: &str, base: &Url) -> Result<Pattern, String> {
        let init =
            UrlPatternInit::parse_constructor_string::<regex::Regex>(source, Some(base.clone()))
                .map_err(|e| format!("not a URL pattern: {e}"))?;
        let compiled = UrlPattern::<regex::Regex>::parse(init, UrlPatternOptions::default())
            .map_err(|e| format!("not a URL pattern: {e}"))?;
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
                    .is_ok_and(|regexp| regexp.is_match(part))
            })
    }
}

fn components(
    pattern: &UrlPattern<regex::Regex>,
) -> [&urlpattern::component::Component<regex::Regex>; 8] {
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
    /// `None` when `topic` is no URL reference against `base`.
    pub fn parse(topic: &str, base: &Url) -> Option<TopicUrl> {
        let url = base.join(topic).ok()?;
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
        let pattern = Pattern::compile(pattern, &base).unwrap();
        TopicUrl::parse(topic, &base).is_some_and(|url| pattern.matches(&url))
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
            assert!(Pattern::compile(bad, &base()).is_err(), "{bad}");
        }
    }
}
