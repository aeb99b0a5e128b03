//! CORS: which origins may read streams and publish from a page, and the preflight answer.

use crate::config::Cors;
use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::http::{self, Status};

/// What a preflight is told may follow: the methods ssed takes, and the headers a browser asks
/// leave to send (it preflights a cross-origin `Last-Event-ID` that is not a simple header).
const PREFLIGHT_HEADERS: &str = "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n\
    Access-Control-Allow-Headers: Last-Event-ID, Authorization, Content-Type, Cache-Control\r\n\
    Access-Control-Max-Age: 86400\r\n";

impl EventLoop {
    /// The CORS header lines of an answer to a request from `origin`. A listed origin is echoed
    /// with credentials allowed, so that `withCredentials` works.
    pub(crate) fn cors_headers(&self, origin: Option<&str>) -> String {
        match (&self.config.cors, origin) {
            (Cors::Off, _) => String::new(),
            (Cors::Any, _) => "Access-Control-Allow-Origin: *\r\n".into(),
            (Cors::Origins(list), Some(origin)) if list.iter().any(|o| o == origin) => format!(
                "Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\nAccess-Control-Allow-Credentials: true\r\n"
            ),
            (Cors::Origins(_), _) => "Vary: Origin\r\n".into(),
        }
    }

    /// `OPTIONS`, when CORS is on.
    pub(super) fn preflight(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let extra = format!("{cors}{PREFLIGHT_HEADERS}");
        let close = !conn.keep_alive;
        let bytes = http::response(Status::NO_CONTENT, "", &extra, b"", close);
        self.respond(conn, slot, bytes);
    }
}
