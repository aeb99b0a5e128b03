//! The hub's identity as Mercure 1.0 sees it: its public URL (the base of relative topics and
//! URL patterns, and the root of the namespace reserved to the hub), its resource identifier
//! (the `aud` its access tokens must name), and where its protected resource metadata lives
//! (RFC 9728).

use std::fmt;

/// Why a hub URL or resource identifier is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError(pub String);

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hub's public URL and resource identifier, checked once at start.
#[derive(Debug, Clone)]
pub struct Hub {
    url: String,
    /// The URL's path: `/.well-known/mercure` unless a proxy maps another path to ssed's.
    path: String,
    resource: String,
    /// Where the metadata of `resource` is, by RFC 9728's derivation.
    metadata_url: String,
    /// The URL parsed, as relative topics and patterns are resolved against it.
    #[cfg(feature = "urlpattern")]
    base: url::Url,
}

impl Hub {
    /// A hub whose public URL is `url` (`http://` or `https://`, no query or fragment) and
    /// whose resource identifier is `resource`, the URL itself when `None`.
    pub fn new(url: &str, resource: Option<&str>) -> Result<Hub, HubError> {
        let (_, path) = split_url(url, "the hub URL")?;
        let resource = resource.unwrap_or(url);
        let (origin, resource_path) = split_url(resource, "the resource identifier")?;
        let metadata_url = format!(
            "{origin}/.well-known/oauth-protected-resource{}",
            resource_path.trim_end_matches('/')
        );
        Ok(Hub {
            url: url.to_owned(),
            path: path.trim_end_matches('/').to_owned(),
            resource: resource.to_owned(),
            metadata_url,
            #[cfg(feature = "urlpattern")]
            base: url::Url::parse(url).map_err(|e| HubError(format!("the hub URL: {e}")))?,
        })
    }

    /// The public URL, as `Link: <...>; rel="mercure"` names it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The resource identifier, which a 1.0 token's `aud` must contain.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The URL of the protected resource metadata document.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The path under which the hub publishes subscription events and serves the subscription
    /// API: the hub URL's path and `/subscriptions`.
    pub fn subscriptions_path(&self) -> String {
        format!("{}/subscriptions", self.path)
    }

    /// The base relative topics and URL patterns are resolved against.
    #[cfg(feature = "urlpattern")]
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// Whether `topic` addresses the namespace reserved to the hub: resolved against the hub
    /// URL, its path (dot segments removed, escaped unreserved characters decoded) is the hub
    /// URL's path or below it, whatever its scheme and host. A topic that does not parse as a
    /// URL reference addresses nothing.
    pub fn is_reserved(&self, topic: &str) -> bool {
        #[cfg(feature = "urlpattern")]
        {
            let Ok(resolved) = self.base.join(topic) else {
                return false;
            };
            let path = decode_unreserved(resolved.path());
            under(&path, &self.path)
        }
        // Without a URL parser, the safe side: any topic whose decoded text holds the hub's
        // path is refused.
        #[cfg(not(feature = "urlpattern"))]
        decode_unreserved(topic).contains(self.path.as_str())
    }
}

/// `path` is `root` or below it.
#[cfg(feature = "urlpattern")]
fn under(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Decodes the `%XX` escapes of unreserved characters (RFC 3986: letters, digits, `-._~`),
/// which name the same resource as the characters themselves; other escapes stay.
fn decode_unreserved(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            let c = hi << 4 | lo;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    (*digit? as char).to_digit(16).map(|v| v as u8)
}

/// `(scheme://authority, path)` of an `http` or `https` URL without query or fragment.
fn split_url<'a>(url: &'a str, what: &str) -> Result<(&'a str, &'a str), HubError> {
    let refuse = |why: &str| Err(HubError(format!("{what} {why}")));
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return refuse("must be an http:// or https:// URL");
    };
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must have no query, fragment, spaces or controls");
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    if host_end == 0 {
        return refuse("has no host");
    }
    let split = url.len() - rest.len() + host_end;
    Ok((&url[..split], &url[split..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lives_where_rfc_9728_derives_it() {
        let hub = Hub::new("https://hub.example.com/.well-known/mercure", None).unwrap();
        assert_eq!(
            hub.resource(),
            "https://hub.example.com/.well-known/mercure"
        );
        assert_eq!(
            hub.metadata_url(),
            "https://hub.example.com/.well-known/oauth-protected-resource/.well-known/mercure"
        );
        assert_eq!(
            hub.subscriptions_path(),
            "/.well-known/mercure/subscriptions"
        );
        let pinned = Hub::new(
            "http://127.0.0.1:8080/.well-known/mercure",
            Some("https://a.test"),
        );
        let pinned = pinned.unwrap();
        assert_eq!(pinned.resource(), "https://a.test");
        assert_eq!(
            pinned.metadata_url(),
            "https://a.test/.well-known/oauth-protected-resource"
        );
        for bad in [
            "ftp://x/",
            "https://",
            "https://x/?q",
            "https://x/#f",
            "x",
            "https://a b/",
        ] {
            assert!(Hub::new(bad, None).is_err(), "{bad}");
        }
    }

    #[cfg(feature = "urlpattern")]
    #[test]
    fn the_reserved_namespace_is_the_hub_path_after_resolution_and_normalisation() {
        let hub = Hub::new("https://hub.example.com/.well-known/mercure", None).unwrap();
        for topic in [
            "/.well-known/mercure",
            "/.well-known/mercure/subscriptions/exact/a/b",
            "https://hub.example.com/.well-known/mercure/subscriptions/x",
            "https://elsewhere.test/.well-known/mercure/x",
            "/.well-known/%6Dercure/subscriptions",
            "/.well-known/mercure/../mercure/x",
            "/a/../.well-known/mercure",
        ] {
            assert!(hub.is_reserved(topic), "{topic}");
        }
        for topic in [
            "https://example.com/books/1",
            "/.well-known/mercurex",
            "/.well-known/mercure-not",
            "books",
        ] {
            assert!(!hub.is_reserved(topic), "{topic}");
        }
    }
}
