//! amoCRM's OAuth 2.0: the consent URL, the code grant and the refresh grant
//! (`POST https://{account host}/oauth2/access_token`).

use crate::config::Config;
use crate::error::{excerpt, Error, ErrorKind, Result};
use crate::host;
use crate::net;
use crate::secret::Secret;
use crate::token::TokenPair;
use crate::transport::{self, Request};
use hyper::Method;
use serde_json::{json, Value};

pub const MODES: &[&str] = &["post_message", "popup"];

/// `https://www.amocrm.ru/oauth?client_id=…&state=…&mode=…`
pub fn authorization_url(cfg: &Config, state: &str, mode: &str) -> Result<String> {
    if cfg.client_id.is_empty() {
        return Err(Error::config("client_id", "is not set"));
    }
    if !MODES.contains(&mode) {
        return Err(Error::argument(
            "mode",
            format!("must be one of {}, got `{mode}`", MODES.join(", ")),
        ));
    }
    if state.is_empty() {
        return Err(Error::argument(
            "state",
            "must not be empty (it protects the callback from forgery)",
        ));
    }
    let origin = host::origin(
        &cfg.oauth_host,
        cfg.insecure_http && host::is_loopback(&cfg.oauth_host),
    )?;
    let mut url =
        url::Url::parse(&format!("{origin}/oauth")).map_err(|e| Error::config("oauth_host", e))?;
    url.query_pairs_mut()
        .append_pair("client_id", &cfg.client_id)
        .append_pair("state", state)
        .append_pair("mode", mode);
    Ok(url.into())
}

/// Exchanges an authorization code. `referer` is checked against
/// `allowed_domains` before any network I/O: the request carries the client
/// secret, and the referer comes from a URL anyone can forge.
pub fn exchange_code(cfg: &Config, code: &str, referer: &str, now: i64) -> Result<TokenPair> {
    let referer = referer.trim();
    check_bare_account_host(cfg, "referer", referer)?;
    if code.trim().is_empty() {
        return Err(Error::argument("code", "is empty"));
    }
    let (client_id, secret) = cfg.credentials()?;
    let body = json!({
        "client_id": client_id,
        "client_secret": secret.expose(),
        "grant_type": "authorization_code",
        "code": code.trim(),
        "redirect_uri": cfg.redirect_uri,
    });
    post_token(cfg, referer, &body, Grant::Code, now)
}

/// Spends `pair`'s refresh token for a new pair. The caller holds the lock.
pub fn refresh(cfg: &Config, pair: &TokenPair, now: i64) -> Result<TokenPair> {
    let (client_id, secret) = cfg.credentials()?;
    let refresh_token = pair
        .refresh_token
        .as_ref()
        .ok_or_else(|| Error::auth("there is no refresh token to refresh with"))?;
    // The stored pair's host gets the client secret: still allowed?
    host::check_account_host(&pair.base_domain, &cfg.allowed_domains).map_err(|why| {
        Error::config(
            "allowed_domains",
            format!("the stored pair's base_domain: {why}; nothing was sent to it"),
        )
    })?;
    let body = json!({
        "client_id": client_id,
        "client_secret": secret.expose(),
        "grant_type": "refresh_token",
        "refresh_token": refresh_token.expose(),
        "redirect_uri": cfg.redirect_uri,
    });
    post_token(cfg, &pair.base_domain, &body, Grant::Refresh, now)
}

/// Asks amoCRM to send an authorization code for an old API key to the
/// integration's redirect URI (`POST https://{account}/oauth2/exchange_api_key`,
/// answered 202; the code then arrives at the callback like any other). The
/// body carries the client secret and the API key, so the host passes the
/// callback's checks first; neither appears in any message.
pub fn exchange_api_key(cfg: &Config, account: &str, login: &str, api_key: &str) -> Result<()> {
    check_bare_account_host(cfg, "accountHost", account)?;
    if login.trim().is_empty() {
        return Err(Error::argument("login", "is empty"));
    }
    if api_key.trim().is_empty() {
        return Err(Error::argument("apiKey", "is empty"));
    }
    let (client_id, secret) = cfg.credentials()?;
    let body = json!({
        "login": login.trim(),
        "api_key": api_key.trim(),
        "client_uuid": client_id,
        "client_secret": secret.expose(),
    });
    let bytes = serde_json::to_vec(&body).expect("a JSON object always serializes");
    let client = net::client(&cfg.client_options())?;
    let resp = transport::send(
        &client,
        &Request {
            method: Method::POST,
            url: format!(
                "{}/oauth2/exchange_api_key",
                host::origin(account, cfg.insecure_http)?
            ),
            bearer: None,
            json: Some(&bytes),
            context_user: None,
            refresh_token: None,
        },
    )?;
    if resp.status == 202 {
        return Ok(());
    }
    // The OAuth endpoints say why in `hint`, which the API's errors lack.
    let hint = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|j| {
            j.get("hint")
                .and_then(Value::as_str)
                .map(|h| format!(" ({h})"))
        })
        .unwrap_or_default();
    Err(transport::api_error(resp)
        .context(|m| format!("amoCRM did not accept the API-key exchange{hint}: {m}")))
}

