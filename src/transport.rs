//! One HTTP exchange with amoCRM over the process-wide client, and the
//! mapping of its answer to JSON or to an [`Error`].

use crate::error::{excerpt, Error, ErrorKind, RequestInfo, Result};
use crate::net::Http;
use crate::secret::Secret;
use reqwest::Method;
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

/// Sends `req` and reads the answer, in the calling thread.
pub fn try_send(http: &Http, req: &Request<'_>) -> std::result::Result<Response, SendError> {
    http.block_on(exchange(&http.client, req))
}

async fn exchange(
    client: &reqwest::Client,
    req: &Request<'_>,
) -> std::result::Result<Response, SendError> {
    let mut info = RequestInfo {
        method: req.method.to_string(),
        url: strip_query(&req.url),
        status: 0,
        request_id: None,
    };
    let mut builder = client
        .request(req.method.clone(), &req.url)
        .header("Accept", "application/json");
    if let Some(token) = req.bearer {
        builder = builder.bearer_auth(token.expose());
    }
    if let Some(user) = req.context_user {
        builder = builder.header("X-Context-User-ID", user.to_string());
    }
    if let Some(body) = req.json {
        builder = builder
            .header("Content-Type", "application/json")
            .body(body.to_vec());
    }
    let mut resp = builder.send().await.map_err(|e| {
        let err = transport_error(&e, &info);
        if e.is_connect() {
            SendError::NotSent(err)
        } else {
            SendError::MaybeSent(err)
        }
    })?;
    info.status = resp.status().as_u16();
    info.request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let oversize = |info: RequestInfo| Response {
        status: info.status,
        body: Vec::new(),
        oversize: true,
        info,
    };
    if resp.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES) {
        return Ok(oversize(info));
    }
    let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| SendError::MaybeSent(read_error(&e, &info)))?
    {
        if (body.len() + chunk.len()) as u64 > MAX_ANSWER_BYTES {
            return Ok(oversize(info));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status: info.status,
        body,
        oversize: false,
        info,
    })
}

fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

fn transport_error(e: &reqwest::Error, info: &RequestInfo) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the answer"
    } else {
        "the request failed"
    };
    failed(e, what, info)
}

/// A body that broke off while being read.
fn read_error(e: &reqwest::Error, info: &RequestInfo) -> Error {
    let what = if e.is_timeout() {
        "timed out while reading the answer"
    } else {
        "the connection broke while reading the answer"
    };
    failed(e, what, info)
}

/// The error for an exchange that failed: what happened, and the innermost
/// cause. (reqwest's own message names the URL with its query; the cause
/// is what an admin needs.)
fn failed(e: &reqwest::Error, what: &str, info: &RequestInfo) -> Error {
    let mut cause = None;
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        cause = Some(s.to_string());
        src = s.source();
    }
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
        reqwest::StatusCode::from_u16(resp.status)
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
