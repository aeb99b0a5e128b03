//! Access tokens signed here, refused for each reason the draft gives.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::*;
use crate::auth::jwt::BASE64URL;

const KEY: &str = "a key of at least thirty-two bytes!";
const OTHER_KEY: &str = "another key of at least 32 bytes!!";
const ISS: &str = "https://app.test";
const AUD: &str = "https://hub.test/.well-known/mercure";

fn hub() -> Hub {
    Hub::new(AUD, None).unwrap()
}

fn issuers() -> Vec<TrustedIssuer> {
    vec![
        TrustedIssuer::new(ISS, Some(KEY), Some(KEY)).unwrap(),
        TrustedIssuer::new("https://other.test", Some(OTHER_KEY), None).unwrap(),
    ]
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn sign_with(key: &str, header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", BASE64URL.encode(header), BASE64URL.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", BASE64URL.encode(mac.finalize().into_bytes()))
}

const HEADER: &str = r#"{"alg":"HS256","typ":"at+jwt"}"#;

fn claims(details: &str) -> String {
    format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":1700000060,"sub":"s","authorization_details":{details}}}"#
    )
}

const EVERYTHING: &str = r#"[{"type":"https://mercure.rocks/authorization-detail","actions":["publish","subscribe"],"topics":[{"match":"*"}]}]"#;

fn check(token: &str, role: Role) -> Result<Grants, TokenError> {
    verify(token, &issuers(), role, &hub(), now())
}

fn refused(token: &str) -> String {
    check(token, Role::Subscriber).expect_err("refused").0
}

#[test]
fn a_well_formed_token_grants_its_details() {
    let token = sign_with(KEY, HEADER, &claims(EVERYTHING));
    assert!(is_access_token(&token));
    let grants = check(&token, Role::Publisher).unwrap();
    assert!(grants.publish.matches_everything() && grants.subscribe.matches_everything());
    assert_eq!(grants.expires, Some(now() + Duration::from_secs(60)));
    let typ = sign_with(
        KEY,
        r#"{"alg":"HS256","typ":"application/AT+JWT"}"#,
        &claims("[]"),
    );
    assert!(check(&typ, Role::Publisher).is_ok());
    let array = claims(EVERYTHING).replace(&format!("\"{AUD}\""), &format!("[\"x\",\"{AUD}\"]"));
    assert!(check(&sign_with(KEY, HEADER, &array), Role::Subscriber).is_ok());
}

