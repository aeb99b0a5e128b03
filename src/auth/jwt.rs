//! JSON Web Tokens as Mercure hubs accept them: HS256 (HMAC-SHA256) with a shared secret, and
//! with the features `jwt-rs256` and `jwt-es256` RS256 and ES256 with a PEM public key; the
//! claims `exp`, `nbf` and `mercure` (`publish`, `subscribe`, `payload`).
//!
//! What is refused, and why:
//! - an algorithm other than the key's: the key pins it, the token never chooses (`alg: none`
//!   and RS256/HS256 confusion are the classic forgeries);
//! - anything but canonical unpadded base64url (no `=`, no stray bits in the last character),
//!   so that one token has exactly one spelling;
//! - a bad signature, checked before the claims are parsed (an HMAC in constant time, with
//!   `hmac`'s `verify_slice`);
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
    verifier: Verifier,
}

#[derive(Clone)]
enum Verifier {
    /// HMAC-SHA256 with the secret already absorbed: each verification clones it.
    Hs256(Hmac<Sha256>),
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[cfg(feature = "jwt-rs256")]
    Rs256(rsa::pkcs1v15::VerifyingKey<Sha256>),
    /// ECDSA on P-256 with SHA-256.
    #[cfg(feature = "jwt-es256")]
    Es256(p256::ecdsa::VerifyingKey),
}

/// The smallest RSA modulus accepted, in bits (RFC 7518 section 3.3).
#[cfg(feature = "jwt-rs256")]
pub const MIN_RSA_BITS: usize = 2048;

impl Key {
    /// A key for `algorithm` (`HS256`, or `RS256` and `ES256` when built with `jwt-rs256` and
    /// `jwt-es256`) from its configured text: the secret for HS256, a PEM public key for the
    /// others.
    pub fn new(algorithm: &str, text: &str) -> Result<Key, KeyError> {
        match algorithm {
            "HS256" => Key::hs256(text.as_bytes()),
            #[cfg(feature = "jwt-rs256")]
            "RS256" => Key::rs256_pem(text),
            #[cfg(feature = "jwt-es256")]
            "ES256" => Key::es256_pem(text),
            _ => Err(KeyError::UnsupportedAlgorithm),
        }
    }

    /// An HS256 key. Mercure's convention: the secret is the bytes of the configured text as
    /// written (`--publisher-jwt-key '!ChangeThisMercureHubJWTSecretKey!'`), not decoded.
    pub fn hs256(secret: &[u8]) -> Result<Key, KeyError> {
        if secret.len() < MIN_HS256_KEY_LEN {
            return Err(KeyError::TooShort { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| KeyError::TooShort { len: secret.len() })?;
        Ok(Key {
            verifier: Verifier::Hs256(mac),
        })
    }

    /// An RS256 key: an RSA public key of at least 2048 bits, in PEM (`BEGIN PUBLIC KEY`, or
    /// PKCS#1 `BEGIN RSA PUBLIC KEY`).
    #[cfg(feature = "jwt-rs256")]
    pub fn rs256_pem(pem: &str) -> Result<Key, KeyError> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;

        let public = rsa::PublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::PublicKey::from_pkcs1_pem(pem))
            .map_err(|_| KeyError::NotAPublicKey { algorithm: "RS256" })?;
        let bits = public.n().bit_width_vartime() as usize;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaTooSmall { bits });
        }
        Ok(Key {
            verifier: Verifier::Rs256(rsa::pkcs1v15::VerifyingKey::new(public)),
        })
    }

    /// An ES256 key: a P-256 public key in PEM (`BEGIN PUBLIC KEY`).
    #[cfg(feature = "jwt-es256")]
    pub fn es256_pem(pem: &str) -> Result<Key, KeyError> {
        use p256::pkcs8::DecodePublicKey;

        let public = p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map_err(|_| KeyError::NotAPublicKey { algorithm: "ES256" })?;
        Ok(Key {
            verifier: Verifier::Es256(public),
        })
    }

    /// The algorithm, as a token header names it.
    pub fn algorithm(&self) -> &'static str {
        match self.verifier {
            Verifier::Hs256(_) => "HS256",
            #[cfg(feature = "jwt-rs256")]
            Verifier::Rs256(_) => "RS256",
            #[cfg(feature = "jwt-es256")]
            Verifier::Es256(_) => "ES256",
        }
    }

    /// Checks `signature` over `signed` (the token up to its last dot); an HMAC is compared in
    /// constant time.
    pub(crate) fn check(&self, signed: &str, signature: &[u8]) -> Result<(), JwtError> {
        match &self.verifier {
            Verifier::Hs256(mac) => {
                let mut mac = mac.clone();
                mac.update(signed.as_bytes());
                mac.verify_slice(signature)
                    .map_err(|_| JwtError::BadSignature)
            }
            #[cfg(feature = "jwt-rs256")]
            Verifier::Rs256(key) => {
                use rsa::signature::Verifier as _;
                let signature = rsa::pkcs1v15::Signature::try_from(signature)
                    .map_err(|_| JwtError::BadSignature)?;
                key.verify(signed.as_bytes(), &signature)
                    .map_err(|_| JwtError::BadSignature)
            }
            #[cfg(feature = "jwt-es256")]
            Verifier::Es256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                // JWS carries r and s as 32 bytes each (RFC 7518 section 3.4), not DER.
                let signature = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| JwtError::BadSignature)?;
                key.verify(signed.as_bytes(), &signature)
                    .map_err(|_| JwtError::BadSignature)
            }
        }
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

