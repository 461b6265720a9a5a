//! The token lifecycle: one per process, shared by every PHP request.
//!
//! Every call checks expiry in memory and stats the token file to notice a
//! pair written by another process. Within `refresh_margin` of expiry it
//! refreshes under the cross-process lock, re-reading the file after taking
//! it, so that of N processes that find the token expiring at once exactly one
//! calls amoCRM and the others use its result.

use crate::clock::now;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::history::{self, Field};
use crate::host;
use crate::log::{Level, Logger, Sink};
use crate::metrics::{self, Counter};
use crate::net;
use crate::oauth;
use crate::policy::{self, Attempt, Outcome, Step, Why};
use crate::ratelimit;
use crate::secret::Secret;
use crate::state::State;
use crate::store::{Refusal, StoreLock, TokenStore, Version};
use crate::token::TokenPair;
use crate::transport::{self, Request, SendError};
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Mutex;

#[derive(Default)]
struct Cached {
    pair: Option<TokenPair>,
    version: Option<Version>,
    /// When the store last showed `version`.
    seen_at: Option<std::time::Instant>,
}

/// A pair the store showed this recently is used without looking again (a
/// stat of the token file, or a round trip to Redis): a tight loop of calls
/// looks once per this, not once per call. The store may change just after
/// any look, so this adds nothing new: a pair replaced while a request is on
/// its way is what the 401 path handles (re-read, then retry).
const RECHECK: std::time::Duration = std::time::Duration::from_millis(1);

pub struct AmoCore {
    config: Config,
    state: State,
    cached: Mutex<Cached>,
    /// When this process's last implicit keepalive failed (amoCRM down):
    /// the next one waits a while instead of trying on every request.
    keepalive_failed_at: Mutex<Option<std::time::Instant>>,
    /// The events an operator reads (see [`crate::log`]).
    log: Logger,
}

impl Want {
    /// Why, for the log and the admin page.
    fn describe(self) -> String {
        match self {
            Want::Expiring => "the access token was about to expire".into(),
            Want::Rejected => "amoCRM refused the access token (401)".into(),
            Want::Forced => "asked for".into(),
            Want::Aged(days) => format!("keepalive: the pair was over {days} days old"),
        }
    }
}

/// Why a refresh is wanted; decides what counts as "someone else already did it".
#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    /// The token is within the margin of expiry.
    Expiring,
    /// amoCRM answered 401 to this access token.
    Rejected,
    /// The caller asked for a refresh now.
    Forced,
    /// The pair is older than the keepalive age (days): its refresh token
    /// must be renewed before it dies unused.
    Aged(u64),
}

impl AmoCore {
    /// The core on the state its configuration names (`store`).
    pub fn open(config: Config) -> Result<AmoCore> {
        let state = State::open(&config)?;
        Ok(AmoCore::with_state(config, state))
    }

    /// The core on files beside the token file, whatever `store` says.
    pub fn new(config: Config) -> AmoCore {
        let state = State::files(&config.token_path);
        AmoCore::with_state(config, state)
    }

    pub fn with_state(config: Config, state: State) -> AmoCore {
        AmoCore::with_sink(config, state, std::sync::Arc::new(crate::log::Discard))
    }

    /// The core on the state its configuration names, its events going to `sink`.
    pub fn open_with_sink(config: Config, sink: std::sync::Arc<dyn Sink>) -> Result<AmoCore> {
        let state = State::open(&config)?;
        Ok(AmoCore::with_sink(config, state, sink))
    }

    /// The core on `state`, its events at `log_level` and above going to
    /// `sink`; every storage or lock error of the token store is one.
    pub fn with_sink(config: Config, mut state: State, sink: std::sync::Arc<dyn Sink>) -> AmoCore {
        let log = Logger::new(&config.account, config.log_level, sink);
        state.tokens = Box::new(crate::log::LoggedStore::new(state.tokens, log.clone()));
        AmoCore {
            config,
            state,
            cached: Mutex::new(Cached::default()),
            keepalive_failed_at: Mutex::new(None),
            log,
        }
    }

    fn store(&self) -> &dyn TokenStore {
        self.state.tokens.as_ref()
    }

