mod common;

use amocrm_emulator::{Emulator, EmulatorConfig};
use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn emu() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("start")
}

fn code_body(emu: &Emulator, code: &str) -> Value {
    let c = emu.config();
    json!({
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": c.redirect_uri,
    })
}

fn refresh_body(emu: &Emulator, rt: &str) -> Value {
    let c = emu.config();
    json!({
        "client_id": c.client_id,
        "client_secret": c.client_secret,
        "grant_type": "refresh_token",
        "refresh_token": rt,
        "redirect_uri": c.redirect_uri,
    })
}

fn token(emu: &Emulator, body: &Value) -> Resp {
    post_json(emu, "/oauth2/access_token", body)
}

fn refresh(emu: &Emulator, rt: &str) -> Resp {
    token(emu, &refresh_body(emu, rt))
}

fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT shape");
    let dec = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .expect("base64url")
    };
    let header: Value = serde_json::from_slice(&dec(parts[0])).unwrap();
    assert_eq!(header, json!({"typ": "JWT", "alg": "RS256"}));
    assert_eq!(dec(parts[2]).len(), 64);
    serde_json::from_slice(&dec(parts[1])).unwrap()
}

/// Asserts the exact amoCRM OAuth problem body.
fn assert_oauth_error(r: &Resp, status: u16, hint: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(
        r.json(),
        json!({
            "hint": hint,
            "title": "Некорректный запрос",
            "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
            "status": status,
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
        })
    );
}

fn token_calls(emu: &Emulator, key: &str) -> u64 {
    emu.stats()["token_calls"][key].as_u64().unwrap_or(0)
}

#[test]
fn code_grant_json() {
    let emu = emu();
    let code = emu.issue_code();
    let r = token(&emu, &code_body(&emu, &code));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    let t = r.json();
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "token_type",
            "expires_in",
            "access_token",
            "refresh_token",
            "server_time"
        ]
    );
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 86400);
    let rt = t["refresh_token"].as_str().unwrap();
    assert!(rt.starts_with("def50200"));
    assert_eq!(rt.len(), 8 + 128);
    assert!(rt[8..].bytes().all(|b| b.is_ascii_hexdigit()));
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(c["aud"], "emulator-client-id");
    assert_eq!(c["sub"], "1001");
    assert_eq!(c["account_id"], 31000001);
    assert_eq!(c["api_domain"], emu.referer());
    assert_eq!(c["scopes"], json!(["crm", "notifications"]));
    assert_eq!(c["iat"], t["server_time"]);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        86400
    );
    assert_eq!(emu.referer(), format!("localhost:{}", emu.port()));

    let acc = api(
        &emu,
        "GET",
        "/api/v4/account",
        t["access_token"].as_str().unwrap(),
        None,
    );
    assert_eq!(acc.status, 200);
    assert_eq!(token_calls(&emu, "authorization_code/ok"), 1);
}

#[test]
fn code_grant_form_and_reuse() {
    let emu = emu();
    let code = emu.issue_code();
    let c = emu.config().clone();
    let form = [
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", c.redirect_uri.as_str()),
    ];
    let r = post_form(&emu, "/oauth2/access_token", &form);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());

    let again = post_form(&emu, "/oauth2/access_token", &form);
    assert_oauth_error(&again, 400, "Authorization code has been revoked");
    assert_eq!(
        token_calls(
            &emu,
            "authorization_code/Authorization code has been revoked"
        ),
        1
    );
}

#[test]
fn code_expiry_and_garbage() {
    let emu = emu();
    let code = emu.issue_code();
    emu.advance_clock(20 * 60 + 1);
    assert_oauth_error(
        &token(&emu, &code_body(&emu, &code)),
        400,
        "Authorization code has expired",
    );
    // A code used just inside its 20 minutes works.
    let code = emu.issue_code();
    emu.advance_clock(20 * 60 - 5);
    assert_eq!(token(&emu, &code_body(&emu, &code)).status, 200);

    assert_oauth_error(
        &token(&emu, &code_body(&emu, "def50200garbage")),
        400,
        "Cannot decrypt the authorization code",
    );
    let mut b = code_body(&emu, "x");
    b.as_object_mut().unwrap().remove("code");
    assert_oauth_error(&token(&emu, &b), 400, "Check the `code` parameter");
}

