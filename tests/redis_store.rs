//! The Redis backend against a real redis-server started by the test:
//! the lock's ownership, expiry and takeover, the fenced save, the budget
//! and counters shared by several instances (processes, hosts), Redis down,
//! and a password that never shows. Several `State`s / `AmoCore`s on one
//! Redis stand in for processes of several hosts.

#[path = "support/redis_server.rs"]
mod redis_server;

use amocrm::client::AmoCore;
use amocrm::clock::now;
use amocrm::config::Config;
use amocrm::error::ErrorKind;
use amocrm::metrics::Counter;
use amocrm::ratelimit::{self, WINDOW};

/// How long a test request may hold its slot.
const HOLD: Duration = Duration::from_secs(30);
use amocrm::secret::Secret;
use amocrm::state::State;
use amocrm::store::Refusal;
use amocrm::token::TokenPair;
use amocrm_emulator::{Emulator, EmulatorConfig};
use redis::Commands;
use redis_server::RedisServer;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

fn config(store: &str, account: &str, token_path: &Path, extra: &[(&str, &str)]) -> Config {
    let mut o: BTreeMap<String, String> = [
        ("client_id", "emulator-client-id"),
        ("client_secret", "emulator-client-secret"),
        ("redirect_uri", "http://127.0.0.1:9095/oauth/callback"),
        ("token_path", token_path.to_str().unwrap()),
        ("allowed_domains", "localhost"),
        ("insecure_http", "1"),
        ("connect_timeout", "1"),
        ("timeout", "2"),
        ("store", store),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        o.insert(k.to_string(), v.to_string());
    }
    Config::from_sources(Config::sources(account, &o, &|_| None, &|_| None).unwrap()).unwrap()
}

fn state(store: &str, account: &str) -> State {
    let dir = std::env::temp_dir().join("amocrm-redis-unused");
    State::open(&config(store, account, &dir.join("tokens.json"), &[])).unwrap()
}

fn pair(n: i64) -> TokenPair {
    TokenPair {
        access_token: Secret::new(format!("access-{n}")),
        refresh_token: Some(Secret::new(format!("refresh-{n}"))),
        expires_at: now() + 86_400,
        base_domain: "x.amocrm.ru".into(),
        updated_at: now() - n,
    }
}

#[test]
fn the_lock_has_one_owner_and_is_released_only_by_it() {
    let redis = RedisServer::start(&[]);
    let (a, b) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    let held = a.tokens.lock(Duration::from_secs(5)).unwrap();
    assert!(b.tokens.try_lock().unwrap().is_none());
    // The owner value names the process, and expires after lock_wait (1 + 2 + 5 s).
    let mut raw = redis.raw(None);
    let owner: String = raw.get("amocrm:default:lock").unwrap();
    assert!(
        owner.contains(&format!(":{}:", std::process::id())),
        "{owner}"
    );
    let ttl: i64 = raw.pttl("amocrm:default:lock").unwrap();
    assert!((7_500..=8_000).contains(&ttl), "{ttl}");
    // Another owner's release does nothing: a stale holder cannot free a lock it lost.
    let _: () = raw.set("amocrm:default:lock", "other:1:x").unwrap();
    drop(held);
    assert_eq!(
        raw.get::<_, String>("amocrm:default:lock").unwrap(),
        "other:1:x"
    );
    let _: () = raw.del("amocrm:default:lock").unwrap();
    let held = b.tokens.try_lock().unwrap().expect("free again");
    drop(held);
    assert!(!raw.exists::<_, bool>("amocrm:default:lock").unwrap());
    // Accounts do not share a lock.
    let _a = a.tokens.lock(Duration::from_secs(1)).unwrap();
    assert!(state(&redis.url(), "shop-2")
        .tokens
        .try_lock()
        .unwrap()
        .is_some());
}

