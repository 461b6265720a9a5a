//! The Redis backend of the shared state, for several hosts: the pair, the
//! refresh lock, the rate limiter's budget, the counters and the refusal
//! note of one account live under keys of their own,
//!
//! ```text
//! {prefix}{account}:pair      hash: json (the pair), gen (counted up by every write), at (written, µs)
//! {prefix}{account}:lock      string: the holder's owner value, with an expiry
//! {prefix}{account}:refused   string: the refusal note (JSON)
//! {prefix}{account}:budget    list: `limit` rate-limit slots, each held until (µs, Redis's clock)
//! {prefix}{account}:counters  hash: name → count
//! {prefix}{account}:calls:{m} hash: the history's counts of unix minute m
//!                             (field → count), expiring after 25 hours
//! {prefix}{account}:refreshes list: the last 20 refreshes (JSON), newest first
//! ```
//!
//! Every step that must not interleave with another host's is one Lua
//! script, which Redis runs atomically.
//!
//! - **The lock** is `SET NX PX` with an owner value unique to the process
//!   and the attempt (host, pid, random), expiring after `lock_wait`
//!   (connect_timeout + timeout + 5 s: longer than a refresh may take). It
//!   is released only by its owner (compare, then delete). A holder that
//!   dies mid-refresh is taken over when its lock expires; the new holder
//!   re-reads the pair first (the client always does under the lock), so a
//!   pair the dead holder already rotated is used, not refreshed again.
//! - **The save is fenced**: it writes only while the lock is still this
//!   process's — or, if the lock expired and nobody took it, while the pair
//!   is still the generation it saw when it took the lock. A holder that was
//!   stopped past its expiry, and resumes after another took over and
//!   stored a newer pair, has its write refused.
//! - **The budget** takes a slot by Redis's clock (`TIME`), so that hosts
//!   whose clocks differ share one window, and in one script, so that two
//!   hosts cannot both take the last slot; a second script frees it a
//!   window after the request ended.
//! - **The pair's version** is its generation and write time: one `HMGET`
//!   per API call tells whether another process stored a new pair.
//!
//! With Sentinel, a new pair is also waited for on a replica (`WAIT 1`, at
//! most `connect_timeout`), so that a failover right after the write cannot
//! lose it.

use crate::config::{Config, RedisTarget};
use crate::error::{Error, Result};
use crate::metrics::Counter;
use crate::ratelimit::{self, Ticket};
use crate::redis_conn::{self, Target};
use crate::state::{Budget, Counters, State};
use crate::store::{Refusal, StoreLock, TokenStore, Version};
use crate::token::{self, TokenPair};
use once_cell::sync::Lazy;
use redis::Script;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Takes the lock if it is free (or already this owner's); otherwise says
/// who holds it and for how much longer. A lock without an expiry (written
/// by hand) gets one, so that it cannot wedge every host.
/// KEYS: lock, pair. ARGV: owner, ttl (ms).
/// Returns {1, generation of the pair, 0} or {0, holder, ms left}.
static ACQUIRE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  holder = ARGV[1]
end
if holder == ARGV[1] then
  return {1, redis.call('HGET', KEYS[2], 'gen') or '0', 0}
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {0, holder, left}
",
    )
});

/// Releases the lock if it is still this owner's.
/// KEYS: lock. ARGV: owner.
static RELEASE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Stores a pair if the lock is still this owner's, or is free and the pair
/// is still the generation seen when the lock was taken; forgets the
/// refusal note. KEYS: pair, lock, refused. ARGV: owner, generation, json.
/// Returns {generation, written at (µs)} or {-1, the holder or ''}.
static SAVE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local holder = redis.call('GET', KEYS[2])
if holder ~= ARGV[1] then
  if holder or (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[2] then
    return {-1, holder or ''}
  end
end
local t = redis.call('TIME')
local at = t[1] .. string.format('%06d', tonumber(t[2]))
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'at', at)
redis.call('DEL', KEYS[3])
return {gen, at}
",
    )
});

/// Takes one of `limit` send slots for a request that may last `hold`, by
/// Redis's clock (µs): the rule of [`crate::ratelimit::take_slot`], each
/// slot the time until which it is held. KEYS: budget. ARGV: limit, hold,
/// window, poll, max hold (µs). Returns {1, index, held until} or {0, µs to
/// wait, ''}.
static TAKE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, hold, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local poll, maxhold = tonumber(ARGV[4]), tonumber(ARGV[5])
local held_until = string.format('%d', now + hold + window)
local function took(i)
  redis.call('PEXPIRE', KEYS[1], math.floor((maxhold + window) / 1000) + 1000)
  return {1, i, held_until}
