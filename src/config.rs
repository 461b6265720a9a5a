//! Configuration: every key comes from `AmoClient::configure()`, else the
//! environment variable `AMOCRM_<KEY>`, else php.ini `amocrm.<key>`.

use crate::error::{Error, Result};
use crate::host;
use crate::secret::Secret;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One configuration key: its name, its default ("" = none) and whether its
/// value is a secret that is never shown.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub secret: bool,
}

const fn key(name: &'static str, default: &'static str) -> Key {
    Key {
        name,
        default,
        secret: false,
    }
}

const fn secret(name: &'static str) -> Key {
    Key {
        name,
        default: "",
        secret: true,
    }
}

/// Every key the extension knows, in the order `php --ri` shows them. The
/// php.ini entries (`amocrm.<name>`) and the environment variables
/// (`AMOCRM_<NAME>`) are derived from this table.
pub const KEYS: &[Key] = &[
    key("client_id", ""),
    secret("client_secret"),
    key("redirect_uri", ""),
    key("token_path", "/var/lib/amocrm/tokens.json"),
    key("allowed_domains", "amocrm.ru,amocrm.com,kommo.com"),
    key("insecure_http", "0"),
    key("refresh_margin", "600"),
    key("connect_timeout", "5"),
    key("timeout", "30"),
    secret("long_lived_token"),
    key("base_domain", ""),
    key("oauth_host", "www.amocrm.ru"),
    key("rate_limit", "7"),
    key("max_retries", "3"),
    key("retry_backoff_ms", "1000"),
    key("batch_size", "50"),
    key("ca_file", ""),
    key("keepalive_days", "30"),
    key("store", "file"),
    key("log_level", "info"),
];

/// The account a client is for when none is named.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Where a value came from, for `php --ri amocrm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Configure,
    /// `AMOCRM_<ACCOUNT>_<KEY>`: this account's own.
    AccountEnv,
    Env,
    Ini,
    Default,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Configure => "configure()",
            Source::AccountEnv => "env, the account's own",
            Source::Env => "env",
            Source::Ini => "php.ini",
            Source::Default => "default",
        }
    }

    /// Whether the value was given for this account alone (not shared by all).
    fn own(self) -> bool {
        matches!(self, Source::Configure | Source::AccountEnv)
    }
}

/// Where the shared state lives: the `store` key.
#[derive(Debug, Clone, PartialEq)]
pub enum Store {
    /// Files beside `token_path`: one host.
    File,
    /// Redis: any number of hosts.
    Redis(RedisTarget),
}

/// A parsed `redis://`, `rediss://`, `redis+unix://` or `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisTarget {
    /// `host:port` pairs: the server, or the sentinels.
    pub hosts: Vec<(String, u16)>,
    /// A unix socket instead of hosts.
    pub socket: Option<PathBuf>,
    pub tls: bool,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The name of the primary the sentinels watch.
    pub sentinel_master: Option<String>,
    /// Put before every key, e.g. `amocrm:` (the account and the part follow).
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
    pub token_path: PathBuf,
    /// Host suffixes, lower case, without leading dots.
    pub allowed_domains: Vec<String>,
    pub insecure_http: bool,
    pub refresh_margin: u64,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub long_lived_token: Option<Secret>,
    pub base_domain: Option<String>,
    pub oauth_host: String,
    /// API requests per second for all processes of the host together; 0 = off.
    pub rate_limit: u32,
    /// Retries after a 429, a request that never left, or a read that failed.
    pub max_retries: u32,
    /// The first retry's delay; it doubles each time, with jitter.
    pub retry_backoff_ms: u64,
    /// Items per add/update request (amoCRM takes at most 250, recommends 50).
    pub batch_size: usize,
    /// A PEM bundle of extra trusted CAs (a corporate TLS proxy, a private CA).
    pub ca_file: Option<PathBuf>,
    /// A pair older than this many days is refreshed by the next call (or
    /// `keepAlive()`), so that its refresh token never ages out; 0 = never.
    pub keepalive_days: u64,
    /// Where the pair, the lock, the rate-limit budget and the counters live.
    pub store: Store,
    /// The amoCRM account this configuration is for (`default` unless named).
    pub account: String,
    /// The lowest level of event written to the log; `None` = off.
    pub log_level: Option<crate::log::Level>,
    sources: Sources,
}

