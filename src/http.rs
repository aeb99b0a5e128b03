//! HTTP/1.1 request heads (parsed with httparse) and the bytes of every response ssed sends.
//!
//! A head is re-parsed from its first byte each time more of it arrives; nothing is kept from a
//! partial parse. Every value ssed needs later is copied out, so the read buffer can be released
//! as soon as the head is complete.

use std::fmt::Write as _;

use crate::mercure::ACCESS_COOKIE;

/// Longest request head accepted, request line included.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most header lines accepted in one head.
const MAX_HEADERS: usize = 64;

/// The request methods ssed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `OPTIONS`, the CORS preflight.
    Options,
    /// Anything else.
    Other,
}

/// What ssed keeps of a request head.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Option<Method>,
    pub path: String,
    pub query: String,
    pub keep_alive: bool,
    pub last_event_id: Option<String>,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// As sent: a u64, so that a length beyond a 32-bit `usize` is still a number, refused as
    /// too large (`413`) rather than as malformed.
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub expect_continue: bool,
    pub origin: Option<String>,
    /// `Referer`, which stands for a missing `Origin` in the check of a cookie-authenticated
    /// publish.
    pub referer: Option<String>,
    /// The value of the `mercureAuthorization` cookie: a token, as a browser sends it.
    pub token_cookie: Option<String>,
    /// The value of Mercure 1.0's `__Secure-mercure_access_token` cookie.
    pub access_cookie: Option<String>,
    /// The request names a proxy hop (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`).
    pub proxied: bool,
    /// The whole head as received, kept only when the host's access hook will read its header
    /// lines (see `hooks::AccessRequest`).
    pub head: Option<Box<[u8]>>,
}

/// How a method is named in an error message.
pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Options => "OPTIONS",
        Method::Other => "this method",
    }
}

impl Request {
    /// The method, `Other` when unknown.
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Other)
    }
}

/// The outcome of parsing what has arrived so far.
// A head is parsed once per request and moved on at once: boxing the request would cost an
// allocation each time to save stack bytes no one holds.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// More bytes are needed.
    Partial,
    /// A whole head of `len` bytes.
    Complete { request: Request, len: usize },
    /// The head cannot be accepted; answer with this status and close.
    Invalid(Status, &'static str),
}

/// Parses a request head from the start of `buf`.
pub fn parse(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Head::Invalid(Status::HEAD_TOO_LARGE, "request head too large")
        }
        Ok(httparse::Status::Partial) => Head::Partial,
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
            Head::Invalid(Status::HEAD_TOO_LARGE, "request head too large")
        }
        Ok(httparse::Status::Complete(len)) => match copy_request(&req) {
            Ok(request) => Head::Complete { request, len },
            Err(why) => Head::Invalid(Status::BAD_REQUEST, why),
        },
        Err(httparse::Error::TooManyHeaders) => {
            Head::Invalid(Status::HEAD_TOO_LARGE, "too many header lines")
        }
        Err(_) => Head::Invalid(Status::BAD_REQUEST, "malformed request"),
    }
}