end
local slots = redis.call('LRANGE', KEYS[1], 0, limit - 1)
if #slots < limit then
  redis.call('RPUSH', KEYS[1], held_until)
  return took(#slots)
end
local wait = nil
for i, s in ipairs(slots) do
  local held = tonumber(s) or 0
  if held <= now or held > now + maxhold then
    redis.call('LSET', KEYS[1], i - 1, held_until)
    return took(i - 1)
  end
  local left = held - now
  if left > window then left = math.min(left, poll) end
  if wait == nil or left < wait then wait = left end
end
return {0, wait, ''}
",
    )
});

/// The request of a slot is over: the slot is held for a window from now,
/// unless it was taken over meanwhile. KEYS: budget. ARGV: index, held
/// until (as taken), window (µs).
static FREE: Lazy<Script> = Lazy::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('LSET', KEYS[1], ARGV[1], string.format('%d', now + tonumber(ARGV[3])))
end
return 0
",
    )
});

/// The keys of one account.
#[derive(Debug, Clone)]
struct Keys {
    pair: String,
    lock: String,
    refused: String,
    budget: String,
    counters: String,
    refreshes: String,
}

impl Keys {
    fn new(prefix: &str, account: &str) -> Keys {
        let key = |part: &str| format!("{prefix}{account}:{part}");
        Keys {
            pair: key("pair"),
            lock: key("lock"),
            refused: key("refused"),
            budget: key("budget"),
            counters: key("counters"),
            refreshes: key("refreshes"),
        }
    }

    /// The history's hash of one unix minute.
    fn calls(&self, minute: u64) -> String {
        format!(
            "{}calls:{minute}",
            self.counters.trim_end_matches("counters")
        )
    }
}

/// A minute's hash outlives the 24 hours shown by one hour, then expires.
const MINUTE_TTL_SECS: u64 = 25 * 3600;

/// What the three parts share: where Redis is, the keys, the lock's expiry.
struct Shared {
    target: Target,
    keys: Keys,
    lock_ttl: Duration,
}

impl Shared {
    fn run<T>(
        &self,
        what: &str,
        f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        redis_conn::run(&self.target, what, f)
    }
}

/// The state of `config.account` in the Redis `target` names. Nothing
/// connects yet: the first call that needs Redis does.
pub fn state(config: &Config, target: &RedisTarget) -> State {
    let shared = Arc::new(Shared {
        target: Target {
            redis: target.clone(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            ca_file: config.ca_file.clone(),
        },
        keys: Keys::new(&target.prefix, &config.account),
        lock_ttl: config.lock_wait(),
    });
    State {
        tokens: Box::new(RedisStore {
            shared: shared.clone(),
            held: Mutex::new(Weak::new()),
        }),
        budget: Box::new(RedisBudget {
            shared: shared.clone(),
        }),
        counters: Box::new(RedisCounters { shared }),
    }
}

pub struct RedisStore {
    shared: Arc<Shared>,
    /// The lock this process holds, if any: `save` is fenced by it.
    held: Mutex<Weak<Held>>,
}

/// A lock taken in Redis: its owner value and the pair's generation then.
struct Held {
    shared: Arc<Shared>,
    owner: String,
    generation: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Redis down: the lock expires by itself.
        let _ = self.shared.run("cannot release the lock", |c| {
            RELEASE
                .key(&self.shared.keys.lock)
                .arg(&self.owner)
                .invoke::<i64>(c)
        });
    }
}

struct RedisLock(#[allow(dead_code)] Arc<Held>);

impl StoreLock for RedisLock {}

/// What an attempt at the lock found.
enum Attempt {
    Taken { generation: String },
    Busy { holder: String, left: Duration },
}

/// An owner value no other process or attempt has: the host and pid (which
/// the error of a waiter that gives up names) and 64 random bits.
fn owner_value() -> String {
    static HOST: Lazy<String> = Lazy::new(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into())
    });
    // fastrand's state is copied by fork; the pid and the time tell the
    // children apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{}:{}:{:016x}{:08x}",
        *HOST,
        std::process::id(),
        fastrand::u64(..),
        nanos
    )
}

/// `host:pid:…` → "process PID on host HOST".
fn describe_holder(holder: &str) -> String {
    let mut parts = holder.rsplitn(3, ':');
    let (_, pid, host) = (parts.next(), parts.next(), parts.next());
    match (host, pid) {
        (Some(host), Some(pid)) => format!("process {pid} on host {host}"),
        _ => "another process".into(),
    }
}

