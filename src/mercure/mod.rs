//! Mercure 1.0 (draft-dunglas-mercure-08), beside the 0.x hub the rest of ssed already speaks:
//! the hub's identity (its public URL, its resource identifier, where its metadata lives), the
//! character rules the draft puts on topics, matchers, ids and types, the reserved namespace
//! (`hub.rs`), and active subscriptions (`subscriptions.rs`).
//!
//! Token verification is in `auth/access_token.rs`, matchers in `auth/selector.rs` and
//! `auth/urlpattern.rs`; the requests that speak 1.0 are in `requests/`.

#[cfg(feature = "jwt")]
mod hub;
#[doc(hidden)]
#[cfg(feature = "jwt")]
pub mod publication;
#[cfg(feature = "jwt")]
pub mod subscriptions;
#[cfg(feature = "jwt")]
mod text;

#[cfg(feature = "jwt")]
pub use hub::Hub;
#[cfg(feature = "jwt")]
pub use text::check_text;

/// The path of ssed's hub, where every Mercure request is answered.
pub const HUB_PATH: &str = "/.well-known/mercure";

/// The reserved event type of the events the hub generates itself.
pub const MERCURE_TYPE: &str = "mercure";

/// The type of a Mercure authorization detail (RFC 9396 `authorization_details`).
pub const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// The cookie a 1.0 browser presents its access token in.
pub const ACCESS_COOKIE: &str = "__Secure-mercure_access_token";

/// Most topic matchers one subscription request may carry, and the longest one, in bytes.
pub const MAX_MATCHERS: usize = 100;
pub const MAX_MATCHER_LEN: usize = 2048;
