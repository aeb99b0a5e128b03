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
}

/// How the server is protected, and where it can be reached.
pub struct Access {
    pub subscribe: Credential,
    pub publish: Credential,
    pub publish_socket: Option<PathBuf>,
}

/// The lines to print at start, each ending in a newline.
pub fn where_to_look(addr: SocketAddr, access: &Access, demo: bool) -> String {
    let addr = reachable(addr);
    let mut out = String::new();
    if demo {
        out.push_str("ssed: --demo publishes the current time every second to topic 'demo'\n");
    }
    let topic = if demo { "?topic=demo" } else { "" };
    let viewer_note = match access.subscribe {
        Credential::Nothing => "",
        _ => " (it asks for the token)",
    };
    out.push_str(&format!(
        "ssed: viewer:    http://{addr}/{topic}{viewer_note}\n"
    ));
    let subscribe = match access.subscribe {
        Credential::Nothing => format!("curl -N \"http://{addr}/events{topic}\""),
        Credential::TokenFromEnv(variable) => {
            let join = if demo { '&' } else { '?' };
            format!("curl -N \"http://{addr}/events{topic}{join}token=${variable}\"")
        }
        Credential::TokenFromFlag(_) => {
            let join = if demo { '&' } else { '?' };
            format!("curl -N \"http://{addr}/events{topic}{join}token=TOKEN\"")
        }
        Credential::Jwt(_) => format!(
            "curl -N -H \"Authorization: Bearer $SUBSCRIBER_JWT\" \"http://{addr}/events{topic}\""
        ),
    };
    out.push_str(&format!("ssed: subscribe: {subscribe}\n"));
    let bearer = match access.publish {
        Credential::Nothing => String::new(),
        Credential::TokenFromEnv(variable) => {
            format!(" -H \"Authorization: Bearer ${variable}\"")
        }
        Credential::TokenFromFlag(_) => " -H \"Authorization: Bearer TOKEN\"".into(),
        Credential::Jwt(_) => " -H \"Authorization: Bearer $PUBLISHER_JWT\"".into(),
    };
    let publish_topic = if demo { " -d topic=demo" } else { "" };
    out.push_str(&format!(
        "ssed: publish:   curl{bearer}{publish_topic} -d data=hello http://{addr}/publish\n"
    ));
    if let Some(path) = &access.publish_socket {
        out.push_str(&format!(
            "ssed: publish:   curl --unix-socket {}{publish_topic} -d data=hello \
             http://localhost/publish   (the publish socket: no token)\n",
            path.display()
        ));
    }
    for (credential, what) in [
        (access.subscribe, "subscribing"),
        (access.publish, "publishing"),
    ] {
        match credential {
            Credential::TokenFromFlag(flag) => out.push_str(&format!(
                "ssed: {what}: TOKEN stands for the value of {flag}\n"
            )),
            Credential::Jwt(flag) => {
                let (variable, claim) = if what == "publishing" {
                    ("$PUBLISHER_JWT", "mercure.publish")
                } else {
                    ("$SUBSCRIBER_JWT", "mercure.subscribe")
                };
                out.push_str(&format!(
                    "ssed: {what}: {variable} stands for a JSON Web Token (HS256) signed with \
                     {flag}; its {claim} lists the topics it may use\n"
                ));
            }
            Credential::Nothing | Credential::TokenFromEnv(_) => {}
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
        where_to_look(addr, access, demo)
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