/// Asks amoCRM where the account lives now (its subdomain can change, and
/// the old host then answers 401 or 404 while the pair is still good):
/// `GET https://{api_domain}/oauth2/account/current/subdomain` with the
/// refresh token in `X-Refresh-Token`. The refresh token is shown, not
/// spent. `api_domain` is the access token's claim (tokens since August
/// 2024); it and the answer's host must be within `allowed_domains`, since
/// the refresh token goes to the one and every token to the other.
///
/// The account's host, or why it is not known (the caller keeps its own
/// error and adds this to it).
pub fn current_host(cfg: &Config, pair: &TokenPair) -> std::result::Result<String, String> {
    let refresh_token = pair
        .refresh_token
        .as_ref()
        .ok_or("a long-lived token has no refresh token to ask with")?;
    let api_domain = crate::token::jwt_claim(&pair.access_token, "api_domain")
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or("the access token names no api_domain (tokens before August 2024 do not)")?;
    host::check_account_host(&api_domain, &cfg.allowed_domains)
        .map_err(|why| format!("the access token's api_domain {why}; nothing was sent to it"))?;
    let origin = host::origin(&api_domain, cfg.insecure_http).map_err(|e| e.message.clone())?;
    let client = net::client(&cfg.client_options()).map_err(|e| e.message.clone())?;
    let resp = transport::send(
        &client,
        &Request {
            method: Method::GET,
            url: format!("{origin}/oauth2/account/current/subdomain"),
            bearer: None,
            json: None,
            context_user: None,
            refresh_token: Some(refresh_token),
        },
    )
    .map_err(|e| format!("the subdomain lookup failed: {}", e.message))?;
    if resp.status != 200 {
        return Err(format!(
            "the subdomain lookup answered {} ({})",
            resp.status,
            excerpt(&resp.body, 120)
        ));
    }
    let j: Value = serde_json::from_slice(&resp.body).map_err(|_| {
        format!(
            "the subdomain lookup's answer is not JSON: {}",
            excerpt(&resp.body, 120)
        )
    })?;
    let field = |k: &str| j.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let host = account_host(field("subdomain"), field("domain"))
        .ok_or("the subdomain lookup's answer has no `domain` or `subdomain`")?;
    host::check_account_host(&host, &cfg.allowed_domains)
        .map_err(|why| format!("amoCRM named the account's host {why}; nothing was sent to it"))?;
    Ok(host)
}

/// The account's host from the lookup's answer. The official library uses
/// `domain` as the whole host (`example.amocrm.ru`); should `domain` be only
/// the base (`amocrm.ru`), the subdomain goes in front of it.
fn account_host(subdomain: Option<&str>, domain: Option<&str>) -> Option<String> {
    match (subdomain, domain) {
        (Some(sub), Some(d)) => {
            let first = d.split(['.', ':']).next().unwrap_or("");
            Some(if first.eq_ignore_ascii_case(sub) {
                d.to_string()
            } else {
                format!("{sub}.{d}")
            })
        }
        (None, Some(d)) => Some(d.to_string()),
        (Some(_), None) | (None, None) => None,
    }
}

