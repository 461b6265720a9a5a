//! What the processes of a host — or, with Redis, the hosts of a fleet —
//! share: the token pair and its refresh lock, the rate limiter's budget of
//! send times, and the counters. One interface of three parts, with two
//! backends chosen by the `store` key: files beside the token file (one
//! host), or Redis (any number of hosts).

use crate::config::{Config, Store};
use crate::error::Result;
use crate::metrics::FileCounters;
use crate::ratelimit::FileBudget;
use crate::store::{FileStore, TokenStore};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The rate limiter's shared budget: the times of the last sends.
pub trait Budget: Send + Sync {
    /// Takes a send slot if fewer than `limit` were taken in the last
    /// `window` (`None`), or says how long to wait for one.
    fn take(&self, limit: u32, window: Duration) -> Result<Option<Duration>>;
}

/// Shared counters for monitoring.
pub trait Counters: Send + Sync {
    /// Adds to named counters. Best effort: never fails the caller.
    fn add(&self, increments: &[(&str, u64)]);
    /// Every counter by name (missing ones are 0).
    fn read(&self) -> Map<String, Value>;
}

/// The three shared parts of one account's state.
pub struct State {
    pub tokens: Box<dyn TokenStore>,
    pub budget: Box<dyn Budget>,
    pub counters: Box<dyn Counters>,
}

impl State {
    /// The state `config.store` names. Never a silent fallback: a Redis that
    /// is configured but cannot be used is an error, since a local file
    /// would split the pair between hosts.
    pub fn open(config: &Config) -> Result<State> {
        match &config.store {
            Store::File => Ok(State::files(&config.token_path)),
            Store::Redis(target) => Ok(crate::redis_store::state(config, target)),
        }
    }

    /// The file backend: the token file, its `.lock` and `.refused`, and the
    /// `.ratelimit` and `.metrics` files beside it.
    pub fn files(token_path: &Path) -> State {
        let beside = |suffix: &str| -> PathBuf {
            let mut p = token_path.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        };
        State {
            tokens: Box::new(FileStore::new(token_path)),
            budget: Box::new(FileBudget::new(beside(".ratelimit"))),
            counters: Box::new(FileCounters::new(beside(".metrics"))),
        }
    }
}
