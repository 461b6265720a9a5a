//! Host-wide counters for monitoring (`AmoClient::metrics()`, the gateway's
//! /metrics): every PHP process adds to one small JSON file beside the token
//! file, under flock. Best effort by design: a counter that cannot be written
//! never fails an API call, and a torn file starts the counters again.

use crate::shared_file::SharedFile;
use crate::state::Counters;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The counters as `metrics()` shows them: the known ones (0 until counted)
/// and `api_calls.<status>` gathered into `api_calls`.
pub fn snapshot(counters: &dyn Counters) -> Value {
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
    for (k, v) in counters.read() {
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

/// The file backend's counters: one small JSON object, rewritten under
/// flock. A torn file starts the counters again.
pub struct FileCounters {
    file: SharedFile,
}

fn parse(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

impl FileCounters {
    pub fn new(path: PathBuf) -> FileCounters {
        FileCounters {
            file: SharedFile::new(path),
        }
    }
}

impl Counters for FileCounters {
    fn add(&self, increments: &[(&str, u64)]) {
        let _ = self.file.update(|bytes| {
            let mut counters = parse(&bytes);
            for (name, by) in increments {
                let now = counters.get(*name).and_then(Value::as_u64).unwrap_or(0);
                counters.insert((*name).to_string(), json!(now.saturating_add(*by)));
            }
            (
                Some(serde_json::to_vec(&counters).expect("a map always serializes")),
                (),
            )
        });
    }

    fn read(&self) -> Map<String, Value> {
        self.file
            .update(|bytes| (None, parse(&bytes)))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_across_instances_and_survive_a_torn_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.metrics");
        let a = FileCounters::new(path.clone());
        let b = FileCounters::new(path.clone());
        a.add(&[("refreshes", 1), ("api_calls.200", 2)]);
        b.add(&[
            ("api_calls.200", 3),
            ("api_calls.429", 1),
            ("rate_limited", 1),
        ]);
        let s = snapshot(&a);
        assert_eq!(s["refreshes"], 1);
        assert_eq!(s["api_calls"]["200"], 5);
        assert_eq!(s["api_calls"]["429"], 1);
        assert_eq!(s["rate_limit_waits"], 0);
        std::fs::write(&path, b"{\"refreshes\": 4").unwrap();
        b.add(&[("refreshes", 1)]);
        assert_eq!(snapshot(&a)["refreshes"], 1);
    }
}
