//! Who may publish and who may subscribe, and to what: the static tokens of `--publish-token`
//! and `--subscribe-token`, JSON Web Tokens verified with `--publisher-jwt-key` and
//! `--subscriber-jwt-key` (feature `jwt`), and the rule that publishing without either is for
//! loopback peers only, never through a proxy.
//!
//! A publisher learns here which topics it may publish to ([`Publishing`]); whether the event's
//! topics are among them is checked once its body has been read. A subscriber learns which
//! private events its stream may read, and until when ([`Reading`]).

use std::borrow::Cow;
use std::time::SystemTime;

use super::selector::Selectors;
use super::token::{bearer, constant_time_eq};
use crate::config::Config;
use crate::event::{Event, Topics};
use crate::http::{Request, Status};
use crate::stats::Refusal;

#[cfg(feature = "jwt")]
use super::access_token::{self, Grants, Role, TrustedIssuer};
#[cfg(feature = "jwt")]
use super::credentials::{self, Source};
#[cfg(feature = "jwt")]
use super::jwt::{self, Key};
#[cfg(feature = "jwt")]
use crate::mercure::Hub;

/// Why a request is refused, and how to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: Status,
    /// What the client is told; never any part of a token.
    pub why: Cow<'static, str>,
    pub refusal: Refusal,
    /// How the `WWW-Authenticate` challenge is written.
    pub challenge: Challenge,
}

/// The `WWW-Authenticate` header of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// None (a `403` of the 0.x protocol, a malformed request).
    None,
    /// `Bearer`, as the 0.x protocol and the static tokens have it.
    Bearer,
    /// Mercure 1.0 (RFC 6750 and RFC 9728): `Bearer`, the error code if any (`invalid_token`,
    /// `insufficient_scope`, `invalid_request`), and where the hub's metadata is.
    #[cfg(feature = "jwt")]
    Mercure(Option<&'static str>),
}

impl Denied {
    /// Extra header lines of the refusal: a `401` names the scheme it wants; a 1.0 refusal
    /// also the error and the metadata of the hub of `keys`.
    #[cfg_attr(not(feature = "jwt"), allow(unused_variables))]
    pub fn challenge(&self, keys: &Keys) -> String {
        match self.challenge {
            Challenge::None => String::new(),
            Challenge::Bearer => "WWW-Authenticate: Bearer\r\n".into(),
            #[cfg(feature = "jwt")]
            Challenge::Mercure(error) => {
                let hub = &keys.hub;
                let error = error.map_or(String::new(), |e| format!("error=\"{e}\", "));
                format!(
                    "WWW-Authenticate: Bearer {error}resource_metadata=\"{}\"\r\n",
                    hub.metadata_url()
                )
            }
        }
    }

    /// The refusal as Mercure 1.0 words it, for a request that spoke 1.0.
    #[cfg(feature = "jwt")]
    fn mercure(mut self, error: Option<&'static str>) -> Denied {
        self.challenge = Challenge::Mercure(error);
        self
    }
}

fn unauthorized(why: impl Into<Cow<'static, str>>) -> Denied {
    Denied {
        status: Status::UNAUTHORIZED,
        why: why.into(),
        refusal: Refusal::Unauthorized,
        challenge: Challenge::Bearer,
    }
}

/// The keys JSON Web Tokens are verified with, made once from the configuration, and the hub
/// whose resource identifier 1.0 tokens must name.
#[derive(Debug)]
pub struct Keys {
    #[cfg(feature = "jwt")]
    publisher: Option<Key>,
    #[cfg(feature = "jwt")]
    subscriber: Option<Key>,
    /// Mercure 1.0's trusted issuers and their keys.
    #[cfg(feature = "jwt")]
    issuers: Vec<TrustedIssuer>,
    /// The hub 1.0 tokens name.
    #[cfg(feature = "jwt")]
    pub hub: Hub,
}

