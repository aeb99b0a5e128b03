//! Mercure 1.0's active subscriptions (`--subscriptions`): the events the hub publishes when a
//! subscription starts and ends, and the registry the subscription API answers from.
//!
//! Every 1.0 matcher of a stream is one subscription, identified by its matcher type, its
//! matcher and the stream's subscriber id, a random `urn:uuid:` drawn for the connection (no
//! client can choose, guess or forge it). When the stream opens, the hub publishes for each a
//! private update of type `mercure` to the topic
//! `{hub path}/subscriptions/{match_type}/{match}/{subscriber}` (each variable percent-encoded
//! once, as a whole) whose data is the subscription's JSON document with `"active": true`;
//! when it closes, the same with `false`.
//!
//! The registry is kept from those events as the loop delivers them, not from the streams
//! themselves: in a cluster every node delivers every node's events, so the API of any node
//! lists the subscriptions of all of them. 0.x subscriptions (`topic=`) are not tracked.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Hub;
use crate::auth::MatchType;

/// One subscription: its matcher and its subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub match_type: MatchType,
    pub matcher: Box<str>,
    pub subscriber: Box<str>,
    /// The `payload` of the subscriber's token for this matcher, as JSON text.
    pub payload: Option<Box<str>>,
}

impl Subscription {
    /// The topic of the subscription's events, also the path of its API resource.
    pub fn topic(&self, hub: &Hub) -> String {
        format!(
            "{}/{}/{}/{}",
            hub.subscriptions_path(),
            self.match_type.name(),
            encode(&self.matcher),
            encode(&self.subscriber)
        )
    }

    /// The subscription's JSON document, `active` or not.
    pub fn document(&self, hub: &Hub, active: bool) -> Value {
        let mut doc = Map::new();
        doc.insert("id".into(), Value::String(self.topic(hub)));
        doc.insert("type".into(), json!("subscription"));
        doc.insert("match_type".into(), json!(self.match_type.name()));
        doc.insert("match".into(), json!(&*self.matcher));
        doc.insert("subscriber".into(), json!(&*self.subscriber));
        doc.insert("active".into(), json!(active));
        if let Some(payload) = &self.payload
            && let Ok(payload) = serde_json::from_str::<Value>(payload)
        {
            doc.insert("payload".into(), payload);
        }
        Value::Object(doc)
    }

    /// Reads a subscription event's document back: the subscription, and whether it is
    /// active. `None` for anything else.
    pub fn from_document(data: &str) -> Option<(Subscription, bool)> {
        let Value::Object(doc) = serde_json::from_str::<Value>(data).ok()? else {
            return None;
        };
        if doc.get("type")?.as_str()? != "subscription" {
            return None;
        }
        let subscription = Subscription {
            match_type: MatchType::named(doc.get("match_type")?.as_str()?)?,
            matcher: doc.get("match")?.as_str()?.into(),
            subscriber: doc.get("subscriber")?.as_str()?.into(),
            payload: doc.get("payload").map(|p| p.to_string().into_boxed_str()),
        };
        Some((subscription, doc.get("active")?.as_bool()?))
    }
}

/// A fresh subscriber id: `urn:uuid:` and a random (version 4) UUID.
pub fn new_subscriber_id() -> Box<str> {
    let mut bytes = [0u8; 16];
    if crate::sys::random_bytes(&mut bytes).is_err() {
        // The kernel always has randomness once booted; should it fail, the clock and a
        // counter still keep ids unique, if guessable.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes[..8].copy_from_slice(&now.to_le_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
    .into_boxed_str()
}

/// Percent-encodes every byte but RFC 3986's unreserved characters: an RFC 6570 simple
/// expansion of the whole value, `%` included, so that nothing is encoded twice or not at all.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes every `%XX` of an API path segment; `None` when the result is not UTF-8.
pub fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| (*bytes.get(at)? as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A subscription's place in the registry: matcher type, matcher, subscriber.
type Key = (&'static str, Box<str>, Box<str>);

/// The active subscriptions the hub knows of, as its subscription events say.
#[derive(Debug, Default)]
pub struct Registry {
    /// By matcher type, matcher and subscriber: a collection for one matcher is a range.
    active: BTreeMap<Key, Option<Box<str>>>,
}

/// Most subscriptions one collection document lists (the draft lets a hub truncate).
pub const MAX_LISTED: usize = 10_000;

impl Registry {
    /// Takes in one subscription event's data.
    pub fn apply(&mut self, data: &str) {
        let Some((subscription, active)) = Subscription::from_document(data) else {
            return;
        };
        let key = (
            subscription.match_type.name(),
            subscription.matcher,
            subscription.subscriber,
        );
        if active {
            self.active.insert(key, subscription.payload);
        } else {
            self.active.remove(&key);
        }
    }

    /// The active subscriptions, all of them or those of one matcher, at most [`MAX_LISTED`].
    pub fn list(&self, matcher: Option<(MatchType, &str)>) -> Vec<Subscription> {
        self.active
            .iter()
            .filter(|((kind, m, _), _)| {
                matcher.is_none_or(|(t, wanted)| *kind == t.name() && **m == *wanted)
            })
            .take(MAX_LISTED)
            .map(|((kind, matcher, subscriber), payload)| Subscription {
                match_type: MatchType::named(kind).unwrap_or(MatchType::Exact),
                matcher: matcher.clone(),
                subscriber: subscriber.clone(),
                payload: payload.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_registry() {
        let hub = Hub::new("https://example.com/.well-known/mercure", None).unwrap();
        let subscription = Subscription {
            match_type: MatchType::UrlPattern,
            matcher: "https://example.com/:selector".into(),
            subscriber: "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6".into(),
            payload: Some(r#"{"foo":"bar"}"#.into()),
        };
        assert_eq!(
            subscription.topic(&hub),
            "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2F%3Aselector/urn%3Auuid%3Abb3de268-05b0-4c65-b44e-8f9acefc29d6"
        );
        let doc = subscription.document(&hub, true);
        assert_eq!(doc["id"], subscription.topic(&hub));
        assert_eq!(doc["payload"]["foo"], "bar");
        let mut registry = Registry::default();
        registry.apply(&doc.to_string());
        assert_eq!(registry.list(None), std::slice::from_ref(&subscription));
        let same = Some((MatchType::UrlPattern, "https://example.com/:selector"));
        assert_eq!(registry.list(same).len(), 1);
        assert!(
            registry
                .list(Some((MatchType::Exact, "https://example.com/:selector")))
                .is_empty()
        );
        registry.apply(&subscription.document(&hub, false).to_string());
        assert!(registry.list(None).is_empty());
        registry.apply("not json");
        registry.apply(r#"{"type":"subscription"}"#);
        assert!(registry.list(None).is_empty());
    }

    #[test]
    fn values_are_encoded_once_as_a_whole() {
        assert_eq!(encode("a%2Fb/c d"), "a%252Fb%2Fc%20d");
        assert_eq!(decode("a%252Fb%2Fc%20d").as_deref(), Some("a%2Fb/c d"));
        assert_eq!(decode("%FF"), None);
        let a = new_subscriber_id();
        assert!(a.starts_with("urn:uuid:") && a.len() == 45, "{a}");
        assert_ne!(a, new_subscriber_id());
        assert_eq!(&a[23..24], "4");
    }
}
