//! In-memory state: OAuth records, API entities, counters and fault rules.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Map, Value};

/// Authorization code lifetime: 20 minutes.
pub const CODE_TTL: i64 = 20 * 60;
/// Access token lifetime: 24 hours.
pub const ACCESS_TOKEN_TTL: i64 = 86_400;
/// A refresh token dies when unused for 90 days.
pub const REFRESH_TOKEN_IDLE_TTL: i64 = 90 * 86_400;
/// Arrival times kept for `GET /_emulator/arrivals` (8 MB of them); later
/// arrivals are only counted, so a long load test cannot grow the emulator.
pub const ARRIVALS_KEPT: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct CodeRec {
    pub expires_at: i64,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct AccessRec {
    pub expires_at: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct RefreshRec {
    /// Issue time or last successful use; the token expires
    /// `REFRESH_TOKEN_IDLE_TTL` after it.
    pub last_activity: i64,
    pub revoked: bool,
    /// The access token issued together with this refresh token.
    pub access_token: String,
    /// The refresh token that was spent to obtain this one (grace rule: it
    /// is revoked when this one is first used).
    pub parent: Option<String>,
}

impl RefreshRec {
    pub fn expires_at(&self) -> i64 {
        self.last_activity + REFRESH_TOKEN_IDLE_TTL
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections: u64,
    pub requests: u64,
    pub token_calls: BTreeMap<String, u64>,
    pub api_calls: BTreeMap<String, u64>,
    pub faults: BTreeMap<String, u64>,
    /// API requests answered 429 by the rate limiter.
    pub rate_limited: u64,
    /// API requests answered 403 because the account was blocked.
    pub blocked: u64,
    /// Most `/api/v4/` requests that arrived within any 1000 ms window.
    pub max_api_rps: u64,
    /// Arrival times (unix ms) of the API requests of the last 1000 ms.
    pub api_arrivals: VecDeque<u64>,
    /// Arrival time (unix µs) of every API request since the last reset, up
    /// to `ARRIVALS_KEPT`: a benchmark finds the busiest window at any
    /// resolution it likes.
    pub api_arrival_times_us: Vec<u64>,
    /// Arrivals beyond `ARRIVALS_KEPT`, not kept.
    pub api_arrivals_not_kept: u64,
    /// Every `/api/v4/` request that arrived, by method.
    pub api_requests_by_method: BTreeMap<String, u64>,
    /// API requests that carried `X-Context-User-ID`.
    pub context_user_requests: u64,
    /// Writes (POST, PATCH, PUT, DELETE) the API applied: answered 2xx by
    /// the real handler, whether or not the answer reached the client.
    pub api_writes_applied: BTreeMap<String, u64>,
    /// `GET /oauth2/account/current/subdomain` by outcome (`ok`, `refused`).
    pub subdomain_lookups: BTreeMap<String, u64>,
}

impl Stats {
    /// Record one `/api/v4/` request arriving at `now_us`.
    pub fn api_arrival(&mut self, method: &str, now_us: u64) {
        if self.api_arrival_times_us.len() < ARRIVALS_KEPT {
            self.api_arrival_times_us.push(now_us);
        } else {
            self.api_arrivals_not_kept += 1;
        }
        let now_ms = now_us / 1000;
        bump(
            &mut self.api_requests_by_method,
            method.to_ascii_uppercase(),
        );
        while self
            .api_arrivals
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= 1000)
        {
            self.api_arrivals.pop_front();
        }
        self.api_arrivals.push_back(now_ms);
        self.max_api_rps = self.max_api_rps.max(self.api_arrivals.len() as u64);
    }
}

pub fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *map.entry(key.into()).or_insert(0) += 1;
}

/// One API entity type's storage (leads, contacts, notes, ...).
#[derive(Debug, Default, Clone)]
pub struct Collection {
    /// The next id (or, for string ids, the next storage key).
    pub next_id: u64,
    /// Stored objects in API shape, `_links` left as a placeholder. The key
    /// is the id, except for string ids (events, unsorted) and the system
    /// statuses 142/143, which every pipeline has.
    pub items: BTreeMap<u64, Map<String, Value>>,
}

/// A link between two entities (`leads` 1 ↔ `contacts` 2), stored once.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRec {
    pub from_type: String,
    pub from_id: u64,
    pub to_type: String,
    pub to_id: u64,
    pub metadata: Value,
}