impl Keys {
    /// The keys of `config`, which `Config::validate` has checked: a key it refused is absent.
    #[cfg_attr(not(feature = "jwt"), allow(unused_variables))]
    pub fn new(config: &Config) -> Keys {
        #[cfg(feature = "jwt")]
        {
            let hub = config
                .hub()
                .unwrap_or_else(|_| Config::default().hub().expect("default hub"));
            let key = |text: &Option<String>| {
                text.as_deref()
                    .and_then(|text| Key::new("HS256", text).ok())
            };
            let issuers = config
                .issuers
                .iter()
                .filter_map(|i| {
                    TrustedIssuer::new(
                        &i.issuer,
                        i.publisher_key.as_deref(),
                        i.subscriber_key.as_deref(),
                    )
                    .ok()
                })
                .collect();
            Keys {
                publisher: key(&config.publisher_jwt_key),
                subscriber: key(&config.subscriber_jwt_key),
                issuers,
                hub,
            }
        }
        #[cfg(not(feature = "jwt"))]
        Keys {}
    }

    /// Whether some key verifies tokens of `role`'s endpoint: then such a token is needed.
    #[cfg(feature = "jwt")]
    fn verifies(&self, role: Role) -> bool {
        let legacy = match role {
            Role::Publisher => self.publisher.is_some(),
            Role::Subscriber => self.subscriber.is_some(),
        };
        legacy || self.issuers.iter().any(|i| i.signs(role))
    }

    /// Whether 1.0 access tokens are accepted: refusals then speak 1.0.
    #[cfg(feature = "jwt")]
    pub fn speaks_v1(&self) -> bool {
        #[cfg(feature = "jwt")]
        return !self.issuers.is_empty();
        #[cfg(not(feature = "jwt"))]
        false
    }
}

/// The topics a publisher may publish to.
#[derive(Debug)]
pub enum Publishing {
    /// Any topic: the static publish token, or the loopback rule.
    Anything,
    /// The topics its token's `mercure.publish` selectors match.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    Topics(Selectors),
    /// The topics a 1.0 access token's `publish` details match.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    Access(Selectors),
}

impl Publishing {
    /// Whether the publisher presented a Mercure 1.0 access token: its request is read by 1.0's
    /// rules.
    pub fn is_v1(&self) -> bool {
        matches!(self, Publishing::Access(_))
    }

    /// Refuses an event unless every one of its topics is allowed, as Mercure does: a token
    /// that may publish to `a` may not publish an event to both `a` and `b`.
    pub fn check(&self, event: &Event) -> Result<(), Denied> {
        let (selectors, v1) = match self {
            Publishing::Anything => return Ok(()),
            Publishing::Topics(selectors) => (selectors, false),
            Publishing::Access(selectors) => (selectors, true),
        };
        if selectors.matches_everything() {
            return Ok(());
        }
        let mut refused = None;
        Topics::of(event).any(|topic| {
            let no = !selectors.matches(topic);
            if no {
                refused = Some(shown(topic));
            }
            no
        });
        let claim = if v1 {
            "publish authorization details do"
        } else {
            "mercure.publish does"
        };
        match refused {
            None => Ok(()),
            Some(topic) => {
                let denied = Denied {
                    status: Status::FORBIDDEN,
                    why: format!("the token's {claim} not allow the topic '{topic}'").into(),
                    refusal: Refusal::Forbidden,
                    challenge: Challenge::None,
                };
                #[cfg(feature = "jwt")]
                if v1 {
                    return Err(denied.mercure(Some("insufficient_scope")));
                }
                Err(denied)
            }
        }
    }
}

/// A topic as an error message shows it: never long enough to flood a log.
fn shown(topic: &str) -> String {
    let mut text: String = topic.chars().take(64).collect();
    if text.len() < topic.len() {
        text.push_str("...");
    }
    text
}

