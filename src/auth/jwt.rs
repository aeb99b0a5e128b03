//! JSON Web Tokens as Mercure hubs accept them: HS256 (HMAC-SHA256) with a shared secret, the
//! claims `exp`, `nbf` and `mercure` (`publish`, `subscribe`, `payload`).
//!
//! What is refused, and why:
//! - an algorithm other than the key's: the key pins it, the token never chooses (`alg: none`
//!   and RS256/HS256 confusion are the classic forgeries);
//! - anything but canonical unpadded base64url (no `=`, no stray bits in the last character),
//!   so that one token has exactly one spelling;
//! - a bad signature, checked in constant time (`hmac`'s `verify_slice`) before the claims are
//!   parsed;
//! - headers and claims that are not JSON objects, claims of the wrong type, `exp` passed,
//!   `nbf` to come; a token over 8 KiB.
//!
//! Error messages never quote the token, nor any part of it: they end up in logs.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::selector::Selectors;

/// The longest token accepted, in bytes. Mercure's own tokens are a few hundred bytes; a bound
/// keeps the work per request small.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The shortest HS256 secret accepted: RFC 7518 section 3.2 asks for a key at least as long as
/// the hash output (256 bits).
pub const MIN_HS256_KEY_LEN: usize = 32;

/// Base64url without padding, refusing `=` and non-zero bits after the last byte: the `base64`
/// crate's URL_SAFE_NO_PAD settings, written out so the strictness is visible here.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// A verification key; its algorithm is the only one its tokens may use.
#[derive(Clone)]
pub struct Key {
    /// HMAC-SHA256 with the secret already absorbed: each verification clones it.
    mac: Hmac<Sha256>,
}

impl Key {
    /// An HS256 key. Mercure's convention: the secret is the bytes of the configured text as
    /// written (`--publisher-jwt-key '!ChangeThisMercureHubJWTSecretKey!'`), not decoded.
    pub fn hs256(secret: &[u8]) -> Result<Key, KeyError> {
        if secret.len() < MIN_HS256_KEY_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| KeyError::TooShort { len: secret.len() })?;
        Ok(Key { mac })
    }

    /// The algorithm, as a token header names it.
    pub fn algorithm(&self) -> &'static str {
        "HS256"
    }

    /// Checks `signature` over `signed` (the token up to its last dot) in constant time.
    fn check(&self, signed: &str, signature: &[u8]) -> Result<(), JwtError> {
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(signature)
            .map_err(|_| JwtError::BadSignature)
    }
}

/// Never shows the secret.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// Why a key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// An HS256 secret shorter than [`MIN_HS256_KEY_LEN`] bytes.
    TooShort { len: usize },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooShort { len } => write!(
                f,
                "an HS256 key needs at least {MIN_HS256_KEY_LEN} bytes (256 bits); this one has {len}"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// One of the three parts of a token, to say which one is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Claims,
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Claims => "claims",
            Part::Signature => "signature",
        })
    }
}

/// Why a token is refused. The messages never include the token or a part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not three parts separated by dots (a JWE has five).
    NotThreeParts,
    /// A part that is not canonical unpadded base64url.
    Base64(Part),
    /// A header or claims set that is not a JSON object.
    NotJsonObject(Part),
    /// The header has no `alg`, or not a string.
    MissingAlgorithm,
    /// `alg: none`: an unsigned token.
    AlgorithmNone,
    /// An `alg` other than the key's.
    AlgorithmMismatch { expected: &'static str },
    /// A `typ` other than `JWT`.
    NotJwtType,
    /// A `crit` header: extensions this verifier does not implement.
    CriticalExtension,
    /// The signature does not verify with the key.
    BadSignature,
    /// A claim of the wrong type.
    Claim {
        name: &'static str,
        expected: &'static str,
    },
    /// `exp` is now or past.
    Expired,
    /// `nbf` is still to come.
    NotYetValid,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::TooLong => write!(f, "token longer than {MAX_TOKEN_LEN} bytes"),
            JwtError::NotThreeParts => f.write_str("token is not three parts separated by dots"),
            JwtError::Base64(part) => {
                write!(f, "token {part} is not canonical unpadded base64url")
            }
            JwtError::NotJsonObject(part) => write!(f, "token {part} is not a JSON object"),
            JwtError::MissingAlgorithm => f.write_str("token header has no alg string"),
            JwtError::AlgorithmNone => f.write_str("unsigned token (alg none) refused"),
            JwtError::AlgorithmMismatch { expected } => {
                write!(f, "token algorithm is not the key's ({expected})")
            }
            JwtError::NotJwtType => f.write_str("token typ is not JWT"),
            JwtError::CriticalExtension => f.write_str("token header has crit extensions"),
            JwtError::BadSignature => f.write_str("token signature does not verify"),
            JwtError::Claim { name, expected } => {
                write!(f, "token claim {name} must be {expected}")
            }
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not valid yet (nbf)"),
        }
    }
}

