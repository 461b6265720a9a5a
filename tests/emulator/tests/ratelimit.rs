//! amoCRM's rate limit: 429 HTML above `rps`, then a 403 HTML block.

mod common;

use std::time::{Duration, Instant};

use amocrm_emulator::{Emulator, EmulatorConfig};
use common::*;
use serde_json::json;

const PAGE_429: &str = "<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>";
const PAGE_403: &str = "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>";

fn setup(cfg: EmulatorConfig) -> (Emulator, String) {
    let emu = Emulator::start(cfg).expect("start");
    let at = emu.mint_tokens()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    (emu, at)
}

/// `n` requests on one keep-alive connection, as fast as possible: the
/// statuses and how long it took.
fn burst(emu: &Emulator, at: &str, method: &str, path: &str, n: usize) -> (Vec<Resp>, Duration) {
    let auth = format!("Bearer {at}");
    let mut c = Client::connect(emu);
    let started = Instant::now();
    let body = if method == "POST" {
        json!([{"name": "burst"}]).to_string()
    } else {
        String::new()
    };
    let out = (0..n)
        .map(|_| {
            c.request(
                method,
                path,
                &[
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            )
            .expect("request")
        })
        .collect();
    (out, started.elapsed())
}

fn statuses(rs: &[Resp]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

#[test]
fn seven_per_second_then_html_429() {
    let (emu, at) = setup(EmulatorConfig::default());
    assert_eq!(emu.config().rate_limit, 7);
    let (rs, took) = burst(&emu, &at, "POST", "/api/v4/leads", 10);
    let st = statuses(&rs);
    let passed = st.iter().filter(|s| **s == 200).count();
    if took < Duration::from_millis(900) {
        assert_eq!(st, [200, 200, 200, 200, 200, 200, 200, 429, 429, 429]);
    } else {
        // A very slow machine: the window moved on meanwhile.
        assert!(st.contains(&429), "{st:?}");
    }
    let r = rs.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(r.content_type(), "text/html");
    assert_eq!(r.text(), PAGE_429);
    assert!(r.header("retry-after").is_none());
    // A 429'd request did nothing.
    assert_eq!(emu.leads().as_array().unwrap().len(), passed);
    let s = emu.stats();
    assert_eq!(s["rate_limited"], (10 - passed) as u64);
    assert_eq!(s["api_calls"]["429"], (10 - passed) as u64);
    assert_eq!(s["blocked"], 0);

    // The token endpoint and the control API are not limited.
    for _ in 0..10 {
        assert_eq!(get(&emu, "/_emulator/stats").status, 200);
    }
    let form = [
        ("client_id", emu.config().client_id.clone()),
        ("client_secret", emu.config().client_secret.clone()),
        ("grant_type", "authorization_code".to_string()),
        ("redirect_uri", emu.config().redirect_uri.clone()),
    ];
    for _ in 0..9 {
        let code = emu.issue_code();
        let mut pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("code", &code));
        assert_eq!(post_form(&emu, "/oauth2/access_token", &pairs).status, 200);
    }

    // After a second the window has room again.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(api(&emu, "GET", "/api/v4/account", &at, None).status, 200);
}

#[test]
fn repeated_excess_blocks_the_account_until_lifted() {
    let (emu, at) = setup(EmulatorConfig::default());
    emu.set_rate_limit(json!({"rps": 1, "block_after": 2, "block_seconds": 2}))
        .unwrap();
    let (rs, took) = burst(&emu, &at, "GET", "/api/v4/account", 6);
    if took < Duration::from_millis(900) {
        // The 3rd 429 within 60 s (more than block_after = 2) starts the block.
        assert_eq!(statuses(&rs), [200, 429, 429, 429, 403, 403]);
    }
    let r = rs.last().unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.content_type(), "text/html");
    assert_eq!(r.text(), PAGE_403);
    // Every API request is refused, even one without a token.
    assert_eq!(get(&emu, "/api/v4/leads").status, 403);
    let rl = get(&emu, "/_emulator/rate-limit").json();
    assert_eq!(rl["blocked"], true);
    assert!(rl["block_remaining_ms"].as_u64().unwrap() > 0);
    let s = emu.stats();
    assert_eq!(s["blocked"], 3);
    assert_eq!(s["rate_limited"], 3);

    // DELETE /_emulator/block lifts it.
    let r = request(&emu, "DELETE", "/_emulator/block", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["blocked"], false);
    assert_eq!(api(&emu, "GET", "/api/v4/account", &at, None).status, 200);

    // A block also ends by itself after block_seconds (real time).
    let (rs, _) = burst(&emu, &at, "GET", "/api/v4/account", 6);
    assert_eq!(rs.last().unwrap().status, 403);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(api(&emu, "GET", "/api/v4/account", &at, None).status, 200);
    assert_eq!(emu.rate_limit()["blocked"], false);

    // block_seconds 0 never blocks.
    emu.set_rate_limit(json!({"block_seconds": 0})).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let (rs, _) = burst(&emu, &at, "GET", "/api/v4/account", 8);
    assert!(!statuses(&rs).contains(&403), "{:?}", statuses(&rs));
    emu.lift_block();
}

