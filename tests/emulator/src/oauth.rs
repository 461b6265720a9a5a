//! OAuth: the token endpoint, the consent page, token minting and checks.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::state::{bump, AccessRec, CodeRec, RefreshRec, State, ACCESS_TOKEN_TTL, CODE_TTL};
use crate::util::{b64url, form_encode, form_pairs, html_escape, random_bytes, random_hex};
use crate::Shared;

pub const OAUTH_PROBLEM_TYPE: &str = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson";
const TITLE_BAD_REQUEST: &str = "Некорректный запрос";
const TITLE_BAD_CLIENT: &str = "Некорректный клиент";
const DETAIL: &str = "В запросе отсутствует ряд параметров или параметры невалидны";

pub const ACCOUNT_ID: i64 = 31_000_001;
pub const USER_ID: i64 = 1001;

/// An error of the token endpoint.
#[derive(Debug)]
struct OAuthError {
    status: u16,
    /// `None` for the client-authentication failure (no hint, other title).
    hint: Option<&'static str>,
}

impl OAuthError {
    fn bad(hint: &'static str) -> OAuthError {
        OAuthError {
            status: 400,
            hint: Some(hint),
        }
    }
    fn unauthorized(hint: &'static str) -> OAuthError {
        OAuthError {
            status: 401,
            hint: Some(hint),
        }
    }
    fn invalid_client() -> OAuthError {
        OAuthError {
            status: 401,
            hint: None,
        }
    }

    /// The outcome as counted in stats.
    fn outcome(&self) -> &'static str {
        self.hint.unwrap_or("invalid_client")
    }

    fn response(&self) -> Response {
        let body = match self.hint {
            Some(h) => json!({
                "hint": h,
                "title": TITLE_BAD_REQUEST,
                "type": OAUTH_PROBLEM_TYPE,
                "status": self.status,
                "detail": DETAIL,
            }),
            None => json!({
                "title": TITLE_BAD_CLIENT,
                "type": OAUTH_PROBLEM_TYPE,
                "status": self.status,
                "detail": DETAIL,
            }),
        };
        Response::json(self.status, "application/problem+json", &body)
    }
}

/// Body parameters: JSON object or form, by Content-Type (sniffed when absent).
fn body_params(req: &Request) -> HashMap<String, String> {
    let ct = req.content_type().unwrap_or_default();
    let looks_json = req
        .body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    let is_json =
        ct == "application/json" || ct.ends_with("+json") || (ct.is_empty() && looks_json);
    let mut out = HashMap::new();
    if is_json {
        if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&req.body) {
            for (k, v) in o {
                let s = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                out.insert(k, s);
            }
        }
    } else {
        for (k, v) in form_pairs(&req.body) {
            out.insert(k, v);
        }
    }
    out
}

fn make_jwt(shared: &Shared, now: i64) -> String {
    let header = json!({"typ": "JWT", "alg": "RS256"});
    let claims = json!({
        "aud": shared.cfg.client_id,
        "jti": random_hex(20),
        "iat": now,
        "nbf": now,
        "exp": now + ACCESS_TOKEN_TTL,
        "sub": USER_ID.to_string(),
        "account_id": ACCOUNT_ID,
        "base_domain": "localhost",
        "api_domain": shared.referer,
        "scopes": ["crm", "notifications"],
    });
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(&random_bytes(64))
    )
}

/// Issue and record a new pair; the token endpoint's success body.
fn issue_pair(shared: &Shared, st: &mut State, now: i64, parent: Option<String>) -> Value {
    let access = make_jwt(shared, now);
    let refresh = format!("def50200{}", random_hex(64));
    st.access.insert(
        access.clone(),
        AccessRec {
            expires_at: now + ACCESS_TOKEN_TTL,
            revoked: false,
        },
    );
    st.refresh.insert(
        refresh.clone(),
        RefreshRec {
            last_activity: now,
            revoked: false,
            access_token: access.clone(),
            parent,
        },
    );
    json!({
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL,
        "access_token": access,
        "refresh_token": refresh,
        "server_time": now,
    })
}

fn new_code(st: &mut State, now: i64) -> String {
    let code = format!("def50200{}", random_hex(96));
    st.codes.insert(
        code.clone(),
        CodeRec {
            expires_at: now + CODE_TTL,
            used: false,
        },
    );
    code
}

