//! One HTTP exchange with amoCRM over the process-wide client, and the
//! mapping of its answer to JSON or to an [`Error`].

use crate::error::{excerpt, Error, ErrorKind, RequestInfo, Result};
use crate::net::{self, Conn, Http, Origin};
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use serde_json::Value;

/// The largest answer read. amoCRM's largest page (250 entities with every
/// `with`) is a few MB; a larger answer is not amoCRM's and is not read.
pub const MAX_ANSWER_BYTES: u64 = 32 << 20;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The answer was larger than [`MAX_ANSWER_BYTES`]: `body` is empty.
    pub oversize: bool,
    pub info: RequestInfo,
}

/// What to send; `url` is full, including its query string.
pub struct Request<'a> {
    pub method: Method,
    pub url: String,
    pub bearer: Option<&'a Secret>,
    pub json: Option<&'a [u8]>,
    pub context_user: Option<i64>,
    /// `X-Refresh-Token`: only the subdomain lookup sends it.
    pub refresh_token: Option<&'a Secret>,
}

/// A failed exchange, told apart by whether the request may have reached amoCRM.
#[derive(Debug)]
pub enum SendError {
    /// Failed while connecting (DNS, TCP, TLS): amoCRM never saw it; any
    /// method may be retried.
    NotSent(Error),
    /// Failed after the request could have been written: amoCRM may have
    /// acted on it, so only a read may be sent again.
    MaybeSent(Error),
}

impl SendError {
    pub fn into_error(self) -> Error {
        match self {
            SendError::NotSent(e) | SendError::MaybeSent(e) => e,
        }
    }
}

pub fn send(http: &Http, req: &Request<'_>) -> Result<Response> {
    try_send(http, req).map_err(SendError::into_error)
}

/// Sends `req` and reads the answer, in the calling thread, within the
/// client's `timeout` (connecting within `connect_timeout`).
pub fn try_send(http: &Http, req: &Request<'_>) -> std::result::Result<Response, SendError> {
    try_send_typed(http, req, "application/json")
}

/// [`try_send`] with `req.json` sent as raw bytes of `content_type` (a file
/// part to amoCRM's drive host) instead of JSON.
pub fn try_send_typed(
    http: &Http,
    req: &Request<'_>,
    content_type: &str,
) -> std::result::Result<Response, SendError> {
    let info = RequestInfo {
        method: req.method.to_string(),
        url: strip_query(&req.url),
        status: 0,
        request_id: None,
    };
    let Some((origin, target)) = split_url(&req.url) else {
        let what = "the request failed (not an absolute http(s) URL)";
        return Err(SendError::NotSent(failed(what, None, &info)));
    };
    let timeout = http.options.timeout;
    let connected = std::cell::Cell::new(false);
    let work = exchange(
        http,
        &origin,
        target,
        req,
        content_type,
        info.clone(),
        &connected,
    );
    match http.block_on(async { tokio::time::timeout(timeout, work).await }) {
        Ok(done) => done,
        Err(_) => {
            let cause = format!(
                "no complete answer within the {} s timeout",
                timeout.as_secs_f64()
            );
            let err = failed("timed out", Some(cause), &info);
            // Once connected, the request may have been written.
            Err(if connected.get() {
                SendError::MaybeSent(err)
            } else {
                SendError::NotSent(err)
            })
        }
    }
}

/// `https://host:port/path?query` → the origin and `/path?query`.
fn split_url(url: &str) -> Option<(Origin, &str)> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let at = rest.find('/').unwrap_or(rest.len());
    let (authority, target) = rest.split_at(at);
    let authority: hyper::http::uri::Authority = authority.parse().ok()?;
    let origin = Origin {
        https,
        authority: authority.as_str().to_string(),
        host: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
    };
    Some((origin, if target.is_empty() { "/" } else { target }))
}

