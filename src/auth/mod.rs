//! Who may publish and subscribe, and to what: the policy the request handlers ask
//! (`policy.rs`), static tokens (`token.rs`), and authorization as the Mercure protocol defines
//! it (SPEC section 9): topic selectors, which subscriptions and tokens both use
//! (`selector.rs`), JSON Web Tokens (`jwt.rs`, feature `jwt`, in the default build) and where a
//! request carries one (`credentials.rs`).
//!
//! Pure functions and types, with no I/O: the event loop verifies a token once per request,
//! compiles the selectors once per subscription, and matches each event against them.

#[cfg(feature = "jwt")]
pub mod access_token;
#[cfg(feature = "jwt")]
mod credentials;
#[cfg(feature = "jwt")]
pub mod jwt;
mod policy;
pub mod selector;
mod token;
#[cfg(feature = "urlpattern")]
pub mod urlpattern;

#[cfg(feature = "jwt")]
pub use policy::{Challenge, Denied};
pub use policy::{Keys, Publishing, QueryTokens, may_publish, may_subscribe};

#[cfg(feature = "jwt")]
#[allow(unused_imports)]
pub use jwt::{Claims, JwtError, Key, KeyError, verify};
pub use selector::{MatchType, Selector, Selectors};
#[cfg(feature = "urlpattern")]
pub use urlpattern::TopicUrl;
