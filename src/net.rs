//! The process-wide HTTP client.
//!
//! The client is made lazily, inside a request, and remembered with the pid
//! that made it: php-fpm forks its workers after module start-up, and a
//! reqwest blocking client inherited across fork hangs (its runtime thread
//! did not survive the fork). Kept per process, its keep-alive connections
//! to amoCRM survive from one PHP request to the next.
//!
//! TLS trusts the roots compiled in (Mozilla's, via webpki-roots), the
//! system's trust store (rustls-native-certs: `/etc/ssl/certs`, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), and the PEM bundle of `ca_file`.
//! Reading the system store costs about 3 ms once per process; a client that
//! can only speak plain http (`insecure_http`, loopback only) skips it.

use crate::error::{Error, ErrorKind, Result};
use once_cell::sync::Lazy;
use reqwest::blocking::Client;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// What a client is built from; a change makes a new client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// False when every request goes over plain http (`insecure_http`).
    pub tls: bool,
}

struct PerProcess {
    pid: u32,
    options: ClientOptions,
    client: Client,
}

static CLIENT: Lazy<Mutex<Option<PerProcess>>> = Lazy::new(|| Mutex::new(None));

/// The process's HTTP client, made on first use in this pid.
pub fn client(options: &ClientOptions) -> Result<Client> {
    let pid = std::process::id();
    let mut slot = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = slot.as_ref() {
        if existing.pid == pid && existing.options == *options {
            return Ok(existing.client.clone());
        }
    }
    let client = build(options)?;
    if let Some(previous) = slot.take() {
        if previous.pid != pid {
            // Dropping a client inherited across fork joins a thread that is
            // not there and hangs: leak it instead.
            std::mem::forget(previous);
        }
    }
    *slot = Some(PerProcess {
        pid,
        options: options.clone(),
        client: client.clone(),
    });
    Ok(client)
}

fn build(options: &ClientOptions) -> Result<Client> {
    let mut builder = Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .pool_idle_timeout(Duration::from_secs(55))
        .pool_max_idle_per_host(4)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("amocrm-php-ext/", env!("CARGO_PKG_VERSION")))
        .tls_built_in_native_certs(options.tls);
    if let Some(path) = &options.ca_file {
        for cert in ca_bundle(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| {
        Error::new(
            ErrorKind::Transport,
            format!("cannot create the HTTP client: {e}"),
        )
    })
}

/// The certificates of a PEM bundle; a file that cannot be read or holds
/// none is a configuration error naming `ca_file`.
fn ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let fault = |why: String| Error::config("ca_file", format!("{}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| fault(format!("cannot read: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| fault(format!("not a PEM bundle: {e}")))?;
    if certs.is_empty() {
        return Err(fault("holds no PEM certificate".into()));
    }
    Ok(certs)
}