async fn exchange(
    http: &Http,
    origin: &Origin,
    target: &str,
    req: &Request<'_>,
    content_type: &str,
    mut info: RequestInfo,
    connected: &std::cell::Cell<bool>,
) -> std::result::Result<Response, SendError> {
    let mut conn = match http.checkout(origin) {
        Some(conn) => conn,
        None => connect(http, origin, &info).await?,
    };
    connected.set(true);
    // A reused connection the server closed meanwhile fails before the
    // request is written: send it again on a new one, once.
    let sent = match send_on(&mut conn, origin, target, req, content_type).await {
        Err(Unsent) if conn.reused => {
            conn = connect(http, origin, &info).await?;
            send_on(&mut conn, origin, target, req, content_type).await
        }
        other => other,
    };
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(Unsent) => {
            return Err(SendError::NotSent(failed(
                "could not connect",
                Some("the connection closed before the request was sent".into()),
                &info,
            )))
        }
        Err(Failed(e)) => {
            return Err(SendError::MaybeSent(failed(
                "the request failed",
                Some(net::innermost(&e)),
                &info,
            )))
        }
    };
    info.status = resp.status().as_u16();
    info.request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let length = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let oversize = |info: RequestInfo| Response {
        status: info.status,
        body: Vec::new(),
        oversize: true,
        info,
    };
    // An answer too large to read is not read: its connection is dropped.
    if length.is_some_and(|n| n > MAX_ANSWER_BYTES) {
        return Ok(oversize(info));
    }
    let mut body = Vec::with_capacity(length.unwrap_or(0).min(MAX_ANSWER_BYTES) as usize);
    loop {
        let frame = match conn.link.drive(resp.body_mut().frame()).await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let what = "the connection broke while reading the answer";
                return Err(SendError::MaybeSent(failed(
                    what,
                    Some(net::innermost(&e)),
                    &info,
                )));
            }
        };
        if let Ok(chunk) = frame.into_data() {
            if (body.len() + chunk.len()) as u64 > MAX_ANSWER_BYTES {
                return Ok(oversize(info));
            }
            body.extend_from_slice(&chunk);
        }
    }
    drop(resp);
    http.checkin(origin, conn);
    Ok(Response {
        status: info.status,
        body,
        oversize: false,
        info,
    })
}

async fn connect(
    http: &Http,
    origin: &Origin,
    info: &RequestInfo,
) -> std::result::Result<Conn, SendError> {
    http.connect(origin).await.map_err(|e| {
        let what = if e.timed_out {
            "timed out while connecting"
        } else {
            "could not connect"
        };
        SendError::NotSent(failed(what, Some(e.cause), info))
    })
}

/// Why a request got no answer on a connection.
enum SendFailure {
    /// It was not written: the connection was closed already.
    Unsent,
    /// It may have been written.
    Failed(hyper::Error),
}
use SendFailure::{Failed, Unsent};

/// Writes the request on `conn` and waits for the answer's head.
async fn send_on(
    conn: &mut Conn,
    origin: &Origin,
    target: &str,
    req: &Request<'_>,
    content_type: &str,
) -> std::result::Result<hyper::Response<hyper::body::Incoming>, SendFailure> {
    let mut builder = hyper::Request::builder()
        .method(req.method.clone())
        .uri(target)
        .header(hyper::header::HOST, origin.authority.as_str())
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(token) = req.bearer {
        builder = builder.header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        );
    }
    if let Some(user) = req.context_user {
        builder = builder.header("X-Context-User-ID", user);
    }
    if let Some(token) = req.refresh_token {
        builder = builder.header("X-Refresh-Token", token.expose());
    }
    let body = match req.json {
        Some(json) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
            Full::new(Bytes::copy_from_slice(json))
        }
        None => Full::new(Bytes::new()),
    };
    // The parts were checked before: a path, a host, a token of visible ASCII.
    let request = builder.body(body).map_err(|_| Unsent)?;
    let Conn { sender, link, .. } = conn;
    let sent = async move {
        if sender.ready().await.is_err() {
            return Err(Unsent);
        }
        sender.try_send_request(request).await.map_err(|mut e| {
            if e.take_message().is_some() {
                Unsent
            } else {
                Failed(e.into_error())
            }
        })
    };
    link.drive(sent).await
}

const USER_AGENT: &str = concat!("amocrm-php-ext/", env!("CARGO_PKG_VERSION"));

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// The error for an exchange that failed: what happened, and its cause.
fn failed(what: &str, cause: Option<String>, info: &RequestInfo) -> Error {
    let cause = cause.map(|c| format!(" ({c})")).unwrap_or_default();
    let mut err = Error::new(
        ErrorKind::Transport,
        format!("{} {}: {what}{cause}", info.method, info.url),
    )
    .with_title("Transport error")
    .with_description(what);
    err.request = Some(info.clone());
    err
}