#[test]
fn a_waiter_gets_the_lock_when_its_holder_releases_it_or_its_expiry_passes() {
    let redis = RedisServer::start(&[]);
    let (a, b) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    let held = a.tokens.lock(Duration::from_secs(5)).unwrap();
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let lock = b.tokens.lock(Duration::from_secs(8)).unwrap();
        drop(lock);
        start.elapsed()
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(held);
    assert!(waiter.join().unwrap() < Duration::from_secs(5));

    // A holder that died (its lock left behind, 300 ms to go) is taken over
    // when the expiry passes, long before the waiter's own limit.
    let mut raw = redis.raw(None);
    let _: () = redis::cmd("SET")
        .arg("amocrm:default:lock")
        .arg("deadhost:4242:0")
        .arg("PX")
        .arg(300)
        .query(&mut raw)
        .unwrap();
    let c = state(&redis.url(), "default");
    let start = Instant::now();
    let lock = c.tokens.lock(Duration::from_secs(8)).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    drop(lock);

    // A lock without an expiry (set by hand) gets one: it cannot wedge the fleet.
    let _: () = raw.set("amocrm:default:lock", "deadhost:4242:1").unwrap();
    assert!(c.tokens.try_lock().unwrap().is_none());
    assert!(raw.pttl::<_, i64>("amocrm:default:lock").unwrap() > 0);
}

/// A refresh's waiter stops waiting once what it waited for is stored (the
/// client asks the stored pair at each look), while the holder keeps the lock.
#[test]
fn a_waiter_stops_waiting_once_settled_while_the_lock_is_held() {
    let redis = RedisServer::start(&[]);
    let (a, b, c) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    let held = a.tokens.lock(Duration::from_secs(5)).unwrap();
    a.tokens.save(&pair(2)).unwrap();
    let before = b.tokens.version().unwrap();
    let looks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = looks.clone();
    let waiter = std::thread::spawn(move || {
        let got = b
            .tokens
            .lock_unless(Duration::from_secs(8), &mut || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                b.tokens.version().unwrap() != before
            })
            .unwrap();
        got.is_none()
    });
    // The holder stores its pair once the waiter has looked in vain.
    while looks.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    a.tokens.save(&pair(1)).unwrap();
    assert!(waiter.join().unwrap(), "the wait ended without the lock");
    assert!(
        c.tokens.try_lock().unwrap().is_none(),
        "the holder still holds it"
    );
    drop(held);
}

#[test]
fn a_waiter_gives_up_naming_the_holder_when_a_lock_outlives_its_wait() {
    let redis = RedisServer::start(&[]);
    let mut raw = redis.raw(None);
    let _: () = redis::cmd("SET")
        .arg("amocrm:default:lock")
        .arg("web-7:4242:0")
        .arg("PX")
        .arg(60_000)
        .query(&mut raw)
        .unwrap();
    let a = state(&redis.url(), "default");
    let e = a.tokens.lock(Duration::from_millis(100)).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Storage);
    assert!(
        e.message.contains("process 4242 on host web-7")
            && e.message.contains("amocrm:default:lock"),
        "{}",
        e.message
    );
}