    fn count(&self, increments: &[(Counter, u64)]) {
        self.state.counters.add(increments);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn long_lived(&self) -> Option<TokenPair> {
        let token = self.config.long_lived_token.clone()?;
        let base_domain = self.config.base_domain.clone()?;
        Some(TokenPair {
            expires_at: crate::token::jwt_claim(&token, "exp")
                .and_then(|v| v.as_i64())
                .unwrap_or(i64::MAX),
            access_token: token,
            refresh_token: None,
            base_domain,
            updated_at: 0,
        })
    }

    /// The stored pair, re-read only when the file changed since we last read it.
    fn current(&self) -> Result<Option<TokenPair>> {
        if let Some(p) = self.long_lived() {
            return Ok(Some(p));
        }
        let now = std::time::Instant::now();
        {
            let cache = self.cache();
            if cache.pair.is_some() && cache.seen_at.is_some_and(|t| now - t < RECHECK) {
                return Ok(cache.pair.clone());
            }
        }
        let version = self.store().version()?;
        {
            let mut cache = self.cache();
            if version.is_some() && cache.version == version {
                cache.seen_at = Some(now);
                return Ok(cache.pair.clone());
            }
        }
        self.reload()
    }

    fn reload(&self) -> Result<Option<TokenPair>> {
        let loaded = self.store().load()?;
        let mut cache = self.cache();
        match loaded {
            Some((pair, version)) => {
                cache.pair = Some(pair.clone());
                cache.version = Some(version);
                cache.seen_at = Some(std::time::Instant::now());
                Ok(Some(pair))
            }
            None => {
                *cache = Cached::default();
                Ok(None)
            }
        }
    }

    fn adopt(&self, pair: TokenPair, version: Version) -> TokenPair {
        let mut cache = self.cache();
        cache.pair = Some(pair.clone());
        cache.version = Some(version);
        cache.seen_at = Some(std::time::Instant::now());
        pair
    }

    fn not_authorized(&self) -> Error {
        Error::auth(format!(
            "amoCRM is not authorized yet: no token at {}; an admin must authorize the integration at /oauth/authorize",
            self.store().location()
        ))
        .with_title("Not authorized")
    }

    /// A pair that is not within the margin of expiry, refreshing if needed.
    pub fn fresh_pair(&self) -> Result<TokenPair> {
        let pair = self.current()?.ok_or_else(|| self.not_authorized())?;
        if pair.refresh_token.is_none() {
            return Ok(pair);
        }
        let expiring = pair.is_expiring(now(), self.config.refresh_margin);
        let aged = self.is_aged(&pair, self.config.keepalive_days);
        if !expiring && !aged {
            return Ok(pair);
        }
        if pair.expires_in(now()) > STILL_USABLE {
            // Early: the pair still works. Refresh if nobody else is at it
            // and amoCRM has not refused its token; whatever happens, this
            // call goes on with a working pair (a failure is counted and the
            // next call tries again).
            if self.refusal_of(&pair)?.is_some() {
                return Ok(pair);
            }
            let want = if expiring {
                Want::Expiring
            } else {
                Want::Aged(self.config.keepalive_days)
            };
            return Ok(match self.store().try_lock()? {
                Some(lock) => self
                    .refresh_holding(lock, &pair.access_token, want, Slot::TryNow)
                    .unwrap_or(pair),
                None => pair,
            });
        }
        // Without taking the lock: every worker of a host whose refresh
        // token was refused fails here at once.
        self.refuse_if_refused(&pair)?;
        self.refresh_locked(&pair.access_token, Want::Expiring)
    }

    /// Identifies a refresh token together with the client credentials it
    /// was sent with (a fixed client secret may make amoCRM accept it), without
    /// keeping either: the first 16 bytes of a SHA-256, in hex.
    fn fingerprint(&self, pair: &TokenPair) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.config.client_id.as_str(),
            self.config.client_secret.expose(),
            pair.refresh_token.as_ref().map_or("", Secret::expose),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The refusal that applies to `pair`: amoCRM refused this very refresh
    /// token with these credentials. An unreadable note counts (it is only
    /// ever written for the pair stored at that moment).
    fn refusal_of(&self, pair: &TokenPair) -> Result<Option<Refusal>> {
        if pair.refresh_token.is_none() {
            return Ok(None);
        }
        Ok(self
            .store()
            .refused()?
            .filter(|r| r.fingerprint.is_empty() || r.fingerprint == self.fingerprint(pair)))
    }

    /// Fails fast, without calling amoCRM, when it already refused `pair`'s
    /// refresh token: sending it again cannot succeed, and a host of workers
    /// doing so is how an integration gets blocked.
    fn refuse_if_refused(&self, pair: &TokenPair) -> Result<()> {
        match self.refusal_of(pair)? {
            None => Ok(()),
            Some(r) => Err(Error::auth(format!(
                "amoCRM refused this refresh token at {} ({}); it is not sent again: an admin must re-authorize the integration at /oauth/authorize (or import a new pair)",
                crate::clock::utc(r.at),
                r.reason
            ))
            .with_title("Refresh token refused")
            .with_description(r.reason)),
        }
    }

    /// The one way a pair is stored, whoever made it (a refresh, a code
    /// exchange, an import): checked as a refresh answer is checked, its
    /// account host within allowed_domains. The caller holds the lock.
    fn store_pair(&self, pair: TokenPair) -> Result<TokenPair> {
        pair.check(now())
            .map_err(|why| Error::argument("tokens", why))?;
        host::check_account_host(&pair.base_domain, &self.config.allowed_domains)
            .map_err(|why| Error::argument("base_domain", why))?;
        let version = self.store().save(&pair)?;
        Ok(self.adopt(pair, version))
    }

    /// Waits (at most `max_wait`) for a slot in the shared rate limit (the
    /// token endpoint counts too), counting the wait; the slot is held until
    /// the returned guard is dropped, when the request is over.
    fn acquire_slot(&self, max_wait: Option<std::time::Duration>) -> Result<ratelimit::Slot<'_>> {
        let (budget, limit) = (self.state.budget.as_ref(), self.config.rate_limit);
        let hold = self.config.request_deadline();
        let slot = match max_wait {
            Some(max) => ratelimit::acquire_within(budget, limit, hold, max),
            None => ratelimit::acquire(budget, limit, hold),
        }
        .inspect_err(|e| {
            self.log
                .storage_error("rate_limit", "the rate-limit budget", e)
        })?;
        if !slot.waited.is_zero() {
            let ms = slot.waited.as_millis() as u64;
            self.state.counters.add_in_minute(
                &[(Counter::RateLimitWaits, 1), (Counter::RateLimitWaitMs, ms)],
                history::minute_of(now()),
                &[(Field::Waits, 1), (Field::WaitMs, ms)],
            );
            if slot.waited > LONG_WAIT {
                self.log.log(
                    Level::Warning,
                    "rate_limit_wait",
                    &format!(
                        "waited {:.1} s for a rate-limit slot (rate_limit: {} a second, shared by the host)",
                        slot.waited.as_secs_f64(),
                        limit
                    ),
                    json!({"waited_ms": ms, "rate_limit": limit}),
                );
            }
        }
        Ok(slot)
    }

    /// Refreshes under the lock unless the store shows that another process
    /// already did: looked at once the lock is held, and while waiting for it
    /// at each look at the lock, so that a waiter goes on with the pair the
    /// holder stored rather than taking the lock only to find the work done
    /// (a storm of waiters would otherwise pass the lock on one by one).
    fn refresh_locked(&self, seen: &Secret, want: Want) -> Result<TokenPair> {
        let store = self.store();
        // A store that fails to answer is not asked again while waiting
        // (each failure would be logged); the lock's holder will know.
        let (mut last, mut found, mut asking) = (None, None, true);
        let lock = store.lock_unless(self.config.lock_wait(), &mut || {
            if !asking {
                return false;
            }
            let version = match store.version() {
                Ok(Some(version)) => version,
                Ok(None) => return false,
                Err(_) => {
                    asking = false;
                    return false;
                }
            };
            if last.as_ref() == Some(&version) {
                return false;
            }
            last = Some(version);
            match store.load() {
                Ok(pair) => {
                    found =
                        pair.filter(|(stored, _)| self.done_by_another(stored, seen, want, now()))
                }
                Err(_) => asking = false,
            }
            found.is_some()
        })?;
        match lock {
            Some(lock) => self.refresh_holding(lock, seen, want, Slot::Wait),
            None => found
                .map(|(stored, version)| self.adopt(stored, version))
                .ok_or_else(|| Error::storage("the wait for the token lock ended without it")),
        }
    }

