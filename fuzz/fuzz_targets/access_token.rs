//! Fuzzes Mercure 1.0 access token validation (src/auth/access_token.rs).
//!
//! Each input, as UTF-8 text, is tried three ways:
//! 1. as a token: refused or accepted, never a panic;
//! 2. as the claims, then as the header, of a token correctly signed here (typ at+jwt): the
//!    fuzzer cannot forge an HMAC, so this is how it reaches the claims and the authorization
//!    details; a token signed here under this issuer's name is never refused for its
//!    signature, and an accepted one names the trusted issuer, this hub's resource identifier and an `exp`;
//! 3. as the claims of a token signed with another trusted issuer's key: never accepted (keys
//!    are bound to their issuer).
//!
//! Run from fuzz/, with the seeds (the draft's example tokens and malformed details):
//! `mkdir -p corpus/access_token && cargo fuzz run --sanitizer none access_token corpus/access_token seeds/access_token`
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use ssed::fuzzing::{Hub, Role, TrustedIssuer, verify_access_token};

const KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";
const OTHER_KEY: &str = "the other issuer's key, 32 bytes or more";
const ISS: &str = "https://example.com";
const AUD: &str = "https://hub.example.com/.well-known/mercure";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_400)
}

fn sign(key: &str, header: &str, claims: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let hub = Hub::new(AUD, None).expect("a valid hub URL");
    let issuers = [
        TrustedIssuer::new(ISS, Some(KEY), Some(KEY)).expect("a valid issuer"),
        TrustedIssuer::new("https://other.example", Some(OTHER_KEY), Some(OTHER_KEY))
            .expect("a valid issuer"),
    ];
    for role in [Role::Publisher, Role::Subscriber] {
        let _ = verify_access_token(text, &issuers, role, &hub, now());
        let signed = sign(KEY, r#"{"alg":"HS256","typ":"at+jwt"}"#, text);
        match verify_access_token(&signed, &issuers, role, &hub, now()) {
            Ok(grants) => {
                let claims: serde_json::Value =
                    serde_json::from_str(text).expect("accepted claims are JSON");
                assert_eq!(claims["iss"], ISS, "accepted under another issuer");
                let aud = &claims["aud"];
                assert!(
                    aud == AUD || aud.as_array().is_some_and(|a| a.iter().any(|v| v == AUD)),
                    "accepted without this hub's aud"
                );
                // An exp beyond what the clock holds is no expiry (the stream's timer caps it).
                assert!(claims["exp"].is_number(), "accepted without exp: {:?}", grants.expires);
                let _ = grants.publish.matches(text);
                let _ = grants.subscribe.matches(text);
                let _ = grants.payload_for(text);
            }
            Err(e) if e.0.contains("signature") => {
                // Only a token naming another issuer fails its signature: KEY is this one's.
                let claims: serde_json::Value = serde_json::from_str(text).expect("JSON");
                assert_ne!(claims["iss"], ISS, "a token signed here: {e}");
            }
            Err(_) => {}
        }
        let header = sign(KEY, text, r#"{"iss":"https://example.com","aud":"x","exp":1}"#);
        let _ = verify_access_token(&header, &issuers, role, &hub, now());
        let forged = sign(OTHER_KEY, r#"{"alg":"HS256","typ":"at+jwt"}"#, text);
        if let Ok(grants) = verify_access_token(&forged, &issuers, role, &hub, now()) {
            let claims: serde_json::Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(claims["iss"], "https://other.example", "a key verified another issuer's token: {grants:?}");
        }
    }
});