#[test]
fn a_save_is_refused_once_the_lock_was_taken_over() {
    let redis = RedisServer::start(&[]);
    let mut raw = redis.raw(None);
    let (stopped, other) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    let held = stopped.tokens.lock(Duration::from_secs(1)).unwrap();
    stopped.tokens.save(&pair(1)).unwrap();
    // The holder is stopped past its expiry; another process takes over.
    let _: () = raw.pexpire("amocrm:default:lock", 1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let taken = other.tokens.lock(Duration::from_secs(1)).unwrap();
    other.tokens.save(&pair(2)).unwrap();
    let e = stopped.tokens.save(&pair(3)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Storage);
    assert!(e.message.contains("taken the lock over"), "{}", e.message);
    assert_eq!(other.tokens.load().unwrap().unwrap().0, pair(2));
    // Also after the new holder released it: the pair is no longer the one
    // the stopped holder saw.
    drop(taken);
    assert!(stopped.tokens.save(&pair(3)).is_err());
    assert_eq!(stopped.tokens.load().unwrap().unwrap().0, pair(2));
    drop(held);

    // A lock that merely expired, with nobody writing since, still lets its
    // holder write (as a stopped file-lock holder that nobody took over).
    let held = stopped.tokens.lock(Duration::from_secs(1)).unwrap();
    let _: () = raw.del("amocrm:default:lock").unwrap();
    stopped.tokens.save(&pair(4)).unwrap();
    drop(held);
    assert_eq!(other.tokens.load().unwrap().unwrap().0, pair(4));

    // Without the lock there is no write at all.
    let e = other.tokens.save(&pair(5)).unwrap_err();
    assert!(e.message.contains("not held"), "{}", e.message);
}

#[test]
fn versions_load_save_and_the_refusal_note() {
    let redis = RedisServer::start(&[]);
    let (a, b) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    assert!(a.tokens.version().unwrap().is_none());
    assert!(a.tokens.load().unwrap().is_none());
    let lock = a.tokens.lock(Duration::from_secs(1)).unwrap();
    let v1 = a.tokens.save(&pair(1)).unwrap();
    assert_eq!(b.tokens.version().unwrap(), Some(v1));
    a.tokens
        .mark_refused(&Refusal {
            at: 5,
            reason: "revoked".into(),
            fingerprint: "f".into(),
        })
        .unwrap();
    assert_eq!(b.tokens.refused().unwrap().unwrap().reason, "revoked");
    let v2 = a.tokens.save(&pair(2)).unwrap();
    drop(lock);
    assert_ne!(v1, v2);
    assert_eq!(b.tokens.load().unwrap().unwrap(), (pair(2), v2));
    assert!(
        b.tokens.refused().unwrap().is_none(),
        "a new pair forgets the refusal"
    );
    assert!(b.tokens.location().contains("amocrm:default:pair"));
    // A corrupt pair names the key and the fault, never a value.
    let mut raw = redis.raw(None);
    let _: () = raw
        .hset(
            "amocrm:default:pair",
            "json",
            "{\"access_token\": \"secret-ish\"",
        )
        .unwrap();
    let e = b.tokens.load().unwrap_err();
    assert!(
        e.message.contains("amocrm:default:pair") && e.message.contains("corrupt"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("secret-ish"));
}

#[test]
fn the_budget_holds_across_instances_and_accounts_have_their_own() {
    let redis = RedisServer::start(&[]);
    let sends = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let s = state(&redis.url(), "default");
            let sends = sends.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let slot = ratelimit::acquire(s.budget.as_ref(), 5, HOLD).unwrap();
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..30)));
                    // The request arrives while the slot is held.
                    sends
                        .lock()
                        .unwrap()
                        .push(start.elapsed().as_micros() as u64);
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..30)));
                    drop(slot);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut s = sends.lock().unwrap().clone();
    s.sort();
    assert_eq!(s.len(), 15);
    // A slot frees a window after its request ended, by Redis's clock (the
    // same clock as this test's, on one host).
    for w in s.windows(6) {
        assert!(
            w[5] - w[0] >= WINDOW.as_micros() as u64,
            "6 arrivals within {} µs: {s:?}",
            w[5] - w[0]
        );
    }
    // Another account's budget is untouched by all that.
    let other = state(&redis.url(), "shop-2");
    for _ in 0..5 {
        assert!(other.budget.take(5, HOLD).unwrap().is_ok());
    }
    assert!(other.budget.take(5, HOLD).unwrap().is_err());
}

#[test]
fn counters_add_up_across_instances() {
    let redis = RedisServer::start(&[]);
    let (a, b) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    a.counters
        .add(&[(Counter::Refreshes, 1), (Counter::ApiCalls(200), 2)]);
    b.counters
        .add(&[(Counter::ApiCalls(200), 3), (Counter::RateLimited, 1)]);
    let s = amocrm::metrics::snapshot(b.counters.as_ref());
    assert_eq!(s["refreshes"], 1);
    assert_eq!(s["api_calls"]["200"], 5);
    assert_eq!(s["rate_limited"], 1);
    assert_eq!(
        amocrm::metrics::snapshot(state(&redis.url(), "shop-2").counters.as_ref())["refreshes"],
        0
    );
}

