//! The operator's log without PHP: each event the core emits, at its level,
//! captured by a `Memory` sink, against the in-process emulator; and no
//! event of any run holds a token, the client secret or an Authorization
//! header.

use amocrm::client::AmoCore;
use amocrm::clock::now;
use amocrm::config::Config;
use amocrm::log::{Event, Level, Memory};
use amocrm::state::State;
use amocrm_emulator::{Emulator, EmulatorConfig};

#[path = "support/emulated.rs"]
mod emulated;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// The shared configuration, with both emulator hosts allowed (an account
/// that moves) and quick retries.
fn config(emu: &Emulator, token_path: &Path, extra: &[(&str, &str)]) -> Config {
    let mut all = vec![
        ("allowed_domains", "localhost,127.0.0.1"),
        ("retry_backoff_ms", "10"),
    ];
    all.extend_from_slice(extra);
    emulated::config(emu, token_path, &all)
}

/// Every token a run saw: what was seeded, what amoCRM issued since.
struct Run {
    emu: Emulator,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    secrets: Vec<String>,
    log: Arc<Memory>,
}

impl Run {
    fn new(emu: EmulatorConfig) -> Run {
        let emu = Emulator::start(emu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let secrets = vec![emu.config().client_secret.clone()];
        Run {
            emu,
            _dir: dir,
            path,
            secrets,
            log: Arc::new(Memory::default()),
        }
    }

    fn seed(&mut self, expires_in: i64) -> Value {
        let t = self.emu.mint_tokens();
        let pair = json!({
            "access_token": t["access_token"], "refresh_token": t["refresh_token"],
            "expires_at": now() + expires_in, "base_domain": self.emu.referer(), "updated_at": now(),
        });
        std::fs::write(&self.path, serde_json::to_vec(&pair).unwrap()).unwrap();
        self.remember(&pair);
        pair
    }

    fn remember(&mut self, pair: &Value) {
        for k in ["access_token", "refresh_token"] {
            if let Some(t) = pair[k].as_str() {
                self.secrets.push(t.to_string());
            }
        }
    }

    fn core(&self, extra: &[(&str, &str)]) -> AmoCore {
        let config = config(&self.emu, &self.path, extra);
        let state = State::files(&config.token_path);
        AmoCore::with_sink(config, state, self.log.clone())
    }

    fn account(&self, core: &AmoCore) -> amocrm::error::Result<Option<Value>> {
        core.request("GET", "/api/v4/account", None, None, None)
    }

    /// The events of `kind`, after checking that no event holds a secret.
    fn events(&mut self, kind: &str) -> Vec<Event> {
        if let Ok(bytes) = std::fs::read(&self.path) {
            if let Ok(stored) = serde_json::from_slice::<Value>(&bytes) {
                self.remember(&stored);
            }
        }
        let all = self.log.events();
        for e in &all {
            let text = format!("{} {}", e.message, Value::Object(e.context.clone()));
            for s in &self.secrets {
                assert!(!text.contains(s.as_str()), "a secret in {text}");
            }
            assert!(!text.to_ascii_lowercase().contains("bearer "), "{text}");
        }
        all.into_iter().filter(|e| e.kind == kind).collect()
    }
}

fn one(events: Vec<Event>, level: Level, message: &str) -> Event {
    let found: Vec<&Event> = events
        .iter()
        .filter(|e| e.message.contains(message))
        .collect();
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].level, level, "{:?}", found[0]);
    assert_eq!(found[0].context["account"], "default");
    found[0].clone()
}

#[test]
fn a_refresh_names_its_reason_and_the_new_expiry() {
    let mut run = Run::new(EmulatorConfig::default());
    run.seed(-60);
    let core = run.core(&[]);
    run.account(&core).unwrap();
    let e = one(
        run.events("refresh"),
        Level::Info,
        "token refreshed (the access token was about to expire); expires ",
    );
    let expires = e.context["expires_at"].as_i64().unwrap();
    assert!(expires > now() + 3600);
    assert!(e.message.ends_with(&amocrm::clock::utc(expires)));
    assert_eq!(e.context["base_domain"], run.emu.referer());
    // Forced, then kept alive: each says why.
    core.refresh(true).unwrap();
    one(run.events("refresh"), Level::Info, "(asked for)");
}

