//! The core without PHP: several `AmoCore`s sharing one token file stand in
//! for several PHP processes, against the in-process emulator.

use amocrm::client::AmoCore;
use amocrm::clock::now;
use amocrm::error::ErrorKind;
use amocrm_emulator::{Emulator, EmulatorConfig};

#[path = "support/emulated.rs"]
mod emulated;
use emulated::{config, seed};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

fn token_calls(emu: &Emulator, key: &str) -> u64 {
    emu.stats()["token_calls"][key].as_u64().unwrap_or(0)
}

#[test]
fn exchange_then_call_the_api() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let core = AmoCore::new(config(&emu, &dir.path().join("t.json"), &[]));
    let status = core
        .exchange_code(&emu.issue_code(), &emu.referer())
        .unwrap();
    assert_eq!(status["authorized"], true);
    assert_eq!(status["base_domain"], emu.referer());
    let account = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap()
        .unwrap();
    assert_eq!(account["id"], 31000001);
}

#[test]
fn many_clients_refresh_an_expired_token_once() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    emu.add_fault(
        json!({"path": "/oauth2/access_token", "action": "delay", "delay_ms": 150, "times": 1}),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    seed(&emu, &path, -60);
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let core = AmoCore::new(config(&emu, &path, &[]));
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
}

/// A process waiting for the refresh lock goes on with the pair its holder
/// stored without waiting for the holder to let go (a storm of waiters would
/// otherwise take the lock one by one, each only to find the work done).
#[test]
fn a_waiter_goes_on_with_the_stored_pair_while_the_holder_keeps_the_lock() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    seed(&emu, &path, -60);
    let holder = amocrm::store::FileStore::new(&path);
    let held = amocrm::store::TokenStore::lock(&holder, Duration::from_secs(1)).unwrap();
    // lock_wait = connect_timeout + timeout + 5 s: 7 s here.
    let core = AmoCore::new(config(
        &emu,
        &path,
        &[("connect_timeout", "1"), ("timeout", "1")],
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(core.request("GET", "/api/v4/account", None, None, None));
    });
    // The waiter has seen the expired pair and waits for the lock; the
    // holder's refresh is stored as the store stores it: a new file.
    std::thread::sleep(Duration::from_millis(300));
    let fresh = seed(&emu, &dir.path().join("fresh.json"), 86400);
    std::fs::rename(dir.path().join("fresh.json"), &path).unwrap();
    let answer = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the waiter answered while the holder still held the lock");
    assert_eq!(answer.unwrap().unwrap()["id"], 31000001);
    drop(held);
    assert_eq!(stored(&path)["access_token"], fresh["access_token"]);
    assert_eq!(emu.stats()["token_calls"], json!({}));
}

#[test]
fn revoked_refresh_token_is_an_auth_error_and_the_file_is_kept() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    seed(&emu, &path, -60);
    let before = std::fs::read(&path).unwrap();
    // Two refreshes down the chain revoke the stored refresh token.
    let other = AmoCore::new(config(&emu, &dir.path().join("other.json"), &[]));
    std::fs::copy(&path, dir.path().join("other.json")).unwrap();
    other.refresh(true).unwrap();
    other.refresh(true).unwrap();
    let core = AmoCore::new(config(&emu, &path, &[]));
    let e = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("Token has been revoked"),
        "{}",
        e.message
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(token_calls(&emu, "refresh_token/Token has been revoked"), 1);
}

/// A listener outside `allowed_domains` (127.0.0.2) and its `host:port`:
/// what must never be sent anything counts its connections.
fn trap() -> (Emulator, String) {
    let trap = Emulator::start(EmulatorConfig {
        host: "127.0.0.2".into(),
        ..EmulatorConfig::default()
    })
    .unwrap();
    let host = format!("127.0.0.2:{}", trap.port());
    (trap, host)
}

#[test]
fn hostile_referer_is_refused_without_a_connection() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let (trap, trap_host) = trap();
    let dir = tempfile::tempdir().unwrap();
    let core = AmoCore::new(config(&emu, &dir.path().join("t.json"), &[]));
    let e = core
        .exchange_code(&emu.issue_code(), &trap_host)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert_eq!(trap.stats()["connections"], 0);
}

#[test]
fn a_dropped_refresh_keeps_the_pair_and_the_next_call_recovers() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let seeded = seed(&emu, &path, -60);
    emu.add_fault(json!({"path": "/oauth2/access_token", "action": "drop", "times": 1}))
        .unwrap();
    let core = AmoCore::new(config(&emu, &path, &[]));
    let e = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transport);
    let stored: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored["refresh_token"], seeded["refresh_token"]);
    assert!(core
        .request("GET", "/api/v4/account", None, None, None)
        .is_ok());
}

/// Forwards every connection accepted on `listener` to `target`, both ways.
fn forward(listener: std::net::TcpListener, target: u16) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c, mut s) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut s);
                let _ = s.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
}

