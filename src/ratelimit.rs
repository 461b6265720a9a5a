//! One request budget for every PHP process of the host: at most `limit`
//! API requests in any sliding window, shared through a small file beside the
//! token file (a log of the last `limit` send times, under flock).
//!
//! amoCRM allows 7 requests per second per integration, answers 429 above
//! that, and blocks the whole account with 403 when it keeps happening. The
//! window is 1.1 s rather than 1 s: requests arrive a little after they are
//! sent, and the slack keeps arrivals, not just sends, within the limit.

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::shared_file::SharedFile;
use crate::state::Budget;
use std::path::PathBuf;
use std::time::Duration;

pub const WINDOW: Duration = Duration::from_millis(1_100);
/// Give up waiting for a slot after this long (another process flooding).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Waits until a request may be sent within `limit` per `WINDOW` (0 = no
/// limit) and takes its slot; returns how long it waited.
pub fn acquire(budget: &dyn Budget, limit: u32) -> Result<Duration> {
    acquire_within(budget, limit, MAX_WAIT)
}

/// `acquire`, waiting at most `max_wait`.
pub fn acquire_within(budget: &dyn Budget, limit: u32, max_wait: Duration) -> Result<Duration> {
    if limit == 0 {
        return Ok(Duration::ZERO);
    }
    let mut waited = Duration::ZERO;
    loop {
        match budget.take(limit, WINDOW)? {
            None => return Ok(waited),
            Some(wait) => {
                if waited + wait > max_wait {
                    return Err(Error::new(
                        crate::error::ErrorKind::RateLimit,
                        format!(
                            "waited {} s for the shared rate limit ({limit} requests per second) without a free slot",
                            waited.as_secs()
                        ),
                    )
                    .with_title("Rate limit"));
                }
                std::thread::sleep(wait);
                waited += wait;
            }
        }
    }
}

/// Takes a slot if one is free now (or there is no limit); never waits.
pub fn try_acquire(budget: &dyn Budget, limit: u32) -> Result<bool> {
    Ok(limit == 0 || budget.take(limit, WINDOW)?.is_none())
}

/// The file backend's budget: a log of the last `limit` send times (8
/// bytes each), rewritten under flock.
pub struct FileBudget {
    file: SharedFile,
}

impl FileBudget {
    pub fn new(path: PathBuf) -> FileBudget {
        FileBudget {
            file: SharedFile::new(path),
        }
    }
}

impl Budget for FileBudget {
    fn take(&self, limit: u32, window: Duration) -> Result<Option<Duration>> {
        let limit = limit.max(1) as usize;
        let window = window.as_millis() as u64;
        self.file
            .update(|bytes| {
                let mut slots: Vec<u64> = bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                // A file from another limit, or torn by a crash, is simply resized.
                slots.resize(limit, 0);
                let now = now_ms();
                // A slot in the future means the clock went back: it is free.
                let at = slots
                    .iter()
                    .position(|t| *t > now + window)
                    .unwrap_or_else(|| (0..limit).min_by_key(|&i| slots[i]).expect("limit > 0"));
                if slots[at] + window > now && slots[at] <= now + window {
                    return (None, Some(Duration::from_millis(slots[at] + window - now)));
                }
                slots[at] = now;
                (
                    Some(slots.iter().flat_map(|t| t.to_le_bytes()).collect()),
                    None,
                )
            })
            .map_err(|e| {
                Error::storage(format!(
                    "rate-limit file {}: {e}",
                    self.file.path().display()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    #[test]
    fn never_more_than_limit_sends_in_a_window_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.ratelimit");
        let sends = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let budget = FileBudget::new(path.clone());
                let sends = sends.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        acquire(&budget, 5).unwrap();
                        sends
                            .lock()
                            .unwrap()
                            .push(start.elapsed().as_millis() as u64);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut s = sends.lock().unwrap().clone();
        s.sort();
        assert_eq!(s.len(), 15);
        for w in s.windows(6) {
            assert!(
                w[5] - w[0] >= WINDOW.as_millis() as u64 - 5,
                "6 sends within {} ms: {s:?}",
                w[5] - w[0]
            );
        }
    }

    #[test]
    fn zero_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let budget = FileBudget::new(dir.path().join("r"));
        for _ in 0..100 {
            assert_eq!(acquire(&budget, 0).unwrap(), Duration::ZERO);
        }
        assert!(!dir.path().join("r").exists());
    }
}
