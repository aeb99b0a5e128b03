//! The small answers: `GET /health` and `GET /metrics`. The viewer page is in `viewer.rs`.

use crate::conn::Conn;
use crate::event_loop::EventLoop;

impl EventLoop {
    pub(super) fn health(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        self.ok(conn, slot, "text/plain; charset=utf-8", cors, b"ok\n");
    }

    pub(super) fn metrics(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let text = self.counters.render();
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        self.ok(conn, slot, content_type, cors, text.as_bytes());
    }
}
