//! Hosts and the process-wide HTTP client.
//!
//! The client is made lazily, inside a request, and remembered with the pid
//! that made it: php-fpm forks its workers after module start-up, and a
//! reqwest blocking client inherited across fork hangs (its runtime thread
//! did not survive the fork). Kept per process, its keep-alive connections
//! to amoCRM survive from one PHP request to the next.

use crate::error::{Error, ErrorKind, Result};
use once_cell::sync::Lazy;
use reqwest::blocking::Client;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Checks that `host_port` is a bare host name or IP, optionally with a port,
/// and nothing else: no scheme, path, user info, query or spaces. It comes
/// from the OAuth callback's `referer`, which anyone can forge.
pub fn check_host_syntax(host_port: &str) -> std::result::Result<(), String> {
    if host_port.is_empty() {
        return Err("is empty".into());
    }
    if host_port.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let (host, port) = split_host_port(host_port);
    if let Some(p) = port {
        if p.parse::<u16>().map(|n| n == 0).unwrap_or(true) {
            return Err(format!("`{host_port}` has an invalid port"));
        }
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    if !labels_ok {
        return Err(format!(
            "`{}` is not a host name",
            crate::error::excerpt(host_port.as_bytes(), 80)
        ));
    }
    Ok(())
}

/// Splits `host[:port]` and `[v6]:port`; the host comes back lower case
/// without brackets.
pub fn split_host_port(host_port: &str) -> (String, Option<&str>) {
    if let Some(rest) = host_port.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h.to_ascii_lowercase(), tail.strip_prefix(':'));
        }
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_ascii_lowercase(), Some(p)),
        _ => (host_port.to_ascii_lowercase(), None),
    }
}

/// True when the host (port ignored) equals an allowed suffix or ends with
/// `.suffix`: whole labels only, so `evilamocrm.ru` does not match `amocrm.ru`.
pub fn host_allowed(host_port: &str, allowed: &[String]) -> bool {
    let (host, _) = split_host_port(host_port);
    let host = host.trim_end_matches('.');
    allowed.iter().any(|s| {
        host == s
            || host
                .strip_suffix(s.as_str())
                .is_some_and(|p| p.ends_with('.'))
    })
}

pub fn is_loopback(host_port: &str) -> bool {
    let (host, _) = split_host_port(host_port);
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// `https://host`, or `http://host` when `insecure_http` is on and the host is
/// loopback. Plain http to anything else is refused: the token endpoint's
/// body carries the client secret.
pub fn origin(host_port: &str, insecure_http: bool) -> Result<String> {
    check_host_syntax(host_port).map_err(|why| Error::config("base_domain", why))?;
    if insecure_http {
        if !is_loopback(host_port) {
            return Err(Error::config(
                "insecure_http",
                format!("plain http is allowed only to loopback hosts, not `{host_port}`"),
            ));
        }
        Ok(format!("http://{host_port}"))
    } else {
        Ok(format!("https://{host_port}"))
    }
}

struct PerProcess {
    pid: u32,
    timeouts: (Duration, Duration),
    client: Client,
}

static CLIENT: Lazy<Mutex<Option<PerProcess>>> = Lazy::new(|| Mutex::new(None));

/// The process's HTTP client, made on first use in this pid.
pub fn client(connect_timeout: Duration, timeout: Duration) -> Result<Client> {
    let pid = std::process::id();
    let mut slot = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = slot.as_ref() {
        if existing.pid == pid && existing.timeouts == (connect_timeout, timeout) {
            return Ok(existing.client.clone());
        }
    }
    if let Some(inherited) = slot.take() {
        if inherited.pid != pid {
            // Dropping a client inherited across fork joins a thread that is
            // not there and hangs: leak it instead.
            std::mem::forget(inherited);
        }
    }
    let client = Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(55))
        .pool_max_idle_per_host(4)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("amocrm-php-ext/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("cannot create the HTTP client: {e}"),
            )
        })?;
    *slot = Some(PerProcess {
        pid,
        timeouts: (connect_timeout, timeout),
        client: client.clone(),
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["amocrm.ru".into(), "kommo.com".into(), "localhost".into()]
    }

    #[test]
    fn suffixes_match_whole_labels_only() {
        let a = allowed();
        assert!(host_allowed("example.amocrm.ru", &a));
        assert!(host_allowed("amocrm.ru", &a));
        assert!(host_allowed("Example.AMOCRM.ru:443", &a));
        assert!(host_allowed("localhost:18080", &a));
        assert!(!host_allowed("evilamocrm.ru", &a));
        assert!(!host_allowed("amocrm.ru.evil.com", &a));
        assert!(!host_allowed("example.amocrm.ru.evil.com:443", &a));
        assert!(!host_allowed("127.0.0.2:8080", &a));
    }

    #[test]
    fn host_syntax_refuses_urls_and_userinfo() {
        assert!(check_host_syntax("example.amocrm.ru").is_ok());
        assert!(check_host_syntax("localhost:18080").is_ok());
        assert!(check_host_syntax("[::1]:80").is_ok());
        for bad in [
            "",
            "evil.com/x.amocrm.ru",
            "user@example.amocrm.ru",
            "example.amocrm.ru:99999",
            "example.amocrm.ru:0",
            "http://example.amocrm.ru",
            "exa mple.amocrm.ru",
            "example.amocrm.ru?x=1",
            "-bad.amocrm.ru",
        ] {
            assert!(check_host_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert_eq!(
            origin("localhost:18080", true).unwrap(),
            "http://localhost:18080"
        );
        assert_eq!(origin("127.0.0.1:1", true).unwrap(), "http://127.0.0.1:1");
        assert!(origin("example.amocrm.ru", true).is_err());
        assert_eq!(
            origin("example.amocrm.ru", false).unwrap(),
            "https://example.amocrm.ru"
        );
    }
}