    /// Whether the stored pair is what a refresh for `want` would give:
    /// another process refreshed meanwhile.
    fn done_by_another(&self, stored: &TokenPair, seen: &Secret, want: Want, now: i64) -> bool {
        match want {
            Want::Forced => false,
            Want::Expiring => !stored.is_expiring(now, self.config.refresh_margin),
            Want::Rejected => &stored.access_token != seen && stored.expires_in(now) > 0,
            Want::Aged(days) => !self.is_aged(stored, days),
        }
    }

    /// The refresh itself, with the lock held (it is released on return).
    fn refresh_holding(
        &self,
        lock: Box<dyn StoreLock>,
        seen: &Secret,
        want: Want,
        slot: Slot,
    ) -> Result<TokenPair> {
        let (stored, version) = self.store().load()?.ok_or_else(|| self.not_authorized())?;
        let now = now();
        if self.done_by_another(&stored, seen, want, now) {
            return Ok(self.adopt(stored, version));
        }
        self.refuse_if_refused(&stored)?;
        // Only the process that refreshes takes a slot (a storm of waiters
        // must not spend the budget). The wait for it fits in the lock's
        // time: a Redis lock expires after lock_wait. An early refresh
        // takes a free slot or leaves the refresh to later.
        let slot_kind = slot;
        let slot = match slot {
            Slot::Wait => self
                .acquire_slot(Some(LOCK_SPARE))
                .inspect_err(|e| self.refresh_failed(&stored, e, slot_kind))?,
            Slot::TryNow => {
                let (budget, hold) = (self.state.budget.as_ref(), self.config.request_deadline());
                match ratelimit::try_acquire(budget, self.config.rate_limit, hold)? {
                    Some(slot) => slot,
                    None => return Ok(self.adopt(stored, version)),
                }
            }
        };
        let refreshed = match oauth::refresh(&self.config, &stored, now) {
            // The old host of an account whose subdomain changed refuses
            // (401) or knows nothing (404): ask where it went, and refresh
            // there once. The old host did not take the refresh token.
            Err(e) if e.status == 401 || e.status == 404 => {
                drop(slot);
                match self.current_host(&stored)? {
                    Ok(host) => {
                        let moved = self.move_stored(&host)?;
                        let _slot = self
                            .acquire_slot(Some(LOCK_SPARE))
                            .inspect_err(|e| self.refresh_failed(&moved, e, slot_kind))?;
                        oauth::refresh(&self.config, &moved, now)
                    }
                    Err(why) => Err(e.context(|m| format!("{m} ({why})"))),
                }
            }
            other => other,
        };
        let fresh = match refreshed {
            Ok(fresh) => fresh,
            Err(e) => {
                self.refresh_failed(&stored, &e, slot_kind);
                if e.kind == ErrorKind::Auth {
                    let reason = if e.description.is_empty() {
                        e.title.clone()
                    } else {
                        e.description.clone()
                    };
                    let noted = self.store().mark_refused(&Refusal {
                        at: now,
                        reason,
                        fingerprint: self.fingerprint(&stored),
                    });
                    // The refusal stays the error; a note that cannot be
                    // written only means the next call asks amoCRM again.
                    if let Err(why) = noted {
                        return Err(e.context(|m| {
                            format!("{m} (the refusal could not be noted: {})", why.message)
                        }));
                    }
                }
                return Err(e);
            }
        };
        match self.store_pair(fresh.clone()) {
            Ok(fresh) => {
                // The pair is stored: the waiters may go on while this one
                // counts and logs.
                drop(lock);
                self.count(&[(Counter::Refreshes, 1)]);
                let why = want.describe();
                self.note_refresh(history::Outcome::Ok, &why);
                self.log.log(
                    Level::Info,
                    "refresh",
                    &format!(
                        "token refreshed ({why}); expires {}",
                        crate::clock::utc(fresh.expires_at)
                    ),
                    json!({"base_domain": fresh.base_domain, "expires_at": fresh.expires_at, "reason": why}),
                );
                Ok(fresh)
            }
            // Another process took the lock over while this one was stopped
            // and stored a newer pair: use that one, like everybody else.
            Err(e) if e.title == crate::store::LOCK_LOST => {
                self.count(&[(Counter::RefreshFailures, 1)]);
                self.note_refresh(history::Outcome::Failed, &e.message);
                self.reload()?.ok_or_else(|| self.not_authorized())
            }
            // amoCRM gave a new pair, and the disk is full (or read-only):
            // the stored pair stays, and amoCRM keeps its refresh token valid
            // until the new one is first used, which it never will be. This
            // process goes on with the new access token until the file
            // changes or the token expires; a refresh always starts from the
            // stored pair, never from this one.
            Err(e) if e.kind == ErrorKind::Storage => {
                self.count(&[(Counter::RefreshFailures, 1)]);
                let why = format!("the new pair could not be stored: {}", e.message);
                self.note_refresh(history::Outcome::Failed, &why);
                self.log.log(
                    Level::Error,
                    "refresh_failed",
                    &format!("token refreshed at amoCRM, but {why}; the stored pair is kept and this process uses the new one until it expires"),
                    json!({"base_domain": fresh.base_domain, "reason": why}),
                );
                Ok(self.adopt(fresh, version))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the pair was obtained more than `days` ago (0: never aged).
    /// A pair of unknown age (`updated_at` 0) counts as aged.
    fn is_aged(&self, pair: &TokenPair, days: u64) -> bool {
        days > 0
            && pair.refresh_token.is_some()
            && pair.updated_at <= now() - (days as i64) * 86_400
    }

    /// `keepAlive()`: refreshes the pair if it is older than `max_age_days`
    /// (default: the `keepalive_days` setting), so that its refresh token
    /// never dies unused; returns the status. Every request of a gateway
    /// may call it: a pair that is not due costs a stat.
    ///
    /// Called without an age (a gateway's every request) it never waits: if
    /// another process holds the lock, that one is refreshing. And a failure
    /// makes this process skip the next ones for `KEEPALIVE_PAUSE`, so that
    /// an amoCRM outage costs one attempt per process every few minutes.
    pub fn keep_alive(&self, max_age_days: Option<u64>) -> Result<Value> {
        let days = max_age_days.unwrap_or(self.config.keepalive_days);
        if self.config.long_lived_token.is_some() || days == 0 {
            return self.status();
        }
        let pair = self.current()?.ok_or_else(|| self.not_authorized())?;
        if !self.is_aged(&pair, days) {
            return self.status();
        }
        let mut failed_at = self
            .keepalive_failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let implicit = max_age_days.is_none();
        if implicit && failed_at.is_some_and(|t| t.elapsed() < KEEPALIVE_PAUSE) {
            return self.status();
        }
        let renewed = self.refuse_if_refused(&pair).and_then(|()| {
            if !implicit {
                return self.refresh_locked(&pair.access_token, Want::Aged(days));
            }
            match self.store().try_lock()? {
                Some(lock) => {
                    self.refresh_holding(lock, &pair.access_token, Want::Aged(days), Slot::TryNow)
                }
                None => Ok(pair.clone()),
            }
        });
        *failed_at = renewed
            .is_err()
            .then(std::time::Instant::now)
            .filter(|_| implicit);
        renewed?;
        drop(failed_at);
        self.status()
    }

    /// `refreshToken(force)`: refreshes now if forced or expiring.
    pub fn refresh(&self, force: bool) -> Result<Value> {
        if self.config.long_lived_token.is_some() {
            return Err(Error::auth("a long-lived token cannot be refreshed; generate a new one in the integration's settings"));
        }
        let pair = self.current()?.ok_or_else(|| self.not_authorized())?;
        if force {
            self.refresh_locked(&pair.access_token, Want::Forced)?;
        } else {
            self.fresh_pair()?;
        }
        self.status()
    }

    /// Exchanges an authorization code and stores the pair.
    pub fn exchange_code(&self, code: &str, referer: &str) -> Result<Value> {
        // The referer check happens inside, before any I/O; take the lock
        // only after it so that a hostile referer costs nothing.
        oauth::check_bare_account_host(&self.config, "referer", referer.trim())?;
        // The slot before the lock: one admin's callback, no storm.
        let _slot = self.acquire_slot(None)?;
        let _lock = self.store().lock(self.config.lock_wait())?;
        let pair = oauth::exchange_code(&self.config, code, referer, now())?;
        self.store_pair(pair)?;
        self.status()
    }

    /// `exchangeApiKey()`: an authorization code for an old API key, sent by
    /// amoCRM to the redirect URI. The account is `account`, or the stored
    /// pair's.
    pub fn exchange_api_key(
        &self,
        login: &str,
        api_key: &str,
        account: Option<&str>,
    ) -> Result<()> {
        let account = match account {
            Some(a) => a.trim().to_string(),
            None => match self.current()? {
                Some(pair) => pair.base_domain,
                None => {
                    return Err(Error::argument(
                        "accountHost",
                        "is needed: no token pair is stored to take the account's host from",
                    ))
                }
            },
        };
        let _slot = self.acquire_slot(None)?;
        oauth::exchange_api_key(&self.config, &account, login, api_key)
    }

    /// `parseDisposableToken()`: a widget's disposable token, checked with
    /// the client secret; its claims.
    pub fn parse_disposable_token(&self, token: &str) -> Result<Value> {
        let (_, secret) = self.config.credentials()?;
        crate::disposable::parse(token, secret, &self.config.redirect_uri, now())
    }

    pub fn authorization_url(&self, state: &str, mode: &str) -> Result<String> {
        oauth::authorization_url(&self.config, state, mode)
    }

    /// Token status for humans and monitors: never a token or the secret.
    pub fn status(&self) -> Result<Value> {
        let mode = if self.config.long_lived_token.is_some() {
            "long_lived"
        } else {
            "oauth"
        };
        let now = now();
        let Some(p) = self.current()? else {
            return Ok(json!({
                "authorized": false,
                "mode": mode,
                "base_domain": null,
                "expires_at": null,
                "expires_in": null,
                "updated_at": null,
                "refresh_expires_at": null,
                "refresh_expires_in": null,
                "warning": null,
                "needs_reauthorization": true,
                "reauthorization_reason": "not authorized yet: authorize at /oauth/authorize",
                "token_path": self.store().location(),
            }));
        };
        let expires_at = (p.expires_at != i64::MAX).then_some(p.expires_at);
        let refresh_expires_at = p
            .refresh_token
            .as_ref()
            .map(|_| p.updated_at + REFRESH_TOKEN_LIFETIME);
        let refused = self.refusal_of(&p)?;
        let reason = if let Some(r) = refused {
            Some(format!(
                "amoCRM refused the refresh token at {} ({}): re-authorize at /oauth/authorize",
                crate::clock::utc(r.at),
                r.reason
            ))
        } else if refresh_expires_at.is_some_and(|e| e <= now) {
            Some("the refresh token went unused for 3 months and has expired: re-authorize at /oauth/authorize (run `amocrm keepalive` daily to prevent this)".to_string())
        } else if mode == "long_lived" && expires_at.is_some_and(|e| e <= now) {
            Some("the long-lived token has expired: generate a new one in the integration's settings".to_string())
        } else {
            None
        };
        // Early enough for monitoring: the pair should have been renewed and
        // was not (amoCRM down, the disk full), or the end is near.
        let warning = refresh_expires_at
            .filter(|_| reason.is_none())
            .and_then(|dies| {
                let age = (now - p.updated_at) / 86_400;
                let left = (dies - now) / 86_400;
                let keepalive = self.config.keepalive_days as i64;
                let overdue = keepalive > 0 && age > keepalive;
                (overdue || left < 30).then(|| {
                    format!(
                        "the pair is {age} days old and has not been renewed (keepalive after {keepalive} days): its refresh token dies unused in {left} days, at {}, unless a refresh succeeds before",
                        crate::clock::utc(dies)
                    )
                })
            });
        Ok(json!({
            "authorized": true,
            "mode": mode,
            "base_domain": p.base_domain,
            "expires_at": expires_at,
            "expires_in": expires_at.map(|e| e - now),
            "updated_at": (p.updated_at > 0).then_some(p.updated_at),
            "refresh_expires_at": refresh_expires_at,
            "refresh_expires_in": refresh_expires_at.map(|e| e - now),
            "warning": warning,
            "needs_reauthorization": reason.is_some(),
            "reauthorization_reason": reason,
            "token_path": if mode == "oauth" { Value::from(self.store().location()) } else { Value::Null },
        }))
    }

    /// Writes the stored pair to a new token file at `path` (mode 0600,
    /// atomically; an existing file is never overwritten), for another store
    /// to import: moving between the file store and Redis, or to another
    /// host. The tokens never pass through PHP. Returns the status.
    pub fn export_tokens(&self, path: &std::path::Path) -> Result<Value> {
        if !path.is_absolute() {
            return Err(Error::argument("path", "must be an absolute path"));
        }
        if path.exists() {
            return Err(Error::argument(
                "path",
                format!(
                    "{} exists: nothing was written (choose a new file)",
                    path.display()
                ),
            ));
        }
        let (pair, _) = self.store().load()?.ok_or_else(|| self.not_authorized())?;
        crate::files::write_atomic(path, &pair.to_json())
            .map_err(|e| Error::storage(format!("{}: cannot write: {e}", path.display())))?;
        self.status()
    }

    /// Takes over a pair from another token file (the old gateway's format
    /// or the official library's): validated, then stored under the lock.
    pub fn import_tokens(&self, json: &[u8]) -> Result<Value> {
        if self.config.long_lived_token.is_some() {
            return Err(Error::config(
                "long_lived_token",
                "is set: there is no token file to import into",
            ));
        }
        if json.len() as u64 > crate::token::MAX_FILE_BYTES {
            return Err(Error::argument(
                "tokens",
                "larger than 64 KiB, the token-file limit: not a token file",
            ));
        }
        let mut pair = TokenPair::from_json(json).map_err(|why| Error::argument("tokens", why))?;
        if pair.updated_at == 0 {
            // Unknown age: assume the worst that still works, so that the
            // keepalive refreshes it soon.
            pair.updated_at = now() - REFRESH_TOKEN_LIFETIME / 2;
        }
        let _lock = self.store().lock(self.config.lock_wait())?;
        self.store_pair(pair)?;
        self.status()
    }

    /// Host-wide counters: refreshes, API calls by status, 429s, rate-limit waits.
    pub fn metrics(&self) -> Value {
        metrics::snapshot(self.state.counters.as_ref())
    }

    /// `history()`: API calls per minute by status class over the last 24
    /// hours and the last refreshes, host-wide (see [`crate::history::to_json`]).
    pub fn history(&self) -> Value {
        let minute = history::minute_of(now());
        let (minutes, refreshes) = self.state.counters.history(minute);
        history::to_json(minute, &minutes, &refreshes)
    }

    /// Sends an API request (see [`AmoCore::send`]) and decodes its answer:
    /// JSON, or `None` for a 204.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: Option<&Value>,
        body: Option<&Value>,
        context_user: Option<i64>,
    ) -> Result<Option<Value>> {
        transport::decode(self.send(method, path, query, body, context_user)?)
    }

    /// Sends an API request with a fresh token, within the host's shared
    /// rate limit, and returns amoCRM's final answer, whatever its status.
    ///
    /// On a 401: re-read storage and retry with a newer pair if another
    /// process stored one; otherwise refresh once under the lock and retry the
    /// same request (same method, same body). A second 401 is an auth error.
    ///
    /// Retries (at most `max_retries`, with backoff), as [`policy`] says: a
    /// 429, a request that failed before it left (connect, DNS, TLS), and for
    /// a GET only a timeout, a broken connection or a 502/503/504. A write
    /// that may have reached amoCRM is never sent twice. A 403 account block
    /// is final.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: Option<&Value>,
        body: Option<&Value>,
        context_user: Option<i64>,
    ) -> Result<transport::Response> {
        let method = parse_method(method)?;
        if !path.starts_with('/')
            || path.contains("://")
            || path.contains('#')
            || path.starts_with("//")
        {
            return Err(Error::argument(
                "path",
                format!("must be an absolute path such as /api/v4/leads, got `{path}`"),
            ));
        }
        let query = match query {
            Some(q) => encode_query(q)?,
            None => String::new(),
        };
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON values always serialize"));
        let sep = if query.is_empty() {
            ""
        } else if path.contains('?') {
            "&"
        } else {
            "?"
        };
        self.send_loop(&Outgoing {
            // Only a read is sent again once it may have reached amoCRM.
            read: method == Method::GET,
            method,
            to: To::Account(format!("{path}{sep}{query}")),
            body: body.as_deref(),
            content_type: "application/json",
            context_user,
            max_retries: self.config.max_retries,
        })
    }

    /// The one retry loop of every request that carries the token: a fresh
    /// pair, a rate-limit slot per attempt, and [`policy`] deciding what
    /// follows each outcome.
    fn send_loop(&self, out: &Outgoing<'_>) -> Result<transport::Response> {
        let client = net::client(&self.config.client_options())?;
        let mut pair = self.fresh_pair()?;
        let mut reauthorized = false;
        let mut relocated = false;
        let mut retries = 0u32;
        loop {
            let url = match &out.to {
                To::Account(path) => format!(
                    "{}{path}",
                    host::origin(&pair.base_domain, self.config.insecure_http)?
                ),
                To::Url(url) => url.to_string(),
            };
            let slot = self.acquire_slot(None)?;
            let started = std::time::Instant::now();
            let sent = transport::try_send_typed(
                &client,
                &Request {
                    method: out.method.clone(),
                    url,
                    bearer: Some(&pair.access_token),
                    json: out.body,
                    context_user: out.context_user,
                    refresh_token: None,
                },
                out.content_type,
            );
            drop(slot);
            let outcome = match &sent {
                // Only the account's host can have lost the account.
                Ok(r)
                    if r.status == 404
                        && matches!(out.to, To::Account(_))
                        && !transport::is_json(r) =>
                {
                    Outcome::NoAccount
                }
                Ok(r) => Outcome::Answered(r.status),
                Err(SendError::NotSent(_)) => Outcome::NotSent,
                Err(SendError::MaybeSent(_)) => Outcome::MaybeSent,
            };
            self.count_outcome(outcome);
            if self.log.enabled(Level::Debug) {
                let answer = match &sent {
                    Ok(r) => format!("answered {}", r.status),
                    Err(SendError::NotSent(e) | SendError::MaybeSent(e)) => {
                        format!("got no answer ({})", e.message)
                    }
                };
                self.log.log(
                    Level::Debug,
                    "request",
                    &format!(
                        "{} {} {answer} in {} ms",
                        out.method,
                        out.target(),
                        started.elapsed().as_millis()
                    ),
                    json!({
                        "method": out.method.as_str(),
                        "path": out.target(),
                        "status": sent.as_ref().map_or(0, |r| r.status),
                        "ms": started.elapsed().as_millis() as u64,
                    }),
                );
            }
            let attempt = Attempt {
                read: out.read,
                retry_left: retries < out.max_retries,
                reauthorized,
                long_lived: pair.refresh_token.is_none(),
                relocated,
            };
            match policy::next_step(outcome, attempt) {
                Step::Answer => return sent.map_err(SendError::into_error),
                Step::Retry => {
                    self.note_retry(out, &sent, retries);
                    self.backoff(&mut retries)
                }
                Step::Reauthorize => {
                    reauthorized = true;
                    pair = self.newer_pair(&pair)?;
                }
                Step::Relocate => {
                    relocated = true;
                    match self.relocate(&pair)? {
                        Ok(moved) => pair = moved,
                        Err(why) => {
                            return sent
                                .map_err(SendError::into_error)
                                .and_then(|r| Err(transport::api_error(r)))
                                .map_err(|e| e.context(|m| format!("{m} ({why})")))
                        }
                    }
                }
                Step::Fail(why) => return Err(failure(why, sent, &out.method, retries)),
            }
        }
    }

    /// After a 401: a pair (or an account host) another process stored
    /// meanwhile, rather than spend the refresh token; else, for a pair that
    /// should still work, the account's new host if its subdomain changed;
    /// otherwise one refresh under the lock.
    fn newer_pair(&self, rejected: &TokenPair) -> Result<TokenPair> {
        let stored = self.reload()?.ok_or_else(|| self.not_authorized())?;
        if (stored.access_token != rejected.access_token
            || stored.base_domain != rejected.base_domain)
            && !stored.is_expiring(now(), self.config.refresh_margin)
        {
            return Ok(stored);
        }
        if rejected.expires_in(now()) > 0 {
            if let Ok(moved) = self.relocate(rejected)? {
                return Ok(moved);
            }
        }
        self.refresh_locked(&rejected.access_token, Want::Rejected)
    }

    /// Asks amoCRM where the account lives now (`seen`'s refresh token is
    /// shown, never spent) and, when it moved, stores the new host with the
    /// same pair under the lock. `Err(why)` when it did not move or the
    /// lookup cannot tell.
    fn relocate(&self, seen: &TokenPair) -> Result<std::result::Result<TokenPair, String>> {
        let host = match self.current_host(seen)? {
            Ok(host) => host,
            Err(why) => return Ok(Err(why)),
        };
        let _lock = self.store().lock(self.config.lock_wait())?;
        self.move_stored(&host).map(Ok)
    }

    /// The subdomain lookup, within the shared rate limit; `Err(why)` when
    /// the account's host is unknown or unchanged.
    fn current_host(&self, seen: &TokenPair) -> Result<std::result::Result<String, String>> {
        let _slot = self.acquire_slot(Some(LOCK_SPARE))?;
        Ok(oauth::current_host(&self.config, seen).and_then(|host| {
            if host.eq_ignore_ascii_case(&seen.base_domain) {
                Err(format!("amoCRM says the account is still at {host}"))
            } else {
                Ok(host)
            }
        }))
    }

    /// Stores the account's new host with the stored pair (the lock is
    /// held): re-read first, since another process may have moved it, or
    /// refreshed, already.
    fn move_stored(&self, host: &str) -> Result<TokenPair> {
        let (mut stored, version) = self.store().load()?.ok_or_else(|| self.not_authorized())?;
        if stored.base_domain.eq_ignore_ascii_case(host) {
            return Ok(self.adopt(stored, version));
        }
        let old = std::mem::replace(&mut stored.base_domain, host.to_string());
        let moved = self.store_pair(stored)?;
        self.count(&[(Counter::Relocations, 1)]);
        self.log.log(
            Level::Warning,
            "account_moved",
            &format!("the account moved from {old} to {host}; the new host is stored and used"),
            json!({"from": old, "to": host}),
        );
        Ok(moved)
    }

    fn count_outcome(&self, outcome: Outcome) {
        let (counters, field): (&[(Counter, u64)], Field) = match outcome {
            Outcome::Answered(429) => (
                &[(Counter::ApiCalls(429), 1), (Counter::RateLimited, 1)],
                Field::S429,
            ),
            Outcome::Answered(status) => {
                (&[(Counter::ApiCalls(status), 1)], Field::of_status(status))
            }
            Outcome::NoAccount => (&[(Counter::ApiCalls(404), 1)], Field::S4xx),
            Outcome::NotSent | Outcome::MaybeSent => (&[(Counter::ApiCallErrors, 1)], Field::Error),
        };
        self.state
            .counters
            .add_in_minute(counters, history::minute_of(now()), &[(field, 1)]);
    }

    /// Adds a refresh to the history's list of the last ones.
    fn note_refresh(&self, outcome: history::Outcome, reason: &str) {
        self.state.counters.add_refresh(&history::Refresh {
            at: now(),
            outcome,
            reason: reason.to_string(),
        });
    }

    /// A refresh amoCRM refused (its token is dead: re-authorize) or that
    /// failed (the next call tries again; also one that could not even be
    /// sent, with no rate-limit slot in time): counted, in the history and
    /// the log. An early refresh's failure fails no call: a warning.
    fn refresh_failed(&self, stored: &TokenPair, e: &Error, slot: Slot) {
        self.count(&[(Counter::RefreshFailures, 1)]);
        if e.kind == ErrorKind::Auth {
            let reason = if e.description.is_empty() {
                e.title.clone()
            } else {
                e.description.clone()
            };
            self.note_refresh(history::Outcome::Refused, &reason);
            self.log.log(
                Level::Error,
                "refresh_refused",
                &format!(
                    "amoCRM refused the refresh token of {} ({reason}); it is not sent again: an admin must re-authorize at /oauth/authorize",
                    stored.base_domain
                ),
                json!({"base_domain": stored.base_domain, "reason": reason, "status": e.status}),
            );
        } else {
            self.note_refresh(history::Outcome::Failed, &e.message);
            let level = if slot == Slot::TryNow {
                Level::Warning
            } else {
                Level::Error
            };
            self.log.log(
                level,
                "refresh_failed",
                &format!(
                    "token refresh failed: {}; the stored pair is kept and the next call tries again",
                    e.message
                ),
                json!({"base_domain": stored.base_domain, "reason": e.message, "status": e.status}),
            );
        }
    }

    /// A retry, before its backoff: what is sent again, why, which attempt.
    fn note_retry(
        &self,
        out: &Outgoing<'_>,
        sent: &std::result::Result<transport::Response, SendError>,
        retries: u32,
    ) {
        if !self.log.enabled(Level::Warning) {
            return;
        }
        let why = match sent {
            Ok(r) => format!("amoCRM answered {}", r.status),
            Err(SendError::NotSent(e)) | Err(SendError::MaybeSent(e)) => e.message.clone(),
        };
        let target = out.target();
        self.log.log(
            Level::Warning,
            "retry",
            &format!(
                "retrying {} {target} (retry {} of {}): {why}",
                out.method,
                retries + 1,
                out.max_retries
            ),
            json!({
                "method": out.method.as_str(),
                "path": target,
                "retry": retries + 1,
                "max_retries": out.max_retries,
                "reason": why,
                "status": sent.as_ref().map_or(0, |r| r.status),
            }),
        );
    }

    /// Sleeps before retry number `retries + 1`: the base delay doubled per
    /// retry, with ±50 % jitter so that processes do not retry in step.
    fn backoff(&self, retries: &mut u32) {
        let base = self
            .config
            .retry_backoff_ms
            .saturating_mul(1 << (*retries).min(10));
        let jittered = base / 2 + fastrand::u64(0..=base);
        std::thread::sleep(std::time::Duration::from_millis(jittered.min(60_000)));
        *retries += 1;
        self.count(&[(Counter::Retries, 1)]);
    }
}

/// Requests to the account's other hosts (its drive host, for files).
impl AmoCore {
    /// Sends `method` to the absolute `url` (on a host the caller checked
    /// against `allowed_domains`: the request carries the token) with the
    /// same token handling, rate limit and retry table as [`AmoCore::send`].
    /// `body` is raw bytes and their Content-Type.
    ///
    /// `resend_safe` lets a write that may have reached the host be sent
    /// again as a read would be (after a timeout, a dropped connection or a
    /// 502/503/504): only for a request whose URL names the effect, so that
    /// a repeat cannot apply it twice (a file part, whose URL is that
    /// part's). `max_retries` bounds the retries.
    pub fn send_to(
        &self,
        method: &str,
        url: &str,
        body: Option<(&[u8], &str)>,
        resend_safe: bool,
        max_retries: u32,
    ) -> Result<transport::Response> {
        let method = parse_method(method)?;
        let (body, content_type) = match body {
            Some((b, t)) => (Some(b), t),
            None => (None, "application/json"),
        };
        self.send_loop(&Outgoing {
            read: method == Method::GET || resend_safe,
            method,
            to: To::Url(url),
            body,
            content_type,
            context_user: None,
            max_retries,
        })
    }
}

/// One request as the retry loop sends it.
struct Outgoing<'a> {
    method: Method,
    to: To<'a>,
    body: Option<&'a [u8]>,
    content_type: &'a str,
    context_user: Option<i64>,
    /// May be sent again once it may have reached amoCRM (see [`Attempt`]).
    read: bool,
    max_retries: u32,
}

