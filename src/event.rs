//! What a publisher hands to ssed: one event, before it is given an id and encoded.

use crate::frame::{self, FieldError};

/// One event to publish. Build it with [`Event::new`] and the chained setters.
///
/// ```
/// let event = ssed::Event::new("hello").topic("news").event_type("update");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// Topics the event goes to; none means the empty topic. A subscriber to any of them gets it
    /// once.
    pub topics: Vec<String>,
    /// Event type; empty means the default type `message`.
    pub event_type: String,
    /// The payload. Line breaks of every kind reach the browser as LF.
    pub data: String,
    /// The id; empty means the server assigns one.
    pub id: String,
    /// Reconnection delay to send with the event, in milliseconds.
    pub retry: Option<u32>,
    /// A private event reaches only the subscribers whose token's `mercure.subscribe`
    /// selectors match one of its topics, live and in replay; never an anonymous one.
    pub private: bool,
}

impl Event {
    /// An event of the default type to the empty topic, with a server-assigned id.
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// Adds a topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Event {
        self.topics.push(topic.into());
        self
    }

    /// Sets the event type.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Event {
        self.event_type = event_type.into();
        self
    }

    /// Sets the id (otherwise the server assigns one).
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.id = id.into();
        self
    }

    /// Sets the `retry` field sent with this event.
    pub fn retry(mut self, ms: u32) -> Event {
        self.retry = Some(ms);
        self
    }

    /// Makes the event private: only subscribers whose token allows one of its topics get it.
    pub fn private(mut self) -> Event {
        self.private = true;
        self
    }

    /// Refuses an event whose type or id would inject fields into the stream.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !frame::is_single_line(&self.event_type) {
            return Err(FieldError::EventType);
        }
        if !frame::is_single_line(&self.id) {
            return Err(FieldError::Id);
        }
        Ok(())
    }
}

/// The topics of a published event, stored without an allocation for the empty topic and
/// one for a single topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    /// The empty topic, where events without a topic go.
    Default,
    /// One topic.
    One(Box<str>),
    /// Several distinct topics.
    Many(Box<[Box<str>]>),
}

impl Topics {
    /// The distinct topics of `event`; the empty topic when it names none.
    pub fn of(event: &Event) -> Topics {
        let mut distinct: Vec<&str> = Vec::new();
        for topic in &event.topics {
            if !distinct.contains(&topic.as_str()) {
                distinct.push(topic);
            }
        }
        match distinct.as_slice() {
            [] | [""] => Topics::Default,
            [one] => Topics::One((*one).into()),
            many => Topics::Many(many.iter().map(|&t| Box::from(t)).collect()),
        }
    }

    /// True when one of the topics satisfies `wanted`.
    pub fn any(&self, mut wanted: impl FnMut(&str) -> bool) -> bool {
        match self {
            Topics::Default => wanted(""),
            Topics::One(topic) => wanted(topic),
            Topics::Many(topics) => topics.iter().any(|t| wanted(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_or_nul_in_type_or_id_is_refused() {
        assert_eq!(
            Event::new("x").event_type("a\nb").validate(),
            Err(FieldError::EventType)
        );
        assert_eq!(
            Event::new("x").event_type("a\0").validate(),
            Err(FieldError::EventType)
        );
        assert_eq!(Event::new("x").id("1\r").validate(), Err(FieldError::Id));
        assert_eq!(Event::new("multi\nline data is fine").validate(), Ok(()));
    }

    #[test]
    fn topics_default_to_the_empty_topic_and_are_deduplicated() {
        assert_eq!(Topics::of(&Event::new("x")), Topics::Default);
        assert_eq!(Topics::of(&Event::new("x").topic("")), Topics::Default);
        assert_eq!(
            Topics::of(&Event::new("x").topic("a").topic("a")),
            Topics::One("a".into())
        );
        let many = Topics::of(&Event::new("x").topic("a").topic("b").topic("a"));
        assert_eq!(
            many,
            Topics::Many(vec![Box::from("a"), Box::from("b")].into_boxed_slice())
        );
        assert!(many.any(|t| t == "b") && !many.any(|t| t.is_empty()));
        assert!(Topics::Default.any(str::is_empty));
    }
}