/// Why a key is refused. The messages never include the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// An HS256 secret shorter than [`MIN_HS256_KEY_LEN`] bytes.
    TooShort { len: usize },
    /// An algorithm this build does not verify.
    UnsupportedAlgorithm,
    /// Text that is not a PEM public key of the algorithm's kind.
    NotAPublicKey { algorithm: &'static str },
    /// An RSA key under 2048 bits.
    RsaTooSmall { bits: usize },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooShort { len } => write!(
                f,
                "an HS256 key needs at least {MIN_HS256_KEY_LEN} bytes (256 bits); this one has {len}"
            ),
            KeyError::UnsupportedAlgorithm => {
                f.write_str("unsupported JWT algorithm (this build verifies HS256")?;
                if cfg!(feature = "jwt-rs256") {
                    f.write_str(", RS256")?;
                }
                if cfg!(feature = "jwt-es256") {
                    f.write_str(", ES256")?;
                }
                f.write_str(")")
            }
            KeyError::NotAPublicKey { algorithm } => {
                write!(
                    f,
                    "an {algorithm} key must be a PEM public key of that kind"
                )
            }
            KeyError::RsaTooSmall { bits } => {
                write!(
                    f,
                    "an RS256 key needs at least 2048 bits; this one has {bits}"
                )
            }
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

pub(crate) fn decode(part: &str, which: Part) -> Result<Vec<u8>, JwtError> {
    BASE64URL.decode(part).map_err(|_| JwtError::Base64(which))
}

pub(crate) fn decode_object(part: &str, which: Part) -> Result<Map<String, Value>, JwtError> {
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
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, JwtError> {
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

pub(crate) fn seconds_to_time(seconds: f64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"!ChangeThisMercureHubJWTSecretKey!";

    /// The subscriber token of Mercure's documentation and demo, signed with SECRET.
    const MERCURE_DEMO_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdLCJzdWJzY3JpYmUiOlsiaHR0cHM6Ly9leGFtcGxlLmNvbS9teS1wcml2YXRlLXRvcGljIiwie3NjaGVtZX06Ly97K2hvc3R9L2RlbW8vYm9va3Mve2lkfS5qc29ubGQiLCIvLndlbGwta25vd24vbWVyY3VyZS9zdWJzY3JpcHRpb25zey90b3BpY317L3N1YnNjcmliZXJ9Il0sInBheWxvYWQiOnsidXNlciI6Imh0dHBzOi8vZXhhbXBsZS5jb20vdXNlcnMvZHVuZ2xhcyIsInJlbW90ZUFkZHIiOiIxMjcuMC4wLjEifX19.KKPIikwUzRuB3DTpVw6ajzwSChwFw5omBMmMcWKiDcM";

    fn key() -> Key {
        Key::hs256(SECRET).unwrap()
    }

    /// 2023-11-14T22:13:20Z.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64URL.encode(bytes)
    }

    fn hmac_sha256(secret: &[u8], signed: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A token of these header and claims texts, signed with `secret`.
    fn token_with(secret: &[u8], header: &str, claims: &str) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let signature = b64(&hmac_sha256(secret, &signed));
        format!("{signed}.{signature}")
    }

    fn token(header: &str, claims: &str) -> String {
        token_with(SECRET, header, claims)
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    fn refusal(token: &str) -> JwtError {
        verify(token, &key(), now()).expect_err("the token must be refused")
    }

    fn claims(claims: &str) -> Result<Claims, JwtError> {
        verify(&token(HS256, claims), &key(), now())
    }

    #[test]
    fn mercure_documentation_token_verifies() {
        let claims = verify(MERCURE_DEMO_TOKEN, &key(), now()).unwrap();
        assert!(claims.publish.matches_everything());
        let subscribe = &claims.subscribe;
        assert_eq!(subscribe.len(), 3);
        assert!(subscribe.matches("https://example.com/my-private-topic"));
        assert!(subscribe.matches("https://localhost/demo/books/1.jsonld"));
        assert!(subscribe.matches("/.well-known/mercure/subscriptions/t/s"));
        assert!(!subscribe.matches("https://example.com/other-topic"));
        assert_eq!(claims.expires, None, "no exp: valid forever, as in Mercure");
        let payload: Value = serde_json::from_str(claims.payload.as_deref().unwrap()).unwrap();
        assert_eq!(payload["user"], "https://example.com/users/dunglas");

        // The same claims under another key do not verify.
        let other = Key::hs256(b"another secret of at least 32 bytes..").unwrap();
        assert_eq!(
            verify(MERCURE_DEMO_TOKEN, &other, now()).unwrap_err(),
            JwtError::BadSignature
        );
    }

    #[test]
    fn a_token_built_here_verifies_with_its_claims() {
        let t = token(
            HS256,
            r#"{"exp":1700000060,"nbf":1699999990,"mercure":{"publish":["https://example.com/books/{id}"],"subscribe":["a","b"]}}"#,
        );
        let claims = verify(&t, &key(), now()).unwrap();
        assert!(claims.publish.matches("https://example.com/books/1"));
        assert!(!claims.publish.matches("https://example.com/users/1"));
        assert_eq!(claims.subscribe.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(claims.payload, None);
        assert_eq!(claims.remaining(now()), Some(Duration::from_secs(60)));
    }

    #[test]
    fn hs256_key_under_32_bytes_is_refused() {
        assert_eq!(
            Key::hs256(&[7; 31]).unwrap_err(),
            KeyError::TooShort { len: 31 }
        );
        assert!(Key::hs256(b"").is_err());
        let short = Key::hs256(b"!ChangeMe!").unwrap_err().to_string();
        assert!(
            short.contains("32 bytes") && !short.contains("ChangeMe"),
            "{short}"
        );
        assert!(Key::hs256(&[7; 32]).is_ok());
        assert!(Key::hs256(&[7; 200]).is_ok(), "longer than a SHA-256 block");
    }

    #[test]
    fn key_from_configuration_text() {
        let key = Key::new("HS256", "!ChangeThisMercureHubJWTSecretKey!").unwrap();
        assert_eq!(key.algorithm(), "HS256");
        assert!(verify(MERCURE_DEMO_TOKEN, &key, now()).is_ok());
        assert_eq!(
            Key::new("HS256", "short").unwrap_err(),
            KeyError::TooShort { len: 5 }
        );
        for unknown in ["none", "hs256", "HS512", "PS256", ""] {
            let secret = "a secret that is long enough, surely";
            assert_eq!(
                Key::new(unknown, secret).unwrap_err(),
                KeyError::UnsupportedAlgorithm
            );
        }
        #[cfg(not(feature = "jwt-rs256"))]
        assert_eq!(
            Key::new("RS256", "x").unwrap_err(),
            KeyError::UnsupportedAlgorithm
        );
        #[cfg(not(feature = "jwt-es256"))]
        assert_eq!(
            Key::new("ES256", "x").unwrap_err(),
            KeyError::UnsupportedAlgorithm
        );
    }

    #[test]
    fn key_debug_never_shows_the_secret() {
        let shown = format!("{:?}", key());
        assert!(
            shown.contains("HS256") && !shown.contains("ChangeThis"),
            "{shown}"
        );
    }

    #[test]
    fn alg_none_is_refused_whatever_the_signature() {
        let claims = r#"{"mercure":{"publish":["*"]}}"#;
        for alg in ["none", "None", "NONE"] {
            let header = format!(r#"{{"alg":"{alg}"}}"#);
            let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(claims.as_bytes()));
            assert_eq!(refusal(&unsigned), JwtError::AlgorithmNone);
            assert_eq!(refusal(&token(&header, claims)), JwtError::AlgorithmNone);
        }
    }

    #[test]
    fn an_algorithm_other_than_the_keys_is_refused() {
        let claims = r#"{"mercure":{"publish":["*"]}}"#;
        // RS256 signed with HMAC over the shared secret: the HS/RS confusion forgery, and
        // other algorithms whose signature would verify if the token chose.
        for alg in [
            "RS256", "ES256", "HS384", "HS512", "hs256", "HS256 ", "PS256",
        ] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            assert_eq!(
                refusal(&token(&header, claims)),
                JwtError::AlgorithmMismatch { expected: "HS256" },
                "{alg}"
            );
        }
    }

    #[test]
    fn a_header_without_an_alg_string_is_refused() {
        for header in [
            r#"{}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":256}"#,
            r#"{"alg":null}"#,
        ] {
            assert_eq!(
                refusal(&token(header, "{}")),
                JwtError::MissingAlgorithm,
                "{header}"
            );
        }
    }

    #[test]
    fn typ_if_present_must_be_jwt() {
        for typ in [r#""JWT""#, r#""jwt""#, r#""application/jwt""#] {
            let header = format!(r#"{{"alg":"HS256","typ":{typ}}}"#);
            assert!(
                verify(&token(&header, "{}"), &key(), now()).is_ok(),
                "{typ}"
            );
        }
        for typ in [r#""JWS""#, r#""at+jwt""#, "1", "null"] {
            let header = format!(r#"{{"alg":"HS256","typ":{typ}}}"#);
            assert_eq!(
                refusal(&token(&header, "{}")),
                JwtError::NotJwtType,
                "{typ}"
            );
        }
    }

    #[test]
    fn critical_extensions_are_refused() {
        let header = r#"{"alg":"HS256","crit":["b64"],"b64":false}"#;
        assert_eq!(refusal(&token(header, "{}")), JwtError::CriticalExtension);
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let good = token(HS256, r#"{"mercure":{"subscribe":["a"]}}"#);
        let (signed, _) = good.rsplit_once('.').unwrap();

        let other_key = token_with(&[1; 32], HS256, r#"{"mercure":{"subscribe":["a"]}}"#);
        assert_eq!(refusal(&other_key), JwtError::BadSignature);

        // The first byte of the signature changed: still canonical base64url.
        let mut signature = hmac_sha256(SECRET, signed);
        signature[0] ^= 1;
        assert_eq!(
            refusal(&format!("{signed}.{}", b64(&signature))),
            JwtError::BadSignature
        );

        // Truncated, empty, or as long as an HS512 signature.
        let signature = hmac_sha256(SECRET, signed);
        assert_eq!(
            refusal(&format!("{signed}.{}", b64(&signature[..31]))),
            JwtError::BadSignature
        );
        assert_eq!(refusal(&format!("{signed}.")), JwtError::BadSignature);
        let long = [signature.clone(), signature].concat();
        assert_eq!(
            refusal(&format!("{signed}.{}", b64(&long))),
            JwtError::BadSignature
        );

        // Claims changed under the original signature.
        let (_, signature) = good.rsplit_once('.').unwrap();
        let forged_claims = b64(br#"{"mercure":{"subscribe":["*"]}}"#);
        let header = good.split('.').next().unwrap();
        let forged = format!("{header}.{forged_claims}.{signature}");
        assert_eq!(refusal(&forged), JwtError::BadSignature);
    }

    #[test]
    fn padded_or_non_canonical_base64url_is_refused() {
        // Header and claims whose lengths are not multiples of 3, so padding would fit.
        let good = token(r#"{"alg":"HS256","typ":"JWT" }"#, r#"{"a":1}"#);
        let parts: Vec<&str> = good.split('.').collect();
        // Replaces part i, and signs the result when it is the header or claims, so that the
        // claims are read (they are decoded only under a good signature).
        let rebuild = |i: usize, part: &str| {
            let mut p = parts.clone();
            p[i] = part;
            if i == 2 {
                return p.join(".");
            }
            let signed = format!("{}.{}", p[0], p[1]);
            format!("{signed}.{}", b64(&hmac_sha256(SECRET, &signed)))
        };
        for (i, which) in [(0, Part::Header), (1, Part::Claims), (2, Part::Signature)] {
            let part = parts[i];
            // Padding, where the length calls for it (the signature's 43 characters do).
            assert!(
                !part.len().is_multiple_of(4),
                "{which}: the test needs a part that padding fits"
            );
            let padded = format!("{part}{}", "=".repeat(4 - part.len() % 4));
            assert_eq!(
                refusal(&rebuild(i, &padded)),
                JwtError::Base64(which),
                "{which}"
            );
            // The standard alphabet, whitespace, and a character outside any alphabet.
            for bad in ["+", "/", " ", "\n", "*", "é"] {
                let spoiled = format!("{}{bad}{}", &part[..4], &part[4..]);
                assert_eq!(
                    refusal(&rebuild(i, &spoiled)),
                    JwtError::Base64(which),
                    "{which} {bad:?}"
                );
            }
        }
        // Non-zero bits after the last byte: the same bytes, another spelling. The signature's
        // last character carries 4 bits of data and 2 that must be zero.
        let signature = parts[2];
        let last = signature.as_bytes()[signature.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let value = alphabet.iter().position(|&c| c == last).unwrap();
        assert_eq!(
            value & 0b11,
            0,
            "a canonical encoding ends with two zero bits"
        );
        let sloppy = char::from(alphabet[value | 1]);
        let respelled = format!("{}{sloppy}", &signature[..signature.len() - 1]);
        assert_eq!(
            refusal(&rebuild(2, &respelled)),
            JwtError::Base64(Part::Signature)
        );
    }

    #[test]
    fn a_token_not_of_three_parts_is_refused() {
        let good = token(HS256, "{}");
        let (signed, _) = good.rsplit_once('.').unwrap();
        for t in [
            "",
            ".",
            "a.b",
            signed,
            &format!("{good}."),
            &format!("{good}.x.y"),
        ] {
            assert_eq!(refusal(t), JwtError::NotThreeParts, "{t:?}");
        }
    }

    #[test]
    fn malformed_json_is_refused() {
        for header in [
            "{",
            "",
            "not json",
            "[]",
            "\"HS256\"",
            r#"{"alg":"HS256"} x"#,
        ] {
            assert_eq!(
                refusal(&token(header, "{}")),
                JwtError::NotJsonObject(Part::Header),
                "{header:?}"
            );
        }
        for body in [
            "{",
            "",
            "[1700000000]",
            "null",
            "42",
            r#"{"exp":1}}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            assert_eq!(
                refusal(&token(HS256, body)),
                JwtError::NotJsonObject(Part::Claims),
                "{body:?}"
            );
        }
        // Nesting deeper than serde_json's limit is an error, not a stack overflow.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(
            refusal(&token(HS256, &deep)),
            JwtError::NotJsonObject(Part::Claims)
        );
    }

    #[test]
    fn ill_typed_claims_are_refused() {
        let cases = [
            (r#"{"exp":"1800000000"}"#, "exp"),
            (r#"{"exp":null}"#, "exp"),
            (r#"{"exp":true}"#, "exp"),
            (r#"{"exp":[1800000000]}"#, "exp"),
            (r#"{"nbf":"0"}"#, "nbf"),
            (r#"{"mercure":["*"]}"#, "mercure"),
            (r#"{"mercure":null}"#, "mercure"),
            (r#"{"mercure":"*"}"#, "mercure"),
            (r#"{"mercure":{"publish":"*"}}"#, "mercure.publish"),
            (r#"{"mercure":{"publish":null}}"#, "mercure.publish"),
            (r#"{"mercure":{"subscribe":[1]}}"#, "mercure.subscribe"),
            (
                r#"{"mercure":{"subscribe":["a",null]}}"#,
                "mercure.subscribe",
            ),
            (r#"{"mercure":{"subscribe":[["a"]]}}"#, "mercure.subscribe"),
        ];
        for (body, name) in cases {
            match claims(body) {
                Err(JwtError::Claim { name: got, .. }) => assert_eq!(got, name, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_claims_grant_nothing() {
        for body in ["{}", r#"{"mercure":{}}"#, r#"{"sub":"someone","iat":1}"#] {
            let claims = claims(body).unwrap();
            assert!(
                claims.publish.is_empty() && claims.subscribe.is_empty(),
                "{body}"
            );
            assert!(!claims.publish.matches("a") && !claims.subscribe.matches("a"));
            assert_eq!(claims.expires, None);
        }
        let only_publish = claims(r#"{"mercure":{"publish":["a"]}}"#).unwrap();
        assert!(only_publish.publish.matches("a"));
        assert!(only_publish.subscribe.is_empty());
    }

    #[test]
    fn exp_in_the_past_is_refused() {
        for exp in [
            "1699999999",
            "1700000000",
            "1699999999.5",
            "0",
            "-1",
            "-1e300",
        ] {
            let body = format!(r#"{{"exp":{exp}}}"#);
            assert_eq!(claims(&body).unwrap_err(), JwtError::Expired, "exp {exp}");
        }
        let later = claims(r#"{"exp":1700000000.25}"#).unwrap();
        assert_eq!(later.remaining(now()), Some(Duration::from_millis(250)));
        // Beyond what SystemTime holds: no expiry, not an error.
        assert_eq!(claims(r#"{"exp":1e300}"#).unwrap().expires, None);
    }

    #[test]
    fn a_verified_token_reports_when_to_close_its_stream() {
        let claims = claims(r#"{"exp":1700000010}"#).unwrap();
        let expires = UNIX_EPOCH + Duration::from_secs(1_700_000_010);
        assert_eq!(claims.expires, Some(expires));
        assert_eq!(claims.remaining(now()), Some(Duration::from_secs(10)));
        assert!(!claims.is_expired(now()));
        assert!(!claims.is_expired(expires - Duration::from_millis(1)));
        assert!(
            claims.is_expired(expires),
            "exp itself is too late, as in verify"
        );
        assert_eq!(
            claims.remaining(expires + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        // Verifying again once exp has passed refuses the token.
        let t = token(HS256, r#"{"exp":1700000010}"#);
        assert_eq!(verify(&t, &key(), expires).unwrap_err(), JwtError::Expired);
    }

    #[test]
    fn nbf_in_the_future_is_refused() {
        assert_eq!(
            claims(r#"{"nbf":1700000001}"#).unwrap_err(),
            JwtError::NotYetValid
        );
        assert_eq!(
            claims(r#"{"nbf":1700000000.5}"#).unwrap_err(),
            JwtError::NotYetValid
        );
        assert!(claims(r#"{"nbf":1700000000}"#).is_ok());
        assert!(claims(r#"{"nbf":1600000000}"#).is_ok());
    }

    #[test]
    fn a_token_over_8_kib_is_refused_before_any_work() {
        // A valid token padded to exactly the limit verifies; one byte more does not.
        let fill = |n: usize| format!(r#"{{"pad":"{}"}}"#, "x".repeat(n));
        let base = token(HS256, &fill(0)).len();
        let mut n = (MAX_TOKEN_LEN - base) * 3 / 4;
        while token(HS256, &fill(n)).len() < MAX_TOKEN_LEN {
            n += 1;
        }
        let at_limit = token(HS256, &fill(n));
        assert!(at_limit.len() >= MAX_TOKEN_LEN && at_limit.len() <= MAX_TOKEN_LEN + 2);
        let t = token(HS256, &fill(n - 3));
        assert!(t.len() <= MAX_TOKEN_LEN);
        assert!(verify(&t, &key(), now()).is_ok(), "{}", t.len());
        let over = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN + 1 - t.len()));
        assert_eq!(refusal(&over), JwtError::TooLong);
    }

    #[test]
    fn errors_never_quote_the_token() {
        let marker = "SeCrEtMaRkEr";
        let tokens = [
            token(r#"{"alg":"none","kid":"SeCrEtMaRkEr"}"#, "{}"),
            token(r#"{"alg":"SeCrEtMaRkEr"}"#, "{}"),
            token(r#"{"alg":"HS256","typ":"SeCrEtMaRkEr"}"#, "{}"),
            token(HS256, r#"{"exp":"SeCrEtMaRkEr"}"#),
            token(
                HS256,
                r#"{"mercure":{"subscribe":["a",{"SeCrEtMaRkEr":1}]}}"#,
            ),
            token(HS256, r#"{"mercure":"SeCrEtMaRkEr"}"#),
            token(HS256, "SeCrEtMaRkEr"),
            token("SeCrEtMaRkEr", "{}"),
            token_with(&[2; 32], HS256, r#"{"sub":"SeCrEtMaRkEr"}"#),
            format!("{}.SeCrEtMaRkEr=.x", b64(HS256.as_bytes())),
            "SeCrEtMaRkEr".to_string(),
            "SeCrEtMaRkEr".repeat(1000),
        ];
        for t in &tokens {
            let error = refusal(t);
            let shown = [error.to_string(), format!("{error:?}")];
            for text in &shown {
                assert!(!text.contains(marker), "{text}");
                for part in t.split('.').filter(|p| p.len() >= 4) {
                    assert!(!text.contains(part), "{text} quotes {part}");
                }
            }
        }
    }
}

/// RS256 and ES256, with the examples of RFC 7515 (appendices A.2 and A.3): their public keys
/// converted to PEM, their tokens as published.
#[cfg(all(test, any(feature = "jwt-rs256", feature = "jwt-es256")))]
mod public_key_tests {
    use super::*;

    /// The RFC examples' claims: `{"iss":"joe", "exp":1300819380, ...}`.
    const CLAIMS: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

    const RFC_RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

    const RFC_ES256_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    const RFC_RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAofgWCuLjybRlzo0tZWJj
NiuSfb4p4fAkd/wWJcyQoTbji9k0l8W26mPddxHmfHQp+Vaw+4qPCJrcS2mJPMEz
P1Pt0Bm4d4QlL+yRT+SFd2lZS+pCgNMsD1W/YpRPEwOWvG6b32690r2jZ47soMZo
9wGzjb/7OMg0LOL+bSf63kpaSHSXndS5z5rexMdbBYUsLA9e+KXBdQOS+UTo7WTB
EMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6/I5IhlJH7aGhyxX
FvUK+DWNmoudF8NAco9/h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXp
oQIDAQAB
-----END PUBLIC KEY-----";

    const RFC_P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7
6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==
-----END PUBLIC KEY-----";

    /// A 1024-bit RSA public key: too small for RS256.
    #[cfg(feature = "jwt-rs256")]
    const RSA_1024_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC+/OJ8yL27FGwnFMqk1Mqj2TA/
rummhqj+tqD6HQvaU39ucUR4+GqIIiCbIRtTBbT0gezqhEDcZAZPye98AyRZCHk7
lFby8fuzvAEKQuUu+Ziz18L9BQ4dsTKiWRO6Eo74GPXqHcD51KCfUrBP5/83hIMl
76xg0rdnBDHR4ClgbwIDAQAB
-----END PUBLIC KEY-----";

    /// A P-384 public key: not ES256's curve.
    #[cfg(feature = "jwt-es256")]
    const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEAvaOoA1ll0PdF0+WcOlS8KDfdPzB/aGh
JDzu7HwSU572r/++nRh7DwH8R5JDuf7YMFeQjH0kigzSTiipRqXKixy+aoRtnj5Q
iP8zR4KIej5wUs70SdFFVcRP7erQhLov
-----END PUBLIC KEY-----";

    /// Ten seconds before the examples' `exp`.
    fn before_exp() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_300_819_370)
    }

    /// A token whose signature has one byte changed.
    fn spoiled(token: &str) -> String {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut signature = BASE64URL.decode(signature).unwrap();
        signature[5] ^= 0x40;
        format!("{signed}.{}", BASE64URL.encode(signature))
    }

    /// An HS256 token whose HMAC key is the PEM text: the forgery that works on a verifier
    /// letting the token choose the algorithm.
    fn hmac_with_public_key(pem: &str) -> String {
        let signed = format!("{}.{CLAIMS}", BASE64URL.encode(r#"{"alg":"HS256"}"#));
        let mut mac = Hmac::<Sha256>::new_from_slice(pem.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", BASE64URL.encode(mac.finalize().into_bytes()))
    }

    #[cfg(feature = "jwt-rs256")]
    #[test]
    fn rs256_rfc_example_verifies_and_expires() {
        let key = Key::new("RS256", RFC_RSA_PEM).unwrap();
        assert_eq!(key.algorithm(), "RS256");
        let claims = verify(RFC_RS256_TOKEN, &key, before_exp()).unwrap();
        assert_eq!(
            claims.remaining(before_exp()),
            Some(Duration::from_secs(10))
        );
        let after = before_exp() + Duration::from_secs(10);
        assert_eq!(
            verify(RFC_RS256_TOKEN, &key, after).unwrap_err(),
            JwtError::Expired
        );
    }

    #[cfg(feature = "jwt-rs256")]
    #[test]
    fn rs256_refuses_bad_signatures_and_other_algorithms() {
        let key = Key::rs256_pem(RFC_RSA_PEM).unwrap();
        let refuse = |token: &str| verify(token, &key, before_exp()).unwrap_err();
        assert_eq!(refuse(&spoiled(RFC_RS256_TOKEN)), JwtError::BadSignature);
        let (signed, _) = RFC_RS256_TOKEN.rsplit_once('.').unwrap();
        assert_eq!(refuse(&format!("{signed}.")), JwtError::BadSignature);
        assert_eq!(refuse(&format!("{signed}.AAAA")), JwtError::BadSignature);
        let rs256 = JwtError::AlgorithmMismatch { expected: "RS256" };
        assert_eq!(refuse(&hmac_with_public_key(RFC_RSA_PEM)), rs256);
        assert_eq!(refuse(RFC_ES256_TOKEN), rs256);
        let none = format!("{}.{CLAIMS}.", BASE64URL.encode(r#"{"alg":"none"}"#));
        assert_eq!(refuse(&none), JwtError::AlgorithmNone);
    }

    #[cfg(feature = "jwt-rs256")]
    #[test]
    fn rs256_refuses_small_and_malformed_keys() {
        assert_eq!(
            Key::rs256_pem(RSA_1024_PEM).unwrap_err(),
            KeyError::RsaTooSmall { bits: 1024 }
        );
        for pem in [RFC_P256_PEM, "", "not a key", &RFC_RSA_PEM[..200]] {
            let error = Key::rs256_pem(pem).unwrap_err();
            assert_eq!(error, KeyError::NotAPublicKey { algorithm: "RS256" });
            assert!(!error.to_string().contains("MII"), "{error}");
        }
    }

    #[cfg(feature = "jwt-es256")]
    #[test]
    fn es256_rfc_example_verifies() {
        let key = Key::new("ES256", RFC_P256_PEM).unwrap();
        assert_eq!(key.algorithm(), "ES256");
        let claims = verify(RFC_ES256_TOKEN, &key, before_exp()).unwrap();
        assert_eq!(
            claims.remaining(before_exp()),
            Some(Duration::from_secs(10))
        );
    }

    #[cfg(feature = "jwt-es256")]
    #[test]
    fn es256_refuses_bad_signatures_and_other_algorithms() {
        let key = Key::es256_pem(RFC_P256_PEM).unwrap();
        let refuse = |token: &str| verify(token, &key, before_exp()).unwrap_err();
        assert_eq!(refuse(&spoiled(RFC_ES256_TOKEN)), JwtError::BadSignature);
        // r and s in DER, as OpenSSL writes them, instead of JWS's 64 bytes.
        let (signed, signature) = RFC_ES256_TOKEN.rsplit_once('.').unwrap();
        let raw = BASE64URL.decode(signature).unwrap();
        let der_integer = |half: &[u8]| {
            let pad = half[0] >= 0x80;
            let mut out = vec![0x02, (32 + usize::from(pad)) as u8];
            out.extend(pad.then_some(0));
            out.extend_from_slice(half);
            out
        };
        let body = [der_integer(&raw[..32]), der_integer(&raw[32..])].concat();
        let der = [vec![0x30, body.len() as u8], body].concat();
        assert_eq!(
            refuse(&format!("{signed}.{}", BASE64URL.encode(der))),
            JwtError::BadSignature
        );
        assert_eq!(refuse(&format!("{signed}.")), JwtError::BadSignature);
        let es256 = JwtError::AlgorithmMismatch { expected: "ES256" };
        assert_eq!(refuse(&hmac_with_public_key(RFC_P256_PEM)), es256);
        assert_eq!(refuse(RFC_RS256_TOKEN), es256);
    }

    #[cfg(feature = "jwt-es256")]
    #[test]
    fn es256_refuses_keys_of_other_curves_and_kinds() {
        for pem in [P384_PEM, RFC_RSA_PEM, "", "-----BEGIN PUBLIC KEY-----"] {
            assert_eq!(
                Key::es256_pem(pem).unwrap_err(),
                KeyError::NotAPublicKey { algorithm: "ES256" }
            );
        }
    }
}