impl Outgoing<'_> {
    /// Where the request goes, without its query (which may carry a
    /// customer's phone or email): the path on the account's host, or the
    /// other host's URL.
    fn target(&self) -> String {
        let whole = match &self.to {
            To::Account(path) => path.as_str(),
            To::Url(url) => url,
        };
        whole.split(['?', '#']).next().unwrap_or("").to_string()
    }
}

/// Where a request goes.
enum To<'a> {
    /// A path and query on the account's host (the pair's base_domain, which
    /// changes when the account moves).
    Account(String),
    /// An absolute URL on another host of the account (its drive).
    Url(&'a str),
}

/// The error for a request the policy gave up on, saying why.
fn failure(
    why: Why,
    sent: std::result::Result<transport::Response, SendError>,
    method: &Method,
    retries: u32,
) -> Error {
    let e = match sent {
        Ok(resp) => transport::api_error(resp),
        Err(e) => e.into_error(),
    };
    match why {
        Why::Transport => e,
        Why::MayHaveActed => e.context(|m| format!(
            "{m}; the {method} may have reached amoCRM, so it is not sent again (that could create a duplicate)"
        )),
        Why::LongLivedRefused => e.context(|m| format!(
            "amoCRM refused the long-lived token ({m}); generate a new one in the integration's settings"
        )),
        Why::RefusedAfterReauthorizing => e.context(|m| format!(
            "amoCRM refused a freshly refreshed token ({m}); an admin may need to re-authorize at /oauth/authorize"
        )),
        Why::RateLimited => e.context(|m| format!("{m} (after {retries} retries)")),
    }
}