#[test]
fn a_post_whose_connection_was_refused_is_retried_once_amocrm_is_back() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    // amoCRM is "down": nothing listens on the account's port yet.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let t = emu.mint_tokens();
    let pair = json!({
        "access_token": t["access_token"], "refresh_token": t["refresh_token"],
        "expires_at": now() + 3600, "base_domain": format!("localhost:{port}"), "updated_at": now(),
    });
    std::fs::write(&path, serde_json::to_vec(&pair).unwrap()).unwrap();
    let core = AmoCore::new(config(
        &emu,
        &path,
        &[("retry_backoff_ms", "200"), ("max_retries", "5")],
    ));
    let target = emu.port();
    let up = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        forward(
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
            target,
        );
    });
    let created = core
        .request(
            "POST",
            "/api/v4/leads",
            None,
            Some(&json!([{"name": "sent once"}])),
            None,
        )
        .unwrap()
        .unwrap();
    up.join().unwrap();
    assert!(created["_embedded"]["leads"][0]["id"].as_i64().is_some());
    assert_eq!(emu.leads().as_array().unwrap().len(), 1);
}

#[test]
fn a_refused_refresh_token_is_sent_once_then_never_again() {
    let emu = Emulator::start(EmulatorConfig {
        rate_limit: 0,
        ..EmulatorConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let pair = seed(&emu, &path, -60);
    // Another integration spent it, and then its successor: amoCRM revokes it.
    let spend = |refresh: &str| {
        let body = json!({
            "client_id": emu.config().client_id, "client_secret": emu.config().client_secret,
            "grant_type": "refresh_token", "refresh_token": refresh,
            "redirect_uri": emu.config().redirect_uri,
        });
        let t = reqwest::blocking::Client::new()
            .post(format!("{}/oauth2/access_token", emu.base_url()))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert!(t.status().is_success());
        let answer: Value = serde_json::from_slice(&t.bytes().unwrap()).unwrap();
        answer["refresh_token"].as_str().unwrap().to_string()
    };
    spend(&spend(pair["refresh_token"].as_str().unwrap()));
    emu.reset_stats();

    // Two "processes", three calls each: one refresh reaches amoCRM.
    for core in [
        AmoCore::new(config(&emu, &path, &[])),
        AmoCore::new(config(&emu, &path, &[])),
    ] {
        for _ in 0..3 {
            let e = core
                .request("GET", "/api/v4/account", None, None, None)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Auth, "{}", e.message);
            assert!(e.message.contains("re-authorize"), "{}", e.message);
        }
        assert_eq!(core.status().unwrap()["needs_reauthorization"], true);
    }
    assert_eq!(token_calls(&emu, "refresh_token/Token has been revoked"), 1);
    assert_eq!(emu.stats()["token_calls"].as_object().unwrap().len(), 1);
    // The refusal might have been an account that moved: one subdomain
    // lookup (the same token, refused there too) before it is noted.
    assert_eq!(emu.stats()["subdomain_lookups"], json!({"refused": 1}));

    // A new pair ends it.
    seed(&emu, &path, -60);
    let core = AmoCore::new(config(&emu, &path, &[]));
    core.request("GET", "/api/v4/account", None, None, None)
        .unwrap();
    assert_eq!(token_calls(&emu, "refresh_token/ok"), 1);
}

/// The pair in the token file.
fn stored(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// An account whose subdomain changed: its old host answers 401 (or an HTML
/// 404) to a pair that is still good. Every client finds the new host with
/// the subdomain lookup, the file keeps the same pair with the new host, the
/// refresh token is never spent, and a POST answered 401 is sent once more
/// (401: not acted on) and creates one lead.
#[test]
fn a_renamed_account_keeps_working_without_spending_the_refresh_token() {
    for old_host_status in [401, 404] {
        let emu = Emulator::start(EmulatorConfig {
            rate_limit: 0,
            ..EmulatorConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let seeded = seed(&emu, &path, 86_400);
        let allowed = [("allowed_domains", "localhost,127.0.0.1")];
        let first = AmoCore::new(config(&emu, &path, &allowed));
        first
            .request("GET", "/api/v4/account", None, None, None)
            .unwrap();

        let new_host = format!("127.0.0.1:{}", emu.port());
        emu.rename(&new_host, old_host_status);
        let n = 4;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let core = AmoCore::new(config(&emu, &path, &allowed));
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let lead = json!([{"name": format!("after the rename {i}")}]);
                    core.request("POST", "/api/v4/leads", None, Some(&lead), None)
                        .map(|v| v.unwrap()["_embedded"]["leads"][0]["id"].clone())
                })
            })
            .collect();
        for h in handles {
            let id = h
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{old_host_status}: {e}"));
            assert!(id.as_i64().is_some(), "{old_host_status}: {id}");
        }
        // The first client had the old host in memory: it moves too.
        first
            .request("GET", "/api/v4/account", None, None, None)
            .unwrap();

        let pair = stored(&path);
        assert_eq!(pair["base_domain"], new_host.as_str());
        assert_eq!(pair["access_token"], seeded["access_token"]);
        assert_eq!(pair["refresh_token"], seeded["refresh_token"]);
        let stats = emu.stats();
        assert_eq!(token_calls(&emu, "refresh_token/ok"), 0, "{stats}");
        let lookups = emu.stats()["subdomain_lookups"]["ok"].as_u64().unwrap_or(0);
        assert!((1..=n as u64 + 1).contains(&lookups), "{stats}");
        assert_eq!(
            emu.leads().as_array().unwrap().len(),
            n,
            "one lead per POST"
        );
    }
}

