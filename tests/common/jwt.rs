//! JSON Web Tokens signed by the tests themselves (HS256), and the ways to spoil one.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The key of Mercure's documentation (34 bytes).
pub const KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// The usual header.
pub const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token of these header and claims texts, signed with `key`.
pub fn sign_with(key: &str, header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", b64(header), b64(claims));
    format!("{signed}.{}", b64(hmac(key, &signed)))
}

/// A token of these claims, signed with [`KEY`].
pub fn token(claims: &str) -> String {
    sign_with(KEY, HS256, claims)
}

pub fn hmac(key: &str, signed: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Seconds since the epoch, `offset` from now.
pub fn epoch_in(offset: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    now + offset
}
