//! A small HTTP/1.1 server side: request parsing (httparse; Content-Length
//! and chunked bodies) and response serialization.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 100;

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query string, e.g. `/api/v4/leads`.
    pub path: String,
    /// Raw query string without `?` (may be empty).
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Lowercased MIME type of the body without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        crate::util::form_pairs(self.query.as_bytes())
    }

    /// Whether the connection may stay open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self
            .header("connection")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        let has = |t: &str| conn.split(',').any(|x| x.trim() == t);
        if self.minor_version == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }

    pub fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self
                .header("expect")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after sending.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            close: false,
        }
    }

    /// A JSON body with the given content type.
    pub fn json(status: u16, content_type: &str, v: &Value) -> Response {
        let body = serde_json::to_vec(v).unwrap_or_default();
        Response::new(status, content_type, body)
    }

    /// No body and no Content-Type (204, 302, ...).
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/html; charset=UTF-8", body.into())
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.into(), v.into()));
        self
    }

    /// Status line and headers. 1xx/204/304 carry no Content-Length (as nginx
    /// sends them); every other response does.
    pub fn head_bytes(&self, keep_alive: bool, date: &str) -> Vec<u8> {
        let mut h = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        h.push_str("Server: nginx\r\n");
        h.push_str(&format!("Date: {date}\r\n"));
        for (k, v) in &self.headers {
            // Never let a header value break the framing.
            let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        if !no_body_status(self.status) {
            h.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        h.push_str(if keep_alive {
            "Connection: keep-alive\r\n"
        } else {
            "Connection: close\r\n"
        });
        h.push_str("\r\n");
        h.into_bytes()
    }
}

pub fn no_body_status(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection cleanly between requests.
    Closed,
    /// Read timed out (idle connection).
    Timeout,
    /// Other I/O error (reset, shutdown...).
    Io,
    /// Malformed request; answer 400 (or the given status) and close.
    Bad(u16, &'static str),
}

/// One server-side connection with its read buffer (kept across requests,
/// so pipelined requests work).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(8192),
        }
    }

    fn fill(&mut self) -> Result<usize, ReadError> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Err(ReadError::Timeout)
                }
                Err(_) => return Err(ReadError::Io),
            }
        }
    }

    /// Read and parse the next request head. The body is left unread.
    pub fn read_head(&mut self) -> Result<Request, ReadError> {
        loop {
            if !self.buf.is_empty() {
                if let Some(req) = self.try_parse_head()? {
                    return Ok(req);
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(ReadError::Bad(431, "request head too large"));
                }
            }
            let had = self.buf.len();
            if self.fill()? == 0 {
                return Err(
                    if had == 0 || self.buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        ReadError::Closed
                    } else {
                        ReadError::Bad(400, "connection closed inside the request head")
                    },
                );
            }
        }
    }

    fn try_parse_head(&mut self) -> Result<Option<Request>, ReadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let n = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
                return Err(ReadError::Bad(431, "request head too large"))
            }
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadError::Bad(431, "too many headers"))
            }
            Err(_) => return Err(ReadError::Bad(400, "malformed request head")),
        };
        let method = parsed.method.unwrap_or("").to_string();
        let target = parsed.path.unwrap_or("").to_string();
        let minor_version = parsed.version.unwrap_or(1);
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect();
        self.buf.drain(..n);

        let (path, query) =
            split_target(&target).ok_or(ReadError::Bad(400, "bad request target"))?;
        let framing = framing(&headers)?;
        Ok(Some(Request {
            method,
            path,
            query,
            minor_version,
            headers,
            framing,
            body: Vec::new(),
        }))
    }

    /// Read the body announced by `req.framing` into `req.body`.
    pub fn read_body(&mut self, req: &mut Request) -> Result<(), ReadError> {
        match req.framing {
            Framing::Length(n) => {
                self.ensure(n)?;
                req.body = self.buf.drain(..n).collect();
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line = self.read_line()?;
                    let size_str = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size_str, 16)
                        .map_err(|_| ReadError::Bad(400, "bad chunk size"))?;
                    if size == 0 {
                        // Trailers, up to the empty line.
                        loop {
                            if self.read_line()?.is_empty() {
                                break;
                            }
                        }
                        break;
                    }
                    if body.len() + size > MAX_BODY {
                        return Err(ReadError::Bad(413, "body too large"));
                    }
                    self.ensure(size)?;
                    body.extend(self.buf.drain(..size));
                    if !self.read_line()?.is_empty() {
                        return Err(ReadError::Bad(400, "chunk not followed by CRLF"));
                    }
                }
                req.body = body;
            }
        }
        Ok(())
    }

    fn ensure(&mut self, n: usize) -> Result<(), ReadError> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(ReadError::Bad(400, "connection closed inside the body"));
            }
        }
        Ok(())
    }

    /// One line ending in LF (CR before it dropped), as text.
    fn read_line(&mut self) -> Result<String, ReadError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > 8192 {
                return Err(ReadError::Bad(400, "line too long"));
            }
            if self.fill()? == 0 {
                return Err(ReadError::Bad(400, "connection closed inside a chunk"));
            }
        }
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)?;
        self.stream.flush()
    }
}

/// Split a request target (origin-form or absolute-form) into path and query.
fn split_target(target: &str) -> Option<(String, String)> {
    let rest = if let Some(r) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match r.find('/') {
            Some(i) => &r[i..],
            None => "/",
        }
    } else if target.starts_with('/') {
        target
    } else if target == "*" {
        "*"
    } else {
        return None;
    };
    let rest = rest.split('#').next().unwrap_or("");
    Some(match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (rest.to_string(), String::new()),
    })
}

fn framing(headers: &[(String, String)]) -> Result<Framing, ReadError> {
    let te: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_str())
        .collect();
    if !te.is_empty() {
        let last = te
            .join(",")
            .rsplit(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        return if last == "chunked" {
            Ok(Framing::Chunked)
        } else {
            Err(ReadError::Bad(400, "unsupported transfer-encoding"))
        };
    }
    let mut len: Option<usize> = None;
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReadError::Bad(400, "bad content-length"));
            }
            let n: usize = part
                .parse()
                .map_err(|_| ReadError::Bad(413, "body too large"))?;
            if len.is_some_and(|l| l != n) {
                return Err(ReadError::Bad(400, "conflicting content-length"));
            }
            len = Some(n);
        }
    }
    let n = len.unwrap_or(0);
    if n > MAX_BODY {
        return Err(ReadError::Bad(413, "body too large"));
    }
    Ok(Framing::Length(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("/a/b?x=1&y=2"),
            Some(("/a/b".into(), "x=1&y=2".into()))
        );
        assert_eq!(
            split_target("http://h:1/p?q"),
            Some(("/p".into(), "q".into()))
        );
        assert_eq!(split_target("http://h"), Some(("/".into(), "".into())));
        assert_eq!(split_target("garbage"), None);
    }

    #[test]
    fn framing_rules() {
        let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(framing(&[]).ok(), Some(Framing::Length(0)));
        assert_eq!(
            framing(&h("Content-Length", "12")).ok(),
            Some(Framing::Length(12))
        );
        assert_eq!(
            framing(&h("Transfer-Encoding", "chunked")).ok(),
            Some(Framing::Chunked)
        );
        assert!(framing(&h("Content-Length", "-1")).is_err());
        assert!(framing(&h("Content-Length", "1, 2")).is_err());
        assert!(framing(&h("Transfer-Encoding", "gzip")).is_err());
        assert!(framing(&h("Content-Length", "99999999999999999999999")).is_err());
    }
}