fn copy_request(req: &httparse::Request) -> Result<Request, &'static str> {
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err("the request target must be a path");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let http11 = req.version == Some(1);
    let mut out = Request {
        method: Some(method),
        path: path.to_owned(),
        query: query.to_owned(),
        keep_alive: http11,
        ..Request::default()
    };
    for header in req.headers.iter() {
        let name = header.name;
        // Only the headers ssed uses are decoded: a Latin-1 cookie or user agent is no reason
        // to refuse a request.
        let value = || -> Result<&str, &'static str> {
            std::str::from_utf8(header.value)
                .map(str::trim)
                .map_err(|_| "header values must be UTF-8")
        };
        if name.eq_ignore_ascii_case("last-event-id") {
            out.last_event_id = Some(value()?.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            out.authorization = Some(value()?.to_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            out.content_type = Some(value()?.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value()?).ok_or("invalid Content-Length")?;
            if out.content_length.is_some_and(|seen| seen != length) {
                return Err("conflicting Content-Length headers");
            }
            out.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            out.expect_continue = value()?.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("origin") {
            out.origin = Some(value()?.to_owned());
        } else if name.eq_ignore_ascii_case("referer") {
            out.referer = Some(value()?.to_owned());
        } else if name.eq_ignore_ascii_case("cookie") {
            if out.token_cookie.is_none() {
                out.token_cookie = cookie(header.value, TOKEN_COOKIE).map(str::to_owned);
            }
            if out.access_cookie.is_none() {
                out.access_cookie = cookie(header.value, ACCESS_COOKIE).map(str::to_owned);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            out.keep_alive = connection_keeps_alive(value()?, out.keep_alive);
        } else if name.eq_ignore_ascii_case("forwarded")
            || name.eq_ignore_ascii_case("x-forwarded-for")
            || name.eq_ignore_ascii_case("x-real-ip")
        {
            out.proxied = true;
        }
    }
    if out.chunked && out.content_length.is_some() {
        return Err("both Transfer-Encoding and Content-Length");
    }
    Ok(out)
}

/// The cookie that carries a token, as Mercure 0.x names it.
pub const TOKEN_COOKIE: &str = "mercureAuthorization";

/// The value of the cookie `name` in a `Cookie` header (`a=1; b=2`), without the double quotes
/// RFC 6265 allows around it. Other cookies are none of ssed's business, whatever their bytes;
/// a value that is not UTF-8 is no token.
pub(crate) fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    header.split(|&b| b == b';').find_map(|pair| {
        let at = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii());
        if key != name.as_bytes() {
            return None;
        }
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        std::str::from_utf8(value).ok()
    })
}

fn parse_content_length(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn connection_keeps_alive(value: &str, default: bool) -> bool {
    let mut keep = default;
    for token in value.split(',').map(str::trim) {
        if token.eq_ignore_ascii_case("close") {
            return false;
        }
        if token.eq_ignore_ascii_case("keep-alive") {
            keep = true;
        }
    }
    keep
}

/// An HTTP status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    pub const OK: Status = Status(200);
    pub const NO_CONTENT: Status = Status(204);
    pub const BAD_REQUEST: Status = Status(400);
    pub const UNAUTHORIZED: Status = Status(401);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const TIMEOUT: Status = Status(408);
    pub const LENGTH_REQUIRED: Status = Status(411);
    pub const BODY_TOO_LARGE: Status = Status(413);
    pub const HEAD_TOO_LARGE: Status = Status(431);
    pub const UNAVAILABLE: Status = Status(503);

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Unknown",
        }
    }
}

