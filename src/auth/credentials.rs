//! Where a request carries its token, and the check that keeps a browser's cookie from
//! publishing on behalf of a page on another site.

use std::borrow::Cow;

use super::policy::Denied;
use super::token::bearer;
use crate::config::Cors;
use crate::http::{Request, Status};
use crate::stats::Refusal;

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: Bearer`.
    Header,
    /// The `mercureAuthorization` cookie, which a browser sends by itself.
    Cookie,
    /// Mercure 1.0's `__Secure-mercure_access_token` cookie.
    AccessCookie,
    /// The `authorization` query parameter.
    Query,
}

/// The token a request presents, in the order the Mercure protocol gives: the bearer header,
/// then the cookie (1.0's, then 0.x's), then the `authorization` query parameter (`query`).
pub fn presented<'a>(request: &'a Request, query: Option<&'a str>) -> Option<(&'a str, Source)> {
    if let Some(token) = bearer(request.authorization.as_deref()) {
        return Some((token, Source::Header));
    }
    if let Some(token) = request.access_cookie.as_deref() {
        return Some((token, Source::AccessCookie));
    }
    if let Some(token) = request.token_cookie.as_deref() {
        return Some((token, Source::Cookie));
    }
    query.map(|token| (token, Source::Query))
}

/// A publish authenticated by the cookie must come from a page of an allowed origin (its
/// `Origin`, or else its `Referer`, among `--cors-origin`, or any with `*`), as in Mercure:
/// otherwise any site the user visits could make the browser publish with the user's cookie.
pub fn check_cookie_origin(request: &Request, cors: &Cors) -> Result<(), Denied> {
    let origin = match (&request.origin, &request.referer) {
        (Some(origin), _) => origin.as_str(),
        (None, Some(referer)) => origin_of(referer),
        (None, None) => {
            return Err(forbidden(
                "publishing with the mercureAuthorization cookie needs an Origin or Referer header",
            ));
        }
    };
    let allowed = match cors {
        Cors::Any => true,
        Cors::Origins(list) => list.iter().any(|o| o == origin),
        Cors::Off => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(
            "this origin may not publish with the mercureAuthorization cookie (see --cors-origin)",
        ))
    }
}

/// `scheme://host[:port]` of a URL: what its `Origin` would have been.
fn origin_of(url: &str) -> &str {
    // A byte search: no substring searcher for three bytes (the tiny daemon counts its size).
    let Some(scheme_end) = url.as_bytes().windows(3).position(|w| w == b"://") else {
        return url;
    };
    let authority = scheme_end + 3;
    let end = url[authority..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority + i);
    &url[..end]
}

fn forbidden(why: &'static str) -> Denied {
    Denied {
        status: Status::FORBIDDEN,
        why: Cow::Borrowed(why),
        refusal: Refusal::Forbidden,
        challenge: super::policy::Challenge::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_cookie_then_query() {
        let mut request = Request {
            authorization: Some("Bearer from-header".into()),
            token_cookie: Some("from-cookie".into()),
            ..Request::default()
        };
        let query = Some("from-query");
        assert_eq!(
            presented(&request, query),
            Some(("from-header", Source::Header))
        );
        request.authorization = Some("Basic dXNlcjpwYXNz".into());
        assert_eq!(
            presented(&request, query),
            Some(("from-cookie", Source::Cookie))
        );
        request.token_cookie = None;
        assert_eq!(
            presented(&request, query),
            Some(("from-query", Source::Query))
        );
        assert_eq!(presented(&request, None), None);
    }

    #[test]
    fn a_cookie_publish_needs_an_allowed_origin_or_referer() {
        let cors = Cors::Origins(vec!["https://app.test".into()]);
        let with = |origin: Option<&str>, referer: Option<&str>| Request {
            origin: origin.map(Into::into),
            referer: referer.map(Into::into),
            ..Request::default()
        };
        assert_eq!(
            check_cookie_origin(&with(Some("https://app.test"), None), &cors),
            Ok(())
        );
        let referer = Some("https://app.test/books/1?x=y#z");
        assert_eq!(check_cookie_origin(&with(None, referer), &cors), Ok(()));
        for (origin, referer) in [
            (Some("https://evil.test"), referer),
            (None, Some("https://app.test.evil.test/")),
            (None, Some("https://evil.test/https://app.test")),
            (Some("null"), None),
            (None, None),
        ] {
            let denied = check_cookie_origin(&with(origin, referer), &cors).unwrap_err();
            assert_eq!(denied.status, Status::FORBIDDEN, "{origin:?} {referer:?}");
        }
        let any = with(Some("https://evil.test"), None);
        assert_eq!(check_cookie_origin(&any, &Cors::Any), Ok(()));
        assert!(check_cookie_origin(&any, &Cors::Off).is_err());
        assert!(check_cookie_origin(&with(None, None), &Cors::Any).is_err());
    }

    #[test]
    fn origin_of_a_referer() {
        assert_eq!(origin_of("https://a.test:8443/p?q"), "https://a.test:8443");
        assert_eq!(origin_of("http://a.test"), "http://a.test");
        assert_eq!(origin_of("http://a.test#x"), "http://a.test");
        assert_eq!(origin_of("nonsense"), "nonsense");
    }
}
