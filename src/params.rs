//! Query strings and form bodies: percent-decoding, and the parameters of a publish or a
//! subscribe request.

use crate::auth::MatchType;
use crate::event::Event;
use crate::frame;
#[cfg(feature = "jwt")]
use crate::mercure::{MAX_MATCHER_LEN, MAX_MATCHERS, check_text};

/// Splits `a=1&b=2` into decoded pairs. `+` is a space; bad escapes are kept as written; a
/// value that does not decode to UTF-8 refuses the whole request.
pub fn pairs(text: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    let mut out = Vec::new();
    for part in text.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

fn decode(raw: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "parameters must be valid UTF-8")
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    let d = *digit?;
    (d as char).to_digit(16).map(|v| v as u8)
}

/// What a subscriber asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Subscribe {
    /// Topics to receive (Mercure 0.x selectors); with no matcher either, every topic.
    pub topics: Vec<String>,
    /// Mercure 1.0 topic matchers (`match`, `match_exact`, `match_urlpattern`), without
    /// duplicates, each with the parameter that named it.
    pub matchers: Vec<(MatchType, String, &'static str)>,
    pub last_event_id: Option<String>,
    /// `?token=`: the static subscribe token.
    pub token: Option<String>,
    /// `?authorization=`: a JSON Web Token.
    pub authorization: Option<String>,
}