/// How a refresh under the lock gets its rate-limit slot.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Slot {
    /// Waits for one, at most `LOCK_SPARE`.
    Wait,
    /// An early refresh: a free slot now, or no refresh this time.
    TryNow,
}

/// What `lock_wait` leaves beyond a token request's own timeouts
/// (connect_timeout + timeout + 5 s): the most a refresh under the lock may
/// wait for a rate-limit slot.
const LOCK_SPARE: std::time::Duration = std::time::Duration::from_secs(4);

/// A rate-limit wait longer than this is logged.
const LONG_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Within the refresh margin, a pair with more than this left is refreshed
/// only by a process that finds the lock free, and never fails a call.
const STILL_USABLE: i64 = 60;

/// After an implicit keepalive failed, this process tries again after this.
const KEEPALIVE_PAUSE: std::time::Duration = std::time::Duration::from_secs(300);

/// amoCRM lets a refresh token live 3 months unused.
pub const REFRESH_TOKEN_LIFETIME: i64 = 90 * 86_400;

fn parse_method(m: &str) -> Result<Method> {
    match m.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PATCH" => Ok(Method::PATCH),
        "PUT" => Ok(Method::PUT),
        "DELETE" => Ok(Method::DELETE),
        _ => Err(Error::argument(
            "method",
            format!("must be GET, POST, PATCH, PUT or DELETE, got `{m}`"),
        )),
    }
}

