//! A local amoCRM (Kommo) HTTP emulator for tests and the demo.
//!
//! It speaks plain HTTP/1.1 on a loopback address and emulates the parts of
//! amoCRM described in `shared/amocrm-protocol.md`: the OAuth token endpoint
//! (codes, refresh tokens with the grace rule, lifetimes on an adjustable
//! clock), the consent page, the API v4 endpoints of the client's entity
//! services (leads, contacts, companies, customers, tasks, notes, tags,
//! pipelines, custom fields, users, webhooks, unsorted, catalogs, events, ...),
//! amoCRM's rate limit (7 rps → HTML 429, repeated → HTML 403 block) and a
//! control API under `/_emulator/` for tests (stats, clock, faults, token
//! minting, rate limit).
//!
//! ```no_run
//! use amocrm_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).unwrap();
//! let code = emu.issue_code();
//! println!("{} {}", emu.base_url(), code);
//! ```

mod api;
mod control;
mod drive;
mod entities;
mod extra;
mod http;
mod migration;
mod more;
mod oauth;
mod ratelimit;
mod server;
mod state;
mod util;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

pub use ratelimit::{DEFAULT_BLOCK_AFTER, DEFAULT_BLOCK_SECONDS, DEFAULT_RPS};
pub use state::{ACCESS_TOKEN_TTL, CODE_TTL, REFRESH_TOKEN_IDLE_TTL};

/// How the emulator is set up.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind; must be a loopback address (or `localhost`).
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// The one integration the emulated account knows.
    pub client_id: String,
    pub client_secret: String,
    /// The integration's redirect URI; token requests must repeat it exactly.
    pub redirect_uri: String,
    /// Account host the emulator claims to be (`referer`, `api_domain`, links).
    /// Default `localhost:{port}`.
    pub referer: Option<String>,
    /// API requests allowed per 1000 ms (amoCRM: 7); 0 turns the limit off.
    pub rate_limit: u32,
    /// The drive host's `max_part_size` for upload sessions.
    pub drive_max_part_size: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            host: "127.0.0.1".to_string(),
            port: 0,
            client_id: "emulator-client-id".to_string(),
            client_secret: "emulator-client-secret".to_string(),
            redirect_uri: "http://127.0.0.1:9095/oauth/callback".to_string(),
            referer: None,
            rate_limit: ratelimit::DEFAULT_RPS,
            drive_max_part_size: drive::DEFAULT_MAX_PART_SIZE,
        }
    }
}

/// State shared by the accept thread, the connection threads and [`Emulator`].
pub(crate) struct Shared {
    pub cfg: EmulatorConfig,
    pub referer: String,
    pub state: Mutex<state::State>,
    pub clock_offset: AtomicI64,
    pub stopping: AtomicBool,
    /// Open connections (clones), so that `stop` can shut them down.
    pub conns: Mutex<HashMap<u64, TcpStream>>,
    pub next_conn: AtomicU64,
    /// Emulator start time (real), used as the account's `created_at`.
    pub started_at: i64,
    pub amojo_id: String,
    /// The drive host (files): its own listener on this port.
    pub drive_port: u16,
    pub drive: Mutex<drive::DriveState>,
}

impl Shared {
    /// The emulated clock: real unix time plus the offset.
    pub fn now(&self) -> i64 {
        util::real_now() + self.clock_offset.load(Ordering::SeqCst)
    }

    /// Lock the state; a panicked connection thread never poisons it for good.
    pub fn lock(&self) -> MutexGuard<'_, state::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running emulator. Dropping it stops it.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    drive_addr: SocketAddr,
    drive_accept: Option<JoinHandle<()>>,
}

/// Resolve `host` to a loopback IP, refusing anything else.
pub fn loopback_ip(host: &str) -> io::Result<IpAddr> {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    let ip = if h.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        h.parse::<IpAddr>().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to bind to {host:?}: not a loopback IP address"),
            )
        })?
    };
    if !ip.is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to bind to non-loopback host {host:?}"),
        ));
    }
    Ok(ip)
}

