//! What the processes of a host — or, with Redis, the hosts of a fleet —
//! share: the token pair and its refresh lock, the rate limiter's budget of
//! send times, and the counters. One interface of three parts, with two
//! backends chosen by the `store` key: files beside the token file (one
//! host), or Redis (any number of hosts).

use crate::config::{Config, Store};
use crate::error::Result;
use crate::metrics::Counter;
use crate::ratelimit::Ticket;
use crate::region::Region;
use crate::store::{FileStore, TokenStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The rate limiter's shared budget: `limit` slots, each held by a request
/// until a window after it ended (see [`crate::ratelimit`]).
pub trait Budget: Send + Sync {
    /// Takes a free slot for a request that may last `hold`, or says how
    /// long to wait for one.
    fn take(&self, limit: u32, hold: Duration) -> Result<std::result::Result<Ticket, Duration>>;
    /// The request that took `ticket` is over: its slot frees a window later.
    fn release(&self, ticket: Ticket);
}

/// Shared counters for monitoring.
pub trait Counters: Send + Sync {
    /// Adds to counters. Best effort: never fails the caller.
    fn add(&self, increments: &[(Counter, u64)]);
    /// The counters that are not 0.
    fn read(&self) -> Vec<(Counter, u64)>;
    /// Adds to counters and to `minute`'s counts of the history (the admin
    /// page's ring of 24 hours); a backend without history adds to the
    /// counters only. Best effort.
    fn add_in_minute(
        &self,
        increments: &[(Counter, u64)],
        _minute: u64,
        _fields: &[(crate::history::Field, u64)],
    ) {
        self.add(increments);
    }
    /// Appends a refresh to the history's list of the last ones. Best effort.
    fn add_refresh(&self, _refresh: &crate::history::Refresh) {}
    /// The minutes of the last 24 hours up to `now_minute` that counted
    /// anything (oldest first), and the last refreshes (newest first).
    fn history(
        &self,
        _now_minute: u64,
    ) -> (Vec<crate::history::Minute>, Vec<crate::history::Refresh>) {
        (Vec::new(), Vec::new())
    }
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

    /// The file backend: the token file with its `.lock` and `.refused`,
    /// and the shared memory region (`.shm`) of the budget and counters.
    pub fn files(token_path: &Path) -> State {
        let region = Arc::new(Region::new(token_path));
        State {
            tokens: Box::new(FileStore::new(token_path)),
            budget: Box::new(region.clone()),
            counters: Box::new(region),
        }
    }
}
