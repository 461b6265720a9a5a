//! Events an operator reads: a refresh, a refresh that failed or was
//! refused, a retry, a long rate-limit wait, a storage or lock error, an
//! account that moved. The core emits them through a [`Logger`] (its
//! account, the `log_level` threshold and a [`Sink`]); where they go is the
//! sink's business — PHP's error log or a PHP callable in the binding, a
//! [`Memory`] in tests. Nothing here knows PHP.
//!
//! Never a token, the client secret or an Authorization header: messages are
//! made from the core's own error messages (which name fields, never
//! values) and hosts, and [`scrub`] masks anything token-shaped that an
//! excerpt of a foreign answer might still carry.

use crate::store::{Refusal, StoreLock, TokenStore, Version};
use crate::token::TokenPair;
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// PSR-3's levels that the extension uses, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

impl Level {
    /// PSR-3's name (`Psr\Log\LogLevel`), which Monolog's `log()` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// syslog(3)'s priority, which PHP's error log takes.
    pub fn syslog(self) -> i32 {
        match self {
            Level::Debug => 7,
            Level::Info => 6,
            Level::Notice => 5,
            Level::Warning => 4,
            Level::Error => 3,
        }
    }
}

/// The `log_level` values, lowest first; `off` logs nothing.
pub const LEVELS: &str = "debug, info, notice, warning, error or off";

/// The `log_level` key: the lowest level logged, `None` for `off`.
pub fn parse_threshold(v: &str) -> std::result::Result<Option<Level>, String> {
    Ok(Some(match v.to_ascii_lowercase().as_str() {
        "debug" => Level::Debug,
        "info" => Level::Info,
        "notice" => Level::Notice,
        "warning" => Level::Warning,
        "error" => Level::Error,
        "off" | "none" => return Ok(None),
        _ => return Err(format!("must be {LEVELS}")),
    }))
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub level: Level,
    /// What happened, for filters: `refresh`, `refresh_failed`,
    /// `refresh_refused`, `retry`, `rate_limit_wait`, `storage_error`,
    /// `account_moved`, `request` (debug).
    pub kind: &'static str,
    /// One line for humans.
    pub message: String,
    /// `account`, `event` (the kind) and what the event is about.
    pub context: Map<String, Value>,
}

/// Where events go.
pub trait Sink: Send + Sync {
    fn log(&self, event: &Event);
}

/// Drops every event: the core's default, outside PHP.
pub struct Discard;

impl Sink for Discard {
    fn log(&self, _: &Event) {}
}

/// Keeps every event in memory, for tests.
#[derive(Default)]
pub struct Memory(Mutex<Vec<Event>>);

impl Memory {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.kind).collect()
    }
}

