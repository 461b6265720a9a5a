//! amoCRM's rate limit: at most `rps` API requests in any sliding 1000 ms
//! window (429 with nginx's HTML page above it), and a block of the whole
//! account (403 with nginx's HTML page) after repeated excess.
//!
//! It runs on real time (`Instant`), not on the emulated clock, so that tests
//! can wait for a window or a block to pass.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Response;

pub const DEFAULT_RPS: u32 = 7;
pub const DEFAULT_BLOCK_AFTER: u32 = 20;
pub const DEFAULT_BLOCK_SECONDS: u64 = 600;
const WINDOW: Duration = Duration::from_millis(1000);
/// 429s are counted over this window towards a block.
const STRIKE_WINDOW: Duration = Duration::from_secs(60);

pub const PAGE_429: &str = "<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>";
pub const PAGE_403: &str = "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>";

/// nginx's 429 page: `text/html`, no Retry-After.
pub fn too_many() -> Response {
    Response::new(429, "text/html", PAGE_429)
}

/// nginx's 403 page shown while the account is blocked.
pub fn forbidden() -> Response {
    Response::new(403, "text/html", PAGE_403)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    TooMany,
    Blocked,
}

#[derive(Debug)]
pub struct Limiter {
    /// Requests per 1000 ms; 0 turns the limit off.
    pub rps: u32,
    /// A block starts when more than this many 429s fall within 60 s.
    pub block_after: u32,
    /// Length of a block; 0 never blocks.
    pub block_seconds: u64,
    /// Times of the requests let through within the last window.
    served: VecDeque<Instant>,
    /// Times of the 429s within the last 60 s.
    strikes: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(DEFAULT_RPS)
    }
}

impl Limiter {
    pub fn new(rps: u32) -> Limiter {
        Limiter {
            rps,
            block_after: DEFAULT_BLOCK_AFTER,
            block_seconds: DEFAULT_BLOCK_SECONDS,
            served: VecDeque::new(),
            strikes: VecDeque::new(),
            blocked_until: None,
        }
    }

    /// Decide on one API request arriving at `now`, and record it.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Verdict::Blocked;
            }
            self.blocked_until = None;
            self.strikes.clear();
        }
        if self.rps == 0 {
            return Verdict::Pass;
        }
        while self
            .served
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.served.pop_front();
        }
        if self.served.len() < self.rps as usize {
            self.served.push_back(now);
            return Verdict::Pass;
        }
        while self
            .strikes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= STRIKE_WINDOW)
        {
            self.strikes.pop_front();
        }
        self.strikes.push_back(now);
        if self.block_seconds > 0 && self.strikes.len() > self.block_after as usize {
            self.blocked_until = Some(now + Duration::from_secs(self.block_seconds));
            self.strikes.clear();
        }
        Verdict::TooMany
    }

    /// Lift a block and forget the 429s and the window.
    pub fn lift(&mut self) {
        self.blocked_until = None;
        self.strikes.clear();
        self.served.clear();
    }

    /// `{"rps","block_after","block_seconds","blocked","block_remaining_ms"}`
    pub fn to_json(&self, now: Instant) -> Value {
        let remaining = self
            .blocked_until
            .filter(|u| *u > now)
            .map(|u| u.duration_since(now).as_millis() as u64);
        json!({
            "rps": self.rps,
            "block_after": self.block_after,
            "block_seconds": self.block_seconds,
            "blocked": remaining.is_some(),
            "block_remaining_ms": remaining.unwrap_or(0),
        })
    }

    /// Apply `{"rps"?, "block_after"?, "block_seconds"?}`: all or nothing.
    pub fn update(&mut self, v: &Value) -> Result<(), String> {
        let o = v
            .as_object()
            .ok_or_else(|| "body must be a JSON object".to_string())?;
        let mut rps = self.rps;
        let mut block_after = self.block_after;
        let mut block_seconds = self.block_seconds;
        for (k, v) in o {
            let n = v
                .as_u64()
                .ok_or_else(|| format!("`{k}` must be a non-negative integer"))?;
            match k.as_str() {
                "rps" => rps = u32::try_from(n).map_err(|_| "`rps` is too large".to_string())?,
                "block_after" => {
                    block_after =
                        u32::try_from(n).map_err(|_| "`block_after` is too large".to_string())?
                }
                "block_seconds" => block_seconds = n,
                // Read-only fields of the GET answer may be sent back.
                "blocked" | "block_remaining_ms" => {}
                other => {
                    return Err(format!(
                        "unknown key {other:?}; expected rps, block_after, block_seconds"
                    ))
                }
            }
        }
        self.rps = rps;
        self.block_after = block_after;
        self.block_seconds = block_seconds;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_block() {
        let mut l = Limiter::new(2);
        l.block_after = 2;
        l.block_seconds = 5;
        let t = Instant::now();
        assert_eq!(l.check(t), Verdict::Pass);
        assert_eq!(l.check(t + Duration::from_millis(10)), Verdict::Pass);
        assert_eq!(
            l.check(t + Duration::from_millis(20)),
            Verdict::TooMany,
            "third in the window"
        );
        // The first leaves the window at t+1000.
        assert_eq!(l.check(t + Duration::from_millis(1000)), Verdict::Pass);
        assert_eq!(l.check(t + Duration::from_millis(1001)), Verdict::TooMany);
        // More than 2 strikes within 60 s: blocked.
        assert_eq!(l.check(t + Duration::from_millis(1002)), Verdict::TooMany);
        assert_eq!(l.check(t + Duration::from_millis(3000)), Verdict::Blocked);
        assert!(l.to_json(t + Duration::from_millis(3000))["blocked"] == true);
        // Over after block_seconds.
        assert_eq!(l.check(t + Duration::from_millis(7000)), Verdict::Pass);
        l.rps = 0;
        for i in 0..100 {
            assert_eq!(l.check(t + Duration::from_millis(7001 + i)), Verdict::Pass);
        }
    }

    #[test]
    fn updates() {
        let mut l = Limiter::default();
        l.update(&json!({"rps": 3})).unwrap();
        assert_eq!((l.rps, l.block_after, l.block_seconds), (3, 20, 600));
        assert!(l.update(&json!({"rps": 1, "bogus": 1})).is_err());
        assert!(l.update(&json!({"rps": -1})).is_err());
        assert_eq!(l.rps, 3);
        l.update(&json!({"block_after": 0, "block_seconds": 1}))
            .unwrap();
        assert_eq!((l.rps, l.block_after, l.block_seconds), (3, 0, 1));
    }
}
