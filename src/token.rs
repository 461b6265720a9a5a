//! The token pair and its file format.
//!
//! Written as `{"access_token","refresh_token","expires_at","base_domain","updated_at"}`
//! (unix seconds), the format the existing PHP gateway writes. Also read: the
//! official library's example format `{"accessToken","refreshToken","expires","baseDomain"}`.

use crate::secret::Secret;
use serde_json::{json, Map, Value};

/// A token file larger than this is not a token file.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// amoCRM's tokens are about 1 KB (a JWT) and 700 bytes (the refresh token).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// 2010-01-01: no amoCRM OAuth pair is older.
const EARLIEST: i64 = 1_262_304_000;
/// amoCRM's longest token lives 5 years (a long-lived token); an access
/// token from a refresh lives 24 hours.
const LONGEST_LIFETIME: i64 = 5 * 366 * 86_400;
/// The last second of year 9999. A time in a token file beyond it (or before
/// 1970) is not unix seconds (milliseconds, say), and every sum made with
/// it later (`expires_at - now`, `updated_at` + 90 days) could overflow.
pub const MAX_UNIX_TIME: i64 = 253_402_300_799;

#[derive(Debug, Clone, PartialEq)]
pub struct TokenPair {
    pub access_token: Secret,
    /// `None` only for a long-lived token, which is never stored in a file.
    pub refresh_token: Option<Secret>,
    pub expires_at: i64,
    pub base_domain: String,
    /// When this pair was obtained, which is also when its refresh token's
    /// 3-month clock started.
    pub updated_at: i64,
}

impl TokenPair {
    /// Parses a token file's bytes; the error says what is wrong, never a value.
    pub fn from_json(bytes: &[u8]) -> Result<TokenPair, String> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err("the file is empty".into());
        }
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON ({e})"))?;
        let obj = v.as_object().ok_or("the top level is not a JSON object")?;
        let names = if obj.contains_key("access_token") {
            ["access_token", "refresh_token", "expires_at", "base_domain"]
        } else if obj.contains_key("accessToken") {
            ["accessToken", "refreshToken", "expires", "baseDomain"]
        } else {
            return Err("it has neither `access_token` nor `accessToken`".into());
        };
        let access_token = string_field(obj, names[0])?;
        let refresh_token = string_field(obj, names[1])?;
        let expires_at = time_field(obj, names[2])?;
        let base_domain = string_field(obj, names[3])?;
        crate::host::check_host_syntax(&base_domain)
            .map_err(|why| format!("`{}` {why}", names[3]))?;
        let updated_at = match obj.get("updated_at") {
            None | Some(Value::Null) => 0,
            Some(_) => time_field(obj, "updated_at")?,
        };
        Ok(TokenPair {
            access_token: Secret::new(access_token),
            refresh_token: Some(Secret::new(refresh_token)),
            expires_at,
            base_domain,
            updated_at,
        })
    }

    /// Checks a pair before it is stored, whoever made it (a refresh answer,
    /// a code exchange, an import): tokens that can go into an HTTP header,
    /// and times amoCRM could have issued. The error names the field, never
    /// its value. The account host's allow-list is the caller's to check.
    pub fn check(&self, now: i64) -> Result<(), String> {
        check_token("access_token", &self.access_token)?;
        if let Some(r) = &self.refresh_token {
            check_token("refresh_token", r)?;
        }
        crate::host::check_host_syntax(&self.base_domain)
            .map_err(|why| format!("`base_domain` {why}"))?;
        if self.expires_at < EARLIEST || self.expires_at > now + LONGEST_LIFETIME {
            return Err(format!(
                "`expires_at` ({}) is not a time amoCRM could have set: expected unix seconds from {EARLIEST} to now + 5 years",
                self.expires_at
            ));
        }
        if self.updated_at != 0 && (self.updated_at < EARLIEST || self.updated_at > now + 86_400) {
            return Err(format!(
                "`updated_at` ({}) is not a time in the past: expected unix seconds from {EARLIEST} to now",
                self.updated_at
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        let v = json!({
            "access_token": self.access_token.expose(),
            "refresh_token": self.refresh_token.as_ref().map(Secret::expose),
            "expires_at": self.expires_at,
            "base_domain": self.base_domain,
            "updated_at": self.updated_at,
        });
        let mut out = serde_json::to_vec_pretty(&v).expect("a JSON object always serializes");
        out.push(b'\n');
        out
    }

    /// Seconds until the access token expires (negative once it has).
    pub fn expires_in(&self, now: i64) -> i64 {
        self.expires_at - now
    }

    pub fn is_expiring(&self, now: i64, margin: u64) -> bool {
        self.expires_in(now) <= margin as i64
    }
}

/// A claim of a JWT (amoCRM's access tokens are JWTs), read without
/// verifying the signature: amoCRM's key is not available client-side, so
/// a claim is a hint (`exp` of a long-lived token, `api_domain`), never a
/// proof. `None` for an opaque token or a missing claim.
pub fn jwt_claim(token: &Secret, name: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let mut claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims.get_mut(name)?.take())
}

/// A token goes into an `Authorization` header and a form body: visible
/// ASCII only (no space, CR, LF or NUL), and a sane length.
pub fn check_token(name: &str, token: &Secret) -> Result<(), String> {
    let t = token.expose();
    if t.is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    if t.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "`{name}` is longer than {MAX_TOKEN_BYTES} bytes, not an amoCRM token"
        ));
    }
    if let Some(pos) = t.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(format!(
            "`{name}` holds a character that cannot be sent in an HTTP header (byte {pos}: only visible ASCII is allowed)"
        ));
    }
    Ok(())
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) => Err(format!("`{key}` is empty")),
        Some(_) => Err(format!("`{key}` is not a string")),
        None => Err(format!("`{key}` is missing")),
    }
}

