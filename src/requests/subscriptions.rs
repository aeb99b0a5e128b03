//! Mercure 1.0's active subscriptions, from the loop's side (`--subscriptions`): the events
//! announcing that a stream's subscriptions start and end, the registry those events keep, and
//! the subscription API (`GET /.well-known/mercure/subscriptions[/{type}/{match}[/{id}]]`),
//! authorized like a subscription to the resource's own path.
//!
//! What the documents say and how they are named is in `mercure/subscriptions.rs`.

use std::time::SystemTime;

use serde_json::json;

use crate::auth::{self, MatchType, QueryTokens};
use crate::config::LogLevel;
use crate::conn::Conn;
use crate::event::Event;
use crate::event_loop::EventLoop;
use crate::frame::{self, IdForm};
use crate::http::{Request, Status};
use crate::mercure::subscriptions::{self, Registry, Subscription};
use crate::mercure::{HUB_PATH, MERCURE_TYPE};
use crate::stats::Refusal;
use crate::store::{Entry, PublishError, Submitted};

/// The waiter of a publish nobody waits for: no connection has this token.
const NOBODY: usize = usize::MAX;

/// The active subscriptions of the loop's own streams, by connection token, and the registry
/// of every subscription the hub's events announced.
#[derive(Debug, Default)]
pub(crate) struct Active {
    streams: std::collections::HashMap<usize, Vec<Subscription>>,
    pub registry: Registry,
}

impl Active {
    /// The subscriptions of the stream with `token`, which leaves for another loop.
    #[cfg(feature = "loops")]
    pub(crate) fn release(&mut self, token: usize) -> Option<Vec<Subscription>> {
        self.streams.remove(&token)
    }

    /// Takes in the subscriptions of a stream handed over from another loop.
    #[cfg(feature = "loops")]
    pub(crate) fn adopt(&mut self, token: usize, list: Vec<Subscription>) {
        self.streams.insert(token, list);
    }
}