impl std::error::Error for JwtError {}

/// What a verified token allows.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `mercure.publish`: the topics it may publish to (none when absent).
    pub publish: Selectors,
    /// `mercure.subscribe`: the topics whose private events it may read (none when absent).
    pub subscribe: Selectors,
    /// `exp`; `None` when the token has none (Mercure accepts that) or it lies beyond what
    /// `SystemTime` holds.
    pub expires: Option<SystemTime>,
    /// `mercure.payload`, as JSON text, for the subscriptions API.
    pub payload: Option<String>,
}

impl Claims {
    /// How long from `now` until the token expires: zero once it has, `None` if never. The
    /// loop closes a stream when this runs out.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        let expires = self.expires?;
        Some(expires.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

/// Verifies `token` with `key` at time `now`, and returns its claims.
pub fn verify(token: &str, key: &Key, now: SystemTime) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotThreeParts);
    };
    check_header(&decode_object(header, Part::Header)?, key)?;
    let signature = decode(signature, Part::Signature)?;
    let signed = &token[..header.len() + 1 + claims.len()];
    key.check(signed, &signature)?;
    read_claims(&decode_object(claims, Part::Claims)?, now)
}

fn decode(part: &str, which: Part) -> Result<Vec<u8>, JwtError> {
    BASE64URL.decode(part).map_err(|_| JwtError::Base64(which))
}

fn decode_object(part: &str, which: Part) -> Result<Map<String, Value>, JwtError> {
    let json = decode(part, which)?;
    serde_json::from_slice(&json).map_err(|_| JwtError::NotJsonObject(which))
}

/// The header must name the key's algorithm, and nothing this verifier does not understand.
fn check_header(header: &Map<String, Value>, key: &Key) -> Result<(), JwtError> {
    let Some(Value::String(alg)) = header.get("alg") else {
        return Err(JwtError::MissingAlgorithm);
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgorithmNone);
    }
    // Algorithm names are case-sensitive (RFC 7515 section 4.1.1).
    if alg != key.algorithm() {
        return Err(JwtError::AlgorithmMismatch {
            expected: key.algorithm(),
        });
    }
    match header.get("typ") {
        None => {}
        // RFC 7519 section 5.1: "JWT", and media types may drop "application/".
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt") => {}
        Some(_) => return Err(JwtError::NotJwtType),
    }
    if header.contains_key("crit") {
        return Err(JwtError::CriticalExtension);
    }
    Ok(())
}

fn read_claims(claims: &Map<String, Value>, now: SystemTime) -> Result<Claims, JwtError> {
    let expires = numeric_date(claims, "exp")?;
    let not_before = numeric_date(claims, "nbf")?;
    let (publish, subscribe, payload) = match claims.get("mercure") {
        None => (Selectors::default(), Selectors::default(), None),
        Some(Value::Object(mercure)) => (
            Selectors::compile(string_list(mercure, "publish", "mercure.publish")?),
            Selectors::compile(string_list(mercure, "subscribe", "mercure.subscribe")?),
            mercure.get("payload").map(Value::to_string),
        ),
        Some(_) => {
            return Err(JwtError::Claim {
                name: "mercure",
                expected: "an object",
            });
        }
    };
    let now_seconds = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if expires.is_some_and(|exp| now_seconds >= exp) {
        return Err(JwtError::Expired);
    }
    if not_before.is_some_and(|nbf| now_seconds < nbf) {
        return Err(JwtError::NotYetValid);
    }
    Ok(Claims {
        publish,
        subscribe,
        expires: expires.and_then(seconds_to_time),
        payload,
    })
}

/// A NumericDate claim (RFC 7519: seconds since the epoch, fractions allowed): absent is
/// `None`, anything but a number (`null` too) is refused.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(JwtError::Claim {
            name,
            expected: "a number",
        }),
        Some(_) => Err(JwtError::Claim {
            name,
            expected: "a number",
        }),
    }
}

/// An array of strings; absent is empty, anything else (`null` too) is refused.
fn string_list<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    name: &'static str,
) -> Result<Vec<&'a str>, JwtError> {
    let wrong = JwtError::Claim {
        name,
        expected: "an array of strings",
    };
    match object.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or(wrong))
            .collect(),
        Some(_) => Err(wrong),
    }
}

fn seconds_to_time(seconds: f64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}