/// Every key's raw value and where it came from, before validation, for one
/// account. Two equal `Sources` resolve to the same configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Sources {
    pub account: String,
    raw: BTreeMap<&'static str, (Source, String)>,
}

/// Looks a raw value up in one source; `None` or an empty string means unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Resolves every key of the default account from the three sources
    /// and validates it.
    pub fn resolve(
        options: &BTreeMap<String, String>,
        env: Lookup<'_>,
        ini: Lookup<'_>,
    ) -> Result<Config> {
        Config::from_sources(Config::sources(DEFAULT_ACCOUNT, options, env, ini)?)
    }

    /// Each key's raw value for `account`: its `configure()` options, else
    /// `AMOCRM_<ACCOUNT>_<KEY>` (other accounts than `default`), else
    /// `AMOCRM_<KEY>`, else php.ini `amocrm.<key>`, else its default. All
    /// accounts share the unprefixed values, the integration's among them.
    pub fn sources(
        account: &str,
        options: &BTreeMap<String, String>,
        env: Lookup<'_>,
        ini: Lookup<'_>,
    ) -> Result<Sources> {
        check_account(account)?;
        check_keys(options)?;
        let prefix = (account != DEFAULT_ACCOUNT)
            .then(|| format!("AMOCRM_{}_", account.to_ascii_uppercase().replace('-', "_")));
        let mut raw = BTreeMap::new();
        for k in KEYS {
            let name = k.name.to_ascii_uppercase();
            let found = options
                .get(k.name)
                .map(|v| (Source::Configure, v.clone()))
                .or_else(|| {
                    let own = env(&format!("{}{name}", prefix.as_deref()?));
                    own.filter(|v| !v.is_empty())
                        .map(|v| (Source::AccountEnv, v))
                })
                .or_else(|| {
                    env(&format!("AMOCRM_{name}"))
                        .filter(|v| !v.is_empty())
                        .map(|v| (Source::Env, v))
                })
                .or_else(|| {
                    ini(&format!("amocrm.{}", k.name))
                        .filter(|v| !v.is_empty())
                        .map(|v| (Source::Ini, v))
                })
                .or_else(|| {
                    (!k.default.is_empty()).then(|| (Source::Default, k.default.to_string()))
                });
            if let Some((src, v)) = found {
                raw.insert(k.name, (src, v.trim().to_string()));
            }
        }
        Ok(Sources {
            account: account.to_string(),
            raw,
        })
    }

    /// Validates raw values into a configuration; an error names the key.
    pub fn from_sources(sources: Sources) -> Result<Config> {
        let Sources { account, mut raw } = sources;
        let get = |raw: &BTreeMap<&'static str, (Source, String)>, key: &str| {
            raw.get(key)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };

        let allowed_domains = parse_domains(&get(&raw, "allowed_domains").unwrap_or_default())?;
        let insecure_http = parse_bool(
            "insecure_http",
            &get(&raw, "insecure_http").unwrap_or_default(),
        )?;
        let number = |key: &str, min: u64, max: u64| {
            parse_number(key, &get(&raw, key).unwrap_or_default(), min, max)
        };
        let refresh_margin = number("refresh_margin", 0, 43_200)?;
        let connect_timeout = number("connect_timeout", 1, 300)?;
        let timeout = number("timeout", 1, 600)?;
        let rate_limit = number("rate_limit", 0, 100)? as u32;
        let max_retries = number("max_retries", 0, 10)? as u32;
        let retry_backoff_ms = number("retry_backoff_ms", 10, 60_000)?;
        let batch_size = number("batch_size", 1, 250)? as usize;
        // The refresh token dies after 90 days unused: renew well before.
        let keepalive_days = number("keepalive_days", 0, 80)?;

        let redirect_uri = get(&raw, "redirect_uri").unwrap_or_default();
        if !redirect_uri.is_empty() {
            match url::Url::parse(&redirect_uri) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => {
                    return Err(Error::config(
                        "redirect_uri",
                        "must be an absolute http(s) URL",
                    ))
                }
            }
        }

        let mut token_path = PathBuf::from(get(&raw, "token_path").unwrap_or_default());
        if !token_path.is_absolute() {
            return Err(Error::config("token_path", "must be an absolute path"));
        }
        let Some(file_name) = token_path.file_name().map(|n| n.to_owned()) else {
            return Err(Error::config(
                "token_path",
                "must name a file, not a folder",
            ));
        };
        // Another account sharing the default token_path gets a folder of
        // its own beside it: two accounts never share a pair or a lock.
        if account != DEFAULT_ACCOUNT && !raw.get("token_path").is_some_and(|(src, _)| src.own()) {
            token_path = token_path.with_file_name(&account).join(file_name);
            if let Some((_, v)) = raw.get_mut("token_path") {
                *v = token_path.display().to_string();
            }
        }
        let store = parse_store(&get(&raw, "store").unwrap_or_default())?;
        let log_level = crate::log::parse_threshold(&get(&raw, "log_level").unwrap_or_default())
            .map_err(|why| Error::config("log_level", why))?;

        let client_id = get(&raw, "client_id").unwrap_or_default();
        if client_id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Error::config(
                "client_id",
                "must not contain spaces or control characters",
            ));
        }

        let oauth_host = get(&raw, "oauth_host").unwrap_or_default();
        host::check_host_syntax(&oauth_host).map_err(|why| Error::config("oauth_host", why))?;
        let base_domain = get(&raw, "base_domain");
        if let Some(bd) = &base_domain {
            host::check_host_syntax(bd).map_err(|why| Error::config("base_domain", why))?;
            if !host::host_allowed(bd, &allowed_domains) {
                return Err(Error::config(
                    "base_domain",
                    format!("`{bd}` is not within allowed_domains"),
                ));
            }
        }
        let ca_file = get(&raw, "ca_file").map(PathBuf::from);
        if ca_file.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err(Error::config("ca_file", "must be an absolute path"));
        }
        let long_lived_token = get(&raw, "long_lived_token").map(Secret::new);
        let client_secret = Secret::new(get(&raw, "client_secret").unwrap_or_default());
        if long_lived_token.is_some() && base_domain.is_none() {
            return Err(Error::config(
                "base_domain",
                "is required with long_lived_token (the account host, e.g. example.amocrm.ru)",
            ));
        }

        // Keep where each value came from, but never a secret's value.
        for k in KEYS.iter().filter(|k| k.secret) {
            if let Some((_, v)) = raw.get_mut(k.name) {
                *v = "(set, hidden)".into();
            }
        }
        if let (Some((_, v)), Store::Redis(r)) = (raw.get_mut("store"), &store) {
            if r.password.is_some() {
                *v = "(a Redis URL with a password, hidden)".into();
            }
        }
        Ok(Config {
            client_id,
            client_secret,
            redirect_uri,
            token_path,
            allowed_domains,
            insecure_http,
            refresh_margin,
            connect_timeout: Duration::from_secs(connect_timeout),
            timeout: Duration::from_secs(timeout),
            long_lived_token,
            base_domain,
            oauth_host,
            rate_limit,
            max_retries,
            retry_backoff_ms,
            batch_size,
            ca_file,
            keepalive_days,
            store,
            account: account.clone(),
            log_level,
            sources: Sources { account, raw },
        })
    }

    /// `(key, shown value, source)` for every key; secrets are masked.
    pub fn describe(&self) -> Vec<(&'static str, String, &'static str)> {
        KEYS.iter()
            .map(|k| match self.sources.raw.get(k.name) {
                Some((src, v)) if !v.is_empty() => (k.name, v.clone(), src.label()),
                _ => (k.name, "(not set)".to_string(), "-"),
            })
            .collect()
    }

    /// The client id and secret, or the error naming the one that is missing.
    pub fn credentials(&self) -> Result<(&str, &Secret)> {
        if self.client_id.is_empty() {
            return Err(Error::config("client_id", "is not set"));
        }
        if self.client_secret.is_empty() {
            return Err(Error::config("client_secret", "is not set"));
        }
        if self.redirect_uri.is_empty() {
            return Err(Error::config("redirect_uri", "is not set"));
        }
        Ok((&self.client_id, &self.client_secret))
    }

    /// What the HTTP client is built from.
    pub fn client_options(&self) -> crate::net::ClientOptions {
        crate::net::ClientOptions {
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            ca_file: self.ca_file.clone(),
            tls: !self.insecure_http,
        }
    }

    /// The longest one request to amoCRM can take.
    pub fn request_deadline(&self) -> Duration {
        self.connect_timeout + self.timeout
    }

    /// How long a process waits for another one's refresh before giving up.
    pub fn lock_wait(&self) -> Duration {
        self.request_deadline() + Duration::from_secs(5)
    }
}