#[derive(Debug, Clone)]
pub enum FaultAction {
    Drop,
    Reset,
    Delay(u64),
    Respond {
        status: u16,
        body: Vec<u8>,
        content_type: String,
        headers: Vec<(String, String)>,
    },
    Truncate,
    /// Runs the real handler, sends the head and half of the body, then
    /// resets the connection (RST).
    ResetBody,
    /// Answers 200 with the request's own body (`application/json`): what
    /// the client sent comes back, for round-trip tests. Nothing changes.
    Echo,
}

impl FaultAction {
    pub fn name(&self) -> &'static str {
        match self {
            FaultAction::Drop => "drop",
            FaultAction::Reset => "reset",
            FaultAction::Delay(_) => "delay",
            FaultAction::Respond { .. } => "respond",
            FaultAction::Truncate => "truncate",
            FaultAction::ResetBody => "reset_body",
            FaultAction::Echo => "echo",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FaultRule {
    pub path: String,
    pub method: Option<String>,
    pub action: FaultAction,
    /// How many more matching requests it applies to; `None` = unlimited.
    pub remaining: Option<u64>,
    /// The rule as given, for listing.
    pub raw: Value,
}

impl FaultRule {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        path.starts_with(&self.path)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// A JSON object of exactly `size` bytes (at most 256 MiB), shaped like a
/// list page: `{"_page":1,"_embedded":{"leads":[]},"padding":"xxx…"}`.
fn sized_json(size: u64) -> Result<Vec<u8>, String> {
    const HEAD: &str = r#"{"_page":1,"_embedded":{"leads":[]},"padding":""#;
    const TAIL: &str = r#""}"#;
    let fixed = (HEAD.len() + TAIL.len()) as u64;
    if !(fixed..=256 << 20).contains(&size) {
        return Err(format!("`body_size` must be from {fixed} to 268435456"));
    }
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(HEAD.as_bytes());
    out.resize((size - TAIL.len() as u64) as usize, b'x');
    out.extend_from_slice(TAIL.as_bytes());
    Ok(out)
}

/// Parse one rule or an array of rules (the `POST /_emulator/faults` body).
pub fn parse_faults(v: &Value) -> Result<Vec<FaultRule>, String> {
    match v {
        Value::Array(items) => items.iter().map(parse_fault).collect(),
        Value::Object(_) => Ok(vec![parse_fault(v)?]),
        _ => Err("a fault is a JSON object or an array of objects".into()),
    }
}

fn parse_fault(v: &Value) -> Result<FaultRule, String> {
    let o = v
        .as_object()
        .ok_or_else(|| "a fault rule must be a JSON object".to_string())?;
    let path = match o.get("path") {
        None | Some(Value::Null) => "/".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("`path` must be a string".into()),
    };
    let method = match o.get("method") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.to_ascii_uppercase()),
        Some(_) => return Err("`method` must be a string".into()),
    };
    let uint = |k: &str| -> Result<Option<u64>, String> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`{k}` must be a non-negative integer")),
        }
    };
    let action = match o.get("action").and_then(Value::as_str) {
        Some("drop") => FaultAction::Drop,
        Some("reset") => FaultAction::Reset,
        Some("truncate") => FaultAction::Truncate,
        Some("reset_body") => FaultAction::ResetBody,
        Some("echo") => FaultAction::Echo,
        Some("delay") => FaultAction::Delay(
            uint("delay_ms")?.ok_or_else(|| "`delay` needs `delay_ms`".to_string())?,
        ),
        Some("respond") => {
            let status = uint("status")?.unwrap_or(500);
            if !(100..=999).contains(&status) {
                return Err("`status` must be between 100 and 999".into());
            }
            let (body, default_ct) = match (o.get("body"), o.get("body_base64"), uint("body_size")?) {
                (_, Some(Value::String(b64)), None) => (
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                        .map_err(|_| "`body_base64` is not base64".to_string())?,
                    "application/octet-stream",
                ),
                (_, Some(_), _) => return Err("`body_base64` must be a string, without `body_size`".into()),
                (_, None, Some(size)) => (sized_json(size)?, "application/json"),
                (None | Some(Value::Null), None, None) => (Vec::new(), "text/plain; charset=UTF-8"),
                (Some(Value::String(s)), None, None) => {
                    (s.clone().into_bytes(), "text/plain; charset=UTF-8")
                }
                (Some(other), None, None) => (
                    serde_json::to_vec(other).unwrap_or_default(),
                    "application/json",
                ),
            };
            let content_type = match o.get("content_type") {
                None | Some(Value::Null) => default_ct.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err("`content_type` must be a string".into()),
            };
            let mut headers = Vec::new();
            match o.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Object(h)) => {
                    for (k, v) in h {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        if k.is_empty() || k.contains([':', '\r', '\n', ' ']) {
                            return Err(format!("bad header name {k:?}"));
                        }
                        headers.push((k.clone(), v));
                    }
                }
                Some(_) => return Err("`headers` must be an object".into()),
            }
            FaultAction::Respond {
                status: status as u16,
                body,
                content_type,
                headers,
            }
        }
        Some(other) => {
            return Err(format!(
                "unknown action {other:?}; expected drop, reset, delay, respond, truncate, reset_body or echo"
            ))
        }
        None => return Err("`action` is required".into()),
    };
    let remaining = uint("times")?;
    if remaining == Some(0) {
        return Err("`times` must be at least 1".into());
    }
    Ok(FaultRule {
        path,
        method,
        action,
        remaining,
        raw: v.clone(),
    })
}

