//! What one event stream receives: the topics its subscriber asked for, and the private events
//! its token lets it read. Compiled once when the stream opens; the fan-out then asks
//! [`Subscription::wants`] of every event, live and in replay.
//!
//! The common cases stay cheap and small: no topic (every public event) and exact topics
//! (compared as strings) live in the connection itself. What only some streams need, URI
//! templates or `*` among their topics and a token's subscribe selectors, is boxed beside.

use crate::auth::{Selector, Selectors};
use crate::store::Entry;

/// The events one stream receives. As small as the exact topics it replaces in the connection
/// (16 bytes): the common case holds them alone, anything more is one box.
#[derive(Debug)]
pub struct Subscription(Inner);

#[derive(Debug)]
enum Inner {
    /// Exact topics asked for, compared as strings; none means every topic. Public events
    /// only.
    Topics(Box<[Box<str>]>),
    /// Topics that need the selector matcher, or a token that reads private events.
    More(Box<More>),
}

#[derive(Debug)]
struct More {
    /// Exact topics asked for, when `selectors` is `None`; none means every topic.
    topics: Box<[Box<str>]>,
    /// The topics asked for, when one of them is `*` or a URI template: then they decide.
    selectors: Option<Selectors>,
    /// The private events the stream may read: its token's `mercure.subscribe` (empty without
    /// one).
    private: Selectors,
}

impl Default for Subscription {
    /// Every public event.
    fn default() -> Subscription {
        Subscription(Inner::Topics(Box::default()))
    }
}

impl Subscription {
    /// A subscription to `topics` (0.x topic selectors as the subscriber wrote them; none
    /// means every topic), reading the private events `private` allows.
    #[cfg(test)]
    pub fn new(topics: Vec<String>, private: Option<Selectors>) -> Subscription {
        Subscription::of(
            topics.iter().map(|t| Selector::compile(t)).collect(),
            private,
        )
    }

    /// A subscription to the topics `selectors` match (none means every topic), reading the
    /// private events `private` allows.
    pub fn of(selectors: Vec<Selector>, private: Option<Selectors>) -> Subscription {
        let private = private.filter(|p| !p.is_empty());
        let patterns = selectors.iter().any(|s| !s.is_exact());
        let exact = || {
            selectors
                .iter()
                .map(|s| Box::from(s.as_str()))
                .collect::<Box<[Box<str>]>>()
        };
        if !patterns && private.is_none() {
            return Subscription(Inner::Topics(exact()));
        }
        let (topics, selectors) = if patterns {
            (Box::default(), Some(Selectors::of(selectors)))
        } else {
            (exact(), None)
        };
        Subscription(Inner::More(Box::new(More {
            topics,
            selectors,
            private: private.unwrap_or_default(),
        })))
    }

    /// Whether the stream gets `entry`: one of its topics was asked for, and it is public or
    /// the stream may read a private event on one of its topics (not necessarily the same one,
    /// as in Mercure).
    #[inline]
    pub fn wants(&self, entry: &Entry) -> bool {
        match &self.0 {
            Inner::Topics(topics) => !entry.is_private() && entry.matches(topics),
            Inner::More(more) => more.wants(entry),
        }
    }

    /// The topics (or selectors) the stream asked for, as written; none: every topic.
    #[cfg(feature = "host")]
    pub fn asked(&self) -> Vec<&str> {
        match &self.0 {
            Inner::Topics(topics) => topics.iter().map(AsRef::as_ref).collect(),
            Inner::More(more) => match &more.selectors {
                Some(selectors) => selectors.iter().collect(),
                None => more.topics.iter().map(AsRef::as_ref).collect(),
            },
        }
    }

    /// Whether anything beyond exact topics is boxed beside.
    #[cfg(test)]
    fn is_boxed(&self) -> bool {
        matches!(self.0, Inner::More(_))
    }
}

impl More {
    fn wants(&self, entry: &Entry) -> bool {
        let readable = !entry.is_private() || self.private.matches_entry(entry);
        readable
            && match &self.selectors {
                Some(selectors) => selectors.matches_entry(entry),
                None => entry.matches(&self.topics),
            }
    }
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
        assert!(!all.is_boxed(), "nothing boxed for the common case");
        assert_eq!(
            size_of::<Subscription>(),
            16,
            "as small as the exact topics"
        );
        assert!(all.wants(&entry(&[], false)));
        assert!(all.wants(&entry(&["a", "b"], false)));
        assert!(!all.wants(&entry(&["a"], true)));
    }

    #[test]
    fn exact_topics_are_compared_as_strings() {
        let ab = subscription(&["a", "b"], None);
        assert!(!ab.is_boxed());
        assert!(ab.wants(&entry(&["b"], false)));
        assert!(ab.wants(&entry(&["c", "a"], false)));
        assert!(!ab.wants(&entry(&["c"], false)));
        assert!(
            !ab.wants(&entry(&[], false)),
            "the empty topic was not asked for"
        );
        // A brace that is no template is an exact topic too.
        let odd = subscription(&["a{"], None);
        assert!(!odd.is_boxed() && odd.wants(&entry(&["a{"], false)));
    }

    #[test]
    fn templates_and_star_use_the_compiled_selectors() {
        let books = subscription(&["https://x.test/books/{id}", "news"], None);
        assert!(books.is_boxed());
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
        assert!(!public.is_boxed());
        assert!(public.wants(&entry(&["a"], false)) && !public.wants(&entry(&["a"], true)));
    }
}