#[test]
fn refresh_grace_rule() {
    let emu = emu();
    let t1 = emu.mint_tokens();
    let (a1, r1) = (
        t1["access_token"].as_str().unwrap(),
        t1["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(api(&emu, "GET", "/api/v4/account", a1, None).status, 200);

    let t2 = refresh(&emu, r1).json();
    let (a2, r2) = (
        t2["access_token"].as_str().unwrap(),
        t2["refresh_token"].as_str().unwrap(),
    );
    assert_ne!(r1, r2);
    // The old access token dies at refresh.
    assert_eq!(api(&emu, "GET", "/api/v4/account", a1, None).status, 401);
    assert_eq!(api(&emu, "GET", "/api/v4/account", a2, None).status, 200);
    assert_eq!(
        emu.check_tokens(Some(a1), Some(r1)),
        json!({"access_token": "revoked", "refresh_token": "valid"})
    );

    // R1 still works until R2 is used: yet another pair.
    let t3 = refresh(&emu, r1);
    assert_eq!(t3.status, 200, "{}", t3.text());
    let r3 = t3.json()["refresh_token"].as_str().unwrap().to_string();

    // R2's first use revokes R1.
    let t4 = refresh(&emu, r2);
    assert_eq!(t4.status, 200);
    assert_oauth_error(&refresh(&emu, r1), 401, "Token has been revoked");
    assert_oauth_error(&refresh(&emu, r1), 401, "Token has been revoked");
    // R2 itself stays valid until R4 is used.
    let r4 = t4.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        emu.check_tokens(None, Some(r2)),
        json!({"refresh_token": "valid"})
    );
    assert_eq!(refresh(&emu, &r4).status, 200);
    assert_eq!(
        emu.check_tokens(None, Some(r2)),
        json!({"refresh_token": "revoked"})
    );
    // R3 (a sibling of R2) was never used: still valid.
    assert_eq!(
        emu.check_tokens(None, Some(&r3)),
        json!({"refresh_token": "valid"})
    );

    assert_eq!(token_calls(&emu, "refresh_token/ok"), 4);
    assert_eq!(token_calls(&emu, "refresh_token/Token has been revoked"), 2);
    assert_oauth_error(
        &refresh(&emu, "def50200nonsense"),
        401,
        "Cannot decrypt the refresh token",
    );
}

#[test]
fn refresh_token_dies_after_90_idle_days() {
    let emu = emu();
    let t = emu.mint_tokens();
    let rt = t["refresh_token"].as_str().unwrap();
    let at = t["access_token"].as_str().unwrap();
    emu.advance_clock(86_401);
    assert_eq!(api(&emu, "GET", "/api/v4/account", at, None).status, 401);
    assert_eq!(
        emu.check_tokens(Some(at), Some(rt)),
        json!({"access_token": "expired", "refresh_token": "valid"})
    );
    emu.advance_clock(90 * 86_400);
    assert_eq!(
        emu.check_tokens(None, Some(rt)),
        json!({"refresh_token": "expired"})
    );
    assert_oauth_error(&refresh(&emu, rt), 401, "Token has expired");

    // A token used within 90 days is fine.
    let t = emu.mint_tokens();
    emu.advance_clock(89 * 86_400);
    assert_eq!(
        refresh(&emu, t["refresh_token"].as_str().unwrap()).status,
        200
    );
}

#[test]
fn client_errors() {
    let emu = emu();
    let code = emu.issue_code();
    let with = |k: &str, v: Value| {
        let mut b = code_body(&emu, &code);
        b[k] = v;
        b
    };
    assert_oauth_error(
        &token(&emu, &with("client_id", json!("other"))),
        400,
        "Check the `client_id` parameter",
    );
    let mut b = code_body(&emu, &code);
    b.as_object_mut().unwrap().remove("client_id");
    assert_oauth_error(&token(&emu, &b), 400, "Check the `client_id` parameter");

    let r = token(&emu, &with("client_secret", json!("wrong")));
    assert_eq!(r.status, 401);
    assert_eq!(r.content_type(), "application/problem+json");
    let j = r.json();
    assert_eq!(j["title"], "Некорректный клиент");
    assert_eq!(j["status"], 401);
    assert!(j.get("hint").is_none());

    assert_oauth_error(
        &token(&emu, &with("redirect_uri", json!("http://evil.example/cb"))),
        400,
        "Redirect URI is not associated with client",
    );
    assert_oauth_error(
        &token(&emu, &with("grant_type", json!("password"))),
        400,
        "Check the `grant_type` parameter",
    );
    assert_oauth_error(
        &request(&emu, "POST", "/oauth2/access_token", &[], b"{nonsense"),
        400,
        "Check the `grant_type` parameter",
    );
    // The code was not spent by any of these.
    assert_eq!(token(&emu, &code_body(&emu, &code)).status, 200);

    let s = emu.stats();
    assert_eq!(s["token_calls"]["authorization_code/invalid_client"], 1);
    assert_eq!(
        s["token_calls"]["authorization_code/Check the `client_id` parameter"],
        2
    );
    assert_eq!(
        s["token_calls"]["password/Check the `grant_type` parameter"],
        1
    );
    assert_eq!(s["token_calls"]["none/Check the `grant_type` parameter"], 1);
    assert_eq!(get(&emu, "/oauth2/access_token").status, 405);
}

#[test]
fn consent_page_allow_and_deny() {
    let emu = emu();
    let page = get(
        &emu,
        "/oauth?client_id=emulator-client-id&state=s%26t&mode=post_message",
    );
    assert_eq!(page.status, 200);
    assert!(page.content_type().starts_with("text/html"));
    let html = page.text();
    for needle in [
        "Предоставить доступ",
        "Разрешить",
        "Отказать",
        "id=\"allow\"",
        "id=\"deny\"",
        "emulator-client-id",
        "action=\"/oauth/decision\"",
        "value=\"s&amp;t\"",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }

    let r = post_form(
        &emu,
        "/oauth/decision",
        &[
            ("client_id", "emulator-client-id"),
            ("state", "s&t"),
            ("mode", "post_message"),
            ("decision", "allow"),
        ],
    );
    assert_eq!(r.status, 302);
    let loc = url::Url::parse(r.header("location").unwrap()).unwrap();
    assert_eq!(loc.path(), "/oauth/callback");
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s&t");
    assert_eq!(q["referer"], emu.referer());
    assert_eq!(q["platform"], "2");
    assert_eq!(q["client_id"], "emulator-client-id");
    assert_eq!(token(&emu, &code_body(&emu, &q["code"])).status, 200);

    let r = post_form(
        &emu,
        "/oauth/decision",
        &[
            ("client_id", "emulator-client-id"),
            ("state", "x"),
            ("decision", "deny"),
        ],
    );
    assert_eq!(r.status, 302);
    let loc = url::Url::parse(r.header("location").unwrap()).unwrap();
    let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
    assert_eq!(
        q,
        [
            ("error".to_string(), "access_denied".to_string()),
            ("state".into(), "x".into()),
            ("client_id".into(), "emulator-client-id".into())
        ]
    );

    let bad = get(&emu, "/oauth?client_id=nope&state=1");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("nope"));
}

