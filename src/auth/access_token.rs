//! Mercure 1.0 access tokens: JWT access tokens as RFC 9068 profiles them, validated as the
//! draft asks (its "Token Validation" and "Authorization Details" sections).
//!
//! - the header's `typ` is `at+jwt` (or `application/at+jwt`), so that an ID token or a 0.x
//!   token is never taken for one;
//! - `alg` is on the allowlist (the algorithms this build verifies: HS256, and RS256 and ES256
//!   with the features `jwt-rs256` and `jwt-es256`) and is the algorithm of the key chosen;
//!   `none` never is;
//! - `iss` names one of the trusted issuers, and only that issuer's key for the endpoint's role
//!   (publisher or subscriber) verifies the signature: keys are never pooled across issuers and
//!   never taken from the token (`jwk`, `jku`, `x5u` are ignored);
//! - `exp` is required and enforced, `nbf` enforced when present, `aud` (a string or an array)
//!   contains the hub's resource identifier;
//! - `authorization_details`: every detail of type `https://mercure.rocks/authorization-detail`
//!   must be well formed (a non-empty `actions` array of strings, a non-empty `topics` array of
//!   matcher objects of a type this hub knows, a `payload` object if any) or the whole token is
//!   refused; unknown actions grant nothing; details of other types are someone else's.
//!
//! Every refusal is `invalid_token` to the client; the reason (never any part of the token) is
//! in the response body and the log.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::jwt::{self, Key, MAX_TOKEN_LEN, Part};
use super::selector::{MatchType, Selector, Selectors};
use crate::mercure::{DETAIL_TYPE, Hub, MAX_MATCHER_LEN, check_text};

/// Most Mercure authorization details in one token, and most topic matchers in one detail.
pub const MAX_DETAILS: usize = 32;
pub const MAX_DETAIL_TOPICS: usize = 64;

/// The endpoint a token is presented to, which chooses the issuer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Subscriber,
}

/// One trusted issuer: the `iss` its tokens carry, and the keys its publishers' and
/// subscribers' tokens are signed with.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    id: String,
    publisher: Option<Key>,
    subscriber: Option<Key>,
}

impl TrustedIssuer {
    /// An issuer and its keys, each written `[ALG:]TEXT` (see [`parse_key`]).
    pub fn new(
        id: &str,
        publisher: Option<&str>,
        subscriber: Option<&str>,
    ) -> Result<TrustedIssuer, String> {
        if id.is_empty() {
            return Err("an issuer identifier cannot be empty".into());
        }
        let key = |text: Option<&str>, role: &str| {
            text.map(|text| parse_key(text).map_err(|e| format!("the {role} key: {e}")))
                .transpose()
        };
        Ok(TrustedIssuer {
            id: id.to_owned(),
            publisher: key(publisher, "publisher")?,
            subscriber: key(subscriber, "subscriber")?,
        })
    }

    fn key(&self, role: Role) -> Option<&Key> {
        match role {
            Role::Publisher => self.publisher.as_ref(),
            Role::Subscriber => self.subscriber.as_ref(),
        }
    }

    /// Whether this issuer signs tokens for `role`.
    pub fn signs(&self, role: Role) -> bool {
        self.key(role).is_some()
    }
}

/// A key written `HS256:SECRET`, `RS256:PEM`, `ES256:PEM`, or a bare HS256 secret (as the 0.x
/// keys are written). The algorithm is the only one its tokens may use.
pub fn parse_key(text: &str) -> Result<Key, jwt::KeyError> {
    for algorithm in ["HS256", "RS256", "ES256"] {
        if let Some(rest) = text
            .strip_prefix(algorithm)
            .and_then(|t| t.strip_prefix(':'))
        {
            return Key::new(algorithm, rest);
        }
    }
    Key::new("HS256", text)
}

/// What a verified 1.0 token grants.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// The topics it may publish to.
    pub publish: Selectors,
    /// The topics whose private updates it may read (and the subscription API it may query).
    pub subscribe: Selectors,
    /// The `payload` of each `subscribe` detail that has one, in the token's order, with the
    /// detail's topics: a subscription's payload is the first whose topics match its matcher.
    pub payloads: Vec<(Selectors, Box<str>)>,
    /// `exp`: the stream is closed then.
    pub expires: Option<SystemTime>,
}

impl Grants {
    /// The payload a subscription whose matcher is `matcher` carries: that of the first
    /// `subscribe` detail whose topics match the matcher as if it were a topic.
    pub fn payload_for(&self, matcher: &str) -> Option<&str> {
        self.payloads
            .iter()
            .find(|(topics, _)| topics.matches(matcher))
            .map(|(_, payload)| &**payload)
    }
}

