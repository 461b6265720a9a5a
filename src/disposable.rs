//! A widget's disposable token: a JWT that amoCRM signs with the
//! integration's client secret (HS256) and the widget sends with each of its
//! requests to the integration, so that the integration knows which
//! account and user is asking. It needs the client secret, which PHP code
//! never sees, so the check lives here (amoCRM's web SDK "mechanics").

use crate::error::{Error, Result};
use crate::secret::Secret;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Clock difference allowed between amoCRM and this host, in seconds.
pub const LEEWAY: i64 = 30;

/// Why a disposable token is refused: three different answers for the widget.
fn refused(title: &str, message: impl Into<String>) -> Error {
    Error::auth(message).with_title(title)
}

fn segment(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `https://gateway.example.com` for `https://gateway.example.com/oauth/callback`:
/// the audience amoCRM puts in a widget's token, as the official library reads it.
fn audience(redirect_uri: &str) -> Result<String> {
    let url = url::Url::parse(redirect_uri).map_err(|e| Error::config("redirect_uri", e))?;
    let host = url
        .host_str()
        .ok_or_else(|| Error::config("redirect_uri", "has no host"))?;
    Ok(format!("{}://{host}", url.scheme()))
}

/// Checks the signature (HS256 with the client secret), the audience (the
/// scheme and host of `redirect_uri`) and the times (`exp`, `nbf`, within
/// [`LEEWAY`]), in that order; returns the claims as the official library's
/// `DisposableTokenModel::toArray()` names them. The errors are
/// `AmoAuthException`s titled `Invalid signature`, `Wrong audience` and
/// `Token expired` (and `Malformed token`); none shows the token.
pub fn parse(token: &str, secret: &Secret, redirect_uri: &str, now: i64) -> Result<Value> {
    let malformed = |why: &str| refused("Malformed token", format!("the disposable token {why}"));
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [head, body, sig] = parts[..] else {
        return Err(malformed("is not a JWT (three dot-separated parts)"));
    };
    let header =
        segment(head).ok_or_else(|| malformed("has a header that is not base64url JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(refused(
            "Invalid signature",
            "the disposable token is not signed with HS256 (amoCRM signs widget tokens so)",
        ));
    }
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig.trim_end_matches('='))
        .map_err(|_| {
            refused(
                "Invalid signature",
                "the disposable token's signature is not base64url",
            )
        })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{head}.{body}").as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&sig).map_err(|_| {
        refused(
            "Invalid signature",
            "the disposable token's signature does not match the client secret: it was not issued by amoCRM for this integration",
        )
    })?;
    let claims =
        segment(body).ok_or_else(|| malformed("has claims that are not base64url JSON"))?;

    let want = audience(redirect_uri)?;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a.trim_end_matches('/') == want,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().map(|a| a.trim_end_matches('/')) == Some(want.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(refused(
            "Wrong audience",
            format!("the disposable token is meant for another integration (its audience is not {want})"),
        ));
    }

    let time = |k: &str| claims.get(k).and_then(Value::as_i64);
    let exp = time("exp").ok_or_else(|| malformed("has no `exp` claim"))?;
    if now > exp + LEEWAY {
        return Err(refused(
            "Token expired",
            format!("the disposable token expired {} s ago", now - exp),
        ));
    }
    if time("nbf").is_some_and(|nbf| nbf > now + LEEWAY) {
        return Err(refused(
            "Token expired",
            "the disposable token is not valid yet (its nbf is in the future: is this host's clock right?)",
        ));
    }
    let s = |k: &str| claims.get(k).cloned().unwrap_or(Value::Null);
    let int = |k: &str| match claims.get(k) {
        Some(Value::Number(n)) => json!(n.as_i64()),
        Some(Value::String(v)) => json!(v.parse::<i64>().ok()),
        _ => Value::Null,
    };
    Ok(json!({
        "token_uuid": s("jti"),
        "client_uuid": s("client_uuid"),
        "account_domain": s("iss"),
        "account_subdomain": s("subdomain"),
        "account_id": int("account_id"),
        "user_id": int("user_id"),
        "is_admin": claims.get("is_admin").is_some_and(|v| v == &json!(true) || v == &json!(1)),
        "expires_at": exp,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECT: &str = "https://gateway.example.com/oauth/callback";

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    fn sign(claims: Value, key: &str) -> String {
        let head = b64(br#"{"typ":"JWT","alg":"HS256"}"#);
        let body = b64(claims.to_string().as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{head}.{body}").as_bytes());
        format!("{head}.{body}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn claims(now: i64) -> Value {
        json!({
            "jti": "5f3c", "iss": "https://example.amocrm.ru", "aud": "https://gateway.example.com",
            "iat": now, "nbf": now, "exp": now + 1800, "subdomain": "example",
            "account_id": 31000001, "user_id": "1001", "is_admin": true, "client_uuid": "c-1",
        })
    }

    #[test]
    fn a_good_token_gives_its_claims() {
        let secret = Secret::new("client-secret");
        let got = parse(
            &sign(claims(1000), "client-secret"),
            &secret,
            REDIRECT,
            1000,
        )
        .unwrap();
        assert_eq!(got["account_id"], 31000001);
        assert_eq!(got["user_id"], 1001);
        assert_eq!(got["account_subdomain"], "example");
        assert_eq!(got["is_admin"], true);
        assert_eq!(got["expires_at"], 2800);
    }

    #[test]
    fn three_faults_three_errors() {
        let secret = Secret::new("client-secret");
        let title = |token: String, now: i64| {
            parse(&token, &secret, REDIRECT, now)
                .unwrap_err()
                .title
                .clone()
        };
        assert_eq!(
            title(sign(claims(1000), "another secret"), 1000),
            "Invalid signature"
        );
        let mut other = claims(1000);
        other["aud"] = json!("https://evil.example.com");
        assert_eq!(title(sign(other, "client-secret"), 1000), "Wrong audience");
        assert_eq!(
            title(sign(claims(1000), "client-secret"), 2800 + LEEWAY + 1),
            "Token expired"
        );
        assert!(parse(
            &sign(claims(1000), "client-secret"),
            &secret,
            REDIRECT,
            2800 + LEEWAY
        )
        .is_ok());
        assert_eq!(
            title(sign(claims(1000), "client-secret"), 1000 - LEEWAY - 1),
            "Token expired"
        );
        // alg none, garbage, a cut signature
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none"}"#),
            b64(claims(1000).to_string().as_bytes())
        );
        assert_eq!(title(none, 1000), "Invalid signature");
        assert_eq!(title("not a token".into(), 1000), "Malformed token");
        let good = sign(claims(1000), "client-secret");
        assert_eq!(
            title(good[..good.len() - 4].to_string(), 1000),
            "Invalid signature"
        );
    }

    #[test]
    fn no_message_shows_the_token_or_the_secret() {
        let secret = Secret::new("client-secret");
        let token = sign(claims(1000), "another secret");
        let e = parse(&token, &secret, REDIRECT, 1000).unwrap_err();
        assert!(!e.message.contains(&token) && !e.message.contains("client-secret"));
    }
}
