//! What each request gets: the route table, and beside it one file per kind of answer.
//!
//! The loop (event_loop.rs) reads a connection's bytes and hands every complete request head
//! here; a handler answers with the loop's `respond` or `reject`, turns the connection into a
//! stream (`subscribe.rs`), or asks for a publish body and publishes it (`publish.rs`). The
//! viewer page is in `viewer.rs`, `/health` and `/metrics` in `pages.rs`, CORS in `cors.rs`; who
//! may publish or subscribe is decided in auth/. The Mercure hub (`/.well-known/mercure`) is the
//! same subscribe and publish, speaking that protocol.

mod access;
mod cors;
#[cfg(feature = "jwt")]
mod discovery;
mod pages;
mod publish;
mod subscribe;
#[cfg(feature = "jwt")]
pub(crate) mod subscriptions;
mod viewer;

use crate::config::Cors;
use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::http::{self, Method, Request, Status};
use crate::stats::Refusal;

/// Where a Mercure hub answers, which Mercure clients (Symfony's, API Platform) expect.
const HUB: &str = "/.well-known/mercure";

/// The subscription API's root.
#[cfg(feature = "jwt")]
const SUBSCRIPTIONS: &str = "/.well-known/mercure/subscriptions";

/// The paths ssed answers, with the methods each takes (`OPTIONS` aside).
const ROUTES: [(&str, &[Method]); 6] = [
    ("/events", &[Method::Get]),
    ("/publish", &[Method::Post]),
    (HUB, &[Method::Get, Method::Post]),
    ("/", &[Method::Get]),
    ("/health", &[Method::Get]),
    ("/metrics", &[Method::Get]),
];

impl EventLoop {
    /// Answers one complete request head.
    pub(crate) fn handle_request(&mut self, conn: &mut Conn, slot: u32, request: Request) {
        conn.deadline = None;
        // A body we do not read would be parsed as the next request: close after answering.
        let has_body = request.chunked || request.content_length.unwrap_or(0) > 0;
        conn.keep_alive = request.keep_alive && (request.method() == Method::Post || !has_body);
        if self.refused_locally(conn, slot, &request) {
            return;
        }
        let cors = self.cors_headers(request.origin.as_deref());
        match (request.method(), request.path.as_str()) {
            (Method::Options, _) if self.config.cors != Cors::Off => {
                self.preflight(conn, slot, &cors)
            }
            (Method::Get, "/events") => self.subscribe(conn, slot, &request, &cors, false),
            (Method::Post, "/publish") => self.start_publish(conn, slot, request, &cors, false),
            (Method::Get, HUB) => self.subscribe(conn, slot, &request, &cors, true),
            (Method::Post, HUB) => self.start_publish(conn, slot, request, &cors, true),
            (Method::Get, "/") => self.viewer(conn, slot, &request, &cors),
            (Method::Get, "/health") => self.health(conn, slot, &cors),
            (Method::Get, "/metrics") => self.metrics(conn, slot, &cors),
            #[cfg(feature = "jwt")]
            (Method::Get, path) if self.is_metadata_path(path) => self.metadata(conn, slot, &cors),
            #[cfg(feature = "jwt")]
            (Method::Get, path)
                if self.config.subscriptions
                    && (path == SUBSCRIPTIONS
                        || path.starts_with(SUBSCRIPTIONS)
                            && path[SUBSCRIPTIONS.len()..].starts_with('/')) =>
            {
                self.subscription_api(conn, slot, &request, &cors)
            }
            (method, path) => match ROUTES.iter().find(|(known, _)| *known == path) {
                Some(&(_, allowed)) => {
                    self.method_not_allowed(conn, slot, (method, path), allowed, &cors)
                }
                None => {
                    let why = format!("no such path: {path}");
                    let refusal = Refusal::NotFound;
                    self.reject(conn, slot, Status::NOT_FOUND, &cors, &why, refusal);
                }
            },
        }
    }

    /// A `200` with `body`; the connection then reads its next request or closes.
    fn ok(&mut self, conn: &mut Conn, slot: u32, content_type: &str, extra: &str, body: &[u8]) {
        let close = !conn.keep_alive;
        let bytes = http::response(Status::OK, content_type, extra, body, close);
        self.respond(conn, slot, bytes);
    }

    fn method_not_allowed(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        (method, path): (Method, &str),
        allowed: &[Method],
        cors: &str,
    ) {
        // The header's list and the message's, in one pass.
        let (mut list, mut either) = (String::new(), String::new());
        for (i, &method) in allowed.iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
                either.push_str(" or ");
            }
            list.push_str(http::method_name(method));
            either.push_str(http::method_name(method));
        }
        let allowed = list;
        let options = if self.config.cors != Cors::Off {
            ", OPTIONS"
        } else {
            ""
        };
        let extra = format!("{cors}Allow: {allowed}{options}\r\n");
        let why = format!(
            "{} is not allowed on {path}; use {}",
            http::method_name(method),
            either
        );
        let status = Status::METHOD_NOT_ALLOWED;
        self.reject(conn, slot, status, &extra, &why, Refusal::MethodNotAllowed);
    }
}