/// Encodes nested query parameters the way amoCRM (and PHP's
/// `http_build_query`) expects: `filter[id][]=1&filter[updated_at][from]=…`.
/// A list of strings under `with` is sent comma-separated.
pub fn encode_query(q: &Value) -> Result<String> {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let obj = match q {
        Value::Object(o) => o,
        Value::Array(a) if a.is_empty() => return Ok(String::new()),
        _ => {
            return Err(Error::argument(
                "query",
                "must be an array keyed by parameter name",
            ))
        }
    };
    // amoCRM reads the query as PHP does, which would read these keys as
    // another name or drop them: a bracket or NUL anywhere, an empty name
    // (at the top, one of spaces only), and inside brackets one whitespace
    // character (PHP reads `a[ ]` as `a[]`).
    fn check_key(k: &str, top: bool) -> Result<()> {
        let lost = if top {
            k.trim_start_matches(' ').is_empty()
        } else {
            matches!(k, "" | " " | "\t" | "\n" | "\x0b" | "\x0c" | "\r")
        };
        if lost || k.contains(['[', ']', '\0']) {
            return Err(Error::argument(
                "query",
                format!(
                    "the key `{}` cannot be sent: amoCRM (PHP) would read another name",
                    crate::error::excerpt(k.as_bytes(), 60)
                ),
            ));
        }
        Ok(())
    }
    /// Appends `v` under `key`; whether it sent anything.
    fn walk(
        ser: &mut url::form_urlencoded::Serializer<String>,
        key: &str,
        v: &Value,
    ) -> Result<bool> {
        match v {
            Value::Null => return Ok(false),
            Value::Bool(b) => {
                ser.append_pair(key, if *b { "1" } else { "0" });
            }
            Value::Number(n) => {
                ser.append_pair(key, &n.to_string());
            }
            Value::String(s) => {
                ser.append_pair(key, s);
            }
            Value::Array(items) => {
                // `key[]` for a scalar; an array inside a list gets the index
                // PHP would give it next, or PHP would read
                // `a[][x]=1&a[][y]=2` as two items.
                let mut sent = 0;
                for item in items {
                    let name = if item.is_array() || item.is_object() {
                        format!("{key}[{sent}]")
                    } else {
                        format!("{key}[]")
                    };
                    if walk(ser, &name, item)? {
                        sent += 1;
                    }
                }
                return Ok(sent > 0);
            }
            Value::Object(o) => {
                let mut sent = false;
                for (k, item) in o {
                    check_key(k, false)?;
                    sent |= walk(ser, &format!("{key}[{k}]"), item)?;
                }
                return Ok(sent);
            }
        }
        Ok(true)
    }
    for (k, v) in obj {
        check_key(k, true)?;
        if k == "with" {
            if let Value::Array(items) = v {
                let joined: Vec<String> = items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect();
                ser.append_pair("with", &joined.join(","));
                continue;
            }
        }
        walk(&mut ser, k, v)?;
    }
    let query = ser.finish();
    if query.len() > MAX_QUERY_BYTES {
        return Err(Error::argument(
            "query",
            format!(
                "it encodes to {} bytes, more than the {MAX_QUERY_BYTES} a URL may carry",
                query.len()
            ),
        ));
    }
    Ok(query)
}

