//! One Redis connection per process and target, for the Redis store.
//!
//! Made lazily, inside a request, and remembered with the pid that made it:
//! php-fpm forks its workers after module start-up, and a connection
//! inherited across fork is the parent's socket — a command from the child
//! would interleave with the parent's on one stream. So a child forgets an
//! inherited connection (never uses or closes it: a TLS close would write on
//! the shared socket) and connects anew. Every connection has the
//! configuration's timeouts: `connect_timeout` to connect (each sentinel, and
//! the primary), `timeout` for each command.
//!
//! A connection that fails is dropped, and the next call connects again. A
//! command that fails on a *reused* connection because it was dropped (Redis
//! restarted, an idle connection cut) or because the server is now a
//! read-only replica (a Sentinel failover) is sent once more on a new one:
//! every command of the store is safe to repeat (a lock taken twice by the
//! same owner is one lock; a save repeated under the same lock writes the
//! same pair). A timeout is not repeated: it has cost its `timeout` already.
//!
//! With Sentinel, the primary is asked of each sentinel in turn
//! (`SENTINEL GET-MASTER-ADDR-BY-NAME`), and the node it names must say it
//! is a primary (`ROLE`) before it is used — the steps of Redis's Sentinel
//! client guidelines, here with timeouts on every step.

use crate::config::RedisTarget;
use crate::error::{Error, Result};
use once_cell::sync::Lazy;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a connection goes and how: a change makes another connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub redis: RedisTarget,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Extra CAs for rediss:// (besides the system's trust store).
    pub ca_file: Option<PathBuf>,
}

impl Target {
    /// The target as a URL without its password, for messages: it names
    /// what is down without handing anyone the key to it.
    pub fn describe(&self) -> String {
        let r = &self.redis;
        let user = r
            .username
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let hosts = || {
            r.hosts
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(socket) = &r.socket {
            format!("redis+unix://{}?db={}", socket.display(), r.db)
        } else if let Some(primary) = &r.sentinel_master {
            format!("redis+sentinel://{user}{}/{primary}/{}", hosts(), r.db)
        } else {
            let scheme = if r.tls { "rediss" } else { "redis" };
            format!("{scheme}://{user}{}/{}", hosts(), r.db)
        }
    }

    /// A storage error naming Redis and the target, never the password.
    pub fn fault(&self, what: &str, e: impl std::fmt::Display) -> Error {
        let mut message = format!("Redis {}: {what}: {e}", self.describe());
        if let Some(p) = self.redis.password.as_ref().filter(|p| !p.is_empty()) {
            // No message of the driver is known to carry it; make sure.
            message = message.replace(p.expose(), "[redacted]");
        }
        Error::storage(message)
    }

    fn node_info(&self, addr: ConnectionAddr) -> redis::RedisResult<ConnectionInfo> {
        let mut settings = RedisConnectionInfo::default()
            .set_db(self.redis.db)
            .set_skip_set_lib_name();
        if let Some(user) = &self.redis.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.redis.password {
            settings = settings.set_password(password.expose());
        }
        Ok(addr.into_connection_info()?.set_redis_settings(settings))
    }

    /// Connects to the server (or, with Sentinel, to the primary the
    /// sentinels name) with the configured timeouts.
    fn connect(&self) -> Result<redis::Connection> {
        let conn = if let Some(primary) = &self.redis.sentinel_master {
            self.connect_through_sentinels(primary)?
        } else {
            let addr = if let Some(socket) = &self.redis.socket {
                ConnectionAddr::Unix(socket.clone())
            } else {
                let (host, port) = self.redis.hosts.first().cloned().unwrap_or_default();
                if self.redis.tls {
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host, port)
                }
            };
            self.open(addr)
                .map_err(|e| self.fault("cannot connect", e))?
        };
        self.with_timeouts(&conn)
            .map_err(|e| self.fault("cannot set timeouts", e))?;
        Ok(conn)
    }