/// Why an access token is refused. The messages never quote the token or any part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(pub String);

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, TokenError> {
    Err(TokenError(why.into()))
}

impl From<jwt::JwtError> for TokenError {
    fn from(e: jwt::JwtError) -> TokenError {
        TokenError(e.to_string())
    }
}

/// Whether `token`'s header says it is an access token (`typ` `at+jwt`): such a token is
/// validated here, never by the 0.x rules.
pub fn is_access_token(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    if header.len() > MAX_TOKEN_LEN {
        return false;
    }
    jwt::decode_object(header, Part::Header)
        .ok()
        .and_then(|header| header.get("typ").and_then(Value::as_str).map(is_at_jwt))
        .unwrap_or(false)
}

/// `at+jwt`, with or without `application/`, in any case (RFC 7515 section 4.1.9).
fn is_at_jwt(typ: &str) -> bool {
    let lower = typ.to_ascii_lowercase();
    lower == "at+jwt" || lower == "application/at+jwt"
}

/// Verifies `token` as an access token presented to an endpoint of `role`, and returns what it
/// grants.
pub fn verify(
    token: &str,
    issuers: &[TrustedIssuer],
    role: Role,
    hub: &Hub,
    now: SystemTime,
) -> Result<Grants, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return refuse(format!("token longer than {MAX_TOKEN_LEN} bytes"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return refuse("token is not three parts separated by dots");
    };
    let header_object = jwt::decode_object(header, Part::Header)?;
    let algorithm = check_header(&header_object)?;
    let claims_object = jwt::decode_object(claims, Part::Claims)?;
    let Some(Value::String(iss)) = claims_object.get("iss") else {
        return refuse("token has no iss string");
    };
    let Some(issuer) = issuers.iter().find(|issuer| issuer.id == *iss) else {
        return refuse("token issuer is not trusted");
    };
    let Some(key) = issuer.key(role) else {
        return refuse(match role {
            Role::Publisher => "token issuer has no publisher key here",
            Role::Subscriber => "token issuer has no subscriber key here",
        });
    };
    if algorithm != key.algorithm() {
        return refuse("token algorithm is not the issuer's key's");
    }
    let signature = jwt::decode(signature, Part::Signature)?;
    key.check(&token[..header.len() + 1 + claims.len()], &signature)?;
    let expires = check_times(&claims_object, now)?;
    check_audience(&claims_object, hub.resource())?;
    let mut grants = read_details(&claims_object, hub)?;
    grants.expires = expires;
    Ok(grants)
}

/// The header's algorithm, once `typ` says access token and nothing asks for extensions.
fn check_header(header: &Map<String, Value>) -> Result<&str, TokenError> {
    match header.get("typ") {
        Some(Value::String(typ)) if is_at_jwt(typ) => {}
        _ => return refuse("token typ is not at+jwt"),
    }
    let Some(Value::String(alg)) = header.get("alg") else {
        return refuse("token header has no alg string");
    };
    if alg.eq_ignore_ascii_case("none") {
        return refuse("unsigned token (alg none) refused");
    }
    if !ALLOWED.contains(&alg.as_str()) {
        return refuse("token algorithm is not allowed");
    }
    if header.contains_key("crit") {
        return refuse("token header has crit extensions");
    }
    Ok(alg)
}

/// The algorithms this build verifies: the allowlist.
const ALLOWED: &[&str] = &[
    "HS256",
    #[cfg(feature = "jwt-rs256")]
    "RS256",
    #[cfg(feature = "jwt-es256")]
    "ES256",
];

/// `exp` (required) and `nbf`; returns when the token expires.
fn check_times(
    claims: &Map<String, Value>,
    now: SystemTime,
) -> Result<Option<SystemTime>, TokenError> {
    let Some(exp) = jwt::numeric_date(claims, "exp")? else {
        return refuse("token has no exp");
    };
    let nbf = jwt::numeric_date(claims, "nbf")?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if now >= exp {
        return refuse("token expired");
    }
    if nbf.is_some_and(|nbf| now < nbf) {
        return refuse("token not valid yet (nbf)");
    }
    Ok(jwt::seconds_to_time(exp))
}

/// `aud`, a string or an array of strings, must name the hub's resource identifier.
fn check_audience(claims: &Map<String, Value>, resource: &str) -> Result<(), TokenError> {
    let named = match claims.get("aud") {
        Some(Value::String(aud)) => aud == resource,
        Some(Value::Array(auds)) => {
            if auds.iter().any(|aud| !aud.is_string()) {
                return refuse("token aud must be a string or an array of strings");
            }
            auds.iter().any(|aud| aud.as_str() == Some(resource))
        }
        None => return refuse("token has no aud"),
        Some(_) => return refuse("token aud must be a string or an array of strings"),
    };
    if named {
        Ok(())
    } else {
        refuse("token aud does not name this hub's resource identifier")
    }
}

