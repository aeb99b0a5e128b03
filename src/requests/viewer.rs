//! `GET /`: the live viewer page. The page is static but for one JSON object written into it
//! when it is served: the event types the history holds, and where a replay of the recent
//! history starts, so that a viewer opens on the last events rather than an empty table.
//!
//! The page connects to `/events` with its own query (`/?topic=demo` shows one topic) plus
//! `lastEventId` set to the id written here: the subscribe path then replays the last
//! [`HISTORY`] retained events of those topics, and live events follow. No other API is needed.

use crate::auth;
use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::http::Request;
use crate::params;

/// A viewer page listens to at most this many event types seen in the history.
const TYPES: usize = 32;
/// A viewer shows this many retained events when it opens.
const HISTORY: usize = 50;
/// Candidate ids tried for the start of the replay before replaying everything retained.
const START_TRIES: usize = 64;
/// An id no event can have (ids never contain LF): a replay from it finds a gap, and a gap
/// replays everything retained.
const BEFORE_ALL: &str = "\n";
/// src/viewer.html, without its indentation (see build.rs).
const PAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/viewer.html"));
/// The object in the page that the server replaces; as written, it means "no history".
const MARK: &str = r#"/*VIEWER*/{"types":[],"since":null,"history":0,"auth":"none"}"#;
const MARK_AT: usize = find_in_page(PAGE.as_bytes(), MARK.as_bytes());

/// One retained event, as the viewer's choices need it.
#[derive(Debug, Clone, Copy)]
struct Retained<'a> {
    id: &'a str,
    event_type: &'a str,
    /// The page's topics include it.
    shown: bool,
}

/// Where a replay that shows the recent history starts.
#[derive(Debug, PartialEq, Eq)]
struct Start<'a> {
    /// The `lastEventId` to replay from.
    since: &'a str,
    /// How many events of the page's topics that replay holds.
    events: usize,
}

impl EventLoop {
    pub(super) fn viewer(&mut self, conn: &mut Conn, slot: u32, request: &Request, cors: &str) {
        let page = self.viewer_page(request);
        let content_type = "text/html; charset=utf-8";
        self.ok(conn, slot, content_type, cors, page.as_bytes());
    }

    /// The page with what it needs to know of the history. A request that could not subscribe
    /// (a subscribe token is set and it carries none) learns nothing of it; one whose query
    /// asks for a replay of its own gets that one.
    fn viewer_page(&self, request: &Request) -> String {
        let query = params::subscribe(&request.query).ok().filter(|query| {
            let tokens = auth::QueryTokens {
                token: query.token.as_deref(),
                authorization: query.authorization.as_deref(),
            };
            let now = std::time::SystemTime::now();
            auth::may_subscribe(&self.config, &self.keys, request, tokens, now).is_ok()
        });
        let mut settings = String::from(r#"{"types":["#);
        let mut start = None;
        if let Some(query) = query {
            let topics: Vec<Box<str>> = query.topics.into_iter().map(Into::into).collect();
            let retained: Vec<Retained> = self
                .store
                .history()
                // The page names no private event: not even its id or type.
                .filter(|entry| !entry.is_private())
                .map(|entry| Retained {
                    id: std::str::from_utf8(entry.id()).unwrap_or_default(),
                    event_type: entry.event_type(),
                    shown: entry.matches(&topics),
                })
                .collect();
            push_types(&mut settings, &retained);
            if query.last_event_id.is_none() {
                start = history_start(&retained, HISTORY);
            }
        }
        settings.push_str(r#"],"since":"#);
        match &start {
            Some(start) => push_json_string(&mut settings, start.since),
            None => settings.push_str("null"),
        }
        let events = start.map_or(0, |start| start.events);
        settings.push_str(&format!(
            r#","history":{events},"auth":"{}"}}"#,
            self.credential()
        ));
        let (head, tail) = PAGE.split_at(MARK_AT);
        format!("{head}{settings}{}", &tail[MARK.len()..])
    }
}

impl EventLoop {
    /// The credential a stream needs, as the viewer asks for it: `token` (the static subscribe
    /// token, sent as `?token=`), `jwt` (a JSON Web Token, sent as `?authorization=`), or
    /// `none`.
    fn credential(&self) -> &'static str {
        if self.config.subscribe_token.is_some() {
            "token"
        } else if self.config.has_subscriber_key() && !self.config.anonymous {
            "jwt"
        } else {
            "none"
        }
    }
}

/// Writes the distinct types of the shown events, newest first, at most [`TYPES`], as the
/// items of a JSON array. The default type needs no listener of its own.
fn push_types(out: &mut String, retained: &[Retained]) {
    let mut types: Vec<&str> = Vec::new();
    for event in retained.iter().rev().filter(|e| e.shown) {
        if types.len() == TYPES {
            break;
        }
        if !event.event_type.is_empty() && !types.contains(&event.event_type) {
            types.push(event.event_type);
        }
    }
    for (i, event_type) in types.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, event_type);
    }
}

