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
    check_callback_referer(cfg, referer)?;
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

/// The callback's `referer`: an account host within `allowed_domains`, and
/// without a port — amoCRM sends a bare host, and a port would send the
/// client secret to whatever listens there. Ports pass only in
/// `insecure_http` mode, for the loopback emulator. Checked before any I/O:
/// anyone can forge the callback.
pub fn check_callback_referer(cfg: &Config, referer: &str) -> Result<()> {
    host::check_account_host(referer, &cfg.allowed_domains)
        .map_err(|why| Error::argument("referer", format!("{why}; nothing was sent to it")))?;
    if !cfg.insecure_http && host::split_host_port(referer).1.is_some() {
        return Err(Error::argument(
            "referer",
            format!("`{referer}` names a port; amoCRM's referer is a bare account host; nothing was sent to it"),
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

fn parse_grant(body: &[u8], host: &str, now: i64) -> std::result::Result<TokenPair, String> {
    let j: Value =
        serde_json::from_slice(body).map_err(|_| format!("not JSON: {}", excerpt(body, 120)))?;
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