pub fn issue_code(shared: &Shared) -> String {
    let now = shared.now();
    new_code(&mut shared.lock(), now)
}

pub fn mint_tokens(shared: &Shared) -> Value {
    let now = shared.now();
    let mut st = shared.lock();
    issue_pair(shared, &mut st, now, None)
}

pub fn access_status(st: &State, token: &str, now: i64) -> &'static str {
    match st.access.get(token) {
        None => "unknown",
        Some(r) if r.revoked => "revoked",
        Some(r) if now >= r.expires_at => "expired",
        Some(_) => "valid",
    }
}

pub fn refresh_status(st: &State, token: &str, now: i64) -> &'static str {
    match st.refresh.get(token) {
        None => "unknown",
        Some(r) if r.revoked => "revoked",
        Some(r) if now >= r.expires_at() => "expired",
        Some(_) => "valid",
    }
}

pub fn check_tokens(shared: &Shared, access: Option<&str>, refresh: Option<&str>) -> Value {
    let now = shared.now();
    let st = shared.lock();
    let mut out = serde_json::Map::new();
    if let Some(a) = access {
        out.insert("access_token".into(), access_status(&st, a, now).into());
    }
    if let Some(r) = refresh {
        out.insert("refresh_token".into(), refresh_status(&st, r, now).into());
    }
    Value::Object(out)
}

/// The one user whose old API key the emulated account knows.
pub const API_KEY_LOGIN: &str = "admin@example.com";
pub const API_KEY: &str = "emulator-api-key";

/// `POST /oauth2/exchange_api_key` `{login, api_key, client_uuid, client_secret}`:
/// 202, and amoCRM sends an authorization code to the redirect URI. Here the
/// code goes there (plain http only) before the 202 is answered, the harder
/// order for a receiver that must expect it; the code and how its delivery
/// went are kept for tests (`GET /_emulator/api-key-codes`).
pub fn exchange_api_key(shared: &Shared, req: &Request) -> Response {
    if req.method != "POST" {
        return crate::api::problem(405, "Method Not Allowed", "Method not allowed")
            .with_header("Allow", "POST");
    }
    let params = body_params(req);
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let now = shared.now();
    let mut st = shared.lock();
    let result = if get("client_uuid") != shared.cfg.client_id
        || get("client_secret") != shared.cfg.client_secret
    {
        Err(OAuthError::invalid_client())
    } else if get("login") != API_KEY_LOGIN || get("api_key") != API_KEY {
        Err(OAuthError::unauthorized("Invalid login or api key"))
    } else {
        Ok(())
    };
    let outcome = match &result {
        Ok(()) => "ok",
        Err(e) => e.outcome(),
    };
    bump(
        &mut st.stats.token_calls,
        format!("exchange_api_key/{outcome}"),
    );
    match result {
        Ok(()) => {
            let code = new_code(&mut st, now);
            st.api_key_codes.push(code.clone());
            drop(st);
            let delivered = deliver_code(shared, &code);
            shared.lock().api_key_deliveries.push(delivered);
            Response::empty(202)
        }
        Err(e) => e.response(),
    }
}

/// `GET {redirect_uri}?code=…&referer=…&client_id=…` (the consent redirect's
/// query without a state), as amoCRM's servers send it: the status line's
/// code, or why there is none.
fn deliver_code(shared: &Shared, code: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;
    let query = form_encode([
        ("code", code),
        ("referer", shared.referer.as_str()),
        ("client_id", shared.cfg.client_id.as_str()),
    ]);
    let url = match url::Url::parse(&shared.cfg.redirect_uri) {
        Ok(u) if u.scheme() == "http" => u,
        Ok(_) => return "not sent: the emulator delivers over http only".into(),
        Err(e) => return format!("not sent: redirect_uri: {e}"),
    };
    let (host, port) = (url.host_str().unwrap_or(""), url.port().unwrap_or(80));
    // Tests' traffic stays on loopback: no name is looked up but localhost.
    let local = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        return format!("not sent: {host} is not a loopback host");
    }
    let target = match url.query() {
        Some(q) => format!("{}?{q}&{query}", url.path()),
        None => format!("{}?{query}", url.path()),
    };
    let sent = (|| -> std::io::Result<String> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: amoCRM-oAuth-client/1.0\r\nConnection: close\r\n\r\n"
        )?;
        let mut status = String::new();
        BufReader::new(stream).read_line(&mut status)?;
        Ok(status
            .split_whitespace()
            .nth(1)
            .unwrap_or("no status")
            .to_string())
    })();
    sent.unwrap_or_else(|e| format!("not sent: {e}"))
}