/// What a subscriber's stream may read beyond public events.
#[derive(Debug, Default)]
pub struct Reading {
    /// The token's `mercure.subscribe` (or a 1.0 token's `subscribe` details): which private
    /// events reach the stream (none without a valid token).
    pub private: Option<Selectors>,
    /// When the token expires: the stream is closed then.
    pub expires: Option<SystemTime>,
    /// A 1.0 token's grants, for the payloads of its subscriptions.
    #[cfg(feature = "jwt")]
    pub grants: Option<Grants>,
}

/// May this request publish, and to what? `query_token` is its `authorization` query
/// parameter.
///
/// - `--publish-token`: the bearer header carrying it may publish anything.
/// - `--publisher-jwt-key`: otherwise a token (header, cookie, query) that verifies, whose
///   `mercure.publish` then says where; a cookie only from an allowed origin.
/// - Neither: only a loopback peer whose request names no proxy hop (behind a proxy every
///   request comes from loopback).
#[cfg_attr(not(feature = "jwt"), allow(unused_variables))]
pub fn may_publish(
    config: &Config,
    keys: &Keys,
    request: &Request,
    peer_loopback: bool,
    query_token: Option<&str>,
    now: SystemTime,
) -> Result<Publishing, Denied> {
    let header = bearer(request.authorization.as_deref());
    if let Some(token) = &config.publish_token
        && presents(header, token)
    {
        return Ok(Publishing::Anything);
    }
    #[cfg(feature = "jwt")]
    if keys.verifies(Role::Publisher) {
        let Some((token, source)) = credentials::presented(request, query_token) else {
            let denied = unauthorized(
                "publishing needs a token: Authorization: Bearer <JWT>, the mercureAuthorization cookie or ?authorization=",
            );
            return Err(keys.word(denied, None));
        };
        if source != Source::Header && source != Source::Query {
            credentials::check_cookie_origin(request, &config.cors)
                .map_err(|denied| keys.word(denied, None))?;
        }
        if let Some(grants) = access(keys, token, source, Role::Publisher, now)? {
            return Ok(Publishing::Access(grants.publish));
        }
        let Some(key) = &keys.publisher else {
            return Err(
                unauthorized("the token is refused: token typ is not at+jwt")
                    .mercure(Some("invalid_token")),
            );
        };
        let claims = verified(token, key, now)?;
        return Ok(Publishing::Topics(claims.publish));
    }
    if config.publish_token.is_some() {
        return Err(unauthorized(match header {
            Some(_) => WRONG_TOKEN,
            None => "publishing needs Authorization: Bearer <token>",
        }));
    }
    if !peer_loopback || request.proxied {
        return Err(Denied {
            status: Status::FORBIDDEN,
            why: Cow::Borrowed(
                "publishing without a token is allowed only from loopback, not through a proxy; set --publish-token",
            ),
            refusal: Refusal::Forbidden,
            challenge: Challenge::None,
        });
    }
    Ok(Publishing::Anything)
}

/// The tokens a subscription's query may carry.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueryTokens<'a> {
    /// `?token=`: the static subscribe token (an `EventSource` cannot set headers).
    pub token: Option<&'a str>,
    /// `?authorization=`: a JSON Web Token.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    pub authorization: Option<&'a str>,
}

