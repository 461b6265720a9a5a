//! Accept loop, per-connection request loop, fault injection and routing.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::http::{no_body_status, Conn, ReadError, Request, Response};
use crate::state::FaultAction;
use crate::util::http_date;
use crate::{api, control, oauth, Shared};

/// Idle keep-alive connections (and stalled reads/writes) are closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(s) => {
                shared.lock().stats.connections += 1;
                let sh = Arc::clone(&shared);
                let _ = std::thread::Builder::new()
                    .name("amocrm-emu-conn".into())
                    .spawn(move || serve_conn(sh, s));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // The listener is dropped here: the port is closed.
}

/// Removes the connection from the registry when its thread ends (even by panic).
struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

fn nginx_page(status: u16) -> Response {
    let title = format!("{} {}", status, crate::http::reason(status));
    Response::html(
        status,
        format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
}

/// A request to a host the account had before a rename: amoCRM's old
/// subdomain answers API calls 401 (or 404) and knows no token endpoint.
fn former_host(shared: &Shared, req: &Request) -> Option<Response> {
    let host = req.header("host")?.to_ascii_lowercase();
    let st = shared.lock();
    if !st.former_hosts.contains(&host) {
        return None;
    }
    let p = req.path.as_str();
    if p == "/oauth2/access_token" {
        Some(nginx_page(404))
    } else if is_api(p) && st.old_host_status == 401 {
        Some(api::unauthorized())
    } else if is_api(p) {
        Some(nginx_page(404))
    } else {
        None
    }
}

fn is_api(path: &str) -> bool {
    path == "/api/v4" || path.starts_with("/api/v4/")
}

fn is_control(path: &str) -> bool {
    path == "/_emulator" || path.starts_with("/_emulator/")
}

/// Route a request to its handler.
pub fn dispatch(shared: &Shared, req: &Request) -> Response {
    let p = req.path.as_str();
    if let Some(answer) = former_host(shared, req) {
        return answer;
    }
    if p == "/oauth2/account/current/subdomain" {
        oauth::current_subdomain(shared, req)
    } else if p == "/oauth2/exchange_api_key" {
        oauth::exchange_api_key(shared, req)
    } else if p == "/oauth2/access_token" {
        oauth::token_endpoint(shared, req)
    } else if p == "/oauth" || p == "/oauth/" {
        oauth::consent_page(shared, req)
    } else if p == "/oauth/decision" {
        oauth::decision(shared, req)
    } else if is_api(p) {
        api::handle(shared, req)
    } else if is_control(p) {
        control::handle(shared, req)
    } else {
        nginx_page(404)
    }
}

fn serve_conn(shared: Arc<Shared>, stream: TcpStream) {
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    if let Ok(clone) = stream.try_clone() {
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, clone);
    }
    let _guard = ConnGuard {
        shared: Arc::clone(&shared),
        id,
    };
    if shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    // The drive host (files) listens on a port of its own.
    let drive = stream
        .local_addr()
        .is_ok_and(|a| a.port() == shared.drive_port);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let mut conn = Conn::new(stream);
    loop {
        let mut req = match conn.read_head() {
            Ok(r) => r,
            Err(ReadError::Bad(status, why)) => {
                let page = nginx_page(status).with_header("X-Emulator-Error", why);
                send(&shared, &mut conn, &page, false, false);
                break;
            }
            Err(_) => break,
        };
        {
            let mut st = shared.lock();
            st.stats.requests += 1;
            if is_api(&req.path) {
                st.stats
                    .api_arrival(&req.method, crate::util::real_now_us());
            }
        }
        let fault = if is_control(&req.path) {
            None
        } else {
            shared.lock().take_fault(&req.method, &req.path)
        };
        if matches!(fault, Some(FaultAction::Reset)) {
            // Close with the body (if any) unread, and with a linger of 0:
            // the peer gets an RST, not an orderly end.
            reset(&conn.stream);
            return;
        }
        let wants_continue =
            req.expects_continue() && req.framing != crate::http::Framing::Length(0);
        if wants_continue && conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            break;
        }
        match conn.read_body(&mut req) {
            Ok(()) => {}
            Err(ReadError::Bad(status, why)) => {
                let page = nginx_page(status).with_header("X-Emulator-Error", why);
                send(&shared, &mut conn, &page, false, false);
                break;
            }
            Err(_) => break,
        }
        let reset_after_half = matches!(fault, Some(FaultAction::ResetBody));
        let truncate = reset_after_half || matches!(fault, Some(FaultAction::Truncate));
        let resp = match fault {
            Some(FaultAction::Drop) => break,
            Some(FaultAction::Echo) => Response::new(200, "application/json", req.body.clone()),
            Some(FaultAction::Respond {
                status,
                body,
                content_type,
                headers,
            }) => {
                let mut r = Response::new(status, &content_type, body);
                r.headers.extend(headers);
                r
            }
            Some(FaultAction::Delay(ms)) => {
                std::thread::sleep(Duration::from_millis(ms));
                handle(&shared, &req)
            }
            _ if drive => {
                match catch_unwind(AssertUnwindSafe(|| crate::drive::serve(&shared, &req))) {
                    Ok(Some(r)) => r,
                    Ok(None) => {
                        // Applied, then the connection drops unanswered.
                        reset(&conn.stream);
                        return;
                    }
                    Err(_) => nginx_page(500),
                }
            }
            _ => handle(&shared, &req),
        };
        let keep_alive = req.keep_alive() && !resp.close && !shared.stopping.load(Ordering::SeqCst);
        let head_only = req.method == "HEAD";
        if !send(
            &shared,
            &mut conn,
            &resp,
            keep_alive && !truncate,
            head_only || truncate,
        ) {
            break;
        }
        if truncate {
            let half = resp.body.len() / 2;
            if !head_only && !no_body_status(resp.status) {
                let _ = conn.write_all(&resp.body[..half]);
            }
            if reset_after_half {
                reset(&conn.stream);
                return;
            }
            let _ = conn.stream.shutdown(Shutdown::Write);
            break;
        }
        if !keep_alive {
            let _ = conn.stream.shutdown(Shutdown::Write);
            break;
        }
    }
}

/// Makes the coming close an RST: with a linger of zero seconds the kernel
/// discards what is unsent and resets. The caller returns, and the last
/// descriptor of the connection closes.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Run the handler; a panic becomes a 500 instead of a dead connection.
fn handle(shared: &Shared, req: &Request) -> Response {
    match catch_unwind(AssertUnwindSafe(|| dispatch(shared, req))) {
        Ok(r) => r,
        Err(_) => nginx_page(500),
    }
}

/// Write a response. With `head_only` (truncate's first half or HEAD), only
/// the head is written. Returns false when the peer is gone.
fn send(
    shared: &Shared,
    conn: &mut Conn,
    resp: &Response,
    keep_alive: bool,
    head_only: bool,
) -> bool {
    let mut out = resp.head_bytes(keep_alive, &http_date(shared.now()));
    if !head_only && !no_body_status(resp.status) {
        out.extend_from_slice(&resp.body);
    }
    conn.write_all(&out).is_ok()
}