/// Builds a whole response: status line, `extra` header lines (each ending in CRLF), a
/// Content-Length, and the body. `close` adds `Connection: close`.
pub fn response(
    status: Status,
    content_type: &str,
    extra: &str,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut head = String::with_capacity(128 + extra.len());
    let _ = write!(head, "HTTP/1.1 {} {}\r\n", status.0, status.reason());
    if !content_type.is_empty() {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    head.push_str(extra);
    let _ = write!(head, "Content-Length: {}\r\n", body.len());
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A plain-text error response that says what was wrong; the connection is closed after it.
pub fn error(status: Status, extra: &str, why: &str) -> Vec<u8> {
    let body = format!("{why}\n");
    response(
        status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
        true,
    )
}

/// The head of an event stream, and the comment line every stream opens with. No
/// Content-Length: the stream ends when the connection does.
///
/// The comment is there because some proxies (nginx over HTTP/2) hold a response head back
/// until the first bytes of its body arrive, and a browser's `EventSource` opens only once the
/// head has come: a stream with nothing to send yet would look stuck. A comment never reaches
/// `onmessage`.
pub fn stream_head(extra: &str) -> Vec<u8> {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n",
    );
    head.push_str(extra);
    head.push_str("\r\n");
    head.push_str(STREAM_OPENING);
    head.into_bytes()
}

/// The comment line after an event stream's head.
pub const STREAM_OPENING: &str = ":\n\n";

/// The interim response a client waits for after `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Request {
        match parse(buf) {
            Head::Complete { request, len } => {
                assert_eq!(len, buf.len());
                request
            }
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn a_head_split_at_every_byte_is_partial_until_whole() {
        let head = b"GET /events?topic=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 42\r\n\r\n";
        for cut in 0..head.len() {
            assert_eq!(parse(&head[..cut]), Head::Partial, "cut at {cut}");
        }
        let request = complete(head);
        assert_eq!(request.method(), Method::Get);
        assert_eq!(request.path, "/events");
        assert_eq!(request.query, "topic=a");
        assert_eq!(request.last_event_id.as_deref(), Some("42"));
        assert!(request.keep_alive);
    }

    #[test]
    fn headers_are_copied_out() {
        let request = complete(
            b"POST /publish HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\
              Authorization: Bearer s3cret\r\nExpect: 100-continue\r\nOrigin: http://a.test\r\n\
              X-Forwarded-For: 10.0.0.1\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(request.method(), Method::Post);
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert_eq!(request.content_length, Some(12));
        assert_eq!(request.authorization.as_deref(), Some("Bearer s3cret"));
        assert!(request.expect_continue);
        assert_eq!(request.origin.as_deref(), Some("http://a.test"));
        assert!(request.proxied);
        assert!(!request.keep_alive);
    }

    #[test]
    fn only_the_headers_used_must_be_utf8() {
        let latin1 = b"GET /health HTTP/1.1\r\nUser-Agent: caf\xe9\r\nCookie: \xff\r\n\r\n";
        assert_eq!(complete(latin1).path, "/health");
        let bad = b"GET /events HTTP/1.1\r\nLast-Event-ID: \xff\r\n\r\n";
        assert!(matches!(parse(bad), Head::Invalid(Status::BAD_REQUEST, _)));
    }

    #[test]
    fn the_token_cookie_is_found_among_others() {
        let request = complete(
            b"GET /events HTTP/1.1\r\nCookie: a=1; mercureAuthorizationX=no\r\n\
              Cookie: theme=\xe9; mercureAuthorization=\"ey.J.x\"; b=2\r\n\
              Referer: https://a.test/page?x=1\r\n\r\n",
        );
        assert_eq!(request.token_cookie.as_deref(), Some("ey.J.x"));
        assert_eq!(request.referer.as_deref(), Some("https://a.test/page?x=1"));
        assert_eq!(cookie(b"mercureAuthorization=t", TOKEN_COOKIE), Some("t"));
        assert_eq!(
            cookie(b" x = 1 ;mercureAuthorization= t ", TOKEN_COOKIE),
            Some("t")
        );
        assert_eq!(cookie(b"mercureauthorization=t", TOKEN_COOKIE), None);
        assert_eq!(cookie(b"mercureAuthorization=\xff", TOKEN_COOKIE), None);
        assert_eq!(cookie(b"", TOKEN_COOKIE), None);
    }

    #[test]
    fn a_content_length_beyond_4_gib_is_a_number_on_every_target() {
        let request = complete(b"POST /p HTTP/1.1\r\nContent-Length: 5000000000\r\n\r\n");
        assert_eq!(request.content_length, Some(5_000_000_000));
        let most = b"POST /p HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n";
        assert_eq!(
            complete(most).content_length,
            Some(9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn http10_closes_by_default() {
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET /x HTTP/9.9\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"POST /p HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST /p HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST /p HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Head::Invalid(Status::BAD_REQUEST, _)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversized_heads_are_refused_with_431() {
        let mut big = b"GET /events HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert!(matches!(
            parse(&big),
            Head::Invalid(Status::HEAD_TOO_LARGE, _)
        ));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse(&many),
            Head::Invalid(Status::HEAD_TOO_LARGE, _)
        ));
    }

    #[test]
    fn responses_carry_length_and_close() {
        let bytes = error(Status::NOT_FOUND, "", "no such path");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 13\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nno such path\n"));
    }
}