/// May this request subscribe, and which private events may its stream read?
///
/// - `--subscribe-token`: presenting it (bearer header or `?token=`) admits to public events.
/// - `--subscriber-jwt-key`: a presented token (header, cookie, `?authorization=`) must verify,
///   and its `mercure.subscribe` says which private events the stream gets; without a token a
///   subscriber is refused unless `--anonymous` (and no `--subscribe-token`) lets it read public
///   events. An invalid token is refused even then, as in Mercure.
/// - Neither: anyone reads public events; private events reach no one.
#[cfg_attr(not(feature = "jwt"), allow(unused_variables))]
pub fn may_subscribe(
    config: &Config,
    keys: &Keys,
    request: &Request,
    query: QueryTokens,
    now: SystemTime,
) -> Result<Reading, Denied> {
    let header = bearer(request.authorization.as_deref());
    if let Some(token) = &config.subscribe_token
        && presents(header.or(query.token), token)
    {
        return Ok(Reading::default());
    }
    #[cfg(feature = "jwt")]
    if keys.verifies(Role::Subscriber) {
        return match credentials::presented(request, query.authorization) {
            Some((token, source)) => {
                if let Some(grants) = access(keys, token, source, Role::Subscriber, now)? {
                    return Ok(Reading {
                        private: Some(grants.subscribe.clone()),
                        expires: grants.expires,
                        grants: Some(grants),
                    });
                }
                let Some(key) = &keys.subscriber else {
                    return Err(unauthorized("the token is refused: token typ is not at+jwt")
                        .mercure(Some("invalid_token")));
                };
                let claims = verified(token, key, now)?;
                Ok(Reading {
                    private: Some(claims.subscribe),
                    expires: claims.expires,
                    grants: None,
                })
            }
            None if config.anonymous && config.subscribe_token.is_none() => Ok(Reading::default()),
            None => Err(keys.word(
                unauthorized(
                    "subscribing needs a token: Authorization: Bearer <JWT>, the mercureAuthorization cookie or ?authorization=",
                ),
                None,
            )),
        };
    }
    if config.subscribe_token.is_some() {
        return Err(unauthorized(match header.or(query.token) {
            Some(_) => WRONG_TOKEN,
            None => "subscribing needs a token: Authorization: Bearer <token> or ?token=",
        }));
    }
    Ok(Reading::default())
}

#[cfg(feature = "jwt")]
impl Keys {
    /// A refusal as the hub words it: 1.0's challenge once 1.0 tokens are accepted.
    fn word(&self, denied: Denied, error: Option<&'static str>) -> Denied {
        if self.speaks_v1() {
            denied.mercure(error)
        } else {
            denied
        }
    }
}

/// Verifies `token` as a 1.0 access token when its header says it is one and this hub trusts
/// issuers: `Ok(None)` leaves it to the 0.x rules. A 1.0 token is never taken from the URL.
#[cfg(feature = "jwt")]
fn access(
    keys: &Keys,
    token: &str,
    source: Source,
    role: Role,
    now: SystemTime,
) -> Result<Option<Grants>, Denied> {
    if keys.issuers.is_empty() || !access_token::is_access_token(token) {
        return Ok(None);
    }
    if source == Source::Query {
        return Err(Denied {
            status: Status::BAD_REQUEST,
            why: Cow::Borrowed(
                "an access token is never accepted in the URL: send it in Authorization: Bearer or the __Secure-mercure_access_token cookie",
            ),
            refusal: Refusal::BadRequest,
            challenge: Challenge::None,
        }
        .mercure(Some("invalid_request")));
    }
    access_token::verify(token, &keys.issuers, role, &keys.hub, now)
        .map(Some)
        .map_err(|e| {
            unauthorized(format!("the token is refused: {e}")).mercure(Some("invalid_token"))
        })
}

/// Verifies a JSON Web Token; the refusal says why, never what the token was.
#[cfg(feature = "jwt")]
fn verified(token: &str, key: &Key, now: SystemTime) -> Result<jwt::Claims, Denied> {
    jwt::verify(token, key, now).map_err(|e| unauthorized(format!("the token is refused: {e}")))
}

/// What a client that presented a static token other than the server's is told: that it was
/// wrong, not how.
const WRONG_TOKEN: &str = "the token is wrong";