/// The admin page's history in Redis: a hash per minute with a 25-hour
/// expiry, counted in the counters' pipeline, and a list of the last 20
/// refreshes; shared by every instance of the account, not by others.
#[test]
fn history_adds_up_across_instances_and_expires() {
    use amocrm::history::{Field, Outcome, Refresh};
    let redis = RedisServer::start(&[]);
    let (a, b) = (
        state(&redis.url(), "default"),
        state(&redis.url(), "default"),
    );
    let m = amocrm::history::minute_of(now());
    a.counters
        .add_in_minute(&[(Counter::ApiCalls(200), 1)], m - 1, &[(Field::S2xx, 1)]);
    a.counters
        .add_in_minute(&[(Counter::ApiCalls(429), 1)], m, &[(Field::S429, 1)]);
    b.counters.add_in_minute(
        &[(Counter::ApiCallErrors, 1)],
        m,
        &[(Field::Error, 1), (Field::Waits, 1), (Field::WaitMs, 1200)],
    );
    // Older than 24 hours: not shown.
    b.counters.add_in_minute(&[], m - 1440, &[(Field::S5xx, 1)]);
    for i in 0..22 {
        b.counters.add_refresh(&Refresh {
            at: 1_800_000_000 + i,
            outcome: if i == 21 {
                Outcome::Refused
            } else {
                Outcome::Ok
            },
            reason: format!("reason {i}"),
        });
    }
    let (minutes, refreshes) = a.counters.history(m);
    assert_eq!(minutes.len(), 2, "{minutes:?}");
    assert_eq!(
        (minutes[0].minute, minutes[0].counts),
        (m - 1, [1, 0, 0, 0, 0, 0, 0, 0])
    );
    assert_eq!(
        (minutes[1].minute, minutes[1].counts),
        (m, [0, 0, 1, 0, 0, 1, 1, 1200])
    );
    assert_eq!(refreshes.len(), 20);
    assert_eq!(refreshes[0].outcome, Outcome::Refused);
    assert_eq!(refreshes[0].reason, "reason 21");
    assert_eq!(refreshes[19].at, 1_800_000_002);
    let s = amocrm::metrics::snapshot(b.counters.as_ref());
    assert_eq!(s["api_calls"]["429"], 1);
    assert_eq!(s["api_calls"]["error"], 1);
    let mut raw = redis.raw(None);
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("amocrm:default:calls:{m}"))
        .query(&mut raw)
        .unwrap();
    assert!((25 * 3600 - 60..=25 * 3600).contains(&ttl), "{ttl}");
    assert!(state(&redis.url(), "shop-2")
        .counters
        .history(m)
        .0
        .is_empty());
}

#[test]
fn redis_down_is_a_storage_error_naming_it_and_nothing_is_lost() {
    let mut redis = RedisServer::start(&["--requirepass", "pw-s3cret"]);
    let url = format!("redis://:pw-s3cret@127.0.0.1:{}/0", redis.port);
    let s = state(&url, "default");
    let lock = s.tokens.lock(Duration::from_secs(1)).unwrap();
    let saved = s.tokens.save(&pair(1)).unwrap();
    drop(lock);
    redis.kill();
    let shown = format!("redis://127.0.0.1:{}/0", redis.port);
    let errors = [
        s.tokens.version().unwrap_err(),
        s.tokens.load().unwrap_err(),
        s.tokens.try_lock().err().unwrap(),
        s.budget.take(7, HOLD).unwrap_err(),
    ];
    for e in &errors {
        assert_eq!(e.kind, ErrorKind::Storage);
        assert!(
            e.message.starts_with(&format!("Redis {shown}")),
            "{}",
            e.message
        );
        assert!(!e.message.contains("pw-s3cret"), "{}", e.message);
    }
    // Counting never fails a call, and reads nothing.
    s.counters.add(&[(Counter::Refreshes, 1)]);
    assert!(s.counters.read().is_empty());
    // Back (from its append-only file): the same pair, the same version.
    redis.restart();
    assert_eq!(s.tokens.load().unwrap().unwrap(), (pair(1), saved));
    assert!(!s.tokens.location().contains("pw-s3cret"));
}