/// `GET /oauth2/account/current/subdomain` with `X-Refresh-Token`: where
/// the account lives now. The refresh token is looked at, not spent.
pub fn current_subdomain(shared: &Shared, req: &Request) -> Response {
    if req.method != "GET" {
        return crate::api::problem(405, "Method Not Allowed", "Method not allowed")
            .with_header("Allow", "GET");
    }
    let now = shared.now();
    let mut st = shared.lock();
    let token = req.header("x-refresh-token").unwrap_or("");
    let valid = refresh_status(&st, token, now) == "valid";
    bump(
        &mut st.stats.subdomain_lookups,
        if valid { "ok" } else { "refused" },
    );
    if !valid {
        return OAuthError::unauthorized("Token has been revoked").response();
    }
    let host = st
        .account_host
        .clone()
        .unwrap_or_else(|| shared.referer.clone());
    let name = host.split(':').next().unwrap_or(&host);
    Response::json(
        200,
        "application/json",
        &json!({
            "id": ACCOUNT_ID,
            "subdomain": name.split('.').next().unwrap_or(name),
            "domain": host,
            "top_level_domain": name.rsplit('.').next().unwrap_or(name),
        }),
    )
}

/// `POST /oauth2/access_token`
pub fn token_endpoint(shared: &Shared, req: &Request) -> Response {
    if req.method != "POST" {
        return crate::api::problem(405, "Method Not Allowed", "Method not allowed")
            .with_header("Allow", "POST");
    }
    let params = body_params(req);
    let now = shared.now();
    let grant = params
        .get("grant_type")
        .map(String::as_str)
        .filter(|g| !g.is_empty())
        .unwrap_or("none")
        .to_string();
    let mut st = shared.lock();
    let result = exchange(shared, &mut st, &params, now);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    bump(&mut st.stats.token_calls, format!("{grant}/{outcome}"));
    drop(st);
    match result {
        Ok(body) => Response::json(200, "application/json", &body),
        Err(e) => e.response(),
    }
}

fn exchange(
    shared: &Shared,
    st: &mut State,
    params: &HashMap<String, String>,
    now: i64,
) -> Result<Value, OAuthError> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let grant = match get("grant_type") {
        Some(g @ ("authorization_code" | "refresh_token")) => g,
        _ => return Err(OAuthError::bad("Check the `grant_type` parameter")),
    };
    match get("client_id") {
        Some(id) if id == shared.cfg.client_id => {}
        _ => return Err(OAuthError::bad("Check the `client_id` parameter")),
    }
    match get("client_secret") {
        None => return Err(OAuthError::bad("Check the `client_secret` parameter")),
        Some(s) if s != shared.cfg.client_secret => return Err(OAuthError::invalid_client()),
        Some(_) => {}
    }
    match get("redirect_uri") {
        None => return Err(OAuthError::bad("Check the `redirect_uri` parameter")),
        Some(r) if r != shared.cfg.redirect_uri => {
            return Err(OAuthError::bad(
                "Redirect URI is not associated with client",
            ))
        }
        Some(_) => {}
    }
    if grant == "authorization_code" {
        let code = get("code").ok_or_else(|| OAuthError::bad("Check the `code` parameter"))?;
        let rec = st
            .codes
            .get_mut(code)
            .ok_or_else(|| OAuthError::bad("Cannot decrypt the authorization code"))?;
        if now >= rec.expires_at {
            return Err(OAuthError::bad("Authorization code has expired"));
        }
        if rec.used {
            return Err(OAuthError::bad("Authorization code has been revoked"));
        }
        rec.used = true;
        Ok(issue_pair(shared, st, now, None))
    } else {
        let token = get("refresh_token")
            .ok_or_else(|| OAuthError::bad("Check the `refresh_token` parameter"))?;
        let rec = st
            .refresh
            .get_mut(token)
            .ok_or_else(|| OAuthError::unauthorized("Cannot decrypt the refresh token"))?;
        if rec.revoked {
            return Err(OAuthError::unauthorized("Token has been revoked"));
        }
        if now >= rec.expires_at() {
            return Err(OAuthError::unauthorized("Token has expired"));
        }
        rec.last_activity = now;
        // Grace rule: the token this one replaced dies on this first use.
        let parent = rec.parent.take();
        let old_access = rec.access_token.clone();
        if let Some(p) = parent {
            if let Some(prec) = st.refresh.get_mut(&p) {
                prec.revoked = true;
            }
        }
        if let Some(a) = st.access.get_mut(&old_access) {
            a.revoked = true;
        }
        Ok(issue_pair(shared, st, now, Some(token.to_string())))
    }
}