impl Emulator {
    /// Bind, spawn the accept thread and return at once.
    pub fn start(cfg: EmulatorConfig) -> io::Result<Emulator> {
        let ip = loopback_ip(&cfg.host)?;
        let listener = TcpListener::bind(SocketAddr::new(ip, cfg.port))?;
        let addr = listener.local_addr()?;
        let drive_listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let drive_addr = drive_listener.local_addr()?;
        if !(1..=drive::MAX_PART_LIMIT).contains(&cfg.drive_max_part_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("max_part_size must be from 1 to {}", drive::MAX_PART_LIMIT),
            ));
        }
        let part_size = cfg.drive_max_part_size;
        let referer = match &cfg.referer {
            Some(r) if !r.is_empty() => r.clone(),
            _ => format!("localhost:{}", addr.port()),
        };
        let mut st = state::State {
            limiter: ratelimit::Limiter::new(cfg.rate_limit),
            ..state::State::default()
        };
        entities::seed(&mut st);
        let shared = Arc::new(Shared {
            cfg,
            referer,
            state: Mutex::new(st),
            clock_offset: AtomicI64::new(0),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            started_at: util::real_now(),
            amojo_id: util::uuid_like(),
            drive_port: drive_addr.port(),
            drive: Mutex::new(drive::DriveState::new(part_size)),
        });
        let sh = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("amocrm-emu-accept".into())
            .spawn(move || server::accept_loop(sh, listener))?;
        let sh = Arc::clone(&shared);
        let drive_accept = std::thread::Builder::new()
            .name("amocrm-emu-drive".into())
            .spawn(move || server::accept_loop(sh, drive_listener))?;
        Ok(Emulator {
            shared,
            addr,
            accept: Some(accept),
            drive_addr,
            drive_accept: Some(drive_accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The account host the emulator claims to be, e.g. `localhost:41234`.
    pub fn referer(&self) -> String {
        self.shared.referer.clone()
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        match self.addr.ip() {
            IpAddr::V4(ip) => format!("http://{}:{}", ip, self.addr.port()),
            IpAddr::V6(ip) => format!("http://[{}]:{}", ip, self.addr.port()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.cfg
    }

    /// The emulated clock (unix seconds).
    pub fn now(&self) -> i64 {
        self.shared.now()
    }

    /// A fresh authorization code, as "Allow" on the consent page gives.
    pub fn issue_code(&self) -> String {
        oauth::issue_code(&self.shared)
    }

    /// A fresh token pair; same JSON as the token endpoint's success body.
    pub fn mint_tokens(&self) -> Value {
        oauth::mint_tokens(&self.shared)
    }

    /// Same JSON as `GET /_emulator/stats`.
    pub fn stats(&self) -> Value {
        control::stats_json(&self.shared)
    }

    /// When each API request arrived since the last reset, as
    /// `GET /_emulator/arrivals`: `{"api_us": [unix µs, …], "not_kept": n}`.
    pub fn arrivals(&self) -> Value {
        control::arrivals_json(&self.shared)
    }

    /// Zero the counters, as `POST /_emulator/reset-stats`.
    pub fn reset_stats(&self) {
        self.shared.lock().stats = state::Stats::default();
    }

    /// Move the emulated clock by `secs` (may be negative).
    pub fn advance_clock(&self, secs: i64) {
        self.shared.clock_offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// Same JSON as `POST /_emulator/faults`: one rule or an array of rules.
    pub fn add_fault(&self, fault: Value) -> Result<(), String> {
        let rules = state::parse_faults(&fault)?;
        self.shared.lock().faults.extend(rules);
        Ok(())
    }

    /// Remove every fault rule, as `DELETE /_emulator/faults`.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Same JSON as `POST /_emulator/check`: the status of each token given,
    /// `valid` | `expired` | `revoked` | `unknown`, using nothing up.
    pub fn check_tokens(&self, access_token: Option<&str>, refresh_token: Option<&str>) -> Value {
        oauth::check_tokens(&self.shared, access_token, refresh_token)
    }

    /// All stored leads, as `GET /_emulator/leads` (a JSON array).
    pub fn leads(&self) -> Value {
        api::all_entities(&self.shared, "leads")
    }

    /// All stored objects of one entity type in API shape, as
    /// `GET /_emulator/entities/{name}` (`contacts`, `notes`, `events`, ...;
    /// an unknown name gives `[]`).
    pub fn entities(&self, name: &str) -> Value {
        api::all_entities(&self.shared, name)
    }

    /// Every link between entities, as `GET /_emulator/links`.
    pub fn links(&self) -> Value {
        control::links_json(&self.shared)
    }

    /// Move the account to another host, as `POST /_emulator/rename`: the
    /// old host then answers API calls `old_host_status` (401 or 404).
    pub fn rename(&self, host: &str, old_host_status: u16) -> Value {
        control::rename(&self.shared, host, old_host_status)
    }

    /// Change the rate limit, as `POST /_emulator/rate-limit`:
    /// `{"rps"?, "block_after"?, "block_seconds"?}` (all or nothing).
    pub fn set_rate_limit(&self, v: Value) -> Result<(), String> {
        self.shared.lock().limiter.update(&v)
    }

    /// The rate limit in force, as `GET /_emulator/rate-limit`:
    /// `{"rps","block_after","block_seconds","blocked","block_remaining_ms"}`.
    pub fn rate_limit(&self) -> Value {
        self.shared
            .lock()
            .limiter
            .to_json(std::time::Instant::now())
    }

    /// The drive host (files), e.g. `http://localhost:41235`: what
    /// `GET /api/v4/account?with=drive_url` names unless set otherwise.
    pub fn drive_url(&self) -> String {
        drive::own_url(&self.shared)
    }

    /// The drive's settings, counters, files (size and SHA-256) and entity
    /// attachments, as `GET /_emulator/drive`.
    pub fn drive(&self) -> Value {
        drive::state_json(&self.shared)
    }

    /// Changes the drive, as `POST /_emulator/drive`: `{"max_part_size"?,
    /// "drop_part"?, "drive_url"?}`.
    pub fn set_drive(&self, v: Value) -> Result<(), String> {
        drive::configure(&self.shared, &v)
    }

    /// Lift a block (and forget the recent 429s), as `DELETE /_emulator/block`.
    pub fn lift_block(&self) {
        self.shared.lock().limiter.lift();
    }

    /// Stop accepting, close the listener and shut open connections down.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept thread up so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        let _ = TcpStream::connect_timeout(&self.drive_addr, Duration::from_secs(1));
        if let Some(h) = self.drive_accept.take() {
            let _ = h.join();
        }
        let conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        for s in conns.values() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
