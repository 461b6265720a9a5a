mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amocrm_emulator::{Emulator, EmulatorConfig};
use common::*;
use serde_json::{json, Value};

fn emu() -> Emulator {
    Emulator::start(EmulatorConfig::default()).expect("start")
}

fn code_form(emu: &Emulator, code: &str) -> String {
    let c = emu.config();
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &c.client_id)
        .append_pair("client_secret", &c.client_secret)
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &c.redirect_uri)
        .finish()
}

fn exchange(client: &mut Client, emu: &Emulator, code: &str) -> std::io::Result<Resp> {
    client.request(
        "POST",
        "/oauth2/access_token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        code_form(emu, code).as_bytes(),
    )
}

#[test]
fn keep_alive_counts_one_connection() {
    let emu = emu();
    let at = emu.mint_tokens()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Bearer {at}");
    emu.reset_stats();
    let mut c = Client::connect(&emu);
    for _ in 0..3 {
        let r = c
            .request("GET", "/api/v4/account", &[("Authorization", &auth)], b"")
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // Chunked request body on the same connection.
    let body = json!([{"name": "chunked"}]).to_string();
    let (a, b) = body.split_at(5);
    let raw = format!(
        "POST /api/v4/leads HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    c.send_raw(raw.as_bytes()).unwrap();
    let r = c.read_response(false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Two pipelined requests in one write.
    let two = format!(
        "GET /api/v4/leads/1000001 HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n\
         GET /api/v4/leads/1 HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n"
    );
    c.send_raw(two.as_bytes()).unwrap();
    assert_eq!(c.read_response(false).unwrap().json()["name"], "chunked");
    assert_eq!(c.read_response(false).unwrap().status, 204);

    let s = emu.stats();
    assert_eq!(s["connections"], 1);
    assert_eq!(s["requests"], 6);

    // Connection: close is honoured.
    let r = c
        .request("GET", "/_emulator/stats", &[("Connection", "close")], b"")
        .unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());

    // Expect: 100-continue gets its interim answer.
    let mut c = Client::connect(&emu);
    let code = emu.issue_code();
    let form = code_form(&emu, &code);
    let head = format!(
        "POST /oauth2/access_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    c.send_raw(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    c.stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send_raw(form.as_bytes()).unwrap();
    assert_eq!(c.read_response(false).unwrap().status, 200);
}

#[test]
fn fault_drop() {
    let emu = emu();
    emu.add_fault(
        json!({"path": "/oauth2/access_token", "method": "POST", "action": "drop", "times": 1}),
    )
    .unwrap();
    let code = emu.issue_code();
    let mut c = Client::connect(&emu);
    assert!(exchange(&mut c, &emu, &code).is_err());
    // The handler never ran: the code is still good, and the rule is used up.
    let mut c = Client::connect(&emu);
    assert_eq!(exchange(&mut c, &emu, &code).unwrap().status, 200);
    let s = emu.stats();
    assert_eq!(s["faults"], json!({"drop": 1}));
    assert_eq!(s["token_calls"], json!({"authorization_code/ok": 1}));
    assert_eq!(s["requests"], 2);
    assert_eq!(get(&emu, "/_emulator/faults").json(), json!([]));
}

#[test]
fn fault_reset() {
    let emu = emu();
    let r = post_json(
        &emu,
        "/_emulator/faults",
        &json!([{"path": "/oauth2/", "action": "reset", "times": 1}]),
    );
    assert_eq!(r.status, 200);
    let code = emu.issue_code();
    let mut c = Client::connect(&emu);
    let form = code_form(&emu, &code);
    // Send only the head: the server closes without waiting for the body.
    let head = format!(
        "POST /oauth2/access_token HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    c.send_raw(head.as_bytes()).unwrap();
    assert!(c.is_closed());
    let mut c = Client::connect(&emu);
    assert_eq!(exchange(&mut c, &emu, &code).unwrap().status, 200);
    assert_eq!(emu.stats()["faults"], json!({"reset": 1}));
}

#[test]
fn fault_delay_and_respond() {
    let emu = emu();
    emu.add_fault(json!([
        {"path": "/oauth2/access_token", "action": "delay", "delay_ms": 300, "times": 1},
        {"path": "/oauth2/access_token", "action": "respond", "status": 429,
         "body": "<html>Too Many Requests</html>", "content_type": "text/html", "times": 1}
    ]))
    .unwrap();
    let code = emu.issue_code();
    let mut c = Client::connect(&emu);
    let t0 = Instant::now();
    assert_eq!(exchange(&mut c, &emu, &code).unwrap().status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));

    let code2 = emu.issue_code();
    let r = exchange(&mut c, &emu, &code2).unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.content_type(), "text/html");
    assert_eq!(r.text(), "<html>Too Many Requests</html>");
    // The real handler did not run: code2 is still good.
    assert_eq!(exchange(&mut c, &emu, &code2).unwrap().status, 200);
    let s = emu.stats();
    assert_eq!(s["faults"], json!({"delay": 1, "respond": 1}));
    assert_eq!(s["token_calls"], json!({"authorization_code/ok": 2}));
    assert_eq!(s["connections"], 1);
}

#[test]
fn fault_truncate() {
    let emu = emu();
    emu.add_fault(json!({"path": "/oauth2/access_token", "action": "truncate"}))
        .unwrap();
    let code = emu.issue_code();
    let mut c = Client::connect(&emu);
    let form = code_form(&emu, &code);
    let req = format!(
        "POST /oauth2/access_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    c.send_raw(req.as_bytes()).unwrap();
    let mut all = Vec::new();
    c.stream.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    let cl: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), cl / 2);
    // The real handler ran: the code is spent.
    emu.clear_faults();
    let mut c = Client::connect(&emu);
    let r = exchange(&mut c, &emu, &code).unwrap();
    assert_eq!(r.json()["hint"], "Authorization code has been revoked");
    assert_eq!(emu.stats()["faults"], json!({"truncate": 1}));
}

#[test]
fn faults_spare_the_control_api_and_can_be_cleared() {
    let emu = emu();
    emu.add_fault(json!({"path": "/", "action": "respond", "status": 503}))
        .unwrap();
    assert_eq!(get(&emu, "/api/v4/account").status, 503);
    assert_eq!(get(&emu, "/api/v4/account").status, 503);
    assert_eq!(get(&emu, "/_emulator/stats").status, 200);
    let listed = get(&emu, "/_emulator/faults").json();
    assert_eq!(listed[0]["action"], "respond");
    assert_eq!(
        request(&emu, "DELETE", "/_emulator/faults", &[], b"").status,
        200
    );
    assert_eq!(get(&emu, "/api/v4/account").status, 401);
    assert!(emu.add_fault(json!({"action": "nope"})).is_err());
    assert_eq!(
        post_json(&emu, "/_emulator/faults", &json!({"action": "delay"})).status,
        400
    );
    let s = emu.stats();
    assert_eq!(s["faults"], json!({"respond": 2}));
    assert_eq!(s["api_calls"], json!({"401": 1}));
}

#[test]
fn malformed_input_gets_400_and_server_survives() {
    let emu = emu();
    let cases: &[&[u8]] = &[
        b"GARBAGE\x00\x01\r\n\r\n",
        b"GET /x HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET nopath HTTP/1.1\r\n\r\n",
    ];
    for raw in cases {
        let mut c = Client::connect(&emu);
        c.send_raw(raw).unwrap();
        let r = c.read_response(false).unwrap();
        assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(raw));
        assert!(c.is_closed());
    }
    // A huge head.
    let mut c = Client::connect(&emu);
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(70_000));
    let _ = c.send_raw(big.as_bytes());
    assert_eq!(c.read_response(false).unwrap().status, 431);
    // A client that goes away mid-body.
    {
        let mut s = TcpStream::connect(("127.0.0.1", emu.port())).unwrap();
        s.write_all(b"POST /api/v4/leads HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            .unwrap();
    }
    assert_eq!(get(&emu, "/_emulator/stats").status, 200);
    assert_eq!(get(&emu, "/nowhere").status, 404);
}

