//! One published event as the loop keeps it: encoded once, shared by every subscriber and the
//! history.

use std::ops::Range;
use std::sync::Arc;

#[cfg(feature = "history-file")]
use super::file::Record;
#[cfg(feature = "urlpattern")]
use crate::auth::TopicUrl;
use crate::event::Topics;
use crate::frame::Encoded;

/// One published event, encoded. Its id and type are read from the frame itself.
#[derive(Debug)]
pub struct Entry {
    pub frame: Arc<[u8]>,
    id: Range<usize>,
    event_type: Range<usize>,
    topics: Topics,
    /// Only subscribers allowed to read one of its topics get it (see `subscription.rs`).
    private: bool,
    /// Where the event sits in a cluster's Redis stream (see `cluster/`); 0 outside a cluster.
    pub position: u64,
    /// Its topics parsed as URLs, once, when a URL pattern first asks (see
    /// `auth/urlpattern.rs`): every pattern subscriber shares them.
    #[cfg(feature = "urlpattern")]
    urls: std::cell::OnceCell<Box<[Option<TopicUrl>]>>,
    /// Whether the URL patterns asked so far match it, by pattern id: the first subscriber of a
    /// pattern matches, the others read the answer (at most [`REMEMBERED`] patterns).
    #[cfg(feature = "urlpattern")]
    remembered: std::cell::RefCell<Vec<(u64, bool)>>,
}

/// Most URL patterns an entry remembers its answer for; beyond, patterns match each time.
#[cfg(feature = "urlpattern")]
const REMEMBERED: usize = 32;

impl Entry {
    pub fn new(encoded: Encoded, topics: Topics, private: bool) -> Entry {
        Entry {
            frame: encoded.bytes,
            id: encoded.id,
            event_type: encoded.event_type,
            topics,
            private,
            position: 0,
            #[cfg(feature = "urlpattern")]
            urls: std::cell::OnceCell::new(),
            #[cfg(feature = "urlpattern")]
            remembered: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The same event for another loop: the frame and topics shared, what its patterns
    /// answered left to that loop to learn.
    #[cfg(feature = "loops")]
    pub fn share(&self) -> Entry {
        Entry {
            frame: self.frame.clone(),
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            topics: self.topics.clone(),
            private: self.private,
            position: self.position,
            #[cfg(feature = "urlpattern")]
            urls: std::cell::OnceCell::new(),
            #[cfg(feature = "urlpattern")]
            remembered: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The answer of the pattern `id` for this entry: remembered, or `matches` asked once.
    #[cfg(feature = "urlpattern")]
    pub fn remembered(&self, id: u64, matches: impl FnOnce() -> bool) -> bool {
        if let Some(&(_, answer)) = self
            .remembered
            .borrow()
            .iter()
            .find(|(seen, _)| *seen == id)
        {
            return answer;
        }
        let answer = matches();
        let mut remembered = self.remembered.borrow_mut();
        if remembered.len() < REMEMBERED {
            remembered.push((id, answer));
        }
        answer
    }

    /// The topic at `index` parsed as a URL against `base` (the hub's URL, the same for every
    /// pattern of a server); `None` when it is no URL.
    #[cfg(feature = "urlpattern")]
    pub fn topic_url(&self, index: usize, base: &url::Url) -> Option<&TopicUrl> {
        let urls = self.urls.get_or_init(|| {
            let mut urls = Vec::new();
            self.topics.any(|topic| {
                urls.push(TopicUrl::parse(topic, Some(base)));
                false
            });
            urls.into_boxed_slice()
        });
        urls.get(index)?.as_ref()
    }

    /// True when one of the topics is in `wanted`, or `wanted` is empty (every topic). Whether
    /// a subscriber gets the event is `Subscription::wants`, which also asks `is_private`.
    pub fn matches(&self, wanted: &[Box<str>]) -> bool {
        wanted.is_empty() || self.topics.any(|t| wanted.iter().any(|w| **w == *t))
    }

    /// The topics the event was published to.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// True for a private event.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// The history file's record of this event, sharing its frame.
    #[cfg(feature = "history-file")]
    pub fn record(&self, assigned: Option<u64>) -> Record {
        Record {
            frame: self.frame.clone(),
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            topics: self.topics.clone(),
            assigned,
            private: self.private,
        }
    }

    /// The id, empty when the event has none.
    pub fn id(&self) -> &[u8] {
        &self.frame[self.id.clone()]
    }

    /// The event type, empty for the default `message`.
    pub fn event_type(&self) -> &str {
        // Written from a `&str`, so always UTF-8.
        std::str::from_utf8(&self.frame[self.event_type.clone()]).unwrap_or_default()
    }
}