/// Whether the answer's body looks like JSON (amoCRM's API answers and
/// problem documents do; its nginx pages are HTML).
pub fn is_json(resp: &Response) -> bool {
    resp.body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// The body as JSON, or `None` for an empty 204.
pub fn decode(resp: Response) -> Result<Option<Value>> {
    let Some(resp) = success(resp)? else {
        return Ok(None);
    };
    parse_json(&resp.body)
        .map(Some)
        .map_err(|e| not_json(&resp, &e))
}

/// A 2xx answer with a body to read, `None` for an empty 204, or the
/// error any other answer (or an empty 2xx body) is.
pub fn success(resp: Response) -> Result<Option<Response>> {
    if resp.oversize || !(200..300).contains(&resp.status) {
        return Err(api_error(resp));
    }
    if resp.status == 204 {
        return Ok(None);
    }
    if resp.body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::new(
            ErrorKind::Api,
            format!(
                "amoCRM answered {} with an empty body to {} {}",
                resp.status, resp.info.method, resp.info.url
            ),
        )
        .with_title("Empty answer")
        .with_request(resp.info));
    }
    Ok(Some(resp))
}

/// The error for a 2xx answer whose body is not JSON amoCRM would send.
pub fn not_json(resp: &Response, e: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Api,
        format!(
            "amoCRM's answer to {} {} is not JSON ({e})",
            resp.info.method, resp.info.url
        ),
    )
    .with_title("Response body is not JSON")
    .with_description(excerpt(&resp.body, 200))
    .with_request(resp.info.clone())
}

fn oversize_error(resp: Response) -> Error {
    let applied = if resp.info.method == "GET" {
        ""
    } else {
        "; amoCRM may have acted on the request"
    };
    Error::new(
        ErrorKind::Api,
        format!(
            "amoCRM's answer {} to {} {} is larger than {} MiB, not an answer amoCRM gives; it was not read{applied}",
            resp.status,
            resp.info.method,
            resp.info.url,
            MAX_ANSWER_BYTES >> 20
        ),
    )
    .with_title("Answer too large")
    .with_request(resp.info)
}

/// How deep an answer may nest: as deep as a request body may (the PHP
/// binding's limit), so that what the client sends it can also read.
pub const MAX_JSON_DEPTH: usize = 128;

