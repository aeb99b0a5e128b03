//! The small answers: the live viewer page (`GET /`), `GET /health` and `GET /metrics`.

use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::http::{self, Status};
use crate::stats;

/// A viewer page lists at most this many event types seen in the history.
const VIEWER_TYPES: usize = 32;
/// src/viewer.html, without its indentation (see build.rs).
const VIEWER_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/viewer.html"));
/// Where the viewer page takes the list of event types to listen to.
const VIEWER_MARK: &str = "/*EVENT_TYPES*/[]";
const VIEWER_MARK_AT: usize = find_in_page(VIEWER_HTML.as_bytes(), VIEWER_MARK.as_bytes());

impl EventLoop {
    /// The viewer page, told which event types the history holds: a browser's `EventSource`
    /// delivers named events only to listeners of that name.
    pub(super) fn viewer(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let page = self.viewer_page();
        self.ok(
            conn,
            slot,
            "text/html; charset=utf-8",
            cors,
            page.as_bytes(),
        );
    }

    /// `200 ok`, or `503` saying why publishing fails (the history file cannot be written, or
    /// the cluster's Redis cannot be reached).
    pub(super) fn health(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let file_failing = self
            .store
            .file_status()
            .and_then(|(status, _)| status.failing)
            .map(|why| format!("the history file cannot be written ({why})"));
        let redis_failing = || {
            let trouble = self.store.redis_status()?.trouble?;
            Some(format!("Redis cannot be reached ({trouble})"))
        };
        let Some(why) = file_failing.or_else(redis_failing) else {
            return self.ok(conn, slot, "text/plain; charset=utf-8", cors, b"ok\n");
        };
        let body = format!("unavailable: {why}\n");
        let close = !conn.keep_alive;
        let bytes = http::response(
            Status::UNAVAILABLE,
            "text/plain; charset=utf-8",
            cors,
            body.as_bytes(),
            close,
        );
        self.respond(conn, slot, bytes);
    }

    pub(super) fn metrics(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let mut text = self.counters.render();
        if let Some((status, lost)) = self.store.file_status() {
            stats::render_history_file(&mut text, &status, lost);
        }
        if let Some(status) = self.store.redis_status() {
            stats::render_redis(&mut text, &status);
        }
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        self.ok(conn, slot, content_type, cors, text.as_bytes());
    }

    fn viewer_page(&self) -> String {
        let mut types = String::from("[");
        for (i, ty) in self
            .store
            .event_types(VIEWER_TYPES)
            .iter()
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            if i > 0 {
                types.push(',');
            }
            push_json_string(&mut types, ty);
        }
        types.push(']');
        let (head, tail) = VIEWER_HTML.split_at(VIEWER_MARK_AT);
        format!("{head}{types}{}", &tail[VIEWER_MARK.len()..])
    }
}

/// Finds the viewer's mark at compile time; a page without it fails the build.
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
    panic!("the viewer page lacks its event-type mark")
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
}
