//! One request budget for every PHP process of the host: at most `limit`
//! API requests in any sliding window, shared through a small file beside the
//! token file (a log of the last `limit` send times, under flock).
//!
//! amoCRM allows 7 requests per second per integration, answers 429 above
//! that, and blocks the whole account with 403 when it keeps happening. The
//! window is 1.1 s rather than 1 s: requests arrive a little after they are
//! sent, and the slack keeps arrivals, not just sends, within the limit.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const WINDOW_MS: u64 = 1_100;
/// Give up waiting for a slot after this long (another process flooding).
const MAX_WAIT: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    path: PathBuf,
    limit: usize,
    /// The open state file and the pid that opened it (re-opened after fork).
    file: Mutex<Option<(u32, File)>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RateLimiter {
    pub fn new(path: PathBuf, limit: u32) -> RateLimiter {
        RateLimiter {
            path,
            limit: limit as usize,
            file: Mutex::new(None),
        }
    }

    fn fault(&self, e: impl std::fmt::Display) -> Error {
        Error::storage(format!("rate-limit file {}: {e}", self.path.display()))
    }

    /// Waits until a request may be sent and records it; returns how long it waited.
    pub fn acquire(&self) -> Result<Duration> {
        if self.limit == 0 {
            return Ok(Duration::ZERO);
        }
        let mut waited = Duration::ZERO;
        loop {
            match self.try_take()? {
                None => return Ok(waited),
                Some(wait) => {
                    if waited + wait > MAX_WAIT {
                        return Err(Error::new(
                            crate::error::ErrorKind::RateLimit,
                            format!(
                                "waited {} s for the shared rate limit ({} requests per second) without a free slot",
                                waited.as_secs(),
                                self.limit
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

    /// Takes a slot now (`None`), or says how long to wait for one.
    fn try_take(&self) -> Result<Option<Duration>> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if guard.as_ref().map(|(p, _)| *p) != Some(pid) {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| self.fault(e))?;
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)
                .map_err(|e| self.fault(e))?;
            crate::store::take_folder_owner(&self.path);
            // An inherited descriptor shares its lock with the parent: leak it.
            if let Some(old) = guard.take() {
                std::mem::forget(old);
            }
            *guard = Some((pid, f));
        }
        let file = &mut guard.as_mut().expect("opened above").1;
        fs2::FileExt::lock_exclusive(&*file).map_err(|e| self.fault(e))?;
        let result = self.take_locked(file);
        let _ = fs2::FileExt::unlock(&*file);
        result
    }

    fn take_locked(&self, file: &mut File) -> Result<Option<Duration>> {
        let mut bytes = Vec::with_capacity(self.limit * 8);
        file.seek(SeekFrom::Start(0)).map_err(|e| self.fault(e))?;
        file.read_to_end(&mut bytes).map_err(|e| self.fault(e))?;
        let mut slots: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        // A file from another limit, or torn by a crash, is simply resized.
        slots.resize(self.limit, 0);
        let now = now_ms();
        let (oldest_at, &oldest) = slots
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .expect("limit > 0");
        // A slot in the future means the clock went back: treat it as free.
        let free = oldest + WINDOW_MS <= now || slots.iter().any(|t| *t > now + WINDOW_MS);
        if !free {
            return Ok(Some(Duration::from_millis(oldest + WINDOW_MS - now)));
        }
        let at = slots
            .iter()
            .position(|t| *t > now + WINDOW_MS)
            .unwrap_or(oldest_at);
        slots[at] = now;
        let out: Vec<u8> = slots.iter().flat_map(|t| t.to_le_bytes()).collect();
        file.seek(SeekFrom::Start(0)).map_err(|e| self.fault(e))?;
        file.write_all(&out).map_err(|e| self.fault(e))?;
        file.set_len(out.len() as u64).map_err(|e| self.fault(e))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn never_more_than_limit_sends_in_a_window_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.ratelimit");
        let sends = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let limiter = RateLimiter::new(path.clone(), 5);
                let sends = sends.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        limiter.acquire().unwrap();
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
                w[5] - w[0] >= WINDOW_MS - 5,
                "6 sends within {} ms: {s:?}",
                w[5] - w[0]
            );
        }
    }

    #[test]
    fn zero_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let l = RateLimiter::new(dir.path().join("r"), 0);
        for _ in 0..100 {
            assert_eq!(l.acquire().unwrap(), Duration::ZERO);
        }
        assert!(!dir.path().join("r").exists());
    }
}
