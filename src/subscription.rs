//! What one event stream receives: the topics its subscriber asked for, and the private events
//! its token lets it read. Compiled once when the stream opens; the fan-out then asks
//! [`Subscription::wants`] of every event, live and in replay.
//!
//! The common cases stay cheap and small: no topic (every public event) and exact topics
//! (compared as strings) live in the connection itself. What only some streams need, URI
//! templates or `*` among their topics and a token's subscribe selectors, is boxed beside.

use crate::auth::{Selector, Selectors};
use crate::store::Entry;

/// The events one stream receives.
#[derive(Debug, Default)]
pub struct Subscription {
    /// Exact topics asked for. Empty, without `more.selectors`, means every topic.
    topics: Box<[Box<str>]>,
    more: Option<Box<More>>,
}

#[derive(Debug)]
struct More {
    /// The topics asked for, when one of them is `*` or a URI template: then they decide, and
    /// `topics` is empty.
    selectors: Option<Selectors>,
    /// The private events the stream may read: its token's `mercure.subscribe` (empty without
    /// one).
    private: Selectors,
}

impl Subscription {
    /// A subscription to `topics` (topic selectors as the subscriber wrote them; none means
    /// every topic), reading the private events `private` allows.
    pub fn new(topics: Vec<String>, private: Option<Selectors>) -> Subscription {
        let private = private.filter(|p| !p.is_empty());
        let patterns = topics.iter().any(|t| is_pattern(t));
        if !patterns && private.is_none() {
            return Subscription {
                topics: topics.into_iter().map(String::into_boxed_str).collect(),
                more: None,
            };
        }
        let (topics, selectors) = if patterns {
            (Box::default(), Some(Selectors::compile(&topics)))
        } else {
            (
                topics.into_iter().map(String::into_boxed_str).collect(),
                None,
            )
        };
        Subscription {
            topics,
            more: Some(Box::new(More {
                selectors,
                private: private.unwrap_or_default(),
            })),
        }
    }

    /// Whether the stream gets `entry`: one of its topics was asked for, and it is public or
    /// the stream may read a private event on one of its topics (not necessarily the same one,
    /// as in Mercure).
    #[inline]
    pub fn wants(&self, entry: &Entry) -> bool {
        match &self.more {
            None => !entry.is_private() && entry.matches(&self.topics),
            Some(more) => {
                let readable =
                    !entry.is_private() || entry.topics().any(|topic| more.private.matches(topic));
                readable
                    && match &more.selectors {
                        Some(selectors) => entry.topics().any(|topic| selectors.matches(topic)),
                        None => entry.matches(&self.topics),
                    }
            }
        }
    }
}

/// `*` and URI templates need the selector matcher; anything else is an exact topic.
fn is_pattern(topic: &str) -> bool {
    topic == "*" || (topic.contains('{') && Selector::compile(topic).is_template())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Topics};
    use crate::frame::encode;

    fn entry(topics: &[&str], private: bool) -> Entry {
        let mut event = Event::new("x");
        for topic in topics {
            event = event.topic(*topic);
        }
        Entry::new(encode("1", "", None, "x"), Topics::of(&event), private)
    }

    fn subscription(topics: &[&str], private: Option<&[&str]>) -> Subscription {
        let topics = topics.iter().map(|t| t.to_string()).collect();
        Subscription::new(topics, private.map(Selectors::compile))
    }

    #[test]
    fn no_topic_is_every_public_event() {
        let all = subscription(&[], None);
        assert!(all.more.is_none(), "nothing boxed for the common case");
        assert!(all.wants(&entry(&[], false)));
        assert!(all.wants(&entry(&["a", "b"], false)));
        assert!(!all.wants(&entry(&["a"], true)));
    }

    #[test]
    fn exact_topics_are_compared_as_strings() {
        let ab = subscription(&["a", "b"], None);
        assert!(ab.more.is_none());
        assert!(ab.wants(&entry(&["b"], false)));
        assert!(ab.wants(&entry(&["c", "a"], false)));
        assert!(!ab.wants(&entry(&["c"], false)));
        assert!(
            !ab.wants(&entry(&[], false)),
            "the empty topic was not asked for"
        );
        // A brace that is no template is an exact topic too.
        let odd = subscription(&["a{"], None);
        assert!(odd.more.is_none() && odd.wants(&entry(&["a{"], false)));
    }

    #[test]
    fn templates_and_star_use_the_compiled_selectors() {
        let books = subscription(&["https://x.test/books/{id}", "news"], None);
        assert!(books.more.is_some());
        assert!(books.wants(&entry(&["https://x.test/books/1"], false)));
        assert!(books.wants(&entry(&["news"], false)));
        assert!(!books.wants(&entry(&["https://x.test/books/1/2"], false)));
        assert!(!books.wants(&entry(&["https://x.test/books/1"], true)));
        let star = subscription(&["*"], None);
        assert!(star.wants(&entry(&[], false)) && star.wants(&entry(&["z"], false)));
    }

    #[test]
    fn private_events_need_a_token_selector_matching_one_of_their_topics() {
        let reader = subscription(
            &["https://x.test/books/{id}"],
            Some(&["https://x.test/books/1"]),
        );
        assert!(reader.wants(&entry(&["https://x.test/books/1"], true)));
        assert!(!reader.wants(&entry(&["https://x.test/books/2"], true)));
        // Asked for by one topic, allowed by another: delivered, as in Mercure.
        let both = entry(&["https://x.test/books/2", "https://x.test/books/1"], true);
        assert!(reader.wants(&both));
        // Allowed but not asked for: not delivered.
        let elsewhere = subscription(&["other"], Some(&["*"]));
        assert!(!elsewhere.wants(&entry(&["https://x.test/books/1"], true)));
        assert!(elsewhere.wants(&entry(&["other"], true)));
        // Every topic, every private event.
        let everything = subscription(&[], Some(&["*"]));
        assert!(everything.wants(&entry(&["q"], true)) && everything.wants(&entry(&[], true)));
        // A token without subscribe selectors reads public events only, and costs no box.
        let public = subscription(&["a"], Some(&[]));
        assert!(public.more.is_none());
        assert!(public.wants(&entry(&["a"], false)) && !public.wants(&entry(&["a"], true)));
    }
}