#[test]
fn a_failed_and_a_refused_refresh_say_why() {
    let mut run = Run::new(EmulatorConfig::default());
    let pair = run.seed(-60);
    run.emu
        .add_fault(json!({"path": "/oauth2/access_token", "action": "drop", "times": 1}))
        .unwrap();
    let core = run.core(&[]);
    assert!(run.account(&core).is_err());
    one(
        run.events("refresh_failed"),
        Level::Error,
        "token refresh failed: ",
    );

    // Spent elsewhere twice: amoCRM revokes it.
    let rt = pair["refresh_token"].as_str().unwrap();
    let second = refresh_directly(&run.emu, rt);
    run.remember(&second);
    run.remember(&refresh_directly(
        &run.emu,
        second["refresh_token"].as_str().unwrap(),
    ));
    assert!(run.account(&core).is_err());
    let e = one(
        run.events("refresh_refused"),
        Level::Error,
        "amoCRM refused the refresh token of ",
    );
    assert!(e.message.contains("re-authorize"), "{}", e.message);
    // The next calls fail fast without asking amoCRM: nothing new to say.
    assert!(run.account(&core).is_err());
    assert_eq!(run.events("refresh_refused").len(), 1);
    let history = core.history();
    let outcomes: Vec<&str> = history["refreshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["refused", "failed"]);
}

fn refresh_directly(emu: &Emulator, refresh_token: &str) -> Value {
    let cfg = emu.config();
    let body = json!({
        "client_id": cfg.client_id, "client_secret": cfg.client_secret,
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "redirect_uri": cfg.redirect_uri,
    })
    .to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", emu.port())).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "POST /oauth2/access_token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let json = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let start = json.find('{').unwrap();
    serde_json::from_str(&json[start..=json.rfind('}').unwrap()]).unwrap()
}

#[test]
fn retries_name_what_why_and_which_attempt() {
    let mut run = Run::new(EmulatorConfig::default());
    run.seed(86_400);
    run.emu
        .add_fault(json!({"path": "/api/v4/account", "action": "respond", "status": 503, "body": "down", "times": 2}))
        .unwrap();
    let core = run.core(&[]);
    run.account(&core).unwrap();
    let retries = run.events("retry");
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert_eq!(
        retries[0].message,
        "retrying GET /api/v4/account (retry 1 of 3): amoCRM answered 503"
    );
    assert_eq!(retries[1].context["retry"], 2);
    assert_eq!(retries[1].level, Level::Warning);
    // A query (a customer's phone) is not logged.
    run.emu
        .add_fault(json!({"path": "/api/v4/contacts", "action": "respond", "status": 502, "body": "x", "times": 1}))
        .unwrap();
    core.request(
        "GET",
        "/api/v4/contacts",
        Some(&json!({"query": "+79001234567"})),
        None,
        None,
    )
    .unwrap();
    let e = run.events("retry").pop().unwrap();
    assert_eq!(e.context["path"], "/api/v4/contacts");
    assert!(!e.message.contains("7900"), "{}", e.message);
}

#[test]
fn a_rate_limit_wait_over_a_second_is_logged() {
    let mut run = Run::new(EmulatorConfig::default());
    run.seed(86_400);
    let core = run.core(&[("rate_limit", "1")]);
    // Three calls at once: the second waits for the first's answer plus the
    // second its slot is held after it, the third for two of those, so both
    // waits are over a second. (One after another, a wait is the held second
    // less the time between an answer and the next call: at the threshold.)
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| run.account(&core).unwrap());
        }
    });
    let waits = run.events("rate_limit_wait");
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(waits[0].context["waited_ms"].as_u64().unwrap() >= 1000);
    assert_eq!(waits[0].level, Level::Warning);
    // And the history counts the waits in their minute.
    let h = core.history();
    let waited: u64 = h["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["waits"].as_u64().unwrap())
        .sum();
    assert_eq!(waited, 2);
}