#[test]
fn max_api_rps_counts_every_arrival() {
    let (emu, at) = setup(EmulatorConfig {
        rate_limit: 2,
        ..EmulatorConfig::default()
    });
    emu.reset_stats();
    let (rs, took) = burst(&emu, &at, "GET", "/api/v4/leads", 5);
    let _ = api(&emu, "POST", "/api/v4/leads", &at, Some(&json!([{}])));
    let s = emu.stats();
    if took < Duration::from_millis(800) {
        assert_eq!(statuses(&rs), [204, 204, 429, 429, 429]);
        assert_eq!(s["max_api_rps"], 6);
    } else {
        assert!(s["max_api_rps"].as_u64().unwrap() >= 2);
    }
    assert_eq!(s["api_requests_by_method"], json!({"GET": 5, "POST": 1}));
    // Control requests do not count.
    let s = get(&emu, "/_emulator/stats").json();
    assert_eq!(s["api_requests_by_method"], json!({"GET": 5, "POST": 1}));
    let s = request(&emu, "POST", "/_emulator/reset-stats", &[], b"").json();
    assert_eq!(s["max_api_rps"], 0);
    assert_eq!(s["rate_limited"], 0);
    assert_eq!(s["api_requests_by_method"], json!({}));
    assert_eq!(s["context_user_requests"], 0);

    // Requests spread out stay at 1 per window.
    emu.set_rate_limit(json!({"rps": 0})).unwrap();
    for _ in 0..3 {
        assert_eq!(api(&emu, "GET", "/api/v4/account", &at, None).status, 200);
        std::thread::sleep(Duration::from_millis(1050));
    }
    assert_eq!(emu.stats()["max_api_rps"], 1);
}

#[test]
fn rate_limit_off_and_control_api() {
    let (emu, at) = setup(EmulatorConfig {
        rate_limit: 0,
        ..EmulatorConfig::default()
    });
    let (rs, _) = burst(&emu, &at, "GET", "/api/v4/account", 30);
    assert!(statuses(&rs).iter().all(|s| *s == 200));

    let r = get(&emu, "/_emulator/rate-limit");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"rps": 0, "block_after": 20, "block_seconds": 600, "blocked": false, "block_remaining_ms": 0})
    );
    let r = post_json(&emu, "/_emulator/rate-limit", &json!({"rps": 3}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rps"], 3);
    assert_eq!(r.json()["block_after"], 20);
    for bad in [
        json!({"rps": -1}),
        json!({"rps": "7"}),
        json!({"bogus": 1}),
        json!([1]),
    ] {
        let r = post_json(&emu, "/_emulator/rate-limit", &bad);
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(emu.rate_limit()["rps"], 3);
    assert!(emu.set_rate_limit(json!({"block_after": 1.5})).is_err());
    assert_eq!(
        request(&emu, "PUT", "/_emulator/rate-limit", &[], b"").status,
        405
    );
    assert_eq!(get(&emu, "/_emulator/block").status, 405);
    let (rs, took) = burst(&emu, &at, "GET", "/api/v4/account", 5);
    if took < Duration::from_millis(900) {
        assert_eq!(statuses(&rs), [200, 200, 200, 429, 429]);
    }
}

#[test]
fn binary_flag() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_amocrm-emulator"))
        .args(["--port", "0", "--rate-limit=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().trim_start_matches("listening on ").to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    c.write_all(b"GET /_emulator/rate-limit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.contains("\"rps\":0"), "{out}");
}

#[test]
fn arrival_times_in_microseconds() {
    let (emu, at) = setup(EmulatorConfig {
        rate_limit: 0,
        ..EmulatorConfig::default()
    });
    emu.reset_stats();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let (rs, _) = burst(&emu, &at, "GET", "/api/v4/account", 3);
    assert_eq!(statuses(&rs), [200, 200, 200]);
    // The token endpoint and the control API are not API arrivals.
    let _ = get(&emu, "/_emulator/stats");
    let a = get(&emu, "/_emulator/arrivals").json();
    assert_eq!(a, emu.arrivals());
    let times: Vec<u64> = a["api_us"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(times.len(), 3);
    assert!(
        times[0] >= before && times.windows(2).all(|w| w[0] <= w[1]),
        "{times:?}"
    );
    assert_eq!(a["not_kept"], 0);
    emu.reset_stats();
    assert_eq!(emu.arrivals()["api_us"], json!([]));
    assert_eq!(
        request(&emu, "POST", "/_emulator/arrivals", &[], b"").status,
        405
    );
}