#[test]
fn a_wrong_password_is_named_without_showing_it() {
    let redis = RedisServer::start(&["--requirepass", "right-pw"]);
    let s = state(
        &format!("redis://:wrong-pw@127.0.0.1:{}/0", redis.port),
        "default",
    );
    let e = s.tokens.version().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Storage);
    assert!(
        e.message.contains("Redis redis://127.0.0.1"),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains("wrong-pw") && !e.message.contains("right-pw"),
        "{}",
        e.message
    );
    let ok = state(
        &format!("redis://:right-pw@127.0.0.1:{}/0?prefix=gw:", redis.port),
        "default",
    );
    assert!(ok.tokens.version().unwrap().is_none());
    assert!(ok.tokens.location().contains("key gw:default:pair"));
}

#[test]
fn a_restarted_redis_is_reconnected_without_an_error() {
    let mut redis = RedisServer::start(&[]);
    let s = state(&redis.url(), "default");
    let lock = s.tokens.lock(Duration::from_secs(1)).unwrap();
    s.tokens.save(&pair(1)).unwrap();
    drop(lock);
    redis.kill();
    redis.restart();
    // The connection this process kept was cut: the read is sent again on a new one.
    assert_eq!(s.tokens.load().unwrap().unwrap().0, pair(1));
}

#[test]
fn rediss_trusts_the_system_store_and_ca_file() {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (Debian's openssl package) makes the test's CA");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let redis = RedisServer::start_with(|port, dir| {
        let at = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    &at("ca.key"),
                    "-out",
                    &at("ca.pem"),
                    "-days",
                    "2",
                    "-subj",
                    "/CN=redis test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &at("server.key"),
                    "-out",
                    &at("server.csr"),
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &at("server.csr"),
            "-CA",
            &at("ca.pem"),
            "-CAkey",
            &at("ca.key"),
            "-CAcreateserial",
            "-out",
            &at("server.pem"),
            "-days",
            "2",
            "-extfile",
            &at("ext.cnf"),
        ]);
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-auth-clients",
            "no",
            "--tls-cert-file",
            &at("server.pem"),
            "--tls-key-file",
            &at("server.key"),
            "--tls-ca-cert-file",
            &at("ca.pem"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    });
    let url = format!("rediss://localhost:{}/0", redis.port);
    let dir = std::env::temp_dir().join("amocrm-redis-unused");
    // A CA nobody trusts: refused, naming Redis.
    let untrusted = State::open(&config(&url, "default", &dir.join("t.json"), &[])).unwrap();
    let e = untrusted.tokens.version().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Storage);
    assert!(
        e.message.starts_with(&format!("Redis {url}: "))
            && e.message.contains("invalid peer certificate"),
        "{}",
        e.message
    );
    // With ca_file: trusted, and the store works over TLS.
    let ca = redis.dir.path().join("ca.pem");
    let trusted = State::open(&config(
        &url,
        "default",
        &dir.join("t.json"),
        &[("ca_file", ca.to_str().unwrap())],
    ))
    .unwrap();
    let lock = trusted.tokens.lock(Duration::from_secs(1)).unwrap();
    trusted.tokens.save(&pair(1)).unwrap();
    drop(lock);
    assert_eq!(trusted.tokens.load().unwrap().unwrap().0, pair(1));
}

// ------------------------------------------------------------ with amoCRM

fn seed(emu: &Emulator, store: &State, expires_in: i64) -> serde_json::Value {
    let t = emu.mint_tokens();
    let p = TokenPair {
        access_token: Secret::new(t["access_token"].as_str().unwrap()),
        refresh_token: Some(Secret::new(t["refresh_token"].as_str().unwrap())),
        expires_at: now() + expires_in,
        base_domain: emu.referer(),
        updated_at: now(),
    };
    let lock = store.tokens.lock(Duration::from_secs(1)).unwrap();
    store.tokens.save(&p).unwrap();
    drop(lock);
    t
}

