//! The small answers: `GET /health` and `GET /metrics`. The viewer page is in `viewer.rs`.

use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::http::{self, Status};
use crate::stats;

impl EventLoop {
    /// `200 ok`, or `503` saying why publishing fails (the history file cannot be written).
    pub(super) fn health(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let failing = self.store.file_health().and_then(|health| health.failing);
        let Some(why) = failing else {
            return self.ok(conn, slot, "text/plain; charset=utf-8", cors, b"ok\n");
        };
        let body = format!("unavailable: the history file cannot be written ({why})\n");
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
        if let Some(health) = self.store.file_health() {
            stats::render_history_file(&mut text, &health);
        }
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        self.ok(conn, slot, content_type, cors, text.as_bytes());
    }
}
