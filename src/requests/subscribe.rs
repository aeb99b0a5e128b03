//! `GET /events`: a connection becomes an event stream, replays what its client missed, and
//! joins the loop's subscribers.

use std::sync::Arc;

use crate::auth;
use crate::config::LogLevel;
use crate::conn::{Conn, Phase};
use crate::event_loop::EventLoop;
use crate::http::{self, Request, Status};
use crate::params;
use crate::stats::Refusal;

impl EventLoop {
    pub(super) fn subscribe(&mut self, conn: &mut Conn, slot: u32, request: &Request, cors: &str) {
        let query = match params::subscribe(&request.query) {
            Ok(query) => query,
            Err(why) => {
                let status = Status::BAD_REQUEST;
                return self.reject(conn, slot, status, cors, why, Refusal::BadRequest);
            }
        };
        if let Err(denied) = auth::may_subscribe(&self.config, request, query.token.as_deref()) {
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
        if self.streams_full() {
            let extra = format!("{cors}Retry-After: 5\r\n");
            let why = "too many subscribers, try again later";
            let status = Status::UNAVAILABLE;
            self.log(
                LogLevel::Info,
                format_args!(
                    "refused a subscriber: {} streams open",
                    self.config.max_clients
                ),
            );
            return self.reject(conn, slot, status, &extra, why, Refusal::MaxClients);
        }
        conn.phase = Phase::Streaming;
        conn.input.release();
        conn.deadline = None;
        conn.topics = query
            .topics
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        let head = if cors.is_empty() {
            self.stream_head.clone()
        } else {
            Arc::from(http::stream_head(cors))
        };
        conn.push(head);
        if let Some(retry) = &self.retry {
            conn.push(retry.clone());
        }
        // The header wins: a browser's reconnect sends it, and the query is usually the first
        // connection's.
        let last_id = request
            .last_event_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .or(query.last_event_id.as_deref());
        if let Some(last_id) = last_id {
            self.replay(conn, last_id);
        }
        self.add_subscriber(conn, slot);
    }

    /// Queues the retained events after `last_id` for `conn`, after a `: gap` comment when that
    /// id is no longer retained.
    fn replay(&mut self, conn: &mut Conn, last_id: &str) {
        let replay = self.store.replay(last_id);
        if replay.gap {
            conn.push(self.gap.clone());
        }
        let before = conn.out_bytes;
        for entry in replay.entries {
            if entry.matches(&conn.topics) {
                conn.push(entry.frame.clone());
            }
        }
        conn.replay_allowance = conn.out_bytes - before;
    }
}