/// The callback's `referer`: an account host within `allowed_domains`, and
/// without a port — amoCRM sends a bare host, and a port would send the
/// client secret to whatever listens there. Ports pass only in
/// `insecure_http` mode, for the loopback emulator. Checked before any I/O:
/// anyone can forge the callback.
/// `name` is the argument the host came in, for the message.
pub fn check_bare_account_host(cfg: &Config, name: &str, host: &str) -> Result<()> {
    host::check_account_host(host, &cfg.allowed_domains)
        .map_err(|why| Error::argument(name, format!("{why}; nothing was sent to it")))?;
    if !cfg.insecure_http && host::split_host_port(host).1.is_some() {
        return Err(Error::argument(
            name,
            format!("`{host}` names a port; amoCRM's account host is bare; nothing was sent to it"),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Grant {
    Code,
    Refresh,
}

fn post_token(cfg: &Config, host: &str, body: &Value, grant: Grant, now: i64) -> Result<TokenPair> {
    let url = format!(
        "{}/oauth2/access_token",
        host::origin(host, cfg.insecure_http)?
    );
    let client = net::client(&cfg.client_options())?;
    let bytes = serde_json::to_vec(body).expect("a JSON object always serializes");
    let resp = transport::send(
        &client,
        &Request {
            method: Method::POST,
            url,
            bearer: None,
            json: Some(&bytes),
            context_user: None,
            refresh_token: None,
        },
    )
    .map_err(|e| match grant {
        Grant::Refresh => e.context(|m| {
            format!("{m}; the stored token pair is kept and the next call tries again")
        }),
        Grant::Code => e,
    })?;
    if resp.status == 200 {
        return parse_grant(&resp.body, host, now).map_err(|why| {
            Error::new(
                ErrorKind::Api,
                format!("amoCRM's token answer cannot be used: {why}"),
            )
            .with_title("Invalid token response")
            .with_description(why)
            .with_request(resp.info.clone())
        });
    }
    if resp.status == 400 || resp.status == 401 {
        let j: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let hint = j.get("hint").and_then(Value::as_str).unwrap_or("");
        let title = j
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("Unauthorized")
            .to_string();
        let detail = j.get("detail").and_then(Value::as_str).unwrap_or("");
        let reason = if !hint.is_empty() {
            hint.to_string()
        } else if !detail.is_empty() {
            format!("{title}: {detail}")
        } else if j.is_null() {
            excerpt(&resp.body, 120)
        } else {
            title.clone()
        };
        let message = match grant {
            Grant::Refresh => format!(
                "amoCRM refused the refresh token ({reason}); the stored pair is kept; an admin must re-authorize the integration at /oauth/authorize"
            ),
            Grant::Code => format!("amoCRM refused the authorization code ({reason}); start again at /oauth/authorize"),
        };
        return Err(Error::auth(message)
            .with_title(title)
            .with_description(if hint.is_empty() {
                detail.to_string()
            } else {
                hint.to_string()
            })
            .with_request(resp.info));
    }
    Err(transport::api_error(resp))
}

/// Why a token answer is not JSON, without quoting it: a cut-off answer
/// holds the start of the new tokens.
fn not_json_grant(body: &[u8]) -> String {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let looks = match first {
        None => "empty",
        Some(b'<') => "an HTML page",
        Some(b'{') => "JSON cut off or broken",
        Some(_) => "neither JSON nor HTML",
    };
    format!(
        "not JSON ({looks}, {} bytes; not quoted: it may hold tokens)",
        body.len()
    )
}

fn parse_grant(body: &[u8], host: &str, now: i64) -> std::result::Result<TokenPair, String> {
    let j: Value = serde_json::from_slice(body).map_err(|_| not_json_grant(body))?;
    let s = |k: &str| match j.get(k).and_then(Value::as_str) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(format!("`{k}` is missing or empty")),
    };
    let access = s("access_token")?;
    let refresh = s("refresh_token")?;
    let expires_in = j
        .get("expires_in")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .ok_or("`expires_in` is missing or not a positive number")?;
    let pair = TokenPair {
        access_token: Secret::new(access),
        refresh_token: Some(Secret::new(refresh)),
        expires_at: now.saturating_add(expires_in),
        base_domain: host.to_string(),
        updated_at: now,
    };
    pair.check(now)?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::account_host;

    #[test]
    fn the_lookups_domain_is_the_whole_host_or_its_base() {
        let host = |s, d| account_host(s, d);
        assert_eq!(
            host(Some("new"), Some("new.amocrm.ru")).as_deref(),
            Some("new.amocrm.ru")
        );
        assert_eq!(
            host(Some("new"), Some("amocrm.ru")).as_deref(),
            Some("new.amocrm.ru")
        );
        assert_eq!(
            host(Some("new"), Some("kommo.com")).as_deref(),
            Some("new.kommo.com")
        );
        assert_eq!(
            host(None, Some("new.kommo.com")).as_deref(),
            Some("new.kommo.com")
        );
        assert_eq!(
            host(Some("127"), Some("127.0.0.1:8080")).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host(Some("new"), None), None);
    }
}