fn presents(given: Option<&str>, token: &str) -> bool {
    given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::now()
    }

    fn publish(config: &Config, request: &Request, loopback: bool) -> Result<Publishing, Denied> {
        may_publish(config, &Keys::new(config), request, loopback, None, now())
    }

    fn subscribe(config: &Config, request: &Request, token: Option<&str>) -> Result<(), Denied> {
        let query = QueryTokens {
            token,
            authorization: None,
        };
        may_subscribe(config, &Keys::new(config), request, query, now()).map(|_| ())
    }

    #[test]
    fn publishing_without_a_token_is_for_direct_loopback_peers() {
        let config = Config::default();
        let direct = Request::default();
        let proxied = Request {
            proxied: true,
            ..Request::default()
        };
        assert!(matches!(
            publish(&config, &direct, true),
            Ok(Publishing::Anything)
        ));
        assert_eq!(
            publish(&config, &direct, false).map_err(|d| d.status).err(),
            Some(Status::FORBIDDEN)
        );
        assert_eq!(
            publish(&config, &proxied, true).map_err(|d| d.status).err(),
            Some(Status::FORBIDDEN)
        );
    }

    #[test]
    fn a_token_is_required_once_set_wherever_the_peer_is() {
        let config = Config {
            publish_token: Some("s3cret".into()),
            subscribe_token: Some("r3ad".into()),
            ..Config::default()
        };
        let with = |value: &str| Request {
            authorization: Some(value.into()),
            proxied: true,
            ..Request::default()
        };
        assert!(matches!(
            publish(&config, &with("Bearer s3cret"), false),
            Ok(Publishing::Anything)
        ));
        let denied = publish(&config, &with("Bearer nope"), true).unwrap_err();
        assert_eq!(denied.status, Status::UNAUTHORIZED);
        assert_eq!(
            denied.why, WRONG_TOKEN,
            "a wrong token is not a missing one"
        );
        let missing = publish(&config, &Request::default(), true).unwrap_err();
        assert_ne!(missing.why, WRONG_TOKEN);
        assert_eq!(
            denied.challenge(&Keys::new(&config)),
            "WWW-Authenticate: Bearer\r\n"
        );
        assert_eq!(subscribe(&config, &with("Bearer r3ad"), None), Ok(()));
        assert_eq!(
            subscribe(&config, &Request::default(), Some("r3ad")),
            Ok(())
        );
        assert!(subscribe(&config, &Request::default(), Some("x")).is_err());
    }

    #[test]
    fn every_topic_of_an_event_must_be_allowed() {
        let allowed = Publishing::Topics(Selectors::compile(["a", "https://x.test/{id}"]));
        let event = |topics: &[&str]| {
            let mut event = Event::new("");
            event.topics = topics.iter().map(|t| t.to_string()).collect();
            event
        };
        assert_eq!(allowed.check(&event(&["a"])), Ok(()));
        assert_eq!(allowed.check(&event(&["a", "https://x.test/1"])), Ok(()));
        let denied = allowed.check(&event(&["a", "b"])).unwrap_err();
        assert_eq!(denied.status, Status::FORBIDDEN);
        assert!(denied.why.contains("'b'"), "{}", denied.why);
        assert!(allowed.check(&event(&[])).is_err(), "the empty topic");
        let nothing = Publishing::Topics(Selectors::default());
        assert!(nothing.check(&event(&["a"])).is_err());
        let star = Publishing::Topics(Selectors::compile(["*"]));
        assert_eq!(star.check(&event(&[])), Ok(()));
        assert_eq!(Publishing::Anything.check(&event(&[])), Ok(()));
        let long = "t".repeat(1000);
        let why = allowed.check(&event(&[&long])).unwrap_err().why;
        assert!(why.len() < 200, "{why}");
    }
}

/// The JWT paths of the policy, with tokens signed here.
#[cfg(all(test, feature = "jwt"))]
mod jwt_tests {
    use std::time::{Duration, UNIX_EPOCH};

    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    use super::*;
    use crate::auth::jwt::BASE64URL;
    use crate::config::Cors;

    const KEY: &str = "a publisher key of at least 32 bytes";

    fn sign(claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            BASE64URL.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            BASE64URL.encode(claims)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", BASE64URL.encode(mac.finalize().into_bytes()))
    }