/// Reads the query of a subscription. A parameter in Mercure 1.0's reserved `match` namespace
/// that names no matcher type this hub knows, a matcher holding a control or format character,
/// too long, or one too many is refused, naming the parameter.
pub fn subscribe(query: &str) -> Result<Subscribe, String> {
    let mut out = Subscribe::default();
    for (name, value) in pairs(query.as_bytes())? {
        if name.len() >= 5 && name.as_bytes()[..5].eq_ignore_ascii_case(b"match") {
            // Mercure 1.0 comes with JSON Web Tokens (feature jwt): the tiny build speaks 0.x.
            #[cfg(not(feature = "jwt"))]
            return Err(
                "this ssed speaks Mercure 0.x only (built without the cargo feature jwt): subscribe with topic="
                    .into(),
            );
            #[cfg(feature = "jwt")]
            {
                read_matcher(&mut out, &name, value)?;
                continue;
            }
        }
        match name.as_str() {
            "topic" if !out.topics.contains(&value) => out.topics.push(value),
            "lastEventId" | "lastEventID" | "last_event_id" => out.last_event_id = Some(value),
            "token" => out.token = Some(value),
            "authorization" => out.authorization = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

/// Takes in one parameter of the reserved `match` namespace.
#[cfg(feature = "jwt")]
fn read_matcher(out: &mut Subscribe, name: &str, value: String) -> Result<(), String> {
    let (match_type, parameter) = match name {
        "match" => (MatchType::Exact, "match"),
        "match_exact" => (MatchType::Exact, "match_exact"),
        "match_urlpattern" => (MatchType::UrlPattern, "match_urlpattern"),
        _ => {
            return Err(format!(
                "unknown parameter '{}' in the reserved match namespace: the matchers are match (or match_exact) and match_urlpattern",
                shown(name)
            ));
        }
    };
    check_text(parameter, &value)?;
    if value.len() > MAX_MATCHER_LEN {
        return Err(format!(
            "{parameter}: a matcher is at most {MAX_MATCHER_LEN} bytes"
        ));
    }
    if !out
        .matchers
        .iter()
        .any(|(t, v, _)| *t == match_type && *v == value)
    {
        out.matchers.push((match_type, value, parameter));
    }
    if out.matchers.len() > MAX_MATCHERS {
        return Err(format!(
            "{parameter}: at most {MAX_MATCHERS} matchers in one subscription"
        ));
    }
    Ok(())
}

/// How the body of a publish request is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// `application/x-www-form-urlencoded`: fields, taking precedence over the query.
    Form(&'a [u8]),
    /// Any other content type: the bytes are the data.
    Raw(&'a [u8]),
}

impl<'a> Body<'a> {
    /// Classifies a body by its content type.
    pub fn new(content_type: Option<&str>, bytes: &'a [u8]) -> Body<'a> {
        let mime = content_type
            .and_then(|ct| ct.split(';').next())
            .unwrap_or("")
            .trim();
        if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Body::Form(bytes)
        } else {
            Body::Raw(bytes)
        }
    }
}

/// Builds the event of a `POST /publish` from its query and body. A parameter that is not a
/// publish parameter is refused, naming it: `curl --data-binary hello` sends a form whose only
/// field is `hello`, and a typo such as `dat=` must not publish an empty event.
///
/// `private` makes the event private whatever its value (`private=on`, even `private=false`),
/// as in Mercure, where the field's presence is what counts. An `authorization` query
/// parameter is the publisher's token (see [`authorization`]), not part of the event.
pub fn publish(query: &str, body: Body) -> Result<Event, String> {
    publish_as(query, body, Unknown::Refused)
}

/// What becomes of a parameter that is no publish parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Refused, naming it: ssed's own rule, and its Mercure 0.x hub's.
    Refused,
    /// Ignored, as Mercure 1.0 asks of a hub (for future extensions).
    Ignored,
}

/// [`publish`], with unknown parameters treated as `unknown` says.
pub fn publish_as(query: &str, body: Body, unknown: Unknown) -> Result<Event, String> {
    let mut event = Event::default();
    let mut data: Option<String> = None;
    let mut retry: Option<String> = None;
    let query_pairs = pairs(query.as_bytes())?;
    let body_pairs = match body {
        Body::Form(bytes) => pairs(bytes)?,
        Body::Raw(bytes) if !bytes.is_empty() => {
            if query_pairs.iter().any(|(name, _)| name == "data") {
                return Err(
                    "the data parameter cannot be used with a request body that is not a form"
                        .into(),
                );
            }
            let text = std::str::from_utf8(bytes).map_err(|_| "data must be valid UTF-8")?;
            data = Some(text.to_owned());
            Vec::new()
        }
        Body::Raw(_) => Vec::new(),
    };
    let from_query = query_pairs.len();
    // Body fields come second, so they override the query's; topics from both add up.
    for (i, (name, value)) in query_pairs.into_iter().chain(body_pairs).enumerate() {
        match name.as_str() {
            "topic" => event.topics.push(value),
            "data" => data = Some(value),
            "event" | "type" => event.event_type = value,
            "id" => event.id = value,
            "retry" => retry = Some(value),
            "private" => event.private = true,
            "authorization" if i < from_query => {}
            _ if unknown == Unknown::Ignored => {}
            _ if i < from_query => return Err(unknown_parameter(&name, "query parameter")),
            _ => return Err(unknown_parameter(&name, "form field")),
        }
    }
    event.data = data.unwrap_or_default();
    if let Some(value) = retry.filter(|v| !v.is_empty()) {
        event.retry = Some(frame::parse_retry(&value).map_err(|e| e.message())?);
    }
    event.validate().map_err(|e| e.message())?;
    Ok(event)
}

/// The `authorization` query parameter of a request: the token, for a client that can set
/// neither a header nor a cookie. `None` when the query does not decode.
pub fn authorization(query: &str) -> Option<String> {
    let pairs = pairs(query.as_bytes()).ok()?;
    pairs
        .into_iter()
        .find_map(|(name, value)| (name == "authorization").then_some(value))
}

/// A name as the client wrote it, but never long enough to flood a log or a page.
fn shown(name: &str) -> String {
    let mut shown: String = name.chars().take(64).collect();
    if shown.len() < name.len() {
        shown.push_str("...");
    }
    shown
}

fn unknown_parameter(name: &str, kind: &str) -> String {
    let shown = shown(name);
    let more = "";
    let hint = if kind == "form field" {
        "; to publish a body as it is, send it with a Content-Type such as text/plain"
    } else {
        ""
    };
    format!(
        "unknown {kind} '{shown}{more}': a publish takes topic, data, event (or type), id, retry and private{hint}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_plus_decode() {
        let got = pairs(b"a=1+2&b=%E2%82%AC&c&d=%zz&e=%4").unwrap();
        let want = [
            ("a", "1 2"),
            ("b", "€"),
            ("c", ""),
            ("d", "%zz"),
            ("e", "%4"),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, want);
        assert!(pairs(b"a=%FF").is_err());
    }

    #[test]
    fn subscribe_reads_topics_and_every_last_event_id_spelling() {
        let s = subscribe("topic=a&topic=b&topic=a&lastEventId=5").unwrap();
        assert_eq!(s.topics, ["a", "b"]);
        assert_eq!(s.last_event_id.as_deref(), Some("5"));
        for key in ["lastEventID", "last_event_id"] {
            let s = subscribe(&format!("{key}=9&token=t")).unwrap();
            assert_eq!(s.last_event_id.as_deref(), Some("9"));
            assert_eq!(s.token.as_deref(), Some("t"));
        }
        assert!(subscribe("").unwrap().topics.is_empty());
    }

    #[test]
    fn form_body_overrides_query_and_topics_add_up() {
        let body = Body::new(
            Some("application/x-www-form-urlencoded"),
            b"data=body&topic=b&type=t2",
        );
        let e = publish("data=query&topic=a&event=t1&id=7&retry=100", body).unwrap();
        assert_eq!(e.data, "body");
        assert_eq!(e.topics, ["a", "b"]);
        assert_eq!(e.event_type, "t2");
        assert_eq!(e.id, "7");
        assert_eq!(e.retry, Some(100));
    }

    #[test]
    fn private_is_a_presence_and_the_token_is_no_parameter_of_the_event() {
        let form = |body: &'static [u8]| Body::new(Some("application/x-www-form-urlencoded"), body);
        for body in [
            &b"private=on"[..],
            b"private",
            b"private=",
            b"private=false",
        ] {
            assert!(publish("topic=a", form(body)).unwrap().private, "{body:?}");
        }
        assert!(publish("topic=a&private=1", form(b"")).unwrap().private);
        assert!(!publish("topic=a", form(b"data=x")).unwrap().private);
        let e = publish("authorization=ey.J.x&topic=a", form(b"data=x")).unwrap();
        assert_eq!((e.topics, e.data.as_str()), (vec!["a".to_string()], "x"));
        assert_eq!(
            authorization("a=1&authorization=ey.J.x").as_deref(),
            Some("ey.J.x")
        );
        assert_eq!(authorization("a=1"), None);
        // In a form, it is an unknown field: Mercure reads the token from the URL only.
        let err = publish("", form(b"authorization=x")).unwrap_err();
        assert!(err.contains("'authorization'"), "{err}");
    }

    #[test]
    fn raw_body_is_the_data() {
        let body = Body::new(Some("application/json"), b"{\"a\":1}\n");
        let e = publish("topic=news&event=update", body).unwrap();
        assert_eq!(e.data, "{\"a\":1}\n");
        assert_eq!(e.topics, ["news"]);
        assert_eq!(e.event_type, "update");
    }

    #[test]
    fn raw_body_with_data_parameter_is_refused() {
        assert!(publish("data=x", Body::new(None, b"y")).is_err());
    }

    #[test]
    fn no_data_at_all_is_empty_data() {
        let e = publish("topic=a", Body::new(None, b"")).unwrap();
        assert_eq!(e.data, "");
        let e = publish("data=q", Body::new(Some("text/plain"), b"")).unwrap();
        assert_eq!(e.data, "q");
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let form = |body: &'static [u8]| Body::new(Some("application/x-www-form-urlencoded"), body);
        // What `curl --data-binary hello` sends: a form whose only field is `hello`.
        let err = publish("", form(b"hello")).unwrap_err();
        assert!(
            err.contains("'hello'") && err.contains("form field"),
            "{err}"
        );
        assert!(err.contains("Content-Type"), "{err}");
        let err = publish("", form(b"dat=hello")).unwrap_err();
        assert!(err.contains("'dat'"), "{err}");
        let err = publish("topic=a&tpoic=b", Body::new(None, b"")).unwrap_err();
        assert!(err.contains("query parameter 'tpoic'"), "{err}");
        let long = format!("{}=1", "x".repeat(1000));
        let err = publish(&long, Body::new(None, b"")).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn bad_fields_are_refused() {
        assert!(publish("event=a%0Ab", Body::new(None, b"")).is_err());
        assert!(publish("id=1%0D", Body::new(None, b"")).is_err());
        assert!(publish("retry=soon", Body::new(None, b"")).is_err());
        assert!(publish("", Body::new(Some("text/plain"), b"\xff")).is_err());
        assert!(
            publish(
                "",
                Body::new(Some("application/x-www-form-urlencoded"), b"data=%ff")
            )
            .is_err()
        );
    }
}