impl EventLoop {
    /// Announces the subscriptions of a stream that just opened: one per 1.0 matcher, under a
    /// fresh subscriber id, each with its payload from the token.
    pub(super) fn announce_subscriptions(
        &mut self,
        slot: u32,
        matchers: &[(MatchType, String, &'static str)],
        grants: Option<&auth::access_token::Grants>,
    ) {
        if !self.config.subscriptions || matchers.is_empty() {
            return;
        }
        let subscriber = subscriptions::new_subscriber_id();
        let list: Vec<Subscription> = matchers
            .iter()
            .map(|(match_type, matcher, _)| Subscription {
                match_type: *match_type,
                matcher: matcher.as_str().into(),
                subscriber: subscriber.clone(),
                payload: grants.and_then(|g| g.payload_for(matcher)).map(Box::from),
            })
            .collect();
        for subscription in &list {
            self.publish_subscription_event(subscription, true);
        }
        let token = self.token(slot).0;
        self.active.streams.insert(token, list);
    }

    /// Announces that the subscriptions of the stream with `token` have ended.
    pub(crate) fn retire_subscriptions(&mut self, token: usize) {
        if let Some(list) = self.active.streams.remove(&token) {
            for subscription in &list {
                self.publish_subscription_event(subscription, false);
            }
        }
    }

    fn publish_subscription_event(&mut self, subscription: &Subscription, active: bool) {
        let hub = &self.keys.hub;
        let event = Event::new(subscription.document(hub, active).to_string())
            .topic(subscription.topic(hub))
            .event_type(MERCURE_TYPE)
            .private();
        let submitted = self.store.publish(&event, NOBODY, IdForm::Urn);
        if let Submitted::Done(Err(
            why @ (PublishError::QueueFull | PublishError::Storage | PublishError::Unavailable),
        )) = submitted
        {
            self.log(
                LogLevel::Info,
                format_args!("a subscription event was not published: {why}"),
            );
        }
    }

    /// Takes in the subscription events among `batch`, delivered this turn, from whichever
    /// node they came.
    pub(crate) fn note_subscription_events(&mut self, batch: &[Entry]) {
        for entry in batch {
            if entry.is_private() && entry.event_type() == MERCURE_TYPE {
                self.active.registry.apply(&frame::data_of(&entry.frame));
            }
        }
    }

    /// `GET` on the subscription API: `rest` is the path after `/.well-known/mercure`.
    pub(super) fn subscription_api(
        &mut self,
        conn: &mut Conn,
        slot: u32,
        request: &Request,
        cors: &str,
    ) {
        let rest = &request.path[HUB_PATH.len()..];
        // The resource is authorized as the topic of its public path.
        let topic = format!(
            "{}{}",
            self.keys
                .hub
                .subscriptions_path()
                .trim_end_matches("/subscriptions"),
            rest
        );
        let query = QueryTokens {
            token: None,
            authorization: None,
        };
        let reading = match auth::may_subscribe(
            &self.config,
            &self.keys,
            request,
            query,
            SystemTime::now(),
        ) {
            Ok(reading) => reading,
            Err(denied) => return self.deny(conn, slot, cors, denied),
        };
        let allowed = reading.private.as_ref().is_some_and(|p| p.matches(&topic));
        if !allowed {
            let denied = auth::Denied {
                status: if reading.private.is_some() {
                    Status::FORBIDDEN
                } else {
                    Status::UNAUTHORIZED
                },
                why: "the subscription API needs a token that grants subscribe on this resource"
                    .into(),
                refusal: Refusal::Forbidden,
                challenge: auth::Challenge::Mercure(
                    reading.private.as_ref().map(|_| "insufficient_scope"),
                ),
            };
            return self.deny(conn, slot, cors, denied);
        }
        let segments: Vec<&str> = rest
            .trim_start_matches("/subscriptions")
            .split('/')
            .skip(1)
            .collect();
        let decoded: Option<Vec<String>> =
            segments.iter().map(|s| subscriptions::decode(s)).collect();
        let body = match decoded.as_deref() {
            Some([]) => Some(self.collection(&topic, None)),
            Some([kind, matcher]) => {
                MatchType::named(kind).map(|kind| self.collection(&topic, Some((kind, matcher))))
            }
            Some([kind, matcher, subscriber]) => MatchType::named(kind).and_then(|kind| {
                self.active
                    .registry
                    .list(Some((kind, matcher)))
                    .into_iter()
                    .find(|s| *s.subscriber == **subscriber)
                    .map(|s| s.document(&self.keys.hub, true))
            }),
            _ => None,
        };
        let Some(body) = body else {
            let why = "no such subscription";
            return self.reject(conn, slot, Status::NOT_FOUND, cors, why, Refusal::NotFound);
        };
        let cursor = self.store.last_id().unwrap_or_else(|| "earliest".into());
        let extra = format!(
            "{cors}{}Link: <{}>; rel=\"mercure\"; last-event-id=\"{cursor}\"; type=\"mercure\"; content-type=\"application/json\"\r\nETag: \"{cursor}\"\r\nCache-Control: must-revalidate\r\n",
            expose(cors),
            self.keys.hub.url()
        );
        self.ok(
            conn,
            slot,
            "application/json",
            &extra,
            body.to_string().as_bytes(),
        );
    }

    fn collection(&self, id: &str, matcher: Option<(MatchType, &str)>) -> serde_json::Value {
        let hub = &self.keys.hub;
        let list: Vec<serde_json::Value> = self
            .active
            .registry
            .list(matcher)
            .iter()
            .map(|s| s.document(hub, true))
            .collect();
        json!({"id": id, "type": "subscriptions", "subscriptions": list})
    }

    /// Answers a refusal with its challenge.
    pub(super) fn deny(&mut self, conn: &mut Conn, slot: u32, cors: &str, denied: auth::Denied) {
        let extra = format!("{cors}{}", denied.challenge(&self.keys));
        let (status, refusal) = (denied.status, denied.refusal);
        self.reject(conn, slot, status, &extra, &denied.why, refusal);
    }
}

/// With CORS, cross-origin pages may read the `Link` header (its `last-event-id`).
pub(super) fn expose(cors: &str) -> &'static str {
    if cors.is_empty() {
        ""
    } else {
        "Access-Control-Expose-Headers: Link\r\n"
    }
}