impl RedisStore {
    fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    fn attempt(&self, owner: &str) -> Result<Attempt> {
        let ttl = self.shared.lock_ttl.as_millis().max(1) as u64;
        let (taken, value, left): (i64, String, i64) =
            self.shared.run("cannot take the refresh lock", |c| {
                ACQUIRE
                    .key(&self.keys().lock)
                    .key(&self.keys().pair)
                    .arg(owner)
                    .arg(ttl)
                    .invoke(c)
            })?;
        Ok(if taken == 1 {
            Attempt::Taken { generation: value }
        } else {
            Attempt::Busy {
                holder: value,
                left: Duration::from_millis(left.max(0) as u64),
            }
        })
    }

    fn hold(&self, owner: String, generation: String) -> Box<dyn StoreLock> {
        let held = Arc::new(Held {
            shared: self.shared.clone(),
            owner,
            generation,
        });
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&held);
        Box::new(RedisLock(held))
    }

    fn fault(&self, what: &str, e: impl std::fmt::Display) -> Error {
        self.shared
            .target
            .fault(&format!("key {}: {what}", self.keys().pair), e)
    }
}

/// How long past its `wait` a waiter waits for the same holder: the
/// holder's expiry (`lock_wait`, what the client waits) has passed by then.
const GRACE: Duration = Duration::from_secs(1);

impl TokenStore for RedisStore {
    fn version(&self) -> Result<Option<Version>> {
        let (generation, at): (Option<u64>, Option<u64>) =
            self.shared.run("cannot read the pair's version", |c| {
                redis::cmd("HMGET")
                    .arg(&self.keys().pair)
                    .arg("gen")
                    .arg("at")
                    .query(c)
            })?;
        Ok(generation.map(|g| Version::generation(g, at.unwrap_or(0))))
    }

    fn load(&self) -> Result<Option<(TokenPair, Version)>> {
        let (json, generation, at): (Option<Vec<u8>>, Option<u64>, Option<u64>) =
            self.shared.run("cannot read the pair", |c| {
                redis::cmd("HMGET")
                    .arg(&self.keys().pair)
                    .arg("json")
                    .arg("gen")
                    .arg("at")
                    .query(c)
            })?;
        let Some(json) = json else {
            return Ok(None);
        };
        if json.len() as u64 > token::MAX_FILE_BYTES {
            return Err(self.fault("cannot read", "larger than 64 KiB, not a token pair"));
        }
        let mut pair = TokenPair::from_json(&json)
            .and_then(|p| {
                token::check_token("access_token", &p.access_token)?;
                p.refresh_token
                    .as_ref()
                    .map_or(Ok(()), |r| token::check_token("refresh_token", r))?;
                Ok(p)
            })
            .map_err(|why| self.fault("corrupt", why))?;
        let at = at.unwrap_or(0);
        if pair.updated_at == 0 {
            pair.updated_at = (at / 1_000_000) as i64;
        }
        Ok(Some((
            pair,
            Version::generation(generation.unwrap_or(0), at),
        )))
    }

