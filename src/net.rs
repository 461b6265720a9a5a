//! The process-wide HTTP client, driven in the calling thread.
//!
//! hyper's HTTP/1.1 client connection, on a current-thread tokio runtime
//! that this process's PHP thread drives itself (`block_on`): a request is
//! written, waited for and read by the very future that drives its
//! connection, with no task, channel or thread in between, and between PHP
//! requests nothing runs. Idle connections (at most 4 per host, for 55 s)
//! survive from one PHP request to the next. Names are resolved inline
//! (getaddrinfo in the calling thread), so the client starts no thread.
//!
//! The client is made lazily, inside a request, and remembered with the
//! fork generation that made it: php-fpm forks its workers after module
//! start-up, and a runtime inherited across fork shares its epoll instance
//! with the parent. An inherited client is leaked, never dropped (dropping
//! it would deregister the parent's sockets).
//!
//! TLS (rustls) trusts the roots compiled in (Mozilla's, via webpki-roots),
//! the system's trust store (rustls-native-certs: `/etc/ssl/certs`, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), and the PEM bundle of `ca_file`.
//! Reading and parsing them costs a few ms; [`preload_tls`] does it once at
//! module start-up, before php-fpm forks, so that every worker inherits the
//! parsed trust store. A client that only speaks plain http
//! (`insecure_http`, loopback only) needs none of it.

use crate::error::{Error, ErrorKind, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::future::Future;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What a client is built from; a change makes a new client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// False when every request goes over plain http (`insecure_http`).
    pub tls: bool,
}

/// An idle connection is closed after this long (amoCRM's side closes
/// them too, and a connection it closed is found dead on the next use).
const IDLE: Duration = Duration::from_secs(55);
/// At most this many idle connections are kept per host.
const IDLE_PER_HOST: usize = 4;

/// The client: its runtime, its options, its TLS and its idle connections.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    pub options: ClientOptions,
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<Vec<Idle>>,
}

/// Where a connection goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    /// `host[:port]` as the URL wrote it: the Host header.
    pub authority: String,
    pub host: String,
    pub port: u16,
}

/// The bytes a connection carries, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One HTTP/1.1 connection: the handle requests are sent through, and the
/// link that moves its bytes (polled alongside each request).
pub struct Conn {
    pub sender: SendRequest<Full<Bytes>>,
    pub link: Link,
    /// The socket, to look at while the connection is idle.
    fd: std::os::fd::RawFd,
    /// It carried a request before (a reused connection may have been
    /// closed by the server meanwhile).
    pub reused: bool,
}

/// The future that moves a connection's bytes.
pub struct Link {
    driver: Driver,
    /// The driver finished: the connection is closed.
    done: bool,
}

struct Idle {
    origin: Origin,
    conn: Conn,
    since: Instant,
}

/// Why a connection could not be made: what to say, and the cause.
pub struct ConnectError {
    pub timed_out: bool,
    pub cause: String,
}

impl Link {
    /// Runs `work` (a request on this connection) to completion while the
    /// connection's own future moves its bytes.
    pub async fn drive<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            self.poll(cx);
            // The driver may have delivered what the request waits for.
            work.as_mut().poll(cx)
        })
        .await
    }

    fn poll(&mut self, cx: &mut Context<'_>) {
        if !self.done && self.driver.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
    }
}

impl Conn {
    /// Lets the connection move on from the last exchange and says whether
    /// it can be kept: open, though perhaps not ready yet (the next request
    /// waits for it to be, driving it).
    pub fn settle(&mut self) -> bool {
        self.link
            .poll(&mut Context::from_waker(std::task::Waker::noop()));
        !self.link.done && !self.sender.is_closed()
    }

    /// Whether an idle connection is still open: the server may have
    /// closed it meanwhile, which the runtime has not seen (it runs only
    /// during requests). An idle connection has nothing to read: a FIN
    /// (0), a TLS alert or an HTTP 408 (bytes) means it is done.
    fn still_open(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: `fd` is this connection's socket, open while it lives;
        // MSG_PEEK leaves whatever is there for hyper.
        let n = unsafe {
            libc::recv(
                self.fd,
                (&raw mut byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }
}

impl Http {
    /// Runs `f` to completion in the calling thread.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// An idle connection to `origin` that is still open, if any.
    pub fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|i| now.duration_since(i.since) < IDLE);
        while let Some(at) = idle.iter().rposition(|i| i.origin == *origin) {
            let mut conn = idle.swap_remove(at).conn;
            // A connection the server closed while idle is found here.
            if conn.still_open() && conn.settle() {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `origin`, if it can be reused.
    pub fn checkin(&self, origin: &Origin, mut conn: Conn) {
        if !conn.settle() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.iter().filter(|i| i.origin == *origin).count() >= IDLE_PER_HOST {
            return;
        }
        idle.push(Idle {
            origin: origin.clone(),
            conn,
            since: Instant::now(),
        });
    }

    /// A new connection to `origin`: resolve, connect, TLS, within
    /// `connect_timeout`.
    pub async fn connect(&self, origin: &Origin) -> std::result::Result<Conn, ConnectError> {
        match tokio::time::timeout(self.options.connect_timeout, self.open(origin)).await {
            Ok(conn) => conn,
            Err(_) => Err(ConnectError {
                timed_out: true,
                cause: format!(
                    "no connection within the {} s connect_timeout",
                    self.options.connect_timeout.as_secs_f64()
                ),
            }),
        }
    }

    async fn open(&self, origin: &Origin) -> std::result::Result<Conn, ConnectError> {
        let fail = |cause: String| ConnectError {
            timed_out: false,
            cause,
        };
        let addrs: Vec<std::net::SocketAddr> = (origin.host.as_str(), origin.port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve {}: {e}", origin.host)))?
            .collect();
        let mut last = format!("{} resolves to no address", origin.host);
        let mut tcp = None;
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        let tcp = tcp.ok_or_else(|| fail(last))?;
        let _ = tcp.set_nodelay(true);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
        let io: Box<dyn Io> = match (&self.tls, origin.https) {
            (Some(tls), true) => {
                let name =
                    rustls::pki_types::ServerName::try_from(origin.host.clone()).map_err(|e| {
                        fail(format!("`{}` is not a TLS server name: {e}", origin.host))
                    })?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| fail(innermost(&e)))?,
                )
            }
            (None, true) => return Err(fail("TLS is off (insecure_http)".into())),
            (_, false) => Box::new(tcp),
        };
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| fail(innermost(&e)))?;
        Ok(Conn {
            sender,
            link: Link {
                driver: Box::pin(conn),
                done: false,
            },
            fd,
            reused: false,
        })
    }
}

/// The innermost cause of an error: what an admin needs to read.
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    cause
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("cannot create the HTTP client's runtime: {e}"),
            )
        })?;
    let tls = if options.tls {
        Some(tokio_rustls::TlsConnector::from(tls_config(
            options.ca_file.as_deref(),
        )?))
    } else {
        if let Some(path) = &options.ca_file {
            // Not used over plain http, but a wrong one is still reported.
            ca_bundle(path)?;
        }
        None
    };
    Ok(Http {
        runtime,
        options: options.clone(),
        tls,
        idle: Mutex::new(Vec::new()),
    })
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