/// An account name: what `getInstance($account)` takes and what names its
/// `AMOCRM_<ACCOUNT>_*` variables, its token folder and its Redis keys.
pub fn check_account(account: &str) -> Result<()> {
    let ok = (1..=32).contains(&account.len())
        && account.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && account
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    // `AMOCRM_CONNECT_TIMEOUT` would be both account `connect`'s `timeout`
    // and everybody's `connect_timeout`: such names are refused.
    let prefix = format!("{}_", account.replace('-', "_"));
    if let Some(k) = KEYS.iter().find(|k| k.name.starts_with(&prefix)) {
        return Err(Error::argument(
            "account",
            format!(
                "`{account}` would make AMOCRM_{}* ambiguous with the key `{}`: choose another name",
                prefix.to_ascii_uppercase(),
                k.name
            ),
        ));
    }
    if ok {
        Ok(())
    } else {
        Err(Error::argument(
            "account",
            format!(
                "`{}` is not an account name: 1 to 32 lower-case letters, digits, _ and -, starting with a letter or digit",
                crate::error::excerpt(account.as_bytes(), 40)
            ),
        ))
    }
}

/// `file`, or a Redis URL: `redis://[[user]:password@]host[:port][/db]`,
/// `rediss://…` (TLS), `redis+unix:///path/to.sock[?db=N&password=P]`, or
/// `redis+sentinel://[[user]:password@]host:port[,host:port…]/primary[/db]`;
/// each may end in `?prefix=…` (default `amocrm:`).
pub fn parse_store(v: &str) -> Result<Store> {
    let fault = |why: &str| Error::config("store", why);
    if v.is_empty() || v == "file" {
        return Ok(Store::File);
    }
    let (scheme, rest) = v.split_once("://").ok_or_else(|| {
        fault("must be `file` or a redis://, rediss://, redis+unix:// or redis+sentinel:// URL")
    })?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut target = RedisTarget {
        hosts: Vec::new(),
        socket: None,
        tls: scheme == "rediss",
        db: 0,
        username: None,
        password: None,
        sentinel_master: None,
        prefix: "amocrm:".into(),
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = url::form_urlencoded::parse(v.as_bytes())
            .next()
            .map(|(a, b)| {
                if b.is_empty() {
                    a.into_owned()
                } else {
                    format!("{a}={b}")
                }
            })
            .unwrap_or_default();
        match k {
            "prefix" if !v.is_empty() && v.len() <= 64 && !v.chars().any(char::is_whitespace) => {
                target.prefix = v
            }
            "db" => {
                target.db = v
                    .parse()
                    .map_err(|_| fault("`db` must be a whole number"))?
            }
            "password" => target.password = Some(Secret::new(v)),
            _ => {
                return Err(fault(&format!(
                    "does not take `{k}` (prefix, db, password)"
                )))
            }
        }
    }
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) if scheme != "redis+unix" || !a.is_empty() => (Some(a), r),
        _ => (None, rest),
    };
    if let Some(auth) = auth {
        let (user, pass) = auth.split_once(':').unwrap_or(("", auth));
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        target.username = (!user.is_empty()).then(|| decode(user));
        target.password = (!pass.is_empty()).then(|| Secret::new(decode(pass)));
    }
    let hosts = |list: &str| -> Result<Vec<(String, u16)>> {
        list.split(',')
            .map(|h| {
                let (host, port) = match h.rsplit_once(':') {
                    Some((host, port)) => (
                        host,
                        port.parse::<u16>()
                            .map_err(|_| fault("a port must be a number"))?,
                    ),
                    None => (
                        h,
                        if scheme == "redis+sentinel" {
                            26379
                        } else {
                            6379
                        },
                    ),
                };
                host::check_host_syntax(host).map_err(|why| fault(&format!("host {why}")))?;
                Ok((host.to_ascii_lowercase(), port))
            })
            .collect()
    };
    match scheme {
        "redis" | "rediss" => {
            let (list, db) = rest.split_once('/').unwrap_or((rest, ""));
            target.hosts = hosts(list)?;
            if target.hosts.len() != 1 {
                return Err(fault("names one host (several: use redis+sentinel://)"));
            }
            if !db.is_empty() {
                target.db = db
                    .parse()
                    .map_err(|_| fault("the path must be a database number"))?;
            }
        }
        "redis+unix" => {
            let path = PathBuf::from(rest);
            if !path.is_absolute() {
                return Err(fault("redis+unix:// needs an absolute socket path, e.g. redis+unix:///run/redis/redis.sock"));
            }
            target.socket = Some(path);
        }
        "redis+sentinel" => {
            let mut parts = rest.splitn(3, '/');
            target.hosts = hosts(parts.next().unwrap_or_default())?;
            let master = parts.next().unwrap_or_default();
            if master.is_empty() {
                return Err(fault("redis+sentinel:// needs the primary's name: redis+sentinel://host:26379/mymaster"));
            }
            target.sentinel_master = Some(master.to_string());
            if let Some(db) = parts.next().filter(|d| !d.is_empty()) {
                target.db = db
                    .parse()
                    .map_err(|_| fault("the path must end in a database number"))?;
            }
        }
        other => {
            return Err(fault(&format!(
                "`{other}://` is not redis://, rediss://, redis+unix:// or redis+sentinel://"
            )))
        }
    }
    if !(0..=1024).contains(&target.db) {
        return Err(fault("the database number must be from 0 to 1024"));
    }
    Ok(Store::Redis(target))
}

