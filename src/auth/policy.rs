//! Who may publish and who may subscribe: the static tokens of `--publish-token` and
//! `--subscribe-token`, and the rule that publishing without a token is for loopback peers
//! only, never through a proxy.

use super::token::{bearer, constant_time_eq};
use crate::config::Config;
use crate::http::{Request, Status};
use crate::stats::Refusal;

/// Why a request is refused, and how to say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub status: Status,
    pub why: &'static str,
    pub refusal: Refusal,
}

impl Denied {
    /// Extra header lines of the refusal: a `401` names the scheme it wants.
    pub fn challenge(&self) -> &'static str {
        if self.status == Status::UNAUTHORIZED {
            "WWW-Authenticate: Bearer\r\n"
        } else {
            ""
        }
    }
}

/// May this request publish? With a publish token, it must carry it; without one, only a
/// loopback peer whose request names no proxy hop may (behind a proxy every request comes from
/// loopback).
pub fn may_publish(config: &Config, request: &Request, peer_loopback: bool) -> Result<(), Denied> {
    match &config.publish_token {
        Some(token) if !presents(bearer(request.authorization.as_deref()), token) => Err(Denied {
            status: Status::UNAUTHORIZED,
            why: "publishing needs Authorization: Bearer <token>",
            refusal: Refusal::Unauthorized,
        }),
        Some(_) => Ok(()),
        None if !peer_loopback || request.proxied => Err(Denied {
            status: Status::FORBIDDEN,
            why: "publishing without a token is allowed only from loopback, not through a proxy; set --publish-token",
            refusal: Refusal::Forbidden,
        }),
        None => Ok(()),
    }
}

/// May this request subscribe? With a subscribe token, it must carry it in the bearer header or
/// as `?token=` (`query_token`, since an `EventSource` cannot set headers).
pub fn may_subscribe(
    config: &Config,
    request: &Request,
    query_token: Option<&str>,
) -> Result<(), Denied> {
    let Some(token) = &config.subscribe_token else {
        return Ok(());
    };
    let given = bearer(request.authorization.as_deref()).or(query_token);
    if presents(given, token) {
        Ok(())
    } else {
        Err(Denied {
            status: Status::UNAUTHORIZED,
            why: "subscribing needs a token: Authorization: Bearer <token> or ?token=",
            refusal: Refusal::Unauthorized,
        })
    }
}

fn presents(given: Option<&str>, token: &str) -> bool {
    given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_without_a_token_is_for_direct_loopback_peers() {
        let config = Config::default();
        let direct = Request::default();
        let proxied = Request {
            proxied: true,
            ..Request::default()
        };
        assert_eq!(may_publish(&config, &direct, true), Ok(()));
        assert_eq!(
            may_publish(&config, &direct, false).map_err(|d| d.status),
            Err(Status::FORBIDDEN)
        );
        assert_eq!(
            may_publish(&config, &proxied, true).map_err(|d| d.status),
            Err(Status::FORBIDDEN)
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
        assert_eq!(may_publish(&config, &with("Bearer s3cret"), false), Ok(()));
        let denied = may_publish(&config, &with("Bearer nope"), true).unwrap_err();
        assert_eq!(denied.status, Status::UNAUTHORIZED);
        assert_eq!(denied.challenge(), "WWW-Authenticate: Bearer\r\n");
        assert_eq!(may_subscribe(&config, &with("Bearer r3ad"), None), Ok(()));
        assert_eq!(
            may_subscribe(&config, &Request::default(), Some("r3ad")),
            Ok(())
        );
        assert!(may_subscribe(&config, &Request::default(), Some("x")).is_err());
    }
}