fn time_field(obj: &Map<String, Value>, key: &str) -> Result<i64, String> {
    let t = int_field(obj, key)?;
    if !(0..=MAX_UNIX_TIME).contains(&t) {
        return Err(format!(
            "`{key}` ({t}) is not a time in unix seconds (0 to {MAX_UNIX_TIME})"
        ));
    }
    Ok(t)
}

fn int_field(obj: &Map<String, Value>, key: &str) -> Result<i64, String> {
    match obj.get(key) {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| format!("`{key}` is not a whole number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("`{key}` is not a whole number")),
        Some(_) => Err(format!("`{key}` is not a number")),
        None => Err(format!("`{key}` is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_claims_are_read_without_verification() {
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1234,"api_domain":"api-b.amocrm.ru"}"#);
        let token = Secret::new(format!("h.{claims}.s"));
        assert_eq!(jwt_claim(&token, "exp"), Some(json!(1234)));
        assert_eq!(
            jwt_claim(&token, "api_domain"),
            Some(json!("api-b.amocrm.ru"))
        );
        assert_eq!(jwt_claim(&token, "sub"), None);
        assert_eq!(jwt_claim(&Secret::new("opaque"), "exp"), None);
    }

    #[test]
    fn reads_both_formats_and_writes_ours() {
        let ours = br#"{"access_token":"a","refresh_token":"r","expires_at":100,"base_domain":"x.amocrm.ru","updated_at":5}"#;
        let p = TokenPair::from_json(ours).unwrap();
        assert_eq!(p.expires_at, 100);
        assert_eq!(p.updated_at, 5);
        let official =
            br#"{"accessToken":"a","refreshToken":"r","expires":"100","baseDomain":"x.amocrm.ru"}"#;
        let q = TokenPair::from_json(official).unwrap();
        assert_eq!(q.access_token, p.access_token);
        assert_eq!(q.updated_at, 0);
        let again = TokenPair::from_json(&p.to_json()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn faults_are_named_without_values() {
        for (bytes, fault) in [
            (&b""[..], "empty"),
            (b"{\"access_token\":", "not valid JSON"),
            (b"[]", "not a JSON object"),
            (b"{}", "neither"),
            (br#"{"access_token":"secret-a","refresh_token":"r","expires_at":"soon","base_domain":"x.amocrm.ru"}"#, "`expires_at`"),
            (br#"{"access_token":"secret-a","expires_at":1,"base_domain":"x.amocrm.ru"}"#, "`refresh_token` is missing"),
            (br#"{"access_token":"secret-a","refresh_token":"r","expires_at":1,"base_domain":"x/y"}"#, "`base_domain`"),
            // Found by fuzzing (fuzz/corpus/token_file/regression-*): times
            // that are not unix seconds were taken, and sums with them overflowed.
            (br#"{"access_token":"secret-a","refresh_token":"r","expires_at":1767225600000,"base_domain":"x.amocrm.ru"}"#, "`expires_at` (1767225600000) is not a time in unix seconds"),
            (br#"{"access_token":"secret-a","refresh_token":"r","expires_at":1e300,"base_domain":"x.amocrm.ru"}"#, "`expires_at`"),
            (br#"{"access_token":"secret-a","refresh_token":"r","expires_at":-9223372036854775808,"base_domain":"x.amocrm.ru"}"#, "`expires_at`"),
            (br#"{"access_token":"secret-a","refresh_token":"r","expires_at":1,"base_domain":"x.amocrm.ru","updated_at":"9223372036854775807"}"#, "`updated_at`"),
        ] {
            let e = TokenPair::from_json(bytes).unwrap_err();
            assert!(e.contains(fault), "{e}");
            assert!(!e.contains("secret-a"));
        }
    }

    fn pair(access: &str, expires_at: i64) -> TokenPair {
        TokenPair {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new("def50200aa")),
            expires_at,
            base_domain: "x.amocrm.ru".into(),
            updated_at: 0,
        }
    }

    #[test]
    fn check_refuses_what_cannot_be_sent_or_was_never_issued() {
        let now = 1_800_000_000;
        assert!(pair("eyJ0.eyJ1.sig", now + 86_400).check(now).is_ok());
        assert!(
            pair("eyJ0.eyJ1.sig", now - 86_400).check(now).is_ok(),
            "an expired pair is still a pair"
        );
        for (p, fault) in [
            (
                pair("secret-a\r\nX-Evil: 1", now),
                "`access_token` holds a character",
            ),
            (pair("secret-a b", now), "`access_token` holds a character"),
            (
                pair("secret-a\u{0}", now),
                "`access_token` holds a character",
            ),
            (pair("секрет", now), "`access_token` holds a character"),
            (
                pair(&"a".repeat(MAX_TOKEN_BYTES + 1), now),
                "`access_token` is longer",
            ),
            (pair("", now), "`access_token` is empty"),
            (pair("secret-a", 5), "`expires_at`"),
            (pair("secret-a", now + 6 * 366 * 86_400), "`expires_at`"),
            (
                TokenPair {
                    updated_at: now + 7 * 86_400,
                    ..pair("secret-a", now)
                },
                "`updated_at`",
            ),
            (
                TokenPair {
                    base_domain: "x.amocrm.ru/evil".into(),
                    ..pair("secret-a", now)
                },
                "`base_domain`",
            ),
        ] {
            let e = p.check(now).unwrap_err();
            assert!(e.contains(fault), "{e}");
            assert!(!e.contains("secret-a"), "{e}");
        }
    }
}
