//! `GET /events` and `GET /.well-known/mercure`: a connection becomes an event stream, replays
//! what its client missed, and joins the loop's subscribers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::auth::Selector;
use crate::auth::{self, QueryTokens};
use crate::config::LogLevel;
use crate::conn::{Conn, Phase};
use crate::event_loop::EventLoop;
use crate::http::{self, Request, Status};
use crate::params;
use crate::stats::Refusal;
use crate::store::Entry;
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
                return self.reject(conn, slot, status, cors, &why, Refusal::BadRequest);
            }
        };
        #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
        let mut selectors: Vec<Selector> =
            query.topics.iter().map(|t| Selector::compile(t)).collect();
        #[cfg(feature = "jwt")]
        for (match_type, value, parameter) in &query.matchers {
            match Selector::matcher(*match_type, value, &self.keys.hub) {
                Ok(selector) => selectors.push(selector),
                Err(why) => {
                    let why = format!("{parameter}: {why}");
                    let status = Status::BAD_REQUEST;
                    return self.reject(conn, slot, status, cors, &why, Refusal::BadRequest);
                }
            }
        }
        let tokens = QueryTokens {
            token: query.token.as_deref(),
            authorization: query.authorization.as_deref(),
        };
        let now = SystemTime::now();
        let reading = match auth::may_subscribe(&self.config, &self.keys, request, tokens, now) {
            Ok(reading) => reading,
            Err(denied) => {
                let extra = format!("{cors}{}", denied.challenge(&self.keys));
                let (status, refusal) = (denied.status, denied.refusal);
                return self.reject(conn, slot, status, &extra, &denied.why, refusal);
            }
        };
        if hub && selectors.is_empty() {
            let why = "Missing \"topic\" parameter: a Mercure subscription names its topics (or, in Mercure 1.0, its match parameters)";
            let status = Status::BAD_REQUEST;
            return self.reject(conn, slot, status, cors, why, Refusal::BadRequest);
        }
        // What the stream asks for as the stream hook and the counts see it: topics, and
        // Mercure 1.0's matchers too.
        let asked: Vec<String> = if self.host.wants_heads() {
            selectors.iter().map(|s| s.as_str().to_owned()).collect()
        } else {
            Vec::new()
        };
        if !self.host_allows(conn, slot, request, &asked, false, cors) {
            return;
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
        conn.subscription = Subscription::of(selectors, reading.private);
        #[cfg(feature = "jwt")]
        self.announce_subscriptions(slot, &query.matchers, reading.grants.as_ref());
        if let Some(expires) = reading.expires {
            // The stream closes when its token expires (see `token_expired` in the loop).
            let left = expires.duration_since(now).unwrap_or_default();
            self.set_deadline(conn, slot, left.min(LONGEST_EXPIRY));
        }
        // The header wins: a browser's reconnect sends it, and the query is usually the first
        // connection's.
        let last_id = request
            .last_event_id
            .as_deref()
            .filter(|id| !id.is_empty())
            .or(query.last_event_id.as_deref());
        // A hub's answer to a replay names where it starts (`Mercure-Last-Event-ID`), which
        // only the replay knows: the head's place is held until then.
        let cursor_head = cfg!(feature = "jwt") && hub && last_id.is_some();
        if cursor_head {
            conn.hold_answer();
        } else if cors.is_empty() {
            conn.push(self.stream_head.clone());
        } else {
            conn.push(Arc::from(http::stream_head(cors)));
        }
        if let Some(retry) = &self.retry {
            conn.push(retry.clone());
        }
        if let Some(last_id) = last_id {
            match self.replay(conn, slot, last_id) {
                Some(cursor) => {
                    if cursor_head {
                        conn.fill_answer(cursor_stream_head(cors, cursor));
                    }
                }
                None => {
                    // A cluster looks the id up in Redis: the stream joins the subscribers
                    // with its replay (`answer_waiting_subscribers`), and its head then.
                    if cursor_head {
                        let token = self.token(slot).0;
                        self.waiting_heads
                            .push((token, Box::from(cors), Box::from(last_id)));
                    }
                    self.due.mark(conn, slot);
                    return;
                }
            }
        }
        self.add_subscriber(conn, slot);
    }

    /// Queues the retained events after `last_id` that the stream may have, after a `: gap`
    /// comment when that id is no longer retained. `earliest` asks for every retained event,
    /// as in Mercure: no gap then. Returns where the replay starts (the id it follows, or
    /// `earliest` for the whole history), or `None` when the store looks the id up in Redis
    /// first.
    fn replay(&mut self, conn: &mut Conn, slot: u32, last_id: &str) -> Option<String> {
        let before = conn.out_bytes;
        let mut cursor = EARLIEST.to_owned();
        if last_id != EARLIEST {
            let token = self.token(slot).0;
            let replay = self.store.replay(last_id, token)?;
            if replay.gap {
                conn.push(self.gap.clone());
            } else {
                cursor = last_id.to_owned();
            }
            push_matching(conn, replay.entries);
        } else {
            push_matching(conn, self.store.history());
        }
        conn.replay_allowance = conn.out_bytes - before;
        Some(cursor)
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
                        let waiting = self
                            .waiting_heads
                            .iter()
                            .position(|(w, _, _)| *w == late.waiter);
                        if let Some((_, cors, last_id)) =
                            waiting.map(|i| self.waiting_heads.swap_remove(i))
                        {
                            let cursor = if events.gap {
                                EARLIEST.to_owned()
                            } else {
                                last_id.into()
                            };
                            conn.fill_answer(cursor_stream_head(&cors, cursor));
                        }
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

/// The head of a hub's stream that answers a replay: `Mercure-Last-Event-ID` names the event
/// the replay follows, or `earliest`.
fn cursor_stream_head(cors: &str, cursor: String) -> Arc<[u8]> {
    // Ids never hold CR, LF or NUL (publishing refuses them), and a Last-Event-ID came in a
    // header or a decoded query: one line either way, but a query's could hold a control.
    let cursor: String = cursor.chars().filter(|c| !c.is_control()).collect();
    Arc::from(http::stream_head(&format!(
        "{cors}Mercure-Last-Event-ID: {cursor}\r\n"
    )))
}

/// Queues for `conn` the frames of the `entries` its subscription wants (topics, and for a
/// private event the token's selectors).
fn push_matching<'a>(conn: &mut Conn, entries: impl Iterator<Item = &'a Entry>) {
    for entry in entries {
        if conn.subscription.wants(entry) {
            conn.push(entry.frame.clone());
        }
    }
}