    fn save(&self, pair: &TokenPair) -> Result<Version> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .ok_or_else(|| self.fault("not written", "the refresh lock is not held"))?;
        let json = pair.to_json();
        let (generation, at): (i64, String) =
            self.shared
                .run("cannot write (the previous pair is kept)", |c| {
                    SAVE.key(&self.keys().pair)
                        .key(&self.keys().lock)
                        .key(&self.keys().refused)
                        .arg(&held.owner)
                        .arg(&held.generation)
                        .arg(&json)
                        .invoke(c)
                })?;
        if generation < 0 {
            let by = if at.is_empty() {
                "another process, which has stored a newer pair".to_string()
            } else {
                describe_holder(&at)
            };
            return Err(self
                .fault(
                    "not written",
                    format!(
                        "this process held the refresh lock past its expiry ({} s) and {by} has taken the lock over; its pair is dropped and the stored one kept",
                        self.shared.lock_ttl.as_secs()
                    ),
                )
                .with_title(crate::store::LOCK_LOST));
        }
        if self.shared.target.redis.sentinel_master.is_some() {
            // A failover right after this must not lose the pair: wait for
            // a replica to have it. Best effort: without a replica in time,
            // the pair is on the primary (and its disk) alone.
            let wait_ms = self.shared.target.connect_timeout.as_millis() as u64;
            let _ = self.shared.run("cannot wait for a replica", |c| {
                redis::cmd("WAIT").arg(1).arg(wait_ms).query::<i64>(c)
            });
        }
        Ok(Version::generation(
            generation as u64,
            at.parse().unwrap_or(0),
        ))
    }

    fn lock_unless(
        &self,
        wait: Duration,
        settled: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Box<dyn StoreLock>>> {
        let owner = owner_value();
        // Every holder's lock expires within lock_wait, which is what a
        // client waits: a waiter outlives each holder's expiry by GRACE.
        let mut deadline = Instant::now() + wait + GRACE;
        let mut last_holder = String::new();
        let mut pause = Duration::from_millis(2);
        loop {
            match self.attempt(&owner)? {
                Attempt::Taken { generation } => return Ok(Some(self.hold(owner, generation))),
                Attempt::Busy { .. } if settled() => return Ok(None),
                Attempt::Busy { holder, left } => {
                    let now = Instant::now();
                    if holder != last_holder {
                        // Another holder: wait for it as long as for any.
                        deadline = now + wait + GRACE;
                        last_holder = holder;
                    } else if now >= deadline {
                        return Err(self.shared.target.fault(
                            &format!("lock {}", self.keys().lock),
                            format!(
                                "{} held it for over {} s",
                                describe_holder(&last_holder),
                                wait.as_secs()
                            ),
                        ));
                    }
                    std::thread::sleep(pause.min(left.max(Duration::from_millis(1))));
                    // A look is a round trip to Redis: at most every 10 ms.
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
            }
        }
    }

    fn try_lock(&self) -> Result<Option<Box<dyn StoreLock>>> {
        let owner = owner_value();
        Ok(match self.attempt(&owner)? {
            Attempt::Taken { generation } => Some(self.hold(owner, generation)),
            Attempt::Busy { .. } => None,
        })
    }

    fn location(&self) -> String {
        format!(
            "Redis {} key {}",
            self.shared.target.describe(),
            self.keys().pair
        )
    }

    fn mark_refused(&self, refusal: &Refusal) -> Result<()> {
        let note = json!({
            "at": refusal.at,
            "reason": refusal.reason,
            "fingerprint": refusal.fingerprint,
        })
        .to_string();
        self.shared.run("cannot write the refusal note", |c| {
            redis::cmd("SET")
                .arg(&self.keys().refused)
                .arg(&note)
                .query::<()>(c)
        })
    }

    fn refused(&self) -> Result<Option<Refusal>> {
        let note: Option<Vec<u8>> = self.shared.run("cannot read the refusal note", |c| {
            redis::cmd("GET").arg(&self.keys().refused).query(c)
        })?;
        Ok(note.map(|bytes| {
            // As with the file: a note that cannot be read still says amoCRM
            // refused the pair stored now.
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            Refusal {
                at: v["at"].as_i64().unwrap_or(0),
                reason: v["reason"].as_str().unwrap_or("refused").to_string(),
                fingerprint: v["fingerprint"].as_str().unwrap_or("").to_string(),
            }
        }))
    }
}

/// The fleet's budget: `limit` slots, by Redis's clock.
pub struct RedisBudget {
    shared: Arc<Shared>,
}

impl Budget for RedisBudget {
    fn take(&self, limit: u32, hold: Duration) -> Result<std::result::Result<Ticket, Duration>> {
        let us = |d: Duration| d.as_micros() as u64;
        let (took, n, held_until): (i64, i64, String) = self.shared.run(
            &format!(
                "key {}: cannot take a rate-limit slot",
                self.shared.keys.budget
            ),
            |c| {
                TAKE.key(&self.shared.keys.budget)
                    .arg(limit.max(1))
                    .arg(us(hold))
                    .arg(us(ratelimit::WINDOW))
                    .arg(us(ratelimit::POLL))
                    .arg(us(ratelimit::MAX_HOLD))
                    .invoke(c)
            },
        )?;
        if took == 0 {
            return Ok(Err(Duration::from_micros(n.max(1) as u64)));
        }
        Ok(Ok(Ticket {
            index: n as u32,
            held_until: held_until.parse().unwrap_or(0),
        }))
    }

    fn release(&self, ticket: Ticket) {
        let _ = self.shared.run("cannot release a rate-limit slot", |c| {
            FREE.key(&self.shared.keys.budget)
                .arg(ticket.index)
                .arg(ticket.held_until.to_string())
                .arg(ratelimit::WINDOW.as_micros() as u64)
                .invoke::<i64>(c)
        });
    }
}

/// The fleet's counters: one hash, `HINCRBY` per increment.
pub struct RedisCounters {
    shared: Arc<Shared>,
}

impl Counters for RedisCounters {
    fn add(&self, increments: &[(Counter, u64)]) {
        let _ = self.shared.run("cannot count", |c| {
            let mut pipe = redis::pipe();
            for (counter, by) in increments {
                pipe.cmd("HINCRBY")
                    .arg(&self.shared.keys.counters)
                    .arg(counter.name())
                    .arg(*by)
                    .ignore();
            }
            pipe.query::<()>(c)
        });
    }

    /// The counters and the minute's history in one pipeline: one round
    /// trip, as before the history.
    fn add_in_minute(
        &self,
        increments: &[(Counter, u64)],
        minute: u64,
        fields: &[(crate::history::Field, u64)],
    ) {
        let keys = &self.shared.keys;
        let calls = keys.calls(minute);
        let _ = self.shared.run("cannot count", |c| {
            let mut pipe = redis::pipe();
            for (counter, by) in increments {
                pipe.cmd("HINCRBY")
                    .arg(&keys.counters)
                    .arg(counter.name())
                    .arg(*by)
                    .ignore();
            }
            for (field, by) in fields {
                pipe.cmd("HINCRBY")
                    .arg(&calls)
                    .arg(field.name())
                    .arg(*by)
                    .ignore();
            }
            if !fields.is_empty() {
                pipe.cmd("EXPIRE").arg(&calls).arg(MINUTE_TTL_SECS).ignore();
            }
            pipe.query::<()>(c)
        });
    }

    fn add_refresh(&self, r: &crate::history::Refresh) {
        let entry = json!({
            "at": r.at,
            "outcome": r.outcome.name(),
            "reason": crate::log::short(&r.reason),
        })
        .to_string();
        let key = &self.shared.keys.refreshes;
        let _ = self.shared.run("cannot note the refresh", |c| {
            redis::pipe()
                .cmd("LPUSH")
                .arg(key)
                .arg(&entry)
                .ignore()
                .cmd("LTRIM")
                .arg(key)
                .arg(0)
                .arg(crate::history::REFRESHES - 1)
                .ignore()
                .query::<()>(c)
        });
    }

    /// 1440 `HGETALL`s in one pipeline, then one `LRANGE`: two round trips
    /// per look of the admin page.
    fn history(
        &self,
        now_minute: u64,
    ) -> (Vec<crate::history::Minute>, Vec<crate::history::Refresh>) {
        use crate::history::{Field, Minute, Outcome, Refresh, FIELDS, MINUTES, REFRESHES};
        let keys = &self.shared.keys;
        let first = now_minute.saturating_sub(MINUTES as u64 - 1);
        let read = self.shared.run("cannot read the history", |c| {
            let mut pipe = redis::pipe();
            for m in first..=now_minute {
                pipe.cmd("HGETALL").arg(keys.calls(m));
            }
            let hashes: Vec<std::collections::BTreeMap<String, u64>> = pipe.query(c)?;
            let listed: Vec<String> = redis::cmd("LRANGE")
                .arg(&keys.refreshes)
                .arg(0)
                .arg(REFRESHES - 1)
                .query(c)?;
            Ok((hashes, listed))
        });
        let Ok((hashes, listed)) = read else {
            return (Vec::new(), Vec::new());
        };
        let minutes = (first..=now_minute)
            .zip(hashes)
            .filter_map(|(minute, h)| {
                let mut counts = [0u64; FIELDS.len()];
                for (name, n) in h {
                    if let Some(i) =
                        Field::from_name(&name).and_then(|f| FIELDS.iter().position(|g| *g == f))
                    {
                        counts[i] = n;
                    }
                }
                counts
                    .iter()
                    .any(|c| *c > 0)
                    .then_some(Minute { minute, counts })
            })
            .collect();
        let refreshes = listed
            .iter()
            .filter_map(|s| {
                let v: Value = serde_json::from_str(s).ok()?;
                Some(Refresh {
                    at: v["at"].as_i64()?,
                    outcome: Outcome::from_name(v["outcome"].as_str()?)?,
                    reason: v["reason"].as_str().unwrap_or("").to_string(),
                })
            })
            .collect();
        (minutes, refreshes)
    }

    fn read(&self) -> Vec<(Counter, u64)> {
        self.shared
            .run("cannot read the counters", |c| {
                redis::cmd("HGETALL")
                    .arg(&self.shared.keys.counters)
                    .query::<std::collections::BTreeMap<String, u64>>(c)
            })
            .map(|all| {
                all.into_iter()
                    .filter_map(|(k, v)| Some((Counter::from_name(&k)?, v)))
                    .collect()
            })
            .unwrap_or_default()
    }
}