/// A refresh that cannot get a rate-limit slot in time (another process's
/// request holds the only one) failed too: logged, counted and in the history.
#[test]
fn a_refresh_without_a_rate_limit_slot_in_time_is_a_failed_refresh() {
    let mut run = Run::new(EmulatorConfig::default());
    run.seed(86_400);
    run.emu
        .add_fault(
            json!({"path": "/api/v4/account", "action": "delay", "delay_ms": 4500, "times": 1}),
        )
        .unwrap();
    let (caller, refresher) = (
        run.core(&[("rate_limit", "1")]),
        run.core(&[("rate_limit", "1")]),
    );
    std::thread::scope(|s| {
        s.spawn(|| run.account(&caller).unwrap());
        // Once it reaches amoCRM, the caller's slow request holds the only
        // slot past the refresh's 4 s for one.
        while run.emu.stats()["connections"] == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let e = refresher.refresh(true).unwrap_err();
        assert_eq!(e.kind, amocrm::error::ErrorKind::RateLimit, "{}", e.message);
    });
    let e = one(
        run.events("refresh_failed"),
        Level::Error,
        "token refresh failed: waited ",
    );
    assert!(
        e.message.contains("for the shared rate limit"),
        "{}",
        e.message
    );
    assert_eq!(refresher.metrics()["refresh_failures"], 1);
    assert_eq!(refresher.history()["refreshes"][0]["outcome"], "failed");
    assert_eq!(run.emu.stats()["token_calls"], json!({}));
}

#[test]
fn a_storage_error_is_logged_once_a_minute_per_message() {
    let mut run = Run::new(EmulatorConfig::default());
    std::fs::write(&run.path, b"{\"access_token\": \"torn").unwrap();
    let core = run.core(&[]);
    for _ in 0..5 {
        let e = run.account(&core).unwrap_err();
        assert_eq!(e.kind, amocrm::error::ErrorKind::Storage);
    }
    let e = one(run.events("storage_error"), Level::Error, "token storage: ");
    assert!(e.message.contains("corrupt"), "{}", e.message);
    assert_eq!(e.context["operation"], "load");
}

#[test]
fn an_account_that_moved_names_both_hosts() {
    let mut run = Run::new(EmulatorConfig {
        rate_limit: 0,
        ..EmulatorConfig::default()
    });
    run.seed(86_400);
    let new_host = format!("127.0.0.1:{}", run.emu.port());
    run.emu.rename(&new_host, 404);
    let core = run.core(&[]);
    run.account(&core).unwrap();
    let e = one(
        run.events("account_moved"),
        Level::Warning,
        "the account moved from ",
    );
    assert_eq!(e.context["from"], run.emu.referer());
    assert_eq!(e.context["to"], new_host);
}

#[test]
fn log_level_filters_and_debug_has_every_call() {
    for (level, kinds) in [
        ("debug", vec!["refresh", "request"]),
        ("info", vec!["refresh"]),
        ("warning", vec![]),
        ("off", vec![]),
    ] {
        let mut run = Run::new(EmulatorConfig::default());
        run.seed(-60);
        let core = run.core(&[("log_level", level)]);
        run.account(&core).unwrap();
        let mut seen = run.log.kinds();
        seen.dedup();
        assert_eq!(seen, kinds, "{level}");
        if level == "debug" {
            let r = run.events("request").pop().unwrap();
            assert!(r
                .message
                .starts_with("GET /api/v4/account answered 200 in "));
            assert_eq!(r.level, Level::Debug);
        }
    }
}