fn consent_error(msg: &str) -> Response {
    Response::html(
        400,
        format!(
            "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\"><title>Ошибка</title></head>\n\
             <body><h1>Ошибка</h1><p id=\"error\">{}</p></body></html>\n",
            html_escape(msg)
        ),
    )
}

/// `GET /oauth?client_id=..&state=..&mode=..` — the consent page.
pub fn consent_page(shared: &Shared, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::html(405, "<html><body><h1>405 Not Allowed</h1></body></html>")
            .with_header("Allow", "GET");
    }
    let q: HashMap<String, String> = req.query_pairs().into_iter().collect();
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if client_id != shared.cfg.client_id {
        return consent_error(&format!(
            "Интеграция с client_id «{client_id}» не найдена (unknown client_id)"
        ));
    }
    let mut hidden = format!(
        "<input type=\"hidden\" name=\"client_id\" value=\"{}\">",
        html_escape(&client_id)
    );
    if let Some(state) = q.get("state") {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"state\" value=\"{}\">",
            html_escape(state)
        ));
    }
    if let Some(mode) = q.get("mode") {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"mode\" value=\"{}\">",
            html_escape(mode)
        ));
    }
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\">\
         <title>Предоставить доступ</title></head>\n<body>\n<main>\n\
         <h1>Предоставить доступ</h1>\n\
         <p>Интеграция <b id=\"client-id\">{cid}</b> запрашивает доступ к аккаунту \
         <b id=\"account\">{acc}</b> (Allow access).</p>\n\
         <form id=\"consent\" method=\"post\" action=\"/oauth/decision\">{hidden}\n\
         <button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Разрешить</button>\n\
         <button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\">Отказать</button>\n\
         </form>\n</main>\n</body></html>\n",
        cid = html_escape(&client_id),
        acc = html_escape(&shared.referer),
    );
    Response::html(200, page)
}

/// `POST /oauth/decision` — the consent form's target.
pub fn decision(shared: &Shared, req: &Request) -> Response {
    if req.method != "POST" && req.method != "GET" {
        return Response::html(405, "<html><body><h1>405 Not Allowed</h1></body></html>")
            .with_header("Allow", "POST");
    }
    let mut p: HashMap<String, String> = req.query_pairs().into_iter().collect();
    for (k, v) in form_pairs(&req.body) {
        p.insert(k, v);
    }
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    if client_id != shared.cfg.client_id {
        return consent_error(&format!(
            "Интеграция с client_id «{client_id}» не найдена (unknown client_id)"
        ));
    }
    let state = p.get("state").map(String::as_str);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let code;
    match p.get("decision").map(String::as_str) {
        Some("allow") => {
            code = issue_code(shared);
            pairs.push(("code", &code));
            if let Some(s) = state {
                pairs.push(("state", s));
            }
            pairs.push(("referer", &shared.referer));
            pairs.push(("platform", "2"));
        }
        Some("deny") => {
            pairs.push(("error", "access_denied"));
            if let Some(s) = state {
                pairs.push(("state", s));
            }
        }
        _ => return consent_error("decision must be allow or deny"),
    }
    pairs.push(("client_id", &client_id));
    let base = &shared.cfg.redirect_uri;
    let sep = if base.contains('?') { '&' } else { '?' };
    let location = format!("{base}{sep}{}", form_encode(pairs));
    Response::html(
        302,
        format!(
            "<html><body><a href=\"{0}\">{0}</a></body></html>",
            html_escape(&location)
        ),
    )
    .with_header("Location", &location)
}
