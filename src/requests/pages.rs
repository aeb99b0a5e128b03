//! The small answers: `GET /health` and `GET /metrics`. The viewer page is in `viewer.rs`.

use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::http::{self, Status};
use crate::stats;

impl EventLoop {
    /// `200 ok`, or `503` saying why publishing fails (the history file cannot be written, or
    /// the cluster's Redis cannot be reached).
    pub(super) fn health(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let file_failing = self
            .store
            .file_health()
            .and_then(|health| health.failing)
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
        if let Some(health) = self.store.file_health() {
            stats::render_history_file(&mut text, &health);
        }
        if let Some(status) = self.store.redis_status() {
            stats::render_redis(&mut text, &status);
        }
        #[cfg(feature = "host")]
        if self.config.metrics_topics {
            self.host.presence.render(&mut text);
        }
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        self.ok(conn, slot, content_type, cors, text.as_bytes());
    }
}
