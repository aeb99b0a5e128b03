//! Who is listening: how many open streams asked for each topic, readable from any thread.
//!
//! The loop counts a stream in when it opens and out when it closes, under one small lock:
//! nothing is done per event, so the fan-out never pays for it. A stream is counted once under
//! each topic (or selector, as written) it asked for; streams that asked for no topic (every
//! topic) are counted apart. Topics whose last stream closed are forgotten, so the table holds
//! only what is listened to now.

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

/// Most topics `/metrics` lists; beyond them it says how many it left out.
const METRICS_TOPICS: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct Presence {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Open streams that asked for no topic.
    every_topic: u64,
    /// Open streams per topic they asked for, sorted by topic (a sorted vector rather than a
    /// map: little code, in the tiny daemon too, and lookups by binary search).
    topics: Vec<(Box<str>, u64)>,
}

impl Counts {
    fn find(&self, topic: &str) -> Result<usize, usize> {
        self.topics.binary_search_by(|(t, _)| (**t).cmp(topic))
    }
}

impl Presence {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Each update completes under the lock: a poisoned lock holds consistent counts.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A stream asking for `topics` (none: every topic) opened.
    pub fn joined(&self, topics: &[&str]) {
        let mut counts = self.lock();
        if topics.is_empty() {
            counts.every_topic += 1;
        }
        for (i, topic) in topics.iter().enumerate() {
            if topics[..i].contains(topic) {
                continue; // asked for twice, counted once
            }
            match counts.find(topic) {
                Ok(at) => counts.topics[at].1 += 1,
                Err(at) => counts.topics.insert(at, ((*topic).into(), 1)),
            }
        }
    }

    /// A stream that asked for `topics` closed.
    pub fn left(&self, topics: &[&str]) {
        let mut counts = self.lock();
        if topics.is_empty() {
            counts.every_topic = counts.every_topic.saturating_sub(1);
        }
        for (i, topic) in topics.iter().enumerate() {
            if topics[..i].contains(topic) {
                continue;
            }
            if let Ok(at) = counts.find(topic) {
                counts.topics[at].1 -= 1;
                if counts.topics[at].1 == 0 {
                    counts.topics.remove(at);
                }
            }
        }
        if counts.topics.is_empty() && counts.topics.capacity() > 64 {
            counts.topics.shrink_to_fit();
        }
    }

    /// Open streams that asked for `topic`, or for no topic (every topic) when `None`.
    pub fn of(&self, topic: Option<&str>) -> u64 {
        let counts = self.lock();
        match topic {
            None => counts.every_topic,
            Some(topic) => counts.find(topic).map_or(0, |at| counts.topics[at].1),
        }
    }

    /// Every topic listened to now, with its count, sorted by topic.
    pub fn topics(&self) -> Vec<(String, u64)> {
        self.lock()
            .topics
            .iter()
            .map(|(topic, n)| (topic.to_string(), *n))
            .collect()
    }

    /// Appends the per-topic gauges to a `/metrics` body.
    pub fn render(&self, out: &mut String) {
        let every_topic = self.of(None);
        let topics = self.topics();
        out.push_str(
            "# HELP ssed_subscribers_every_topic Open streams that asked for no topic (every topic).\n\
             # TYPE ssed_subscribers_every_topic gauge\n",
        );
        let _ = writeln!(out, "ssed_subscribers_every_topic {every_topic}");
        out.push_str(
            "# HELP ssed_topic_subscribers Open streams that asked for the topic (or selector).\n\
             # TYPE ssed_topic_subscribers gauge\n",
        );
        for (topic, n) in topics.iter().take(METRICS_TOPICS) {
            out.push_str("ssed_topic_subscribers{topic=\"");
            push_label_value(out, topic);
            let _ = writeln!(out, "\"}} {n}");
        }
        out.push_str(
            "# HELP ssed_topic_subscribers_omitted Topics listened to that /metrics does not list.\n\
             # TYPE ssed_topic_subscribers_omitted gauge\n",
        );
        let omitted = topics.len().saturating_sub(METRICS_TOPICS);
        let _ = writeln!(out, "ssed_topic_subscribers_omitted {omitted}");
    }
}

/// A Prometheus label value: backslash, double quote and line feed escaped.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_counted_per_topic_asked_for_and_forgotten_at_zero() {
        let presence = Presence::default();
        presence.joined(&[]);
        presence.joined(&["news", "sports", "news"]);
        presence.joined(&["news"]);
        assert_eq!(presence.of(None), 1);
        assert_eq!(presence.of(Some("news")), 2);
        assert_eq!(presence.of(Some("")), 0, "the empty topic is a topic");
        presence.left(&["news", "sports", "news"]);
        assert_eq!(
            presence.topics(),
            [("news".to_owned(), 1)],
            "sports is forgotten"
        );
        presence.left(&[]);
        presence.left(&["news"]);
        assert_eq!((presence.of(None), presence.topics().len()), (0, 0));
    }

    #[test]
    fn label_values_are_escaped() {
        let presence = Presence::default();
        presence.joined(&["a\"b\\c\nd"]);
        let mut out = String::new();
        presence.render(&mut out);
        assert!(
            out.contains("ssed_topic_subscribers{topic=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("ssed_subscribers_every_topic 0\n"));
    }
}
