//! The one error type the client hands to its callers. Its [`ErrorKind`] is
//! what the PHP binding maps, in one place, to the `AmoException` family.

use serde_json::Value;
use std::fmt;

/// Which PHP exception class an [`Error`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No usable token: not authorized yet, refresh token refused, 401 twice.
    Auth,
    /// 400 with `validation-errors`.
    Validation,
    /// 429, or the 403 page amoCRM shows while the account is blocked.
    RateLimit,
    /// Connect, TLS, timeout, connection dropped.
    Transport,
    /// A configuration key or an argument that names a host is wrong.
    Config,
    /// The token file or its lock cannot be read or written.
    Storage,
    /// Any other non-2xx answer, or an answer that cannot be understood.
    Api,
}

impl ErrorKind {
    pub fn class_name(self) -> &'static str {
        match self {
            ErrorKind::Auth => "AmoAuthException",
            ErrorKind::Validation => "AmoValidationException",
            ErrorKind::RateLimit => "AmoRateLimitException",
            ErrorKind::Transport => "AmoTransportException",
            ErrorKind::Config => "AmoConfigException",
            ErrorKind::Storage => "AmoStorageException",
            ErrorKind::Api => "AmoApiException",
        }
    }
}

/// What was sent and what came back, for `getLastRequestInfo()`. Never holds
/// a token or the client secret: the URL is built without credentials and the
/// query string of the token endpoint carries none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub request_id: Option<String>,
}

/// A client error. Boxed, so that `Result`s stay one pointer wide on the
/// hot path; its fields are reached through `Deref`.
#[derive(Debug, Clone)]
pub struct Error(Box<ErrorData>);

#[derive(Debug, Clone)]
pub struct ErrorData {
    pub kind: ErrorKind,
    /// The exception message: says what happened and, where there is one, what to do.
    pub message: String,
    /// amoCRM's `title`, or a short label of ours.
    pub title: String,
    /// amoCRM's `detail`/`hint`, or an excerpt of a body that was not JSON.
    pub description: String,
    /// HTTP status, or 0 when no answer came.
    pub status: u16,
    /// amoCRM's `validation-errors` list, when it sent one.
    pub validation_errors: Option<Value>,
    pub request: Option<RequestInfo>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(ErrorData {
            kind,
            message: message.into(),
            title: String::new(),
            description: String::new(),
            status: 0,
            validation_errors: None,
            request: None,
        }))
    }

    pub fn config(key: &str, problem: impl fmt::Display) -> Self {
        let mut e = Error::new(
            ErrorKind::Config,
            format!("amocrm config `{key}`: {problem}"),
        );
        e.title = "Invalid configuration".into();
        e
    }

    /// A call's argument (an id, a path, a query, an imported pair, the
    /// callback's referer) is invalid: the caller's mistake, not the
    /// integration's configuration. Same class, another title, so that a
    /// gateway can answer 400 for one and keep the other to its log.
    pub fn argument(name: &str, problem: impl fmt::Display) -> Self {
        let mut e = Error::new(
            ErrorKind::Config,
            format!("amocrm argument `{name}`: {problem}"),
        );
        e.title = "Invalid argument".into();
        e
    }

    pub fn auth(message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::Auth, message);
        e.title = "Unauthorized".into();
        e
    }

    pub fn storage(message: impl Into<String>) -> Self {
        let mut e = Error::new(ErrorKind::Storage, message);
        e.title = "Token storage error".into();
        e
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Rewrites the message with what the caller knows: `|m| format!("{m}; …")`.
    pub fn context(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    pub fn with_request(mut self, request: RequestInfo) -> Self {
        self.status = request.status;
        self.request = Some(request);
        self
    }
}

impl std::ops::Deref for Error {
    type Target = ErrorData;
    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut ErrorData {
        &mut self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// At most `max` characters of a body, on one line, for error descriptions:
/// whitespace and control characters (NUL, ESC, …) become single spaces.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_flattens_and_cuts() {
        assert_eq!(
            excerpt(b"<html>\n  <b>429</b>\n</html>", 100),
            "<html> <b>429</b> </html>"
        );
        assert_eq!(excerpt("ааааа".as_bytes(), 3), "ааа…");
        // Found by fuzzing (fuzz/corpus/amo_answer/regression-*): control
        // characters of a body went into messages, and so into logs.
        assert_eq!(excerpt(b"a\0b\x1b[31m\r\nc", 100), "a b [31m c");
    }
}
