//! `GET /events` and `GET /.well-known/mercure`: a connection becomes an event stream, replays
//! what its client missed, and joins the loop's subscribers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::{self, QueryTokens};
use crate::config::LogLevel;
use crate::conn::{Conn, Phase};
use crate::event_loop::EventLoop;
use crate::http::{self, Request, Status};
use crate::params;
use crate::stats::Refusal;
use crate::subscription::Subscription;

/// The `Last-Event-ID` by which a Mercure subscriber asks for the whole retained history.
const EARLIEST: &str = "earliest";

/// The longest a token's expiry is waited for. A token's `exp` may lie as far ahead as the
/// system clock reaches, and the loop's deadlines must not overflow the monotonic clock: such a
/// stream is closed after a century instead.
const LONGEST_EXPIRY: Duration = Duration::from_secs(100 * 365 * 86_400);

impl EventLoop {
    /// Opens a stream. `hub`: the Mercure hub's subscribe, which needs at least one `topic`
    /// (ssed's own `/events` without one is every topic).
    pub(super) fn subscribe(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: &Request,
        cors: &str,
        hub: bool,
    ) {
        let query = match params::subscribe(&request.query) {
            Ok(query) => query,
            Err(why) => {
                let status = Status::BAD_REQUEST;
                return self.reject(conn, slot, status, cors, why, Refusal::BadRequest);
            }
        };
        let tokens = QueryTokens {
            token: query.token.as_deref(),
            authorization: query.authorization.as_deref(),
        };
        let now = SystemTime::now();
        let reading = match auth::may_subscribe(&self.config, &self.keys, request, tokens, now) {
            Ok(reading) => reading,
            Err(denied) => {
                let extra = format!("{cors}{}", denied.challenge());
                let (status, refusal) = (denied.status, denied.refusal);
                return self.reject(conn, slot, status, &extra, &denied.why, refusal);
            }
        };
        if hub && query.topics.is_empty() {
            let why = "Missing \"topic\" parameter: a Mercure subscription names its topics";
            let status = Status::BAD_REQUEST;
            return self.reject(conn, slot, status, cors, why, Refusal::BadRequest);
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
        conn.subscription = Subscription::new(query.topics, reading.private);
        if let Some(expires) = reading.expires {
            // The stream closes when its token expires (see `token_expired` in the loop).
            let left = expires.duration_since(now).unwrap_or_default();
            self.set_deadline(conn, slot, left.min(LONGEST_EXPIRY));
        }
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

    /// Queues the retained events after `last_id` that the stream may have, after a `: gap`
    /// comment when that id is no longer retained. `earliest` asks for every retained event,
    /// as in Mercure: no gap then.
    fn replay(&mut self, conn: &mut Conn, last_id: &str) {
        let earliest = last_id == EARLIEST;
        // No event has the empty id (an empty id is one the server assigns), so asking for it
        // yields the whole history.
        let replay = self.store.replay(if earliest { "" } else { last_id });
        if replay.gap && !earliest {
            conn.push(self.gap.clone());
        }
        let before = conn.out_bytes;
        for entry in replay.entries {
            if conn.subscription.wants(entry) {
                conn.push(entry.frame.clone());
            }
        }
        conn.replay_allowance = conn.out_bytes - before;
    }
}
