//! The process-wide HTTP client, driven in the calling thread.
//!
//! reqwest's async client runs on a current-thread tokio runtime that this
//! process's PHP thread drives itself (`block_on`): a request is written,
//! waited for and read without handing it to another thread and back, and
//! between PHP requests nothing runs. Its keep-alive connections to amoCRM
//! survive from one PHP request to the next. Names are resolved inline
//! (getaddrinfo in the calling thread), so the client starts no thread.
//!
//! The client is made lazily, inside a request, and remembered with the
//! fork generation that made it: php-fpm forks its workers after module
//! start-up, and a runtime inherited across fork shares its epoll instance
//! with the parent. An inherited client is leaked, never dropped (dropping
//! it would deregister the parent's sockets).
//!
//! TLS trusts the roots compiled in (Mozilla's, via webpki-roots), the
//! system's trust store (rustls-native-certs: `/etc/ssl/certs`, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), and the PEM bundle of `ca_file`.
//! Reading and parsing them costs a few ms; [`preload_tls`] does it once at
//! module start-up, before php-fpm forks, so that every worker inherits the
//! parsed trust store. A client that only speaks plain http
//! (`insecure_http`, loopback only) needs none of it.

use crate::error::{Error, ErrorKind, Result};
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
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

/// The client and the runtime that drives it.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    pub client: reqwest::Client,
}

impl Http {
    /// Runs `f` to completion in the calling thread.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// The clients of this process: one per distinct options (accounts with
/// different timeouts or CAs keep their own connections), made after the
/// fork that `generation` counts.
#[derive(Default)]
struct PerProcess {
    generation: u64,
    clients: Vec<(ClientOptions, Arc<Http>)>,
}

/// Beyond this many, the oldest client (and its connections) is dropped.
const MAX_CLIENTS: usize = 8;

static CLIENTS: Lazy<Mutex<PerProcess>> = Lazy::new(|| Mutex::new(PerProcess::default()));

/// The process's HTTP client for `options`, made on first use after the
/// last fork.
pub fn client(options: &ClientOptions) -> Result<Arc<Http>> {
    let generation = fork_generation();
    let mut known = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if known.generation != generation {
        // Inherited from the parent: leaked, never dropped.
        std::mem::forget(std::mem::take(&mut known.clients));
        known.generation = generation;
    }
    if let Some((_, http)) = known.clients.iter().find(|(o, _)| o == options) {
        return Ok(http.clone());
    }
    let http = Arc::new(build(options)?);
    if known.clients.len() >= MAX_CLIENTS {
        known.clients.remove(0);
    }
    known.clients.push((options.clone(), http.clone()));
    Ok(http)
}

fn build(options: &ClientOptions) -> Result<Http> {
    let fault = |what: &str, e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Transport,
            format!("cannot create the {what}: {e}"),
        )
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| fault("HTTP client's runtime", &e))?;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .pool_idle_timeout(Duration::from_secs(55))
        .pool_max_idle_per_host(4)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("amocrm-php-ext/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(InlineResolver));
    if options.tls {
        builder = builder.use_preconfigured_tls((*tls_config(options.ca_file.as_deref())?).clone());
    } else if let Some(path) = &options.ca_file {
        // Not used over plain http, but a wrong one is still reported.
        ca_bundle(path)?;
    }
    let client = {
        // reqwest registers its timer with the runtime it is built in.
        let _in = runtime.enter();
        builder.build().map_err(|e| fault("HTTP client", &e))?
    };
    Ok(Http { runtime, client })
}

/// getaddrinfo in the calling thread: a client that starts no thread.
/// (`connect_timeout` does not bound it; the resolver's own timeouts do.)
struct InlineResolver;

impl reqwest::dns::Resolve for InlineResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = (name.as_str(), 0)
            .to_socket_addrs()
            .map(|addrs| Box::new(addrs.collect::<Vec<_>>().into_iter()) as reqwest::dns::Addrs)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
        Box::pin(std::future::ready(found))
    }
}

/// Parsed trust stores by `ca_file`, kept for the life of the process and
/// inherited by its forks.
type TlsConfigs = HashMap<Option<PathBuf>, Arc<rustls::ClientConfig>>;
static TLS: Lazy<Mutex<TlsConfigs>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// Reads and parses the trust store for `ca_file` now, so that the
/// processes forked after this (php-fpm's workers) find it parsed. A
/// `ca_file` that cannot be used is left for the first request to report.
pub fn preload_tls(ca_file: Option<&std::path::Path>) {
    let _ = tls_config(ca_file);
}

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    let key = ca_file.map(PathBuf::from);
    let mut known = TLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(config) = known.get(&key) {
        return Ok(config.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // Certificates the system store holds that rustls cannot use are skipped,
    // as browsers do.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        for cert in ca_bundle(path)? {
            roots
                .add(cert)
                .map_err(|e| Error::config("ca_file", format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Transport, format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    known.insert(key, config.clone());
    Ok(config)
}

/// The certificates of a PEM bundle; a file that cannot be read or holds
/// none is a configuration error naming `ca_file`.
fn ca_bundle(path: &std::path::Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let fault = |why: String| Error::config("ca_file", format!("{}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| fault(format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fault(format!("not a PEM bundle: {e}")))?;
    if certs.is_empty() {
        return Err(fault("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// Counts the forks this process came through, so that "is this client
/// mine" costs an atomic load rather than a getpid() per request.
pub fn fork_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FORKS: AtomicU64 = AtomicU64::new(0);
    static REGISTER: std::sync::Once = std::sync::Once::new();
    extern "C" fn in_child() {
        FORKS.fetch_add(1, Ordering::SeqCst);
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
    FORKS.load(Ordering::SeqCst)
}
