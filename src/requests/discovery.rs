//! Mercure 1.0 discovery: the hub's OAuth 2.0 protected resource metadata (RFC 9728), at the
//! path derived from its resource identifier (`/.well-known/oauth-protected-resource` followed
//! by the identifier's path), with the members the draft defines.

use crate::conn::Conn;
use crate::event_loop::EventLoop;
use crate::mercure::{ACCESS_COOKIE, DETAIL_TYPE, HUB_PATH};

/// Where RFC 9728 puts the metadata of a resource, before the resource's path.
pub(super) const METADATA_ROOT: &str = "/.well-known/oauth-protected-resource";

impl EventLoop {
    /// Whether `path` is where this hub's metadata is asked for: derived from the resource
    /// identifier's path, or from ssed's own hub path (what a proxy in front maps to ssed).
    pub(super) fn is_metadata_path(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(METADATA_ROOT) else {
            return false;
        };
        let derived = self
            .keys
            .hub
            .metadata_url()
            .find(METADATA_ROOT)
            .map(|at| &self.keys.hub.metadata_url()[at + METADATA_ROOT.len()..]);
        rest == HUB_PATH || Some(rest) == derived
    }

    /// The metadata document.
    pub(super) fn metadata(&mut self, conn: &mut Conn, slot: u32, cors: &str) {
        let hub = &self.keys.hub;
        let mut matcher_types = vec!["exact"];
        if cfg!(feature = "urlpattern") {
            matcher_types.push("urlpattern");
        }
        let mut doc = format!(
            "{{\"resource\":{},\"authorization_details_types_supported\":[{}],\"bearer_methods_supported\":[\"header\"],\"mercure_cookie\":{},\"mercure_matcher_types_supported\":[{}]",
            quoted(hub.resource()),
            quoted(DETAIL_TYPE),
            quoted(ACCESS_COOKIE),
            matcher_types
                .iter()
                .map(|t| quoted(t))
                .collect::<Vec<_>>()
                .join(",")
        );
        if self.config.subscriptions {
            doc.push_str(",\"mercure_subscriptions\":true");
        }
        doc.push('}');
        let extra = format!(
            "{cors}Link: <{}>; rel=\"mercure\"\r\nCache-Control: max-age=60\r\n",
            hub.url()
        );
        self.ok(conn, slot, "application/json", &extra, doc.as_bytes());
    }
}

/// A JSON string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_quoted_as_json() {
        assert_eq!(super::quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