    fn config() -> Config {
        Config {
            publisher_jwt_key: Some(KEY.into()),
            subscriber_jwt_key: Some(KEY.into()),
            cors: Cors::Origins(vec!["https://app.test".into()]),
            ..Config::default()
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn bearer(token: &str) -> Request {
        Request {
            authorization: Some(format!("Bearer {token}")),
            ..Request::default()
        }
    }

    #[test]
    fn a_publisher_key_makes_a_token_necessary_even_on_loopback() {
        let config = config();
        let keys = Keys::new(&config);
        let denied = may_publish(&config, &keys, &Request::default(), true, None, now());
        assert_eq!(denied.unwrap_err().status, Status::UNAUTHORIZED);
        let token = sign(r#"{"mercure":{"publish":["a"]}}"#);
        let granted = may_publish(&config, &keys, &bearer(&token), false, None, now());
        let Ok(Publishing::Topics(selectors)) = granted else {
            panic!("{granted:?}");
        };
        assert!(selectors.matches("a") && !selectors.matches("b"));
        let by_query = may_publish(
            &config,
            &keys,
            &Request::default(),
            false,
            Some(&token),
            now(),
        );
        assert!(by_query.is_ok());
        let expired = sign(r#"{"exp":1600000000,"mercure":{"publish":["*"]}}"#);
        let denied = may_publish(&config, &keys, &bearer(&expired), true, None, now()).unwrap_err();
        assert_eq!(denied.status, Status::UNAUTHORIZED);
        assert_eq!(denied.why, "the token is refused: token expired");
    }

    #[test]
    fn the_static_publish_token_works_beside_the_key() {
        let config = Config {
            publish_token: Some("s3cret".into()),
            ..config()
        };
        let keys = Keys::new(&config);
        let granted = may_publish(&config, &keys, &bearer("s3cret"), false, None, now());
        assert!(matches!(granted, Ok(Publishing::Anything)));
        let denied = may_publish(&config, &keys, &bearer("s3creT"), false, None, now());
        assert_eq!(denied.unwrap_err().status, Status::UNAUTHORIZED);
    }

    #[test]
    fn a_cookie_publishes_only_from_an_allowed_origin() {
        let config = config();
        let keys = Keys::new(&config);
        let cookie = |origin: &str| Request {
            token_cookie: Some(sign(r#"{"mercure":{"publish":["*"]}}"#)),
            origin: Some(origin.into()),
            ..Request::default()
        };
        assert!(
            may_publish(
                &config,
                &keys,
                &cookie("https://app.test"),
                false,
                None,
                now()
            )
            .is_ok()
        );
        let denied = may_publish(
            &config,
            &keys,
            &cookie("https://evil.test"),
            true,
            None,
            now(),
        );
        assert_eq!(denied.unwrap_err().status, Status::FORBIDDEN);
    }

    #[test]
    fn a_subscriber_token_grants_private_topics_until_it_expires() {
        let config = config();
        let keys = Keys::new(&config);
        let token = sign(r#"{"exp":1700000060,"mercure":{"subscribe":["https://x.test/{id}"]}}"#);
        let request = Request {
            token_cookie: Some(token),
            ..Request::default()
        };
        let reading = may_subscribe(&config, &keys, &request, QueryTokens::default(), now());
        let reading = reading.unwrap();
        assert!(reading.private.unwrap().matches("https://x.test/1"));
        assert_eq!(reading.expires, Some(now() + Duration::from_secs(60)));
        // No token: refused, unless anonymous.
        let anonymous = Request::default();
        let none = may_subscribe(&config, &keys, &anonymous, QueryTokens::default(), now());
        assert_eq!(none.unwrap_err().status, Status::UNAUTHORIZED);
        let open = Config {
            anonymous: true,
            ..config.clone()
        };
        let reading = may_subscribe(&open, &keys, &anonymous, QueryTokens::default(), now());
        assert!(reading.unwrap().private.is_none());
        // A bad token is refused even when anonymous subscribers are let in.
        let forged = bearer(&format!("{}x", sign("{}")));
        let denied = may_subscribe(&open, &keys, &forged, QueryTokens::default(), now());
        assert_eq!(denied.unwrap_err().status, Status::UNAUTHORIZED);
    }
}
