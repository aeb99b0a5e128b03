//! `POST /publish`: who may publish, reading the body, and handing the event to the store,
//! whose answer (the event's id, or why not) goes back to the publisher.

use std::sync::Arc;

use crate::auth;
use crate::conn::{Conn, PendingBody, Phase};
use crate::event_loop::EventLoop;
use crate::http::{self, Request, Status};
use crate::params::{self, Body};
use crate::stats::Refusal;
use crate::store::PublishError;

impl EventLoop {
    /// Checks a publish head; the connection then reads its body (see `finish_publish`).
    pub(super) fn start_publish(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: Request,
        cors: &str,
    ) {
        if let Err(denied) = auth::may_publish(&self.config, &request, conn.peer_loopback) {
            let extra = format!("{cors}{}", denied.challenge());
            return self.reject(
                conn,
                slot,
                denied.status,
                &extra,
                denied.why,
                denied.refusal,
            );
        }
        if request.chunked {
            let why = "chunked publish bodies are not accepted; send a Content-Length";
            let status = Status::LENGTH_REQUIRED;
            return self.reject(conn, slot, status, cors, why, Refusal::BadRequest);
        }
        let length = request.content_length.unwrap_or(0);
        if length > self.config.max_body {
            let why = format!(
                "the body is larger than the limit of {} bytes",
                self.config.max_body
            );
            let status = Status::BODY_TOO_LARGE;
            return self.reject(conn, slot, status, cors, &why, Refusal::TooLarge);
        }
        if conn.input.len() < length {
            if request.expect_continue {
                conn.push(Arc::from(http::CONTINUE));
                self.due.mark(conn, slot);
            }
            self.set_deadline(conn, slot, self.config.head_timeout);
        }
        conn.body = Some(Box::new(PendingBody { request, length }));
        conn.phase = Phase::Body;
    }

    /// Publishes the event a request and its whole body describe, and answers with its id.
    pub(crate) fn finish_publish(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: &Request,
        body: &[u8],
    ) {
        conn.deadline = None;
        let cors = self.cors_headers(request.origin.as_deref());
        let body = Body::new(request.content_type.as_deref(), body);
        let event = match params::publish(&request.query, body) {
            Ok(event) => event,
            Err(why) => {
                let status = Status::BAD_REQUEST;
                return self.reject(conn, slot, status, &cors, &why, Refusal::BadRequest);
            }
        };
        let mut result = self.store.publish(&event);
        if result == Err(PublishError::QueueFull) {
            // Other threads filled the queue; deliver what is there and try once more.
            if self.take_published() && self.shutdown_by.is_none() {
                result = Err(PublishError::Stopped);
            } else {
                result = self.store.publish(&event);
            }
        }
        match result {
            Ok(assigned) => {
                let id = assigned.map(|n| n.to_string()).unwrap_or(event.id);
                self.ok(
                    conn,
                    slot,
                    "text/plain; charset=utf-8",
                    &cors,
                    id.as_bytes(),
                );
            }
            Err(PublishError::Invalid(why)) => {
                let status = Status::BAD_REQUEST;
                self.reject(
                    conn,
                    slot,
                    status,
                    &cors,
                    why.message(),
                    Refusal::BadRequest,
                )
            }
            Err(PublishError::QueueFull) => {
                let extra = format!("{cors}Retry-After: 1\r\n");
                let why = "the publish queue is full";
                let status = Status::UNAVAILABLE;
                self.reject(conn, slot, status, &extra, why, Refusal::QueueFull)
            }
            Err(PublishError::Stopped) => {
                let why = "the server is shutting down";
                let status = Status::UNAVAILABLE;
                self.reject(conn, slot, status, &cors, why, Refusal::QueueFull)
            }
        }
    }
}