/// The grants of `authorization_details`: none when absent.
fn read_details(claims: &Map<String, Value>, hub: &Hub) -> Result<Grants, TokenError> {
    let details = match claims.get("authorization_details") {
        None => return Ok(Grants::default()),
        Some(Value::Array(details)) => details,
        Some(_) => return refuse("token authorization_details is not an array"),
    };
    let mut publish = Vec::new();
    let mut subscribe = Vec::new();
    let mut payloads = Vec::new();
    let mut mercure = 0;
    for detail in details {
        let Value::Object(detail) = detail else {
            return refuse("an authorization detail is not an object");
        };
        match detail.get("type") {
            Some(Value::String(kind)) if kind == DETAIL_TYPE => {}
            Some(Value::String(_)) => continue, // Another API's detail.
            _ => return refuse("an authorization detail has no type string"),
        }
        mercure += 1;
        if mercure > MAX_DETAILS {
            return refuse(format!(
                "more than {MAX_DETAILS} Mercure authorization details"
            ));
        }
        let detail = read_detail(detail, hub)?;
        if detail.publish {
            publish.extend(detail.topics.iter().cloned());
        }
        if detail.subscribe {
            subscribe.extend(detail.topics.iter().cloned());
            if let Some(payload) = detail.payload {
                payloads.push((Selectors::of(detail.topics), payload));
            }
        }
    }
    Ok(Grants {
        publish: Selectors::of(publish),
        subscribe: Selectors::of(subscribe),
        payloads,
        expires: None,
    })
}

struct Detail {
    publish: bool,
    subscribe: bool,
    topics: Vec<Selector>,
    payload: Option<Box<str>>,
}

fn read_detail(detail: &Map<String, Value>, hub: &Hub) -> Result<Detail, TokenError> {
    let Some(Value::Array(actions)) = detail.get("actions") else {
        return refuse("a Mercure authorization detail has no actions array");
    };
    if actions.is_empty() {
        return refuse("a Mercure authorization detail has no actions");
    }
    let (mut publish, mut subscribe) = (false, false);
    for action in actions {
        match action.as_str() {
            Some("publish") => publish = true,
            Some("subscribe") => subscribe = true,
            Some(_) => {} // An action this hub does not know grants nothing.
            None => return refuse("a Mercure authorization detail's action is not a string"),
        }
    }
    let Some(Value::Array(topics)) = detail.get("topics") else {
        return refuse("a Mercure authorization detail has no topics array");
    };
    if topics.is_empty() {
        return refuse("a Mercure authorization detail has no topics");
    }
    if topics.len() > MAX_DETAIL_TOPICS {
        return refuse(format!(
            "a Mercure authorization detail has more than {MAX_DETAIL_TOPICS} topics"
        ));
    }
    let topics = topics
        .iter()
        .map(|topic| read_matcher(topic, hub))
        .collect::<Result<Vec<_>, _>>()?;
    let payload = match detail.get("payload") {
        None => None,
        Some(payload @ Value::Object(_)) => Some(payload.to_string().into_boxed_str()),
        Some(_) => return refuse("a Mercure authorization detail's payload is not an object"),
    };
    Ok(Detail {
        publish,
        subscribe,
        topics,
        payload,
    })
}

/// One `{"match": ..., "match_type": ...}` object of a detail's `topics`.
fn read_matcher(topic: &Value, hub: &Hub) -> Result<Selector, TokenError> {
    let Value::Object(topic) = topic else {
        return refuse("a topic matcher of a Mercure authorization detail is not an object");
    };
    let Some(Value::String(source)) = topic.get("match") else {
        return refuse("a topic matcher has no match string");
    };
    let match_type = match topic.get("match_type") {
        None => MatchType::Exact,
        Some(Value::String(name)) => match MatchType::named(name) {
            Some(match_type) => match_type,
            None => return refuse("a topic matcher's match_type is not one this hub supports"),
        },
        Some(_) => return refuse("a topic matcher's match_type is not a string"),
    };
    if source.len() > MAX_MATCHER_LEN {
        return refuse(format!(
            "a topic matcher is longer than {MAX_MATCHER_LEN} bytes"
        ));
    }
    check_text("a topic matcher", source).map_err(TokenError)?;
    Selector::matcher(match_type, source, hub)
        .map_err(|why| TokenError(format!("a topic matcher is refused: {why}")))
}

#[cfg(test)]
mod tests;