    fn open(&self, addr: ConnectionAddr) -> redis::RedisResult<redis::Connection> {
        let tls = matches!(addr, ConnectionAddr::TcpTls { .. });
        let info = self.node_info(addr)?;
        let client = match (&self.ca_file, tls) {
            (Some(path), true) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(trust_bundle(path)?),
                },
            )?,
            _ => redis::Client::open(info)?,
        };
        client.get_connection_with_timeout(self.connect_timeout)
    }

    fn with_timeouts(&self, conn: &redis::Connection) -> redis::RedisResult<()> {
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))
    }

    /// Asks each sentinel in turn for the primary, and uses the first one
    /// named that says it is a primary.
    fn connect_through_sentinels(&self, primary: &str) -> Result<redis::Connection> {
        let mut faults = Vec::new();
        for (host, port) in &self.redis.hosts {
            let at = format!("sentinel {host}:{port}");
            let addr = match self.ask_sentinel(host, *port, primary) {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    faults.push(format!("{at} does not know `{primary}`"));
                    continue;
                }
                Err(e) => {
                    faults.push(format!("{at}: {e}"));
                    continue;
                }
            };
            let checked = self
                .open(ConnectionAddr::Tcp(addr.0.clone(), addr.1))
                .and_then(|mut conn| {
                    conn.set_read_timeout(Some(self.connect_timeout))?;
                    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn)?;
                    let role = role
                        .first()
                        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                        .unwrap_or_default();
                    Ok((conn, role))
                });
            match checked {
                Ok((conn, role)) if role == "master" => return Ok(conn),
                Ok((_, role)) => faults.push(format!(
                    "{at} named {}:{}, which is a {role}, not the primary",
                    addr.0, addr.1
                )),
                Err(e) => faults.push(format!("{at} named {}:{}: {e}", addr.0, addr.1)),
            }
        }
        Err(self.fault(
            "no sentinel named a primary that answers",
            faults.join("; "),
        ))
    }

    /// The address the sentinel gives for `primary`; a sentinel that wants
    /// a password gets the target's.
    fn ask_sentinel(
        &self,
        host: &str,
        port: u16,
        primary: &str,
    ) -> redis::RedisResult<Option<(String, u16)>> {
        let ask = |settings: RedisConnectionInfo| -> redis::RedisResult<Option<(String, u16)>> {
            let info = ConnectionAddr::Tcp(host.to_string(), port)
                .into_connection_info()?
                .set_redis_settings(settings.set_skip_set_lib_name());
            let mut conn =
                redis::Client::open(info)?.get_connection_with_timeout(self.connect_timeout)?;
            conn.set_read_timeout(Some(self.connect_timeout))?;
            conn.set_write_timeout(Some(self.connect_timeout))?;
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(primary)
                .query(&mut conn)
        };
        match ask(RedisConnectionInfo::default()) {
            Err(e) if e.code() == Some("NOAUTH") && self.redis.password.is_some() => {
                let mut settings = RedisConnectionInfo::default();
                if let Some(user) = &self.redis.username {
                    settings = settings.set_username(user);
                }
                if let Some(password) = &self.redis.password {
                    settings = settings.set_password(password.expose());
                }
                ask(settings)
            }
            other => other,
        }
    }
}

/// The PEM bundle for a rediss:// connection with `ca_file`: its CAs and the
/// system's, as the HTTP client trusts both.
fn trust_bundle(ca_file: &std::path::Path) -> redis::RedisResult<Vec<u8>> {
    use base64::Engine;
    let mut pem = std::fs::read(ca_file)?;
    pem.push(b'\n');
    for cert in rustls_native_certs::load_native_certs().certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    Ok(pem)
}

/// One target's connection in this process.
struct Slot {
    target: Target,
    pid: u32,
    conn: Option<redis::Connection>,
}

static SLOTS: Lazy<Mutex<Vec<Arc<Mutex<Slot>>>>> = Lazy::new(|| Mutex::new(Vec::new()));

fn slot(target: &Target) -> Arc<Mutex<Slot>> {
    let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slots
        .iter()
        .find(|s| s.lock().unwrap_or_else(|e| e.into_inner()).target == *target)
    {
        return s.clone();
    }
    let s = Arc::new(Mutex::new(Slot {
        target: target.clone(),
        pid: std::process::id(),
        conn: None,
    }));
    slots.push(s.clone());
    s
}

/// Whether a command that failed on a reused connection is worth sending
/// once more on a new one.
fn worth_reconnecting(e: &redis::RedisError) -> bool {
    (e.is_connection_dropped() && !e.is_timeout())
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

/// Runs `f` on this process's connection to `target`, connecting first if
/// there is none (or only one inherited from the parent process). `what`
/// names the operation in the error.
pub fn run<T>(
    target: &Target,
    what: &str,
    mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
) -> Result<T> {
    let slot = slot(target);
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if slot.pid != pid {
        if let Some(inherited) = slot.conn.take() {
            // The parent's socket: neither used nor closed here.
            std::mem::forget(inherited);
        }
        slot.pid = pid;
    }
    let reused = slot.conn.is_some();
    if !reused {
        slot.conn = Some(target.connect()?);
    }
    let conn = slot.conn.as_mut().expect("connected above");
    match f(conn) {
        Ok(v) => Ok(v),
        Err(e) => {
            slot.conn = None;
            if !(reused && worth_reconnecting(&e)) {
                return Err(target.fault(what, e));
            }
            let mut fresh = target.connect()?;
            match f(&mut fresh) {
                Ok(v) => {
                    slot.conn = Some(fresh);
                    Ok(v)
                }
                Err(e) => Err(target.fault(what, e)),
            }
        }
    }
}