/// The `lastEventId` from which a replay holds the last `count` shown events (all of them
/// when fewer are retained), or None when no retained event is shown. `retained` is oldest
/// first.
///
/// A replay starts after the newest event carrying the id it is given, and publishers may
/// reuse ids: so the id chosen is that of the newest event before the window that no later
/// event carries, and the replay may hold a few more than `count`. After [`START_TRIES`]
/// events whose ids come again, it replays everything retained.
fn history_start<'a>(retained: &[Retained<'a>], count: usize) -> Option<Start<'a>> {
    let total = retained.iter().filter(|e| e.shown).count();
    if total == 0 {
        return None;
    }
    let everything = Some(Start {
        since: BEFORE_ALL,
        events: total,
    });
    // The oldest event of the window: the `count`-th shown one from the end.
    let Some(window) = retained
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, e)| e.shown)
        .nth(count.saturating_sub(1))
        .map(|(i, _)| i)
    else {
        return everything;
    };
    let mut events = count;
    for at in (0..window).rev().take(START_TRIES) {
        let candidate = retained[at];
        let unique = !retained[at + 1..].iter().any(|e| e.id == candidate.id);
        if unique && !candidate.id.is_empty() {
            return Some(Start {
                since: candidate.id,
                events,
            });
        }
        events += usize::from(candidate.shown);
    }
    everything
}

/// Finds the page's mark at compile time; a page without it fails the build.
const fn find_in_page(page: &[u8], mark: &[u8]) -> usize {
    let mut at = 0;
    while at + mark.len() <= page.len() {
        let mut i = 0;
        while i < mark.len() && page[at + i] == mark[i] {
            i += 1;
        }
        if i == mark.len() {
            return at;
        }
        at += 1;
    }
    panic!("the viewer page lacks its settings mark")
}

/// Writes `text` as a JSON string that is also safe inside a `<script>` element.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Escaped so that no type name can close the page's script element.
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_cannot_break_out_of_a_script() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"</script>\n");
        assert_eq!(out, r#""a\"\u003c/script\u003e\u000a""#);
    }

    fn events<'a>(ids: &[&'a str], shown: impl Fn(usize) -> bool) -> Vec<Retained<'a>> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| Retained {
                id,
                event_type: "",
                shown: shown(i),
            })
            .collect()
    }

    fn start(since: &str, events: usize) -> Option<Start<'_>> {
        Some(Start { since, events })
    }

    #[test]
    fn the_replay_starts_just_before_the_last_events_shown() {
        let ids = ["1", "2", "3", "4", "5"];
        assert_eq!(history_start(&events(&ids, |_| true), 2), start("3", 2));
        // Only the even positions are shown: the window's oldest is "3", so replay after "2".
        assert_eq!(
            history_start(&events(&ids, |i| i % 2 == 0), 2),
            start("2", 2)
        );
    }

    #[test]
    fn few_events_replay_everything_and_none_replay_nothing() {
        let ids = ["1", "2", "3"];
        assert_eq!(
            history_start(&events(&ids, |_| true), 3),
            start(BEFORE_ALL, 3)
        );
        assert_eq!(
            history_start(&events(&ids, |i| i == 2), 2),
            start(BEFORE_ALL, 1)
        );
        assert_eq!(history_start(&events(&ids, |_| false), 2), None);
        assert_eq!(history_start(&[], 2), None);
    }

    #[test]
    fn an_id_that_comes_again_later_is_not_a_start() {
        // "a" comes again inside the window: a replay after "a" would start at its newest
        // copy. "b" is the newest id before the window that no later event carries.
        let ids = ["x", "b", "a", "c", "a", "d"];
        assert_eq!(history_start(&events(&ids, |_| true), 3), start("b", 4));
        // Every id before the window comes again: everything.
        let ids = ["a", "a", "a", "a"];
        assert_eq!(
            history_start(&events(&ids, |_| true), 2),
            start(BEFORE_ALL, 4)
        );
    }

    #[test]
    fn types_are_those_of_the_shown_events_newest_first() {
        let mut retained = events(&["1", "2", "3", "4"], |i| i != 1);
        for (event, ty) in retained.iter_mut().zip(["a", "hidden", "", "b"]) {
            event.event_type = ty;
        }
        let mut out = String::new();
        push_types(&mut out, &retained);
        assert_eq!(out, r#""b","a""#);
    }
}