/// An answer's JSON, nested at most [`MAX_JSON_DEPTH`] levels. serde_json's
/// own limit is one level less (127), so the depth is checked here first,
/// without recursion, and serde_json's check is turned off.
pub fn parse_json(bytes: &[u8]) -> serde_json::Result<Value> {
    use serde::de::Error as _;
    use serde::Deserialize as _;
    if nesting(bytes) > MAX_JSON_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "nested deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The deepest nesting of `[` and `{` outside strings: never less than the
/// parser's depth on the way to its first error.
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

/// Maps a non-2xx answer to the exception family.
pub fn api_error(resp: Response) -> Error {
    if resp.oversize {
        return oversize_error(resp);
    }
    let json: Option<Value> = serde_json::from_slice(&resp.body)
        .ok()
        .filter(Value::is_object);
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let title = field("title").unwrap_or_else(|| {
        hyper::StatusCode::from_u16(resp.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
            .to_string()
    });
    let detail = field("detail").or_else(|| field("hint"));
    let description = match (&json, &detail) {
        (_, Some(d)) => d.clone(),
        (Some(_), None) => String::new(),
        (None, None) => excerpt(&resp.body, 200),
    };
    let validation = json
        .as_ref()
        .and_then(|j| j.get("validation-errors"))
        .filter(|v| v.is_array())
        .cloned();
    let kind = match resp.status {
        401 => ErrorKind::Auth,
        400 if validation.is_some() => ErrorKind::Validation,
        429 => ErrorKind::RateLimit,
        // amoCRM's account block is an nginx HTML page; a JSON 403 is "no rights".
        403 if json.is_none() => ErrorKind::RateLimit,
        _ => ErrorKind::Api,
    };
    let what = match kind {
        ErrorKind::RateLimit if resp.status == 403 => {
            "amoCRM blocked the account for exceeding its request rate (403); wait for the block to lift or ask amoCRM support"
                .to_string()
        }
        ErrorKind::RateLimit => "amoCRM's rate limit was exceeded (429)".to_string(),
        // The message goes into logs: amoCRM's title and detail in it are
        // cut short and put on one line (the accessors keep them whole).
        _ => format!(
            "amoCRM answered {} {}",
            resp.status,
            excerpt(title.as_bytes(), 100)
        ),
    };
    let message = if description.is_empty() || kind == ErrorKind::RateLimit {
        format!("{what} to {} {}", resp.info.method, resp.info.url)
    } else {
        format!(
            "{what} to {} {}: {}",
            resp.info.method,
            resp.info.url,
            excerpt(description.as_bytes(), 300)
        )
    };
    let mut err = Error::new(kind, message)
        .with_title(title)
        .with_description(description)
        .with_request(resp.info);
    err.validation_errors = validation;
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read as _, Write as _};
    use std::time::Duration;

    /// A server that answers one request per connection and then closes it
    /// (as a server closes a kept connection after its idle timeout);
    /// returns its port and the request lines it read.
    fn one_answer_per_connection() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if h == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                log.lock().unwrap().push(line.trim().to_string());
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
                    .unwrap();
                std::thread::sleep(Duration::from_millis(50));
                // Closed while the client keeps the connection for later.
            }
        });
        (port, seen)
    }

    #[test]
    fn a_kept_connection_the_server_closed_is_replaced_and_a_post_is_sent_once() {
        let (port, seen) = one_answer_per_connection();
        let http = net::client(&net::ClientOptions {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            ca_file: None,
            tls: false,
        })
        .unwrap();
        let request = |method: Method, json: Option<&'static [u8]>| Request {
            method,
            url: format!("http://127.0.0.1:{port}/api/v4/leads"),
            bearer: None,
            json,
            context_user: None,
            refresh_token: None,
        };
        assert_eq!(
            send(&http, &request(Method::GET, None)).unwrap().status,
            200
        );
        std::thread::sleep(Duration::from_millis(200));
        let posted = send(&http, &request(Method::POST, Some(b"[{\"name\":\"x\"}]"))).unwrap();
        assert_eq!(posted.body, b"{\"ok\":true}");
        assert_eq!(
            *seen.lock().unwrap(),
            ["GET /api/v4/leads HTTP/1.1", "POST /api/v4/leads HTTP/1.1"]
        );
    }

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            body: body.as_bytes().to_vec(),
            oversize: false,
            info: RequestInfo {
                method: "GET".into(),
                url: "https://x.amocrm.ru/api/v4/leads".into(),
                status,
                request_id: None,
            },
        }
    }

    #[test]
    fn maps_statuses_to_kinds() {
        assert_eq!(decode(resp(204, "")).unwrap(), None);
        assert_eq!(decode(resp(200, "{\"a\":1}")).unwrap().unwrap()["a"], 1);
        let e = decode(resp(200, "")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Api);
        let e = decode(resp(200, "<html>oops")).unwrap_err();
        assert_eq!(e.description, "<html>oops");
        let v = r#"{"validation-errors":[{"request_id":"0","errors":[{"code":"InvalidType","path":"price","detail":"x"}]}],"title":"Bad Request","type":"https://httpstatus.es/400","status":400,"detail":"Request validation failed"}"#;
        let e = decode(resp(400, v)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert_eq!(e.title, "Bad Request");
        assert_eq!(
            e.validation_errors.as_ref().unwrap()[0]["errors"][0]["path"],
            "price"
        );
        assert_eq!(
            decode(resp(429, "<html>429 Too Many Requests</html>"))
                .unwrap_err()
                .kind,
            ErrorKind::RateLimit
        );
        assert_eq!(
            decode(resp(403, "<html>403 Forbidden</html>"))
                .unwrap_err()
                .kind,
            ErrorKind::RateLimit
        );
        assert_eq!(
            decode(resp(
                403,
                r#"{"title":"Forbidden","status":403,"detail":"no rights"}"#
            ))
            .unwrap_err()
            .kind,
            ErrorKind::Api
        );
        let e = decode(resp(502, "<html><body>502 Bad Gateway</body></html>")).unwrap_err();
        assert_eq!((e.kind, e.status), (ErrorKind::Api, 502));
        assert!(e.description.contains("502 Bad Gateway"));
    }

    /// Found by fuzzing (fuzz/corpus/php_answers, php_values): serde_json
    /// reads at most 127 levels, one less than a body may have, so a body
    /// the client had sent could not be read back; and its default float
    /// parsing was off by one bit for some numbers.
    #[test]
    fn answers_nest_as_deep_as_bodies_and_floats_are_exact() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let v = decode(resp(200, &nested(MAX_JSON_DEPTH))).unwrap().unwrap();
        assert_eq!(v.to_string(), nested(MAX_JSON_DEPTH));
        let e = decode(resp(200, &nested(MAX_JSON_DEPTH + 1))).unwrap_err();
        assert!(
            e.message.contains("nested deeper than 128 levels"),
            "{}",
            e.message
        );
        // Brackets inside strings do not count; a deep cut body is refused.
        let text = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(500), "{".repeat(500));
        assert!(decode(resp(200, &text)).unwrap().is_some());
        assert!(decode(resp(200, &"[".repeat(100_000))).is_err());
        // Rust's own parsing is correctly rounded.
        for text in [
            "0.0074110396799682825",
            "2.1379278219830422e+206",
            "2.2250738585072011e-308",
        ] {
            let v = decode(resp(200, &format!("[{text}]"))).unwrap().unwrap();
            let exact = text.parse::<f64>().unwrap();
            assert_eq!(v[0].as_f64().unwrap().to_bits(), exact.to_bits(), "{text}");
        }
    }

    /// Found by fuzzing (fuzz/corpus/php_answers/regression-number-beyond-
    /// float-in-dropped-member.json): `1e400` in a member that a later
    /// duplicate replaces. json_decode reads it as INF and then drops it;
    /// the answer is refused all the same, as any number beyond float range
    /// is. Numbers are read as PHP reads them (zend_strtod, correctly
    /// rounded; serde_json's `float_roundtrip`): a spelling PHP reads as a
    /// finite float, underflow and the edges of the range included, gives
    /// the same bits, and only one PHP reads as INF is refused.
    #[test]
    fn numbers_are_read_as_php_reads_them() {
        let tiny_times_huge = format!("0.{}1e330", "0".repeat(325));
        for (text, bits) in [
            ("1e-400", 0),
            ("-1e-400", 0x8000_0000_0000_0000),
            ("1e-999999999999999999", 0),
            ("0e999999999999999999", 0),
            ("123456789012345678901234567890e-400", 0),
            ("2.4703282292062327e-324", 0),
            ("2.4703282292062328e-324", 1),
            ("4.9406564584124654e-324", 1),
            ("2.2250738585072011e-308", 0x000f_ffff_ffff_ffff),
            ("1.7976931348623158e308", 0x7fef_ffff_ffff_ffff),
            (tiny_times_huge.as_str(), 10000f64.to_bits()),
        ] {
            let v = decode(resp(200, &format!("[{text}]"))).unwrap().unwrap();
            assert_eq!(v[0].as_f64().map(f64::to_bits), Some(bits), "{text}");
        }
        for text in [
            "[1.7976931348623159e308]",
            "[1e400]",
            "[-1e400]",
            r#"{"":[null,1e400],"":{"16":":}&_"}"#,
        ] {
            let e = decode(resp(200, text)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Api, "{text}");
            assert!(e.message.contains("number out of range"), "{}", e.message);
        }
    }

    /// Found by fuzzing (fuzz/corpus/amo_answer/regression-*): amoCRM's
    /// title and detail went into the message as sent, line breaks, escape
    /// sequences and megabytes included; the message goes into logs.
    #[test]
    fn the_message_is_one_bounded_line() {
        let long = "x".repeat(1 << 20);
        let body = format!(
            r#"{{"title":"Internal\r\nServer Error\u001b[31m","status":500,"detail":"line one\nline two\u0000{long}"}}"#
        );
        let e = decode(resp(500, &body)).unwrap_err();
        assert!(!e.message.chars().any(char::is_control), "{:?}", e.message);
        assert!(e.message.len() < 1000, "{} bytes", e.message.len());
        assert!(e.message.starts_with("amoCRM answered 500 Internal Server Error [31m to GET https://x.amocrm.ru/api/v4/leads: line one line two x"));
        // The accessors keep what amoCRM sent.
        assert_eq!(e.title, "Internal\r\nServer Error\u{1b}[31m");
        assert_eq!(
            e.description.len(),
            "line one\nline two\0".len() + long.len()
        );
    }
}
