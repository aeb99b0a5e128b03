//! `POST /publish` and `POST /.well-known/mercure`: who may publish, reading the body, and
//! handing the event to the store, whose answer (the event's id, or why not) goes back to the
//! publisher.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::{self, Publishing};
use crate::conn::{Conn, PendingBody, Phase};
use crate::event_loop::EventLoop;
use crate::frame::{self, IdForm};
use crate::http::{self, Request, Status};
#[cfg(feature = "jwt")]
use crate::mercure::publication;
use crate::params::{self, Body, Unknown};
use crate::stats::Refusal;
use crate::store::{PublishError, Submitted};

impl EventLoop {
    /// Checks a publish head; the connection then reads its body (see `finish_publish`).
    /// `hub`: a publish to the Mercure hub, which needs a topic and assigns ids as Mercure does.
    pub(super) fn start_publish(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: Request,
        cors: &str,
        hub: bool,
    ) {
        let query_token = params::authorization(&request.query);
        // The publish socket's file permissions are its access control.
        let publishing = if conn.is_local() {
            Ok(Publishing::Anything)
        } else {
            auth::may_publish(
                &self.config,
                &self.keys,
                &request,
                conn.peer_loopback,
                query_token.as_deref(),
                SystemTime::now(),
            )
        };
        let publishing = match publishing {
            Ok(publishing) => publishing,
            Err(denied) => {
                let extra = format!("{cors}{}", denied.challenge(&self.keys));
                let (status, refusal) = (denied.status, denied.refusal);
                return self.reject(conn, slot, status, &extra, &denied.why, refusal);
            }
        };
        if request.chunked {
            let why = "chunked publish bodies are not accepted; send a Content-Length";
            let status = Status::LENGTH_REQUIRED;
            return self.reject(conn, slot, status, cors, why, Refusal::BadRequest);
        }
        let length = request.content_length.unwrap_or(0);
        let Some(length) = usize::try_from(length)
            .ok()
            .filter(|&length| length <= self.config.max_body)
        else {
            let why = format!(
                "the body is larger than the limit of {} bytes (--max-body)",
                self.config.max_body
            );
            let status = Status::BODY_TOO_LARGE;
            return self.reject(conn, slot, status, cors, &why, Refusal::TooLarge);
        };
        if conn.input.len() < length {
            if request.expect_continue {
                conn.push(Arc::from(http::CONTINUE));
                self.due.mark(conn, slot);
            }
            self.set_deadline(conn, slot, self.config.head_timeout);
        }
        conn.body = Some(Box::new(PendingBody {
            request,
            length,
            publishing,
            hub,
        }));
        conn.phase = Phase::Body;
    }

    /// Publishes the event a request and its whole body describe, and answers with its id.
    pub(crate) fn finish_publish(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        pending: &PendingBody,
        body: &[u8],
    ) {
        let request = &pending.request;
        conn.deadline = None;
        let cors = self.cors_headers(request.origin.as_deref());
        let body = Body::new(request.content_type.as_deref(), body);
        // A 1.0 publisher's unknown fields are ignored, as that protocol asks; ssed's own rule
        // (refused, naming them) holds for everyone else.
        let unknown = if pending.publishing.is_v1() {
            Unknown::Ignored
        } else {
            Unknown::Refused
        };
        let checked = params::publish_as(&request.query, body, unknown).and_then(|event| {
            // The hub's reserved values are refused on the hub whichever protocol its publisher
            // speaks, and everywhere once the hub generates subscription events. Mercure 1.0
            // comes with JSON Web Tokens (feature jwt): the tiny build speaks 0.x.
            #[cfg(feature = "jwt")]
            if pending.hub {
                publication::check(&event, &self.keys.hub)?;
            } else if self.config.subscriptions {
                publication::check_reserved(&event, &self.keys.hub)?;
            }
            Ok(event)
        });
        let event = match checked {
            Ok(event) => event,
            Err(why) => {
                let status = Status::BAD_REQUEST;
                return self.reject(conn, slot, status, &cors, &why, Refusal::BadRequest);
            }
        };
        if pending.hub && event.topics.is_empty() {
            let why = "Missing \"topic\" parameter: a Mercure update names its topics";
            let status = Status::BAD_REQUEST;
            return self.reject(conn, slot, status, &cors, why, Refusal::BadRequest);
        }
        if let Err(denied) = pending.publishing.check(&event) {
            let extra = format!("{cors}{}", denied.challenge(&self.keys));
            let (status, refusal) = (denied.status, denied.refusal);
            return self.reject(conn, slot, status, &extra, &denied.why, refusal);
        }
        if !self.host_allows(conn, slot, request, &event.topics, true, &cors) {
            return;
        }
        let token = self.token(slot).0;
        // A Mercure hub's ids are IRIs.
        let form = if pending.hub {
            IdForm::Urn
        } else {
            IdForm::Decimal
        };
        let mut submitted = self.store.publish(&event, token, form);
        if submitted == Submitted::Done(Err(PublishError::QueueFull)) {
            // Other threads filled the queue; deliver what is there and try once more.
            if self.take_published() && self.shutdown_by.is_none() {
                submitted = Submitted::Done(Err(PublishError::Stopped));
            } else {
                submitted = self.store.publish(&event, token, form);
            }
        }
        match submitted {
            Submitted::Done(result) => {
                let id = result.map(|assigned| match (assigned, form) {
                    (Some(n), IdForm::Decimal) => n.to_string().into_boxed_str(),
                    (Some(n), IdForm::Urn) => {
                        frame::urn_uuid(n, &mut [0; frame::URN_UUID_LEN]).into()
                    }
                    (None, _) => event.id.into_boxed_str(),
                });
                self.answer_publish(conn, slot, &cors, id);
            }
            Submitted::Waiting => {
                // The answer waits for the history file (see `store::Ack`), keeping its place:
                // the connection goes on with what it pipelines meanwhile, whose answers wait
                // behind it, so that a publisher is never held to one event per disk write.
                let waiting = conn.waiting_publishes.get_or_insert_with(Default::default);
                waiting.push_back(cors.into_boxed_str());
                self.respond_later(conn, slot);
            }
        }
    }