/// Refuses keys the extension does not know, naming them.
pub fn check_keys(options: &BTreeMap<String, String>) -> Result<()> {
    for key in options.keys() {
        if !KEYS.iter().any(|k| k.name == key) {
            let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            return Err(Error::config(
                key,
                format!("unknown key; known keys: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" | "" => Ok(false),
        _ => Err(Error::config(key, format!("expected 0 or 1, got `{v}`"))),
    }
}

fn parse_number(key: &str, v: &str, min: u64, max: u64) -> Result<u64> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::config(
            key,
            format!("expected a whole number from {min} to {max}, got `{v}`"),
        )),
    }
}

fn parse_domains(v: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in v.split(',') {
        let d = part.trim().trim_start_matches('.').to_ascii_lowercase();
        if d.is_empty() {
            continue;
        }
        if !d
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(Error::config(
                "allowed_domains",
                format!("`{d}` is not a host name suffix"),
            ));
        }
        out.push(d);
    }
    if out.is_empty() {
        return Err(Error::config(
            "allowed_domains",
            "must name at least one domain",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply() {
        let c = Config::resolve(&opts(&[]), &none, &none).unwrap();
        assert_eq!(c.token_path, PathBuf::from("/var/lib/amocrm/tokens.json"));
        assert_eq!(
            c.allowed_domains,
            vec!["amocrm.ru", "amocrm.com", "kommo.com"]
        );
        assert_eq!(c.refresh_margin, 600);
        assert_eq!(c.rate_limit, 7);
        assert_eq!(c.ca_file, None);
        assert!(!c.insecure_http);
        assert_eq!(c.log_level, Some(crate::log::Level::Info));
        let quiet = Config::resolve(&opts(&[("log_level", "off")]), &none, &none).unwrap();
        assert_eq!(quiet.log_level, None);
    }

    #[test]
    fn configure_beats_env_beats_ini() {
        let env = |k: &str| {
            (k == "AMOCRM_CLIENT_ID" || k == "AMOCRM_TIMEOUT")
                .then(|| "from-env".to_string())
                .map(|v| if k == "AMOCRM_TIMEOUT" { "7".into() } else { v })
        };
        let ini = |k: &str| match k {
            "amocrm.client_id" => Some("from-ini".to_string()),
            "amocrm.redirect_uri" => Some("https://example.com/cb".to_string()),
            "amocrm.timeout" => Some("9".to_string()),
            _ => None,
        };
        let c = Config::resolve(&opts(&[("timeout", "11")]), &env, &ini).unwrap();
        assert_eq!(c.client_id, "from-env");
        assert_eq!(c.redirect_uri, "https://example.com/cb");
        assert_eq!(c.timeout, Duration::from_secs(11));
    }

    #[test]
    fn unknown_key_and_bad_values_name_the_key() {
        let e = Config::resolve(&opts(&[("clientid", "x")]), &none, &none).unwrap_err();
        assert!(e.message.contains("`clientid`"), "{}", e.message);
        for (k, v) in [
            ("timeout", "soon"),
            ("refresh_margin", "-5"),
            ("insecure_http", "maybe"),
            ("token_path", "relative/tokens.json"),
            ("allowed_domains", "amocrm.ru,ex ample.com"),
            ("redirect_uri", "not a url"),
            ("rate_limit", "101"),
            ("batch_size", "251"),
            ("max_retries", "x"),
            ("retry_backoff_ms", "1"),
            ("ca_file", "certs/ca.pem"),
            ("keepalive_days", "81"),
            ("log_level", "loud"),
        ] {
            let e = Config::resolve(&opts(&[(k, v)]), &none, &none).unwrap_err();
            assert!(e.message.contains(&format!("`{k}`")), "{k}: {}", e.message);
        }
    }

    #[test]
    fn long_lived_token_needs_an_allowed_base_domain() {
        let e = Config::resolve(&opts(&[("long_lived_token", "t")]), &none, &none).unwrap_err();
        assert!(e.message.contains("base_domain"));
        let e = Config::resolve(
            &opts(&[
                ("long_lived_token", "t"),
                ("base_domain", "evil.example.com"),
            ]),
            &none,
            &none,
        )
        .unwrap_err();
        assert!(e.message.contains("allowed_domains"));
        let c = Config::resolve(
            &opts(&[("long_lived_token", "t"), ("base_domain", "acme.amocrm.ru")]),
            &none,
            &none,
        )
        .unwrap();
        assert_eq!(c.long_lived_token.unwrap().expose(), "t");
    }

    #[test]
    fn accounts_have_their_own_values_and_token_folders() {
        let env = |k: &str| match k {
            "AMOCRM_CLIENT_ID" => Some("shared-id".to_string()),
            "AMOCRM_TOKEN_PATH" => Some("/var/lib/amocrm/tokens.json".to_string()),
            "AMOCRM_SHOP_2_TIMEOUT" => Some("9".to_string()),
            "AMOCRM_SHOP_3_TOKEN_PATH" => Some("/srv/shop3.json".to_string()),
            _ => None,
        };
        let at = |account: &str| {
            Config::from_sources(Config::sources(account, &opts(&[]), &env, &none).unwrap())
                .unwrap()
        };
        let (d, two, three) = (at("default"), at("shop-2"), at("shop-3"));
        assert_eq!(d.token_path, PathBuf::from("/var/lib/amocrm/tokens.json"));
        assert_eq!(
            two.token_path,
            PathBuf::from("/var/lib/amocrm/shop-2/tokens.json")
        );
        assert_eq!(
            three.token_path,
            PathBuf::from("/srv/shop3.json"),
            "its own is kept"
        );
        assert_eq!(
            (d.client_id.as_str(), two.client_id.as_str()),
            ("shared-id", "shared-id")
        );
        assert_eq!((d.timeout.as_secs(), two.timeout.as_secs()), (30, 9));
        for bad in [
            "",
            "Shop",
            "-x",
            "a b",
            "a/../b",
            &"x".repeat(33),
            "connect",
            "client",
            "retry",
        ] {
            let e = Config::sources(bad, &opts(&[]), &env, &none).unwrap_err();
            assert!(e.message.contains("`account`"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn store_urls_parse_and_faults_are_named() {
        assert_eq!(parse_store("file").unwrap(), Store::File);
        let Store::Redis(r) = parse_store("redis://:s3cret@127.0.0.1:6380/2?prefix=gw:").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.hosts.clone(), r.db, r.prefix.as_str(), r.tls),
            (vec![("127.0.0.1".into(), 6380)], 2, "gw:", false)
        );
        assert_eq!(r.password.unwrap().expose(), "s3cret");
        let Store::Redis(r) = parse_store("rediss://user:pw@redis.example.com").unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.tls, r.username.as_deref(), r.hosts[0].1),
            (true, Some("user"), 6379)
        );
        let Store::Redis(r) = parse_store("redis+unix:///run/redis/redis.sock?db=3").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.socket.unwrap(), r.db),
            (PathBuf::from("/run/redis/redis.sock"), 3)
        );
        let Store::Redis(r) = parse_store("redis+sentinel://10.0.0.1:26379,10.0.0.2/gw/1").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            r.hosts,
            vec![
                ("10.0.0.1".to_string(), 26379),
                ("10.0.0.2".to_string(), 26379)
            ]
        );
        assert_eq!((r.sentinel_master.as_deref(), r.db), (Some("gw"), 1));
        for bad in [
            "redis",
            "memcache://x",
            "redis://a,b",
            "redis://x:port",
            "redis+unix://relative.sock",
            "redis+sentinel://h:1",
            "redis://h/x",
            "redis://h?colour=blue",
            "redis://h/9999",
        ] {
            let e = parse_store(bad).unwrap_err();
            assert!(e.message.contains("`store`"), "{bad}: {}", e.message);
        }
        // A password never shows in describe().
        let c = Config::resolve(
            &opts(&[("store", "redis://:s3cret@127.0.0.1")]),
            &none,
            &none,
        )
        .unwrap();
        assert!(!format!("{:?}{:?}", c.describe(), c).contains("s3cret"));
    }

    #[test]
    fn describe_masks_secrets() {
        let c = Config::resolve(
            &opts(&[("client_secret", "s3cr3t"), ("client_id", "id1")]),
            &none,
            &none,
        )
        .unwrap();
        assert_eq!(c.client_secret.expose(), "s3cr3t");
        let shown = format!("{:?}", c.describe());
        assert!(!shown.contains("s3cr3t"));
        assert!(shown.contains("id1"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