#[test]
fn stop_closes_the_listener() {
    let emu = emu();
    let port = emu.port();
    let mut idle = Client::connect(&emu);
    assert_eq!(
        idle.request("GET", "/_emulator/stats", &[], b"")
            .unwrap()
            .status,
        200
    );
    emu.stop();
    assert!(idle.is_closed());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn refuses_non_loopback_hosts() {
    let cfg = EmulatorConfig {
        host: "0.0.0.0".into(),
        ..EmulatorConfig::default()
    };
    let err = Emulator::start(cfg).err().expect("must refuse");
    assert!(err.to_string().contains("loopback"));
}

#[test]
fn binary_prints_port_and_serves() {
    let dir = std::env::temp_dir().join(format!("amocrm-emu-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_amocrm-emulator"))
        .args([
            "--port",
            "0",
            "--referer",
            "demo.localhost:1",
            "--client-secret",
            "s3",
        ])
        .arg("--port-file")
        .arg(&port_file)
        .env("EMULATOR_CLIENT_ID", "from-env")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !port_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(&port_file).unwrap(),
        port.to_string()
    );

    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"POST /_emulator/code HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body: Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["referer"], "demo.localhost:1");

    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /oauth?client_id=from-env HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let st = Command::new(env!("CARGO_BIN_EXE_amocrm-emulator"))
        .args(["--host", "0.0.0.0", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("loopback"));
}

#[test]
fn fault_reset_body_applies_then_resets_mid_body() {
    let emu = emu();
    let at = emu.mint_tokens()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    emu.add_fault(
        json!({"path": "/api/v4/leads", "method": "POST", "action": "reset_body", "times": 1}),
    )
    .unwrap();
    let body = json!([{"name": "reset mid-body"}]).to_string();
    let mut c = Client::connect(&emu);
    let req = format!(
        "POST /api/v4/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {at}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.send_raw(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let err = loop {
        match c.stream.read(&mut buf) {
            Ok(0) => panic!("an orderly close, not a reset"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 OK"));
    // The real handler ran: the lead exists, and the write counts as applied.
    assert_eq!(
        get(&emu, "/_emulator/leads")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(emu.stats()["api_writes_applied"], json!({"POST": 1}));
}

#[test]
fn fault_echo_and_raw_or_sized_bodies() {
    let emu = emu();
    emu.add_fault(json!([
        {"path": "/api/v4/leads", "method": "PATCH", "action": "echo", "times": 1},
        {"path": "/api/v4/account", "action": "respond", "status": 200, "body_base64": "/+7//w==", "times": 1},
        {"path": "/api/v4/account", "action": "respond", "status": 200, "body_size": 100000, "times": 1}
    ]))
    .unwrap();
    let mut c = Client::connect(&emu);
    let sent = json!({"name": "Заявка", "n": [1, 2.5, null, true]}).to_string();
    let r = c
        .request(
            "PATCH",
            "/api/v4/leads",
            &[("Content-Type", "application/json")],
            sent.as_bytes(),
        )
        .unwrap();
    assert_eq!((r.status, r.text()), (200, sent));
    let r = c.request("GET", "/api/v4/account", &[], b"").unwrap();
    assert_eq!(r.body, vec![0xff, 0xee, 0xff, 0xff]);
    let r = c.request("GET", "/api/v4/account", &[], b"").unwrap();
    assert_eq!(r.body.len(), 100_000);
    assert_eq!(r.json()["_page"], 1);
    let s = emu.stats();
    assert_eq!(
        s["api_writes_applied"],
        json!({}),
        "an echo changes nothing"
    );
    assert_eq!(s["faults"], json!({"echo": 1, "respond": 2}));
}