#[test]
fn control_api_over_http() {
    let emu = emu();
    let code = post_json(&emu, "/_emulator/code", &json!({})).json();
    assert_eq!(code["referer"], emu.referer());
    assert_eq!(
        token(&emu, &code_body(&emu, code["code"].as_str().unwrap())).status,
        200
    );
    let t = post_json(&emu, "/_emulator/tokens", &json!({})).json();
    assert!(t["refresh_token"].as_str().unwrap().starts_with("def50200"));
    let chk = post_json(
        &emu,
        "/_emulator/check",
        &json!({"access_token": t["access_token"], "refresh_token": "nope"}),
    )
    .json();
    assert_eq!(
        chk,
        json!({"access_token": "valid", "refresh_token": "unknown"})
    );

    let clk = post_json(&emu, "/_emulator/clock", &json!({"advance": 100})).json();
    assert_eq!(clk["clock_offset"], 100);
    assert!((clk["now"].as_i64().unwrap() - emu.now()).abs() <= 1);
    assert_eq!(post_json(&emu, "/_emulator/clock", &json!({})).status, 400);

    let s = get(&emu, "/_emulator/stats").json();
    assert_eq!(s["clock_offset"], 100);
    // Only the one code exchange is a token call; control calls count nowhere.
    assert_eq!(s["token_calls"], json!({"authorization_code/ok": 1}));
    assert_eq!(s["api_calls"], json!({}));
    assert_eq!(s["connections"], 7);
    assert_eq!(s["requests"], 7);

    let z = post_json(&emu, "/_emulator/reset-stats", &json!({})).json();
    assert_eq!(z["token_calls"], json!({}));
    assert_eq!(z["connections"], 0);
    assert_eq!(get(&emu, "/_emulator/nope").status, 404);
    assert_eq!(get(&emu, "/_emulator/faults").json(), json!([]));
}
