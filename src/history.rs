//! What the admin page draws, kept host-wide beside the counters in
//! fixed-size rings: API calls per minute by status class over the last 24
//! hours (1440 one-minute buckets), and the last 20 refreshes with their
//! outcome. The file store keeps both in its shared memory region, the
//! Redis store in keys of its own; this module holds the rings' rules over
//! plain atomic words (so that they are tested without either) and the
//! shape `AmoClient::history()` returns.

use serde_json::{json, Map, Value};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// One-minute buckets: 24 hours.
pub const MINUTES: usize = 1440;
/// Refreshes remembered.
pub const REFRESHES: usize = 20;

/// What a minute counts, one word each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Answers 200–299.
    S2xx,
    /// Answers 400–499 but 429.
    S4xx,
    /// 429: amoCRM's rate limit.
    S429,
    /// Answers 500–599.
    S5xx,
    /// Answers 100–199 and 300–399 (a redirect is never followed).
    Other,
    /// No answer: could not connect, timed out, broke off.
    Error,
    /// Requests that waited for a rate-limit slot.
    Waits,
    /// The milliseconds they waited, together.
    WaitMs,
}

pub const FIELDS: [Field; 8] = [
    Field::S2xx,
    Field::S4xx,
    Field::S429,
    Field::S5xx,
    Field::Other,
    Field::Error,
    Field::Waits,
    Field::WaitMs,
];

impl Field {
    /// The key in `history()['minutes'][i]` and the Redis hash field.
    pub fn name(self) -> &'static str {
        match self {
            Field::S2xx => "2xx",
            Field::S4xx => "4xx",
            Field::S429 => "429",
            Field::S5xx => "5xx",
            Field::Other => "other",
            Field::Error => "error",
            Field::Waits => "waits",
            Field::WaitMs => "wait_ms",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        FIELDS.into_iter().find(|f| f.name() == name)
    }

    /// The class of an answer's status.
    pub fn of_status(status: u16) -> Field {
        match status {
            429 => Field::S429,
            200..=299 => Field::S2xx,
            400..=499 => Field::S4xx,
            500..=599 => Field::S5xx,
            _ => Field::Other,
        }
    }

    fn index(self) -> usize {
        FIELDS.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// The unix minute (seconds / 60) of `unix` seconds.
pub fn minute_of(unix: i64) -> u64 {
    (unix.max(0) / 60) as u64
}

/// One minute's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minute {
    /// Unix minute (the minute's start in seconds is `minute * 60`).
    pub minute: u64,
    pub counts: [u64; FIELDS.len()],
}

/// Words of the minute ring: a word per field per bucket.
pub const MINUTE_WORDS: usize = MINUTES * FIELDS.len();

const LOW: u64 = 0xffff_ffff;

/// Adds `by` to `field` of `minute` in the ring. Each word holds its
/// minute in the high half and the count in the low half, so a bucket left
/// from the previous day is replaced by the first add of its new minute in
/// one compare-and-swap, without a lock and without losing a concurrent
/// add. A minute older than the bucket's (another process's clock is
/// behind) is dropped.
pub fn add(ring: &[AtomicU64], minute: u64, field: Field, by: u64) {
    let stamp = minute & LOW;
    let Some(word) = ring.get((minute as usize % MINUTES) * FIELDS.len() + field.index()) else {
        return;
    };
    let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
        let (m, n) = (w >> 32, w & LOW);
        match m.cmp(&stamp) {
            std::cmp::Ordering::Equal => Some((m << 32) | (n + by).min(LOW)),
            std::cmp::Ordering::Less => Some((stamp << 32) | by.min(LOW)),
            std::cmp::Ordering::Greater => None,
        }
    });
}

/// The minutes of the last 24 hours up to `now_minute` that counted
/// anything, oldest first.
pub fn read(ring: &[AtomicU64], now_minute: u64) -> Vec<Minute> {
    let first = now_minute.saturating_sub(MINUTES as u64 - 1);
    (first..=now_minute)
        .filter_map(|minute| {
            let base = (minute as usize % MINUTES) * FIELDS.len();
            let mut counts = [0u64; FIELDS.len()];
            for (i, c) in counts.iter_mut().enumerate() {
                let w = ring.get(base + i)?.load(Ordering::Relaxed);
                if w >> 32 == minute & LOW {
                    *c = w & LOW;
                }
            }
            counts
                .iter()
                .any(|c| *c > 0)
                .then_some(Minute { minute, counts })
        })
        .collect()
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// amoCRM could not be reached or answered something unusable, or the
    /// new pair could not be stored: the next call tries again.
    Failed,
    /// amoCRM refused the refresh token: an admin must re-authorize.
    Refused,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        }
    }

    pub fn from_name(name: &str) -> Option<Outcome> {
        [Outcome::Ok, Outcome::Failed, Outcome::Refused]
            .into_iter()
            .find(|o| o.name() == name)
    }

    fn code(self) -> u64 {
        match self {
            Outcome::Ok => 1,
            Outcome::Failed => 2,
            Outcome::Refused => 3,
        }
    }

    fn from_code(c: u64) -> Option<Outcome> {
        match c {
            1 => Some(Outcome::Ok),
            2 => Some(Outcome::Failed),
            3 => Some(Outcome::Refused),
            _ => None,
        }
    }
}