#[test]
fn three_hosts_on_one_redis_refresh_an_expired_pair_once() {
    let redis = RedisServer::start(&[]);
    let emu = Emulator::start(EmulatorConfig {
        rate_limit: 0,
        ..EmulatorConfig::default()
    })
    .unwrap();
    emu.add_fault(
        json!({"path": "/oauth2/access_token", "action": "delay", "delay_ms": 150, "times": 1}),
    )
    .unwrap();
    seed(&emu, &state(&redis.url(), "default"), -60);
    // Three hosts, each with its own token folder (which stays empty), 4 processes each.
    let hosts: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let n = 12;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let cfg = config(
                &redis.url(),
                "default",
                &hosts[i % 3].path().join("tokens.json"),
                &[],
            );
            let core = AmoCore::open(cfg).unwrap();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                core.request("GET", "/api/v4/account", None, None, None)
                    .map(|v| v.unwrap()["id"].clone())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), 31000001);
    }
    assert_eq!(emu.stats()["token_calls"], json!({"refresh_token/ok": 1}));
    for host in &hosts {
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
    }
    let counted = amocrm::metrics::snapshot(state(&redis.url(), "default").counters.as_ref());
    assert_eq!(counted["refreshes"], 1);
    assert_eq!(counted["api_calls"]["200"], n as u64);
}

#[test]
fn a_holder_that_died_after_rotating_the_pair_is_taken_over_without_a_second_refresh() {
    let redis = RedisServer::start(&[]);
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let url = redis.url();
    let first = seed(&emu, &state(&url, "default"), -60);
    let dir = tempfile::tempdir().unwrap();
    let mut raw = redis.raw(None);
    // The dying holder took the lock (2 s to go) ...
    let _: () = redis::cmd("SET")
        .arg("amocrm:default:lock")
        .arg("deadhost:4242:0")
        .arg("PX")
        .arg(2_000)
        .query(&mut raw)
        .unwrap();
    let evals = |raw: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("commandstats").query(raw).unwrap();
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let before = evals(&mut raw);
    let core = AmoCore::open(config(&url, "default", &dir.path().join("t.json"), &[])).unwrap();
    let waiter =
        std::thread::spawn(move || core.request("GET", "/api/v4/account", None, None, None));
    // ... the waiter found the pair expired and is waiting for the lock ...
    let deadline = Instant::now() + Duration::from_secs(5);
    while evals(&mut raw) == before {
        assert!(Instant::now() < deadline, "the waiter never tried the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    // ... and the holder refreshed, stored the new pair, and died holding the lock.
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/oauth2/access_token", emu.base_url()))
        .header("Content-Type", "application/json")
        .body(
            json!({
                "client_id": emu.config().client_id, "client_secret": emu.config().client_secret,
                "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                "redirect_uri": emu.config().redirect_uri,
            })
            .to_string(),
        )
        .send()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer.bytes().unwrap()).unwrap();
    let rotated = json!({
        "access_token": answer["access_token"], "refresh_token": answer["refresh_token"],
        "expires_at": now() + 86_400, "base_domain": emu.referer(), "updated_at": now(),
    });
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("amocrm:default:pair")
        .arg("json")
        .arg(rotated.to_string())
        .ignore()
        .cmd("HINCRBY")
        .arg("amocrm:default:pair")
        .arg("gen")
        .arg(1)
        .ignore()
        .query(&mut raw)
        .unwrap();
    assert_eq!(waiter.join().unwrap().unwrap().unwrap()["id"], 31000001);
    // One refresh: the dead holder's. The waiter took the lock over, re-read
    // the pair, and used it.
    assert_eq!(emu.stats()["token_calls"], json!({"refresh_token/ok": 1}));
    let stored = state(&url, "default").tokens.load().unwrap().unwrap().0;
    assert_eq!(
        stored.refresh_token.unwrap().expose(),
        answer["refresh_token"].as_str().unwrap()
    );
}
