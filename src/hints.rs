//! The daemon's lines at start that say where to look: the viewer, a subscriber and a publish
//! to paste, right for how the server is protected. (A module of the `ssed` binary.)
//!
//! A secret is never printed: a token from the environment is named by its variable, so that a
//! pasted line works in a shell that has it; a token given as a flag is written `TOKEN`, and a
//! JSON Web Token `$SUBSCRIBER_JWT` or `$PUBLISHER_JWT`, each explained on a line of its own.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// What a request must carry to be let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Nothing (for publishing: a loopback peer).
    Nothing,
    /// The static token, from this environment variable.
    TokenFromEnv(&'static str),
    /// The static token, given with this flag.
    TokenFromFlag(&'static str),
    /// A JSON Web Token signed with the key of this flag.
    Jwt(&'static str),
    /// A Mercure 1.0 access token from a trusted issuer (`--issuer`).
    AccessToken,
}

/// How the server is protected, and where it can be reached.
pub struct Access {
    pub subscribe: Credential,
    pub publish: Credential,
    pub publish_socket: Option<PathBuf>,
}

/// The lines to print at start, each ending in a newline. (Built of pieces rather than
/// formatted: the tiny daemon counts its bytes.)
pub fn where_to_look(scheme: &str, addr: SocketAddr, access: &Access, demo: bool) -> String {
    let base = format!("{scheme}://{}", reachable(addr));
    let jwt = cfg!(feature = "jwt");
    let mut out = String::new();
    let mut line = |parts: &[&str]| {
        out.push_str("ssed: ");
        parts.iter().for_each(|part| out.push_str(part));
        out.push('\n');
    };
    if demo {
        line(&["--demo publishes the current time every second to topic 'demo'"]);
    }
    let topic = if demo { "?topic=demo" } else { "" };
    let asks = match access.subscribe {
        Credential::Nothing => "",
        _ => " (it asks for the token)",
    };
    line(&["viewer:    ", &base, "/", topic, asks]);
    let join = if demo { "&" } else { "?" };
    match access.subscribe {
        Credential::TokenFromEnv(variable) => line(&[
            "subscribe: curl -N \"",
            &base,
            "/events",
            topic,
            join,
            "token=$",
            variable,
            "\"",
        ]),
        Credential::TokenFromFlag(_) => line(&[
            "subscribe: curl -N \"",
            &base,
            "/events",
            topic,
            join,
            "token=TOKEN\"",
        ]),
        Credential::Jwt(_) | Credential::AccessToken if jwt => line(&[
            "subscribe: curl -N -H \"Authorization: Bearer $SUBSCRIBER_JWT\" \"",
            &base,
            "/events",
            topic,
            "\"",
        ]),
        _ => line(&["subscribe: curl -N \"", &base, "/events", topic, "\""]),
    }
    let (bearer, variable) = match access.publish {
        Credential::TokenFromEnv(variable) => (" -H \"Authorization: Bearer $", variable),
        Credential::TokenFromFlag(_) => (" -H \"Authorization: Bearer TOKEN", ""),
        Credential::Jwt(_) | Credential::AccessToken if jwt => {
            (" -H \"Authorization: Bearer $PUBLISHER_JWT", "")
        }
        _ => ("", ""),
    };
    let quote = if bearer.is_empty() { "" } else { "\"" };
    let publish_topic = if demo { " -d topic=demo" } else { "" };
    line(&[
        "publish:   curl",
        bearer,
        variable,
        quote,
        publish_topic,
        " -d data=hello ",
        &base,
        "/publish",
    ]);
    if let Some(path) = access
        .publish_socket
        .as_ref()
        .filter(|_| cfg!(feature = "sockets"))
    {
        line(&[
            "publish:   curl --unix-socket ",
            &path.display().to_string(),
            publish_topic,
            " -d data=hello http://localhost/publish   (the publish socket: no token)",
        ]);
    }
    for (credential, what, variable, claim) in [
        (
            access.subscribe,
            "subscribing",
            "$SUBSCRIBER_JWT",
            "mercure.subscribe",
        ),
        (
            access.publish,
            "publishing",
            "$PUBLISHER_JWT",
            "mercure.publish",
        ),
    ] {
        match credential {
            Credential::TokenFromFlag(flag) => {
                line(&[what, ": TOKEN stands for the value of ", flag])
            }
            Credential::Jwt(key) if jwt => line(&[
                what,
                ": ",
                variable,
                " stands for a JSON Web Token (HS256) signed with ",
                key,
                "; its ",
                claim,
                " lists the topics it may use",
            ]),
            Credential::AccessToken if jwt => line(&[
                what,
                ": ",
                variable,
                " stands for a Mercure 1.0 access token (typ at+jwt) from a trusted --issuer, \
                 signed with its key; its authorization_details list the topics it may use",
            ]),
            _ => {}
        }
    }
    out
}

/// The address to show for reaching `addr` from this machine: a wildcard address is reached
/// through loopback.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(access: &Access, demo: bool) -> Vec<String> {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        where_to_look("http", addr, access, demo)
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn jwt_keys_name_a_jwt_never_a_query_token() {
        let access = Access {
            subscribe: Credential::Jwt("--subscriber-jwt-key"),
            publish: Credential::Jwt("--publisher-jwt-key"),
            publish_socket: None,
        };
        let out = lines(&access, false);
        assert_eq!(
            out[1],
            "ssed: subscribe: curl -N -H \"Authorization: Bearer $SUBSCRIBER_JWT\" \
             \"http://127.0.0.1:8080/events\""
        );
        assert!(out.iter().all(|l| !l.contains("token=")), "{out:?}");
        assert!(out[2].contains("Bearer $PUBLISHER_JWT"), "{out:?}");
        assert!(
            out[3].contains("$SUBSCRIBER_JWT stands for a JSON Web Token")
                && out[3].contains("--subscriber-jwt-key"),
            "{out:?}"
        );
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn issuers_keys_ask_for_an_access_token() {
        let access = Access {
            subscribe: Credential::AccessToken,
            publish: Credential::AccessToken,
            publish_socket: None,
        };
        let out = lines(&access, false);
        assert!(out[1].contains("Bearer $SUBSCRIBER_JWT"), "{out:?}");
        assert!(out[2].contains("Bearer $PUBLISHER_JWT"), "{out:?}");
        assert!(
            out[3].contains("$SUBSCRIBER_JWT stands for a Mercure 1.0 access token")
                && out[4].contains("$PUBLISHER_JWT stands for a Mercure 1.0 access token"),
            "{out:?}"
        );
    }

    #[test]
    fn a_token_from_a_flag_is_a_placeholder_never_a_variable() {
        let access = Access {
            subscribe: Credential::TokenFromFlag("--subscribe-token"),
            publish: Credential::TokenFromEnv("SSED_PUBLISH_TOKEN"),
            publish_socket: Some("/run/ssed/publish.sock".into()),
        };
        let out = lines(&access, true);
        assert!(
            out[2].ends_with("/events?topic=demo&token=TOKEN\""),
            "{out:?}"
        );
        assert!(
            !out.iter().any(|l| l.contains("SSED_SUBSCRIBE_TOKEN")),
            "{out:?}"
        );
        assert!(out[3].contains("Bearer $SSED_PUBLISH_TOKEN"), "{out:?}");
        assert!(out[4].starts_with("ssed: publish:   curl --unix-socket /run/ssed/publish.sock"));
        assert_eq!(
            out[5],
            "ssed: subscribing: TOKEN stands for the value of --subscribe-token"
        );
    }
}
