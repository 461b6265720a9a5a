//! Control API under `/_emulator/` for tests: no auth, JSON in and out.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::state::{parse_faults, Stats};
use crate::Shared;

const JSON: &str = "application/json";

pub fn stats_json(shared: &Shared) -> Value {
    let st = shared.lock();
    let s = &st.stats;
    json!({
        "connections": s.connections,
        "requests": s.requests,
        "token_calls": s.token_calls,
        "api_calls": s.api_calls,
        "faults": s.faults,
        "clock_offset": shared.clock_offset.load(Ordering::SeqCst),
        "rate_limited": s.rate_limited,
        "blocked": s.blocked,
        "max_api_rps": s.max_api_rps,
        "api_requests_by_method": s.api_requests_by_method,
        "api_writes_applied": s.api_writes_applied,
        "context_user_requests": s.context_user_requests,
        "subdomain_lookups": s.subdomain_lookups,
    })
}

/// Every link: `[{"entity_type","entity_id","to_entity_type","to_entity_id","metadata"}]`.
pub fn links_json(shared: &Shared) -> Value {
    let st = shared.lock();
    Value::Array(
        st.links
            .iter()
            .map(|l| {
                json!({
                    "entity_type": l.from_type,
                    "entity_id": l.from_id,
                    "to_entity_type": l.to_type,
                    "to_entity_id": l.to_id,
                    "metadata": l.metadata,
                })
            })
            .collect(),
    )
}

/// `{"api_us": [unix µs, …], "not_kept": n}`: when each API request arrived.
pub fn arrivals_json(shared: &Shared) -> Value {
    let st = shared.lock();
    json!({
        "api_us": st.stats.api_arrival_times_us,
        "not_kept": st.stats.api_arrivals_not_kept,
    })
}

fn rate_limit_json(shared: &Shared) -> Value {
    shared.lock().limiter.to_json(Instant::now())
}

fn ok(v: Value) -> Response {
    Response::json(200, JSON, &v)
}

fn err(status: u16, msg: &str) -> Response {
    Response::json(status, JSON, &json!({"error": msg}))
}

/// The JSON body, `{}` when empty.
fn body(req: &Request) -> Result<Value, Response> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|e| err(400, &format!("invalid JSON: {e}")))
}

fn clock_json(shared: &Shared) -> Value {
    json!({
        "clock_offset": shared.clock_offset.load(Ordering::SeqCst),
        "now": shared.now(),
    })
}

/// Moves the account to `host` (its subdomain changed): the old host
/// answers API calls with `old_host_status`; `{"host","former_hosts"}`.
pub fn rename(shared: &Shared, host: &str, old_host_status: u16) -> Value {
    let mut st = shared.lock();
    let old = st
        .account_host
        .replace(host.to_string())
        .unwrap_or_else(|| shared.referer.clone());
    st.former_hosts.push(old.to_ascii_lowercase());
    st.former_hosts.retain(|h| !h.eq_ignore_ascii_case(host));
    st.old_host_status = old_host_status;
    json!({"host": host, "former_hosts": st.former_hosts})
}

pub fn handle(shared: &Shared, req: &Request) -> Response {
    let route = req.path.trim_start_matches("/_emulator").trim_matches('/');
    let m = req.method.as_str();
    match (m, route) {
        (_, "drive") => crate::drive::control(shared, req),
        ("GET", "stats") => ok(stats_json(shared)),
        ("GET", "arrivals") => ok(arrivals_json(shared)),
        ("POST", "reset-stats") => {
            shared.lock().stats = Stats::default();
            ok(stats_json(shared))
        }
        ("GET", "clock") => ok(clock_json(shared)),
        ("POST", "clock") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match b.get("advance").and_then(Value::as_i64) {
                Some(secs) => {
                    shared.clock_offset.fetch_add(secs, Ordering::SeqCst);
                    ok(clock_json(shared))
                }
                None => err(400, "body must be {\"advance\": seconds}"),
            }
        }
        ("POST", "code") => ok(json!({
            "code": crate::oauth::issue_code(shared),
            "referer": shared.referer,
        })),
        ("POST", "tokens") => ok(crate::oauth::mint_tokens(shared)),
        ("GET", "api-key-codes") => {
            let st = shared.lock();
            ok(json!({"codes": st.api_key_codes, "deliveries": st.api_key_deliveries}))
        }
        ("POST", "rename") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let status = b
                .get("old_host_status")
                .and_then(Value::as_u64)
                .unwrap_or(401);
            match b.get("host").and_then(Value::as_str) {
                Some(host) if !host.is_empty() && matches!(status, 401 | 404) => {
                    ok(rename(shared, host, status as u16))
                }
                _ => err(
                    400,
                    "body must be {\"host\": \"new-host:port\", \"old_host_status\"?: 401|404}",
                ),
            }
        }
        ("POST", "check") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            ok(crate::oauth::check_tokens(
                shared,
                b.get("access_token").and_then(Value::as_str),
                b.get("refresh_token").and_then(Value::as_str),
            ))
        }
        ("GET", "faults") => {
            let st = shared.lock();
            let list: Vec<Value> = st
                .faults
                .iter()
                .map(|f| {
                    let mut v = f.raw.clone();
                    if let (Some(o), Some(n)) = (v.as_object_mut(), f.remaining) {
                        o.insert("times".into(), json!(n));
                    }
                    v
                })
                .collect();
            ok(Value::Array(list))
        }
        ("POST", "faults") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match parse_faults(&b) {
                Ok(rules) => {
                    let mut st = shared.lock();
                    st.faults.extend(rules);
                    ok(json!({"faults": st.faults.len()}))
                }
                Err(e) => err(400, &e),
            }
        }
        ("DELETE", "faults") => {
            shared.lock().faults.clear();
            ok(json!({"faults": 0}))
        }
        ("GET", "leads") => ok(crate::api::all_entities(shared, "leads")),
        ("GET", "links") => ok(links_json(shared)),
        ("GET", r) if r.starts_with("entities/") => {
            let name = &r["entities/".len()..];
            if crate::api::find_def(name).is_some() {
                ok(crate::api::all_entities(shared, name))
            } else {
                err(404, "unknown entity type")
            }
        }
        ("GET", "rate-limit") => ok(rate_limit_json(shared)),
        ("POST", "rate-limit") => {
            let b = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let res = shared.lock().limiter.update(&b);
            match res {
                Ok(()) => ok(rate_limit_json(shared)),
                Err(e) => err(400, &e),
            }
        }
        ("DELETE", "block") => {
            shared.lock().limiter.lift();
            ok(rate_limit_json(shared))
        }
        (
            _,
            "stats" | "arrivals" | "reset-stats" | "clock" | "code" | "tokens" | "check" | "faults"
            | "leads" | "links" | "rate-limit" | "block",
        ) => err(405, "method not allowed"),
        (_, r) if r.starts_with("entities/") => err(405, "method not allowed"),
        _ => err(404, "unknown control route"),
    }
}
