//! Host-wide counters for monitoring (`AmoClient::metrics()`, the gateway's
//! /metrics), kept by the state's backend: the shared memory region of the
//! file store, or a Redis hash. Best effort by design: a counter that
//! cannot be written never fails an API call.

use crate::state::Counters;
use serde_json::{json, Map, Value};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Refreshes,
    RefreshFailures,
    RateLimited,
    RateLimitWaits,
    RateLimitWaitMs,
    Retries,
    /// Requests that got no answer (could not connect, timed out, broke off).
    ApiCallErrors,
    /// Answers by HTTP status (100–999).
    ApiCalls(u16),
    /// The account's subdomain changed and its new host was stored.
    Relocations,
}

const NAMED: [Counter; 7] = [
    Counter::Refreshes,
    Counter::RefreshFailures,
    Counter::RateLimited,
    Counter::RateLimitWaits,
    Counter::RateLimitWaitMs,
    Counter::Retries,
    Counter::ApiCallErrors,
];
const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 999;
const STATUSES: usize = (LAST_STATUS - FIRST_STATUS + 1) as usize;
/// Named counters added later go after the statuses, so that a region made
/// by an earlier version keeps every counter where it was.
const LATER: [Counter; 1] = [Counter::Relocations];

/// Every named counter.
fn named() -> impl Iterator<Item = Counter> {
    NAMED.into_iter().chain(LATER)
}

impl Counter {
    /// How many counters there are (the shared region's table size).
    pub const COUNT: usize = NAMED.len() + STATUSES + LATER.len();

    /// Its place in the shared region's table.
    pub fn index(self) -> usize {
        match self {
            Counter::ApiCalls(s) => {
                NAMED.len() + (s.clamp(FIRST_STATUS, LAST_STATUS) - FIRST_STATUS) as usize
            }
            named => match NAMED.iter().position(|c| *c == named) {
                Some(i) => i,
                None => {
                    NAMED.len()
                        + STATUSES
                        + LATER
                            .iter()
                            .position(|c| *c == named)
                            .expect("a named counter")
                }
            },
        }
    }

    pub fn all() -> impl Iterator<Item = Counter> {
        NAMED
            .into_iter()
            .chain((FIRST_STATUS..=LAST_STATUS).map(Counter::ApiCalls))
            .chain(LATER)
    }

    /// The name monitoring knows it by (the Redis hash field).
    pub fn name(self) -> String {
        match self {
            Counter::Refreshes => "refreshes".into(),
            Counter::RefreshFailures => "refresh_failures".into(),
            Counter::RateLimited => "rate_limited".into(),
            Counter::RateLimitWaits => "rate_limit_waits".into(),
            Counter::RateLimitWaitMs => "rate_limit_wait_ms".into(),
            Counter::Retries => "retries".into(),
            Counter::ApiCallErrors => "api_calls.error".into(),
            Counter::ApiCalls(s) => format!("api_calls.{s}"),
            Counter::Relocations => "relocations".into(),
        }
    }

    pub fn from_name(name: &str) -> Option<Counter> {
        if let Some(status) = name.strip_prefix("api_calls.") {
            if let Ok(s @ FIRST_STATUS..=LAST_STATUS) = status.parse::<u16>() {
                return Some(Counter::ApiCalls(s));
            }
        }
        named().find(|c| c.name() == name)
    }
}

/// The counters as `metrics()` shows them: the named ones (0 until
/// counted) and the answers by status gathered into `api_calls`.
pub fn snapshot(counters: &dyn Counters) -> Value {
    let mut out = Map::new();
    let mut by_status = Map::new();
    for c in named().filter(|c| *c != Counter::ApiCallErrors) {
        out.insert(c.name(), json!(0));
    }
    for (c, n) in counters.read() {
        match c {
            Counter::ApiCalls(s) => {
                by_status.insert(s.to_string(), json!(n));
            }
            Counter::ApiCallErrors => {
                by_status.insert("error".into(), json!(n));
            }
            named => {
                out.insert(named.name(), json!(n));
            }
        }
    }
    out.insert("api_calls".into(), Value::Object(by_status));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes_round_trip() {
        let all: Vec<Counter> = Counter::all().collect();
        assert_eq!(all.len(), Counter::COUNT);
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Counter::from_name(&c.name()), Some(*c));
        }
        assert_eq!(Counter::from_name("api_calls.1000"), None);
        assert_eq!(Counter::from_name("api_calls.99"), None);
        assert_eq!(Counter::from_name("junk"), None);
    }
}
