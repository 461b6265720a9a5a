//! Host-wide counters for monitoring (`AmoClient::metrics()`, the gateway's
//! /metrics): every PHP process adds to one small JSON file beside the token
//! file, under flock. Best effort by design: a counter that cannot be written
//! never fails an API call, and a torn file starts the counters again.

use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Metrics {
    path: PathBuf,
    file: Mutex<Option<(u32, File)>>,
}

impl Metrics {
    pub fn new(path: PathBuf) -> Metrics {
        Metrics {
            path,
            file: Mutex::new(None),
        }
    }

    fn with_locked<T>(
        &self,
        f: impl FnOnce(&mut File) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if guard.as_ref().map(|(p, _)| *p) != Some(pid) {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)?;
            crate::store::take_folder_owner(&self.path);
            // A descriptor inherited across fork shares its lock: leak it.
            if let Some(old) = guard.take() {
                std::mem::forget(old);
            }
            *guard = Some((pid, f));
        }
        let file = &mut guard.as_mut().expect("opened above").1;
        fs2::FileExt::lock_exclusive(&*file)?;
        let r = f(file);
        let _ = fs2::FileExt::unlock(&*file);
        r
    }

    fn read(file: &mut File) -> std::io::Result<Map<String, Value>> {
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        Ok(serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default())
    }

    /// Adds to counters; never fails the caller.
    pub fn add(&self, increments: &[(&str, u64)]) {
        let _ = self.with_locked(|file| {
            let mut counters = Self::read(file)?;
            for (name, by) in increments {
                let now = counters.get(*name).and_then(Value::as_u64).unwrap_or(0);
                counters.insert((*name).to_string(), json!(now.saturating_add(*by)));
            }
            let bytes = serde_json::to_vec(&counters).expect("a map always serializes");
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&bytes)?;
            file.set_len(bytes.len() as u64)
        });
    }

    /// The counters, `api_calls.<status>` gathered into `api_calls`.
    pub fn snapshot(&self) -> Value {
        let counters = self.with_locked(Self::read).unwrap_or_default();
        let mut out = Map::new();
        let mut by_status = Map::new();
        for name in [
            "refreshes",
            "refresh_failures",
            "rate_limited",
            "rate_limit_waits",
            "rate_limit_wait_ms",
            "retries",
        ] {
            out.insert(name.into(), json!(0));
        }
        for (k, v) in counters {
            match k.strip_prefix("api_calls.") {
                Some(status) => {
                    by_status.insert(status.to_string(), v);
                }
                None => {
                    out.insert(k, v);
                }
            }
        }
        out.insert("api_calls".into(), Value::Object(by_status));
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_across_instances_and_survive_a_torn_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.metrics");
        let a = Metrics::new(path.clone());
        let b = Metrics::new(path.clone());
        a.add(&[("refreshes", 1), ("api_calls.200", 2)]);
        b.add(&[
            ("api_calls.200", 3),
            ("api_calls.429", 1),
            ("rate_limited", 1),
        ]);
        let s = a.snapshot();
        assert_eq!(s["refreshes"], 1);
        assert_eq!(s["api_calls"]["200"], 5);
        assert_eq!(s["api_calls"]["429"], 1);
        assert_eq!(s["rate_limit_waits"], 0);
        std::fs::write(&path, b"{\"refreshes\": 4").unwrap();
        b.add(&[("refreshes", 1)]);
        assert_eq!(a.snapshot()["refreshes"], 1);
    }
}
