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
use crate::store::Entry;

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
        if let Some(last_id) = last_id
            && !self.replay(conn, slot, last_id)
        {
            // A cluster looks the id up in Redis: the stream head goes out now, and the stream
            // joins the subscribers with its replay (`answer_waiting_subscribers`).
            self.due.mark(conn, slot);
            return;
        }
        self.add_subscriber(conn, slot);
    }

    /// Queues the retained events after `last_id` for `conn`, after a `: gap` comment when that
    /// id is no longer retained. False when the store looks it up in Redis first.
    fn replay(&mut self, conn: &mut Conn, slot: u32, last_id: &str) -> bool {
        let token = self.token(slot).0;
        let Some(replay) = self.store.replay(last_id, token) else {
            return false;
        };
        if replay.gap {
            conn.push(self.gap.clone());
        }
        let before = conn.out_bytes;
        push_matching(conn, replay.entries);
        conn.replay_allowance = conn.out_bytes - before;
        true
    }

    /// Sends the streams whose replay waited for Redis what they missed, and makes them
    /// subscribers. Called after the turn's events were delivered and kept: a replay holds every
    /// event up to the last one delivered, the fan-out sends the rest.
    pub(crate) fn answer_waiting_subscribers(&mut self) {
        for late in self.store.late_replays() {
            let Some(slot) = self.slot_of(mio::Token(late.waiter)) else {
                continue; // The subscriber has gone.
            };
            let Some(mut conn) = self.take_conn(slot) else {
                continue;
            };
            // Not a subscriber yet: its place in the subscriber list is unset.
            if conn.phase == Phase::Streaming && conn.sub_index == u32::MAX {
                match late.events {
                    Some(events) => {
                        if events.gap {
                            conn.push(self.gap.clone());
                        }
                        let before = conn.out_bytes;
                        push_matching(&mut conn, events.looked_up.iter());
                        push_matching(&mut conn, self.store.ring_after(events.after));
                        conn.replay_allowance = conn.out_bytes - before;
                        self.add_subscriber(&mut conn, slot);
                    }
                    None => {
                        self.log(
                            LogLevel::Info,
                            format_args!(
                                "closed a stream: its replay could not be read from Redis"
                            ),
                        );
                        self.start_closing(&mut conn, slot);
                    }
                }
            }
            self.put_conn(slot, conn);
        }
    }
}

/// Queues for `conn` the frames of the `entries` it subscribed to.
fn push_matching<'a>(conn: &mut Conn, entries: impl Iterator<Item = &'a Entry>) {
    for entry in entries {
        if entry.matches(&conn.topics) {
            conn.push(entry.frame.clone());
        }
    }
}
