//! Account hosts: the syntax of a host (it comes from the OAuth callback's
//! `referer`, which anyone can forge), the allow-list matched on whole
//! labels, and the origin a request goes to.

use crate::error::{Error, Result};
use std::net::IpAddr;

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

/// An account host: valid syntax, within the allow-list; the error says why.
pub fn check_account_host(host_port: &str, allowed: &[String]) -> std::result::Result<(), String> {
    check_host_syntax(host_port)?;
    if !host_allowed(host_port, allowed) {
        return Err(format!(
            "`{host_port}` is not within allowed_domains ({})",
            allowed.join(", ")
        ));
    }
    Ok(())
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