    /// Answers a publish whose event's fate is known: its id, or why it was not published.
    pub(crate) fn answer_publish(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        cors: &str,
        result: Result<Box<str>, PublishError>,
    ) {
        let status = Status::UNAVAILABLE;
        match result {
            Ok(id) => self.ok(conn, slot, "text/plain; charset=utf-8", cors, id.as_bytes()),
            Err(PublishError::Invalid(why)) => {
                let status = Status::BAD_REQUEST;
                self.reject(conn, slot, status, cors, why.message(), Refusal::BadRequest)
            }
            Err(PublishError::QueueFull) => {
                let extra = format!("{cors}Retry-After: 1\r\n");
                let why = "the publish queue is full";
                self.reject(conn, slot, status, &extra, why, Refusal::QueueFull)
            }
            Err(PublishError::Stopped) => {
                let why = "the server is shutting down";
                self.reject(conn, slot, status, cors, why, Refusal::QueueFull)
            }
            Err(PublishError::Storage) => {
                let extra = format!("{cors}Retry-After: 1\r\n");
                let why = "the history file cannot be written; nothing was published";
                self.reject(conn, slot, status, &extra, why, Refusal::Storage)
            }
            Err(PublishError::Unavailable) => {
                let extra = format!("{cors}Retry-After: 1\r\n");
                let why = "the cluster's Redis cannot be reached; the event was not acknowledged";
                self.reject(conn, slot, status, &extra, why, Refusal::Storage)
            }
        }
    }

    /// The answer to a publish that waited: its id, or why it was not published. Its place is
    /// held among answers already queued, so it cannot close the connection as other errors
    /// do: what was pipelined after it has been answered already.
    fn late_publish_answer(
        &self,
        keep_alive: bool,
        cors: &str,
        result: Result<Box<str>, PublishError>,
    ) -> Vec<u8> {
        let text = "text/plain; charset=utf-8";
        let (status, why, refusal) = match result {
            Ok(id) => return http::response(Status::OK, text, cors, id.as_bytes(), !keep_alive),
            Err(PublishError::Storage) => (
                Status::UNAVAILABLE,
                "the history file cannot be written; nothing was published",
                Refusal::Storage,
            ),
            Err(PublishError::Unavailable) => (
                Status::UNAVAILABLE,
                "the cluster's Redis cannot be reached; nothing was published",
                Refusal::Storage,
            ),
            Err(PublishError::Stopped) => (
                Status::UNAVAILABLE,
                "the server is shutting down",
                Refusal::QueueFull,
            ),
            Err(PublishError::QueueFull) => (
                Status::UNAVAILABLE,
                "the publish queue is full",
                Refusal::QueueFull,
            ),
            Err(PublishError::Invalid(why)) => {
                (Status::BAD_REQUEST, why.message(), Refusal::BadRequest)
            }
        };
        self.counters.refused(refusal);
        let extra = format!("{cors}Retry-After: 1\r\n");
        let body = format!("{why}\n");
        http::response(status, text, &extra, body.as_bytes(), !keep_alive)
    }

    /// Answers the HTTP publishers whose events the history file has settled.
    pub(crate) fn answer_waiting_publishers(&mut self) {
        let mut acks = std::mem::take(&mut self.store.acks);
        for ack in acks.drain(..) {
            let Some(slot) = self.slot_of(mio::Token(ack.waiter)) else {
                continue; // The publisher has gone.
            };
            let Some(mut conn) = self.take_conn(slot) else {
                continue;
            };
            let cors = conn.waiting_publishes.as_mut().and_then(|w| w.pop_front());
            if let Some(cors) = cors {
                let answer = self.late_publish_answer(conn.keep_alive, &cors, ack.result);
                if conn.fill_answer(Arc::from(answer)) {
                    self.due.mark(&mut conn, slot);
                }
            }
            self.put_conn(slot, conn);
        }
        self.store.acks = acks;
    }
}
