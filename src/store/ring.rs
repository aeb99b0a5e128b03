//! The ring of the last N published events in memory, kept for `Last-Event-ID` replay.
//!
//! Entries hold the encoded frame that live subscribers were sent, so a replay shares those
//! bytes too. Ids are compared as strings, newest first, since publishers may choose their own.

use std::collections::VecDeque;

use super::entry::Entry;

/// What a reconnecting subscriber is sent before live events.
pub struct Replay<'a> {
    /// The requested id is not retained: events may be missing.
    pub gap: bool,
    /// Retained events after the requested id (or all of them, after a gap), oldest first.
    pub entries: std::collections::vec_deque::Iter<'a, Entry>,
}

/// A bounded ring of entries, oldest first.
pub struct Ring {
    ring: VecDeque<Entry>,
    capacity: usize,
}

impl Ring {
    /// A ring that keeps the last `capacity` events (0 keeps none).
    pub fn new(capacity: usize) -> Ring {
        Ring {
            ring: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    /// Appends an event, forgetting the oldest when full.
    pub fn push(&mut self, entry: Entry) {
        if self.capacity == 0 {
            return;
        }
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(entry);
    }

    /// Every retained event, oldest first.
    pub fn all(&self) -> std::collections::vec_deque::Iter<'_, Entry> {
        self.ring.iter()
    }

    /// Number of events retained.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Events published after `last_id`. An id equal to the oldest retained one is retained,
    /// so it is no gap.
    pub fn since(&self, last_id: &str) -> Replay<'_> {
        match self.ring.iter().rposition(|e| e.id() == last_id.as_bytes()) {
            Some(i) => Replay {
                gap: false,
                entries: self.ring.range(i + 1..),
            },
            None => Replay {
                gap: true,
                entries: self.ring.range(..),
            },
        }
    }

    /// True when an event with id `last_id` is retained.
    #[cfg(feature = "redis")]
    pub fn holds(&self, last_id: &str) -> bool {
        self.ring.iter().rev().any(|e| e.id() == last_id.as_bytes())
    }

    /// The retained events placed after `position` in a cluster's stream, oldest first
    /// (positions grow along the ring).
    pub fn after_position(&self, position: u64) -> std::collections::vec_deque::Iter<'_, Entry> {
        let start = self.ring.partition_point(|e| e.position <= position);
        self.ring.range(start..)
    }

    /// The stream position of the oldest retained event.
    #[cfg(feature = "redis")]
    pub fn oldest_position(&self) -> Option<u64> {
        self.ring.front().map(|e| e.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Topics;

    fn entry(id: &str, topic: &str) -> Entry {
        typed(id, topic, "")
    }

    fn typed(id: &str, topic: &str, event_type: &str) -> Entry {
        let topics = Topics::of(&crate::Event::new("").topic(topic));
        Entry::new(
            crate::frame::encode(id, event_type, None, ""),
            topics,
            false,
        )
    }

    fn ids(replay: Replay) -> (bool, Vec<String>) {
        (
            replay.gap,
            replay
                .entries
                .map(|e| String::from_utf8(e.id().to_vec()).unwrap())
                .collect(),
        )
    }

    #[test]
    fn ring_forgets_the_oldest() {
        let mut h = Ring::new(3);
        for id in ["1", "2", "3", "4"] {
            h.push(entry(id, "t"));
        }
        assert_eq!(h.len(), 3);
        assert_eq!(ids(h.since("2")), (false, vec!["3".into(), "4".into()]));
        assert_eq!(
            ids(h.since("1")),
            (true, vec!["2".into(), "3".into(), "4".into()])
        );
    }

    #[test]
    fn oldest_retained_id_is_no_gap_and_newest_replays_nothing() {
        let mut h = Ring::new(3);
        for id in ["1", "2", "3"] {
            h.push(entry(id, "t"));
        }
        assert_eq!(ids(h.since("1")), (false, vec!["2".into(), "3".into()]));
        assert_eq!(ids(h.since("3")), (false, vec![]));
    }

    #[test]
    fn empty_history_is_a_gap() {
        let h = Ring::new(3);
        assert_eq!(ids(h.since("9")), (true, vec![]));
        let mut none = Ring::new(0);
        none.push(entry("1", "t"));
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn topic_matching() {
        let e = entry("1", "a");
        assert!(e.matches(&[]));
        assert!(e.matches(&[Box::from("b"), Box::from("a")]));
        assert!(!e.matches(&[Box::from("b")]));
    }
}