/// A pair that expires after the rename: the refresh on the old host is
/// refused (404), the lookup finds the new host, the refresh happens there
/// once, and the new pair is stored with the new host.
#[test]
fn a_refresh_refused_by_the_old_host_is_made_on_the_new_one() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let seeded = seed(&emu, &path, -60);
    let new_host = format!("127.0.0.1:{}", emu.port());
    emu.rename(&new_host, 401);
    let core = AmoCore::new(config(
        &emu,
        &path,
        &[("allowed_domains", "localhost,127.0.0.1")],
    ));
    let account = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap()
        .unwrap();
    assert_eq!(account["id"], 31000001);
    let pair = stored(&path);
    assert_eq!(pair["base_domain"], new_host.as_str());
    assert_ne!(pair["refresh_token"], seeded["refresh_token"]);
    assert_eq!(emu.stats()["token_calls"], json!({"refresh_token/ok": 1}));
    assert_eq!(emu.stats()["subdomain_lookups"], json!({"ok": 1}));
    assert_eq!(core.metrics()["relocations"], 1);
}

/// A lookup that names a host outside allowed_domains moves nothing: the
/// call fails naming why, the file is kept, no token is spent or refused.
#[test]
fn a_new_host_outside_allowed_domains_is_not_followed() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let seeded = seed(&emu, &path, 86_400);
    emu.rename(&format!("127.0.0.1:{}", emu.port()), 401);
    let core = AmoCore::new(config(&emu, &path, &[]));
    let err = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap_err();
    assert!(
        err.message.contains("not within allowed_domains"),
        "{}",
        err.message
    );
    assert_eq!(stored(&path), seeded);
    assert_eq!(token_calls(&emu, "refresh_token/ok"), 0);
    assert!(!dir.path().join("t.json.refused").exists());
    // Once allowed, the next call moves.
    let core = AmoCore::new(config(
        &emu,
        &path,
        &[("allowed_domains", "localhost,127.0.0.1")],
    ));
    core.request("GET", "/api/v4/account", None, None, None)
        .unwrap();
}

/// A token answer cut off inside the new access token: the error says what
/// is wrong without quoting it (the start of a token is a secret too), and
/// the stored pair is kept.
#[test]
fn a_broken_token_answer_is_not_quoted() {
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let seeded = seed(&emu, &path, -60);
    let cut = r#"{"token_type":"Bearer","expires_in":86400,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImp0aSI6IjE"#;
    emu.add_fault(
        json!({"path": "/oauth2/access_token", "action": "respond", "status": 200,
        "content_type": "application/json", "body": cut, "times": 1}),
    )
    .unwrap();
    let core = AmoCore::new(config(&emu, &path, &[]));
    let e = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap_err();
    assert!(
        e.message.contains("not JSON (JSON cut off or broken"),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains("eyJ0eXAi") && !e.description.contains("eyJ0eXAi"),
        "{e:?}"
    );
    assert_eq!(stored(&path), seeded);
}

/// The subdomain lookup shows the refresh token to the access token's
/// `api_domain`: one outside `allowed_domains` is never asked (a listener
/// there sees no connection), and the 401 is answered the old way, with a
/// refresh.
#[test]
fn an_api_domain_outside_allowed_domains_is_never_asked() {
    use base64::Engine;
    let emu = Emulator::start(EmulatorConfig::default()).unwrap();
    let (trap, trap_host) = trap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    let mut pair = seed(&emu, &path, 86_400);
    // An access token amoCRM does not know (the API answers 401) that names
    // the trap as its api_domain.
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    pair["access_token"] = json!(format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256"})),
        b64(json!({"api_domain": trap_host, "exp": now() + 86_400}))
    ));
    std::fs::write(&path, serde_json::to_vec(&pair).unwrap()).unwrap();
    let core = AmoCore::new(config(&emu, &path, &[]));
    let account = core
        .request("GET", "/api/v4/account", None, None, None)
        .unwrap()
        .unwrap();
    assert_eq!(account["id"], 31000001);
    assert_eq!(
        trap.stats()["connections"],
        0,
        "the refresh token went nowhere else"
    );
    assert_eq!(token_calls(&emu, "refresh_token/ok"), 1);
}