impl Sink for Memory {
    fn log(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// The line PHP's error log gets: `amocrm[default] info: token refreshed; …`.
pub fn line(event: &Event) -> String {
    let account = event
        .context
        .get("account")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!(
        "amocrm[{account}] {}: {}",
        event.level.name(),
        event.message
    )
}

/// One account's logger: its name, the threshold and the sink.
#[derive(Clone)]
pub struct Logger {
    account: String,
    threshold: Option<Level>,
    sink: Arc<dyn Sink>,
    /// The last storage error written, and when (see [`Logger::storage_error`]).
    last_storage: Arc<Mutex<Option<(String, Instant)>>>,
}

/// The same storage error from one process is written again after this.
const REPEAT_AFTER: Duration = Duration::from_secs(60);

impl Logger {
    pub fn new(account: &str, threshold: Option<Level>, sink: Arc<dyn Sink>) -> Logger {
        Logger {
            account: account.to_string(),
            threshold,
            sink,
            last_storage: Arc::new(Mutex::new(None)),
        }
    }

    /// A storage or lock error (`e` of kind Storage; others are not this
    /// event), at most once a minute for the same message from one process:
    /// a corrupt file fails every call, and a line per call would drown the
    /// log.
    pub fn storage_error(&self, operation: &str, location: &str, e: &crate::error::Error) {
        if e.kind != crate::error::ErrorKind::Storage || !self.enabled(Level::Error) {
            return;
        }
        {
            let mut last = self.last_storage.lock().unwrap_or_else(|e| e.into_inner());
            if last
                .as_ref()
                .is_some_and(|(m, at)| *m == e.message && at.elapsed() < REPEAT_AFTER)
            {
                return;
            }
            *last = Some((e.message.clone(), Instant::now()));
        }
        self.log(
            Level::Error,
            "storage_error",
            &format!("token storage: {}", e.message),
            serde_json::json!({"operation": operation, "title": e.title, "location": location}),
        );
    }

    /// Whether an event of `level` would be written (check before building
    /// an expensive one).
    pub fn enabled(&self, level: Level) -> bool {
        self.threshold.is_some_and(|t| level >= t)
    }

    /// Emits an event; `context` is an object of what it is about (the
    /// account and the kind are added). Scrubbed of anything token-shaped.
    pub fn log(&self, level: Level, kind: &'static str, message: &str, context: Value) {
        if !self.enabled(level) {
            return;
        }
        let mut ctx = Map::new();
        ctx.insert("account".into(), Value::from(self.account.as_str()));
        ctx.insert("event".into(), Value::from(kind));
        if let Value::Object(more) = context {
            for (k, v) in more {
                let v = match v {
                    Value::String(s) => Value::String(scrub(&s)),
                    other => other,
                };
                ctx.insert(k, v);
            }
        }
        self.sink.log(&Event {
            level,
            kind,
            message: scrub(message),
            context: ctx,
        });
    }
}

/// Masks what looks like a token in text that may quote a foreign answer:
/// runs of 40 or more characters of the base64url alphabet and `.` (a JWT
/// whole, amoCRM's `def502…` refresh tokens, secrets), kept to their first
/// 4 characters. Hosts, paths, ids and UUIDs (36) are shorter, or broken by
/// `/` and `:`.
pub fn scrub(text: &str) -> String {
    const LONG: usize = 40;
    let tokenish = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '=' | '.');
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= LONG {
            out.push_str(&run[..4]);
            out.push_str("…[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if tokenish(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A short reason for the admin page's list of refreshes: the first 160
/// bytes of a message, scrubbed, cut at a character boundary.
pub fn short(reason: &str) -> String {
    let s = scrub(reason);
    if s.len() <= 160 {
        return s;
    }
    let mut end = 157;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The token store as the core sees it: the same, with every storage or
/// lock error also written to the log ([`Logger::storage_error`]).
pub struct LoggedStore {
    inner: Box<dyn TokenStore>,
    log: Logger,
}

impl LoggedStore {
    pub fn new(inner: Box<dyn TokenStore>, log: Logger) -> LoggedStore {
        LoggedStore { inner, log }
    }

    fn seen<T>(&self, what: &str, r: crate::error::Result<T>) -> crate::error::Result<T> {
        if let Err(e) = &r {
            self.log.storage_error(what, &self.inner.location(), e);
        }
        r
    }
}

impl TokenStore for LoggedStore {
    fn version(&self) -> crate::error::Result<Option<Version>> {
        self.seen("version", self.inner.version())
    }
    fn load(&self) -> crate::error::Result<Option<(TokenPair, Version)>> {
        self.seen("load", self.inner.load())
    }
    fn save(&self, pair: &TokenPair) -> crate::error::Result<Version> {
        self.seen("save", self.inner.save(pair))
    }
    fn lock_unless(
        &self,
        wait: Duration,
        settled: &mut dyn FnMut() -> bool,
    ) -> crate::error::Result<Option<Box<dyn StoreLock>>> {
        self.seen("lock", self.inner.lock_unless(wait, settled))
    }
    fn try_lock(&self) -> crate::error::Result<Option<Box<dyn StoreLock>>> {
        self.seen("lock", self.inner.try_lock())
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn mark_refused(&self, refusal: &Refusal) -> crate::error::Result<()> {
        self.seen("mark_refused", self.inner.mark_refused(refusal))
    }
    fn refused(&self) -> crate::error::Result<Option<Refusal>> {
        self.seen("refused", self.inner.refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_parse_and_filter() {
        assert_eq!(parse_threshold("INFO"), Ok(Some(Level::Info)));
        assert_eq!(parse_threshold("off"), Ok(None));
        assert!(parse_threshold("loud").unwrap_err().contains("debug, info"));
        let mem = Arc::new(Memory::default());
        let log = Logger::new("main", Some(Level::Warning), mem.clone());
        log.log(Level::Info, "refresh", "token refreshed", json!({}));
        log.log(Level::Warning, "retry", "retrying", json!({"attempt": 1}));
        log.log(Level::Error, "storage_error", "disk full", json!({}));
        assert_eq!(mem.kinds(), ["retry", "storage_error"]);
        let e = &mem.events()[0];
        assert_eq!(e.context["account"], "main");
        assert_eq!(e.context["event"], "retry");
        assert_eq!(e.context["attempt"], 1);
        assert_eq!(line(e), "amocrm[main] warning: retrying");
        let off = Logger::new("main", None, mem.clone());
        off.log(Level::Error, "storage_error", "x", json!({}));
        assert_eq!(mem.events().len(), 2);
    }

    #[test]
    fn token_shaped_runs_are_masked() {
        let jwt = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}", "a".repeat(60));
        let s = scrub(&format!("not JSON: {{\"access_token\":\"{jwt}\"}}"));
        assert!(!s.contains(&"a".repeat(40)), "{s}");
        assert!(!s.contains("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9"), "{s}");
        assert!(s.starts_with("not JSON: {\"access_token\":\"eyJ0…[redacted]"));
        let r = format!("def50200{}", "0f".repeat(300));
        assert_eq!(scrub(&r), "def5…[redacted]");
        // What a message names stays readable.
        let plain = "GET http://example.amocrm.ru/api/v4/leads/5f1b2c3d-aaaa-bbbb-cccc-0123456789ab answered 502";
        assert_eq!(scrub(plain), plain);
        assert_eq!(short(&"é".repeat(200)).len(), 159);
    }
}