/// The longest query string sent: HTTP stacks refuse longer URLs (the HTTP
/// client here at 64 KiB, before anything is sent), and amoCRM's nginx
/// refuses far shorter ones with 414.
pub const MAX_QUERY_BYTES: usize = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_matches_amocrm() {
        let q = json!({"filter": {"id": [1, 2], "updated_at": {"from": 100}}, "with": ["contacts", "catalog_elements"], "page": 2, "query": "a b"});
        let s = encode_query(&q).unwrap();
        assert_eq!(
            s,
            "filter%5Bid%5D%5B%5D=1&filter%5Bid%5D%5B%5D=2&filter%5Bupdated_at%5D%5Bfrom%5D=100&with=contacts%2Ccatalog_elements&page=2&query=a+b"
        );
        assert_eq!(encode_query(&json!([])).unwrap(), "");
        assert!(encode_query(&json!("x")).is_err());
    }

    /// Found by fuzzing (fuzz/corpus/query_encoder/regression-*).
    #[test]
    fn query_encoding_survives_php() {
        // A list of maps was sent as `a[][x]=1&a[][y]=2`, which PHP reads as
        // two items; each array in a list now gets the index PHP gives it.
        let q = json!({"filter": {"statuses": [{"pipeline_id": 1, "status_id": 142}, [], {"pipeline_id": 2}], "id": [5, [6]]}});
        assert_eq!(
            url::form_urlencoded::parse(encode_query(&q).unwrap().as_bytes())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            [
                "filter[statuses][0][pipeline_id]=1",
                "filter[statuses][0][status_id]=142",
                "filter[statuses][1][pipeline_id]=2",
                "filter[id][]=5",
                "filter[id][1][]=6",
            ]
        );
        // A key PHP would read as another name is refused, named.
        for q in [
            json!({"filter": {"name]": 1}}),
            json!({"": 1}),
            json!({"a": [{"b[c": 1}]}),
            json!({"a\u{0}b": 1}),
            json!({"  ": 1}),
            json!({"order": {" ": "asc"}}),
            json!({"order": {"\t": "asc"}}),
        ] {
            let e = encode_query(&q).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::Config);
            assert!(
                e.message.contains("`query`") && e.message.contains("cannot be sent"),
                "{}",
                e.message
            );
        }
        // Not refused: a space within a name, a key of two spaces.
        assert!(encode_query(&json!({"a b": {" x": 1, "  ": 2}})).is_ok());
        // Found by fuzzing: a URL too long for the HTTP client failed as a
        // transport error that "may have reached amoCRM".
        let long = json!({"query": "я".repeat(MAX_QUERY_BYTES / 6 + 1)});
        let e = encode_query(&long).unwrap_err();
        assert!(e.message.contains("a URL may carry"), "{}", e.message);
        assert!(encode_query(&json!({"query": "я".repeat(MAX_QUERY_BYTES / 6 - 10)})).is_ok());
    }
}