/// One refresh, as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Unix seconds.
    pub at: i64,
    pub outcome: Outcome,
    /// Why it was made (`ok`) or why it failed; short, never a secret.
    pub reason: String,
}

/// The longest reason kept (bytes).
pub const REASON_BYTES: usize = 160;
/// Words of one refresh entry: sequence, time, outcome, reason length,
/// reason bytes.
const ENTRY_WORDS: usize = 4 + REASON_BYTES / 8;
/// Words of the refresh ring: the next sequence number, then the entries.
pub const REFRESH_WORDS: usize = 1 + REFRESHES * ENTRY_WORDS;
/// An entry being written.
const WRITING: u64 = u64::MAX;

/// Appends a refresh to the ring (a seqlock per entry: a reader never takes
/// half of one entry and half of another).
pub fn push(ring: &[AtomicU64], r: &Refresh) {
    if ring.len() < REFRESH_WORDS {
        return;
    }
    let n = ring[0].fetch_add(1, Ordering::Relaxed);
    let e = &ring[1 + (n as usize % REFRESHES) * ENTRY_WORDS..][..ENTRY_WORDS];
    e[0].store(WRITING, Ordering::Relaxed);
    fence(Ordering::Release);
    let reason = crate::log::short(&r.reason);
    let mut bytes = [0u8; REASON_BYTES];
    let len = reason.len().min(REASON_BYTES);
    bytes[..len].copy_from_slice(&reason.as_bytes()[..len]);
    e[1].store(r.at as u64, Ordering::Relaxed);
    e[2].store(r.outcome.code(), Ordering::Relaxed);
    e[3].store(len as u64, Ordering::Relaxed);
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        e[4 + i].store(word, Ordering::Relaxed);
    }
    e[0].store(n + 1, Ordering::Release);
}

/// The refreshes in the ring, newest first.
pub fn refreshes(ring: &[AtomicU64]) -> Vec<Refresh> {
    if ring.len() < REFRESH_WORDS {
        return Vec::new();
    }
    let mut found: Vec<(u64, Refresh)> = (0..REFRESHES)
        .filter_map(|i| {
            let e = &ring[1 + i * ENTRY_WORDS..][..ENTRY_WORDS];
            // An entry being written is skipped after a few tries.
            for _ in 0..3 {
                let seq = e[0].load(Ordering::Acquire);
                if seq == 0 {
                    return None;
                }
                if seq == WRITING {
                    std::thread::yield_now();
                    continue;
                }
                let at = e[1].load(Ordering::Relaxed) as i64;
                let outcome = e[2].load(Ordering::Relaxed);
                let len = (e[3].load(Ordering::Relaxed) as usize).min(REASON_BYTES);
                let mut bytes = [0u8; REASON_BYTES];
                for (j, chunk) in bytes.chunks_mut(8).enumerate() {
                    chunk.copy_from_slice(&e[4 + j].load(Ordering::Relaxed).to_ne_bytes());
                }
                fence(Ordering::Acquire);
                if e[0].load(Ordering::Relaxed) != seq {
                    continue;
                }
                let reason = String::from_utf8_lossy(&bytes[..len]).into_owned();
                return Some((
                    seq,
                    Refresh {
                        at,
                        outcome: Outcome::from_code(outcome)?,
                        reason,
                    },
                ));
            }
            None
        })
        .collect();
    found.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    found.into_iter().map(|(_, r)| r).collect()
}

