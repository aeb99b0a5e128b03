//! Authorization as the Mercure protocol defines it (SPEC section 9): topic selectors, which
//! subscriptions and tokens both use, and JSON Web Tokens (feature `jwt`, in the default build).
//!
//! Pure functions and types, with no I/O: the event loop verifies a token once per request,
//! compiles the selectors once per subscription, and matches each event against them.

#[cfg(feature = "jwt")]
pub mod jwt;
pub mod selector;

#[cfg(feature = "jwt")]
pub use jwt::{Claims, JwtError, Key, KeyError, verify};
pub use selector::{Selector, Selectors};
