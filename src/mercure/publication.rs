//! What Mercure 1.0 reserves in a publication: the `mercure` event type and the topics of the
//! hub's own namespace (the hub generates those, and a subscriber trusts them), the `*` topic
//! (the wildcard, which no matcher could select alone), and ids starting with `#` or equal to
//! `earliest` (the hub's own forms); controls and format characters anywhere.

use super::{Hub, MERCURE_TYPE, check_text};
use crate::event::Event;

/// Refuses an event whose topics, type or id the draft reserves or forbids; the reason names
/// the field.
pub fn check(event: &Event, hub: &Hub) -> Result<(), String> {
    check_reserved(event, hub)?;
    for topic in &event.topics {
        if topic == "*" {
            return Err("the topic * is reserved: it is the wildcard of topic matchers".into());
        }
        check_text("topic", topic)?;
    }
    check_text("type", &event.event_type)?;
    check_text("id", &event.id)?;
    if event.id.starts_with('#') {
        return Err("an id starting with # is reserved to the hub's own ids".into());
    }
    if event.id == "earliest" {
        return Err("the id earliest is reserved: it asks for the whole history".into());
    }
    Ok(())
}

/// Refuses the `mercure` type and topics in the hub's namespace: what only the hub publishes.
pub fn check_reserved(event: &Event, hub: &Hub) -> Result<(), String> {
    if event.event_type == MERCURE_TYPE {
        return Err("the event type mercure is reserved to the events the hub generates".into());
    }
    if let Some(topic) = event.topics.iter().find(|topic| hub.is_reserved(topic)) {
        let shown: String = topic.chars().take(64).collect();
        return Err(format!(
            "the topic '{shown}' is in the namespace reserved to the hub ({})",
            hub.subscriptions_path().trim_end_matches("/subscriptions")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_forbidden_values_are_refused() {
        let hub = Hub::new("https://hub.test/.well-known/mercure", None).unwrap();
        let ok = Event::new("x")
            .topic("https://example.com/books/1")
            .id("urn:uuid:1");
        assert_eq!(check(&ok, &hub), Ok(()));
        let refused = [
            Event::new("x").topic("*"),
            Event::new("x")
                .topic("a")
                .topic("/.well-known/mercure/subscriptions/x"),
            Event::new("x").topic("https://hub.test/.well-known/mercure"),
            Event::new("x").topic("a").event_type("mercure"),
            Event::new("x").topic("a\u{200B}b"),
            Event::new("x").topic("a").event_type("t\u{7F}"),
            Event::new("x").topic("a").id("#1"),
            Event::new("x").topic("a").id("earliest"),
            Event::new("x").topic("a").id("1\u{85}"),
        ];
        for event in refused {
            assert!(check(&event, &hub).is_err(), "{event:?}");
        }
    }
}