#[derive(Debug, Default)]
pub struct State {
    pub codes: HashMap<String, CodeRec>,
    pub access: HashMap<String, AccessRec>,
    pub refresh: HashMap<String, RefreshRec>,
    /// API entities by their storage name (`leads`, `notes`, ...).
    pub collections: HashMap<&'static str, Collection>,
    /// Links between entities.
    pub links: Vec<LinkRec>,
    /// Next id of a custom field enum value.
    pub next_enum_id: u64,
    pub limiter: crate::ratelimit::Limiter,
    pub stats: Stats,
    pub faults: Vec<FaultRule>,
    /// The account's host after a rename (`None`: the configured referer).
    pub account_host: Option<String>,
    /// Hosts the account had before a rename, lower-case: they answer API
    /// calls with `old_host_status` and the token endpoint with 404.
    pub former_hosts: Vec<String>,
    /// 401 (amoCRM's JSON) or 404 (an nginx page).
    pub old_host_status: u16,
    /// Codes amoCRM sent to the redirect URI for an API-key exchange.
    pub api_key_codes: Vec<String>,
    /// How each of those deliveries went: the redirect URI's HTTP status,
    /// or why there was none.
    pub api_key_deliveries: Vec<String>,
    /// `PATCH /customers/mode`: `periodicity`, `segments`, `disabled`; empty = never set.
    pub customers_mode: String,
}

impl State {
    /// Find the first live fault matching the request, spending one use.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultAction> {
        let idx = self.faults.iter().position(|f| f.matches(method, path))?;
        let rule = &mut self.faults[idx];
        let action = rule.action.clone();
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.faults.remove(idx);
            }
        }
        bump(&mut self.stats.faults, action.name());
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fault_parsing_and_times() {
        let mut st = State {
            faults: parse_faults(&json!([
                {"path": "/oauth2", "method": "post", "action": "drop", "times": 1},
                {"path": "/oauth2", "action": "delay", "delay_ms": 5}
            ]))
            .unwrap(),
            ..State::default()
        };
        assert!(st.take_fault("GET", "/api/v4/leads").is_none());
        assert!(matches!(
            st.take_fault("POST", "/oauth2/access_token"),
            Some(FaultAction::Drop)
        ));
        assert!(matches!(
            st.take_fault("POST", "/oauth2/access_token"),
            Some(FaultAction::Delay(5))
        ));
        assert_eq!(st.faults.len(), 1);
        assert_eq!(st.stats.faults.get("drop"), Some(&1));
        assert!(parse_faults(&json!({"action": "explode"})).is_err());
        assert!(parse_faults(&json!({"action": "delay"})).is_err());
        assert!(parse_faults(&json!({"action": "drop", "times": 0})).is_err());
        assert!(parse_faults(&json!("x")).is_err());
    }
}