#[test]
fn each_validation_failure_refuses_the_token() {
    let good = claims(EVERYTHING);
    let cases: Vec<(String, &str)> = vec![
        (
            sign_with(KEY, r#"{"alg":"HS256","typ":"JWT"}"#, &good),
            "typ",
        ),
        (sign_with(KEY, r#"{"alg":"HS256"}"#, &good), "typ"),
        (
            sign_with(KEY, r#"{"alg":"HS384","typ":"at+jwt"}"#, &good),
            "not allowed",
        ),
        (
            sign_with(KEY, r#"{"alg":"none","typ":"at+jwt"}"#, &good),
            "none",
        ),
        (sign_with(OTHER_KEY, HEADER, &good), "signature"),
        (
            sign_with(KEY, HEADER, &good.replace(ISS, "https://evil.test")),
            "not trusted",
        ),
        (
            sign_with(
                KEY,
                HEADER,
                &good.replace(&format!("\"iss\":\"{ISS}\","), ""),
            ),
            "iss",
        ),
        // Another trusted issuer's key, under this issuer's name, and the other way round.
        (
            sign_with(KEY, HEADER, &good.replace(ISS, "https://other.test")),
            "subscriber key",
        ),
        (
            sign_with(KEY, HEADER, &good.replace(AUD, "https://elsewhere.test/")),
            "aud",
        ),
        (
            sign_with(
                KEY,
                HEADER,
                &good.replace(&format!(",\"aud\":\"{AUD}\""), ""),
            ),
            "no aud",
        ),
        (
            sign_with(KEY, HEADER, &good.replace(",\"exp\":1700000060", "")),
            "no exp",
        ),
        (
            sign_with(KEY, HEADER, &good.replace("1700000060", "1699999999")),
            "expired",
        ),
        (
            sign_with(
                KEY,
                HEADER,
                &good.replace("\"sub\"", "\"nbf\":1700000030,\"x\""),
            ),
            "nbf",
        ),
        (
            sign_with(KEY, r#"{"alg":"HS256","typ":"at+jwt","crit":["x"]}"#, &good),
            "crit",
        ),
    ];
    for (token, why) in cases {
        let got = refused(&token);
        assert!(got.contains(why), "{why}: {got}");
    }
    let publisher_of_other = sign_with(KEY, HEADER, &good.replace(ISS, "https://other.test"));
    assert!(
        check(&publisher_of_other, Role::Publisher)
            .unwrap_err()
            .0
            .contains("signature")
    );
}

#[test]
fn one_malformed_detail_refuses_the_whole_token() {
    let detail = |body: &str| {
        format!(
            r#"[{EVERYTHING_INNER},{{"type":"https://mercure.rocks/authorization-detail",{body}}}]"#
        )
    };
    for body in [
        r#""topics":[{"match":"a"}]"#,
        r#""actions":[],"topics":[{"match":"a"}]"#,
        r#""actions":"subscribe","topics":[{"match":"a"}]"#,
        r#""actions":["subscribe",1],"topics":[{"match":"a"}]"#,
        r#""actions":["subscribe"]"#,
        r#""actions":["subscribe"],"topics":[]"#,
        r#""actions":["subscribe"],"topics":["a"]"#,
        r#""actions":["subscribe"],"topics":[{"matches":"a"}]"#,
        r#""actions":["subscribe"],"topics":[{"match":"a","match_type":"regexp"}]"#,
        r#""actions":["subscribe"],"topics":[{"match":"a","match_type":"Exact"}]"#,
        r#""actions":["subscribe"],"topics":[{"match":"a\u0007"}]"#,
        r#""actions":["subscribe"],"topics":[{"match":"a"}],"payload":"x""#,
    ] {
        let token = sign_with(KEY, HEADER, &claims(&detail(body)));
        assert!(check(&token, Role::Subscriber).is_err(), "{body}");
    }
    for bad in ["{}", "[1]", r#"[{"actions":["publish"]}]"#] {
        let token = sign_with(KEY, HEADER, &claims(bad));
        assert!(check(&token, Role::Subscriber).is_err(), "{bad}");
    }
}

const EVERYTHING_INNER: &str = r#"{"type":"https://mercure.rocks/authorization-detail","actions":["publish"],"topics":[{"match":"*"}]}"#;

#[test]
fn unknown_actions_and_foreign_details_grant_nothing() {
    let details = r#"[{"type":"https://mercure.rocks/authorization-detail","actions":["fly"],"topics":[{"match":"a"}]},
        {"type":"https://api.test/other","actions":["publish"],"whatever":1},
        {"type":"https://mercure.rocks/authorization-detail","actions":["subscribe","x"],"topics":[{"match":"https://x.test/{id}"}],"payload":{"p":1}}]"#;
    let grants = check(&sign_with(KEY, HEADER, &claims(details)), Role::Subscriber).unwrap();
    assert!(grants.publish.is_empty());
    assert!(
        grants.subscribe.matches("https://x.test/{id}"),
        "exact: braces and all"
    );
    assert!(!grants.subscribe.matches("https://x.test/1"));
    assert_eq!(
        grants.payload_for("https://x.test/{id}"),
        Some(r#"{"p":1}"#)
    );
    assert_eq!(grants.payload_for("other"), None);
    let none = sign_with(
        KEY,
        HEADER,
        &claims("[]").replace(",\"authorization_details\":[]", ""),
    );
    let grants = check(&none, Role::Subscriber).unwrap();
    assert!(grants.publish.is_empty() && grants.subscribe.is_empty());
}

#[test]
fn keys_name_their_algorithm() {
    assert_eq!(parse_key(KEY).unwrap().algorithm(), "HS256");
    assert_eq!(
        parse_key(&format!("HS256:{KEY}")).unwrap().algorithm(),
        "HS256"
    );
    assert!(parse_key("HS256:short").is_err());
    assert!(parse_key("RS256:not a pem").is_err());
    assert!(TrustedIssuer::new("", Some(KEY), None).is_err());
}