/// `AmoClient::history()`: `from`/`to` (the first and the current minute's
/// start, unix seconds), `minutes` (oldest first, only minutes that counted
/// anything: `at` and every field) and `refreshes` (newest first).
pub fn to_json(now_minute: u64, minutes: &[Minute], refreshes: &[Refresh]) -> Value {
    let minutes: Vec<Value> = minutes
        .iter()
        .map(|m| {
            let mut o = Map::new();
            o.insert("at".into(), json!(m.minute * 60));
            for (f, n) in FIELDS.iter().zip(m.counts) {
                o.insert(f.name().into(), json!(n));
            }
            Value::Object(o)
        })
        .collect();
    let refreshes: Vec<Value> = refreshes
        .iter()
        .map(|r| json!({"at": r.at, "outcome": r.outcome.name(), "reason": r.reason}))
        .collect();
    json!({
        "from": now_minute.saturating_sub(MINUTES as u64 - 1) * 60,
        "to": now_minute * 60,
        "minutes": minutes,
        "refreshes": refreshes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(words: usize) -> Vec<AtomicU64> {
        (0..words).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn minutes_count_by_class_and_wrap_after_a_day() {
        let r = ring(MINUTE_WORDS);
        let t0 = 29_600_000u64; // a unix minute in 2026
        add(&r, t0, Field::of_status(200), 1);
        add(&r, t0, Field::of_status(204), 2);
        add(&r, t0, Field::of_status(429), 1);
        add(&r, t0, Field::of_status(404), 1);
        add(&r, t0, Field::of_status(503), 1);
        add(&r, t0, Field::of_status(302), 1);
        add(&r, t0, Field::Error, 1);
        add(&r, t0 + 1, Field::Waits, 1);
        add(&r, t0 + 1, Field::WaitMs, 1500);
        let seen = read(&r, t0 + 1);
        assert_eq!(
            seen,
            [
                Minute {
                    minute: t0,
                    counts: [3, 1, 1, 1, 1, 1, 0, 0]
                },
                Minute {
                    minute: t0 + 1,
                    counts: [0, 0, 0, 0, 0, 0, 1, 1500]
                }
            ]
        );
        // 23 h 59 min later t0 is still the oldest minute shown.
        let last = t0 + MINUTES as u64 - 1;
        assert_eq!(read(&r, last)[0].minute, t0);
        // A day later its bucket is t0 + 1440's: t0 is gone, not added to.
        assert_eq!(read(&r, last + 1)[0].minute, t0 + 1);
        add(&r, t0 + MINUTES as u64, Field::S2xx, 1);
        let seen = read(&r, t0 + MINUTES as u64);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[1],
            Minute {
                minute: t0 + MINUTES as u64,
                counts: [1, 0, 0, 0, 0, 0, 0, 0]
            }
        );
        // A process whose clock is a day behind cannot write into today's bucket.
        add(&r, t0, Field::S2xx, 5);
        assert_eq!(read(&r, t0 + MINUTES as u64)[1].counts[0], 1);
        // The JSON: minute starts in seconds, every field named.
        let j = to_json(t0 + 1, &read(&r, t0 + 1), &[]);
        assert_eq!(j["to"], (t0 + 1) * 60);
        assert_eq!(j["from"], (t0 + 2 - MINUTES as u64) * 60);
        assert_eq!(j["minutes"][0]["at"], t0 * 60);
        // Its 2xx word was taken by t0 + 1440 above; the others are t0's.
        assert_eq!(
            (
                j["minutes"][0]["2xx"].clone(),
                j["minutes"][0]["4xx"].clone()
            ),
            (json!(0), json!(1))
        );
        assert_eq!(j["minutes"][1]["at"], (t0 + 1) * 60);
        assert_eq!(j["minutes"][1]["wait_ms"], 1500);
        assert_eq!(j["minutes"][1]["2xx"], 0);
    }

    #[test]
    fn concurrent_adds_across_a_bucket_change_lose_nothing() {
        let r = std::sync::Arc::new(ring(MINUTE_WORDS));
        let t0 = 29_600_000u64;
        add(&r, t0, Field::S2xx, 7); // yesterday's count in the bucket
        let next = t0 + MINUTES as u64;
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        add(&r, next, Field::S2xx, 1);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(read(&r, next)[0].counts[0], 40_000);
    }

    #[test]
    fn the_last_twenty_refreshes_newest_first() {
        let r = ring(REFRESH_WORDS);
        assert!(refreshes(&r).is_empty());
        for i in 0..25 {
            push(
                &r,
                &Refresh {
                    at: 1_800_000_000 + i,
                    outcome: if i % 2 == 0 {
                        Outcome::Ok
                    } else {
                        Outcome::Failed
                    },
                    reason: format!("reason {i} «ü»"),
                },
            );
        }
        let seen = refreshes(&r);
        assert_eq!(seen.len(), REFRESHES);
        assert_eq!(seen[0].at, 1_800_000_024);
        assert_eq!(seen[0].outcome, Outcome::Ok);
        assert_eq!(seen[0].reason, "reason 24 «ü»");
        assert_eq!(seen[19].at, 1_800_000_005);
        assert_eq!(seen[19].outcome, Outcome::Failed);
        // A long reason is cut, a token-shaped one masked.
        push(
            &r,
            &Refresh {
                at: 1,
                outcome: Outcome::Refused,
                reason: format!("{} {}", "x ".repeat(100), "a".repeat(64)),
            },
        );
        let newest = &refreshes(&r)[0];
        assert_eq!(newest.outcome, Outcome::Refused);
        assert!(newest.reason.len() <= REASON_BYTES && newest.reason.ends_with("..."));
        let j = to_json(1, &[], &refreshes(&r)[..1]);
        assert_eq!(j["refreshes"][0]["outcome"], "refused");
    }
}
