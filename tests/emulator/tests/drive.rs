//! The drive host: upload sessions in parts, a repeated part applied once,
//! a dropped part, the file list, rename, delete; entity files.

mod common;

use amocrm_emulator::{Emulator, EmulatorConfig};
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;

fn setup(part: u64) -> (Emulator, String) {
    let emu = Emulator::start(EmulatorConfig {
        rate_limit: 0,
        drive_max_part_size: part,
        ..EmulatorConfig::default()
    })
    .expect("start");
    let t = emu.mint_tokens();
    (emu, t["access_token"].as_str().unwrap().to_string())
}

/// One request on a new connection to `url` (absolute, on the drive host):
/// the status and the JSON body (`null` when empty), or `None` when the
/// connection closed without an answer.
fn send(url: &str, method: &str, token: &str, ct: &str, body: &[u8]) -> Option<(u16, Value)> {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port: u16 = authority.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    if out.is_empty() {
        return None;
    }
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut hs);
    let n = match r.parse(&out).unwrap() {
        httparse::Status::Complete(n) => n,
        _ => panic!("partial head"),
    };
    let body = &out[n..];
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap()
    };
    Some((r.code.unwrap(), v))
}

fn json_call(url: &str, method: &str, token: &str, v: &Value) -> (u16, Value) {
    send(
        url,
        method,
        token,
        "application/json",
        v.to_string().as_bytes(),
    )
    .unwrap()
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn open(emu: &Emulator, at: &str, name: &str, size: usize) -> Value {
    let (st, s) = json_call(
        &format!("{}/v1.0/sessions", emu.drive_url()),
        "POST",
        at,
        &json!({"file_name": name, "file_size": size, "content_type": "text/plain"}),
    );
    assert_eq!(st, 200, "{s}");
    s
}

/// Sends `data` in the session's parts; returns the last answer.
fn upload(emu: &Emulator, at: &str, name: &str, data: &[u8]) -> Value {
    let s = open(emu, at, name, data.len());
    let part = s["max_part_size"].as_u64().unwrap() as usize;
    let mut url = s["upload_url"].as_str().unwrap().to_string();
    for (i, chunk) in data.chunks(part).enumerate() {
        let (st, a) = send(&url, "POST", at, "text/plain", chunk).unwrap();
        assert_eq!(st, 200, "{a}");
        match a["next_url"].as_str() {
            Some(n) => url = n.to_string(),
            None => {
                assert_eq!(i + 1, data.len().div_ceil(part));
                return a;
            }
        }
    }
    panic!("no final answer");
}

#[test]
fn account_names_the_drive_and_a_file_arrives_in_parts() {
    let (emu, at) = setup(1000);
    let acc = api(&emu, "GET", "/api/v4/account?with=drive_url", &at, None).json();
    assert_eq!(acc["drive_url"], json!(emu.drive_url()));
    assert_ne!(emu.drive_url(), emu.base_url());
    let data = bytes(3500);
    let f = upload(&emu, &at, "a.txt", &data);
    assert_eq!(
        (f["name"].clone(), f["size"].clone()),
        (json!("a.txt"), json!(3500))
    );
    let d = emu.drive();
    assert_eq!(d["files"][0]["sha256"], json!(sha(&data)));
    assert_eq!(d["files"][0]["parts"], json!(4));
    assert_eq!(d["stats"]["parts_received"], json!(4));
    // The drive takes the account's token only.
    let (st, _) = json_call(
        &format!("{}/v1.0/files", emu.drive_url()),
        "GET",
        "nope",
        &json!({}),
    );
    assert_eq!(st, 401);
}

#[test]
fn parts_must_be_in_order_and_whole() {
    let (emu, at) = setup(1000);
    let s = open(&emu, &at, "b.txt", 2500);
    let url = s["upload_url"].as_str().unwrap();
    // Shorter than max_part_size before the last part.
    assert_eq!(
        send(url, "POST", &at, "text/plain", &bytes(999)).unwrap().0,
        400
    );
    let (_, a) = send(url, "POST", &at, "text/plain", &bytes(1000)).unwrap();
    let next = a["next_url"].as_str().unwrap().to_string();
    // Part 1 again, the same length: the same answer, not applied twice.
    let (st, again) = send(url, "POST", &at, "text/plain", &bytes(1000)).unwrap();
    assert_eq!((st, again), (200, a.clone()));
    // Part 1 again with another length: refused.
    assert_eq!(
        send(url, "POST", &at, "text/plain", &bytes(10)).unwrap().0,
        400
    );
    // Part 3 before part 2.
    // (The part number is the URL's last segment; the session id before it
    // may hold a "/2" too.)
    let third = format!("{}/3", next.strip_suffix("/2").unwrap());
    assert_eq!(
        send(&third, "POST", &at, "text/plain", &bytes(500))
            .unwrap()
            .0,
        400
    );
    let d = emu.drive();
    assert_eq!(d["stats"]["parts_received"], json!(1));
    assert_eq!(d["stats"]["parts_repeated"], json!(1));
    assert_eq!(d["stats"]["bytes_received"], json!(1000));
    for bad in [
        json!({"file_size": 10, "content_type": "text/plain"}),
        json!({"file_name": "x", "file_size": 0, "content_type": "text/plain"}),
        json!({"file_name": "x", "file_size": 10}),
        json!({"file_name": "x", "file_size": 10, "content_type": "text/plain", "file_uuid": "00000000-0000-4000-8000-000000000000"}),
    ] {
        let (st, v) = json_call(
            &format!("{}/v1.0/sessions", emu.drive_url()),
            "POST",
            &at,
            &bad,
        );
        assert_eq!(st, 400, "{bad}");
        assert_eq!(v["detail"], json!("Request validation failed"));
    }
}

#[test]
fn a_dropped_part_is_applied_once_and_answered_again() {
    let (emu, at) = setup(1000);
    emu.set_drive(json!({"drop_part": 2})).unwrap();
    let data = bytes(2500);
    let s = open(&emu, &at, "c.bin", data.len());
    let url1 = s["upload_url"].as_str().unwrap();
    let (_, a1) = send(url1, "POST", &at, "text/plain", &data[..1000]).unwrap();
    let url2 = a1["next_url"].as_str().unwrap();
    assert!(send(url2, "POST", &at, "text/plain", &data[1000..2000]).is_none());
    let (st, a2) = send(url2, "POST", &at, "text/plain", &data[1000..2000]).unwrap();
    assert_eq!(st, 200);
    let (_, f) = send(
        a2["next_url"].as_str().unwrap(),
        "POST",
        &at,
        "text/plain",
        &data[2000..],
    )
    .unwrap();
    assert_eq!(f["size"], json!(2500));
    let d = emu.drive();
    assert_eq!(d["files"][0]["sha256"], json!(sha(&data)));
    assert_eq!(d["stats"]["parts_dropped"], json!(1));
    assert_eq!(d["stats"]["parts_repeated"], json!(1));
    assert_eq!(d["stats"]["sessions_opened"], json!(1));
}

#[test]
fn files_are_listed_renamed_versioned_deleted_and_attached() {
    let (emu, at) = setup(1000);
    let drive = emu.drive_url();
    let f1 = upload(&emu, &at, "one.txt", &bytes(10));
    let f2 = upload(&emu, &at, "two.txt", &bytes(20));
    let (u1, u2) = (f1["uuid"].as_str().unwrap(), f2["uuid"].as_str().unwrap());
    let (st, list) = json_call(
        &format!("{drive}/v1.0/files?limit=1"),
        "GET",
        &at,
        &json!({}),
    );
    assert_eq!(st, 200);
    assert_eq!(list["_embedded"]["files"][0]["uuid"], json!(u1));
    assert!(list["_links"]["next"]["href"]
        .as_str()
        .unwrap()
        .contains("page=2"));
    let (_, one) = json_call(&format!("{drive}/v1.0/files/{u2}"), "GET", &at, &json!({}));
    assert_eq!(one["size"], json!(20));
    let (st, r) = json_call(
        &format!("{drive}/v1.0/files/{u2}"),
        "PATCH",
        &at,
        &json!({"name": "2.txt"}),
    );
    assert_eq!((st, r["name"].clone()), (200, json!("2.txt")));
    // A new version of file 1.
    let (_, s) = json_call(
        &format!("{drive}/v1.0/sessions"),
        "POST",
        &at,
        &json!({"file_name": "one.txt", "file_size": 5, "content_type": "text/plain", "file_uuid": u1}),
    );
    let (_, v2) = send(
        s["upload_url"].as_str().unwrap(),
        "POST",
        &at,
        "text/plain",
        b"hello",
    )
    .unwrap();
    assert_eq!(
        (v2["uuid"].as_str(), v2["has_multiple_versions"].clone()),
        (Some(u1), json!(true))
    );
    assert_ne!(v2["version_uuid"], f1["version_uuid"]);
    // Entity files: attach, list, detach; a missing lead is 404.
    let lead = api(
        &emu,
        "POST",
        "/api/v4/leads",
        &at,
        Some(&json!([{"name": "L"}])),
    )
    .json();
    let id = lead["_embedded"]["leads"][0]["id"].as_u64().unwrap();
    let path = format!("/api/v4/leads/{id}/files");
    assert_eq!(api(&emu, "GET", &path, &at, None).status, 204);
    let r = api(
        &emu,
        "PUT",
        &path,
        &at,
        Some(&json!([{"file_uuid": u1}, {"file_uuid": u2}])),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        api(&emu, "GET", &path, &at, None).json()["_embedded"]["files"][1]["file_uuid"],
        json!(u2)
    );
    let bad = api(
        &emu,
        "PUT",
        &path,
        &at,
        Some(&json!([{"file_uuid": "00000000-0000-4000-8000-000000000000"}])),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(
        api(
            &emu,
            "PUT",
            "/api/v4/leads/999/files",
            &at,
            Some(&json!([{"file_uuid": u1}]))
        )
        .status,
        404
    );
    assert_eq!(
        api(
            &emu,
            "DELETE",
            &path,
            &at,
            Some(&json!([{"file_uuid": u1}]))
        )
        .status,
        204
    );
    assert_eq!(emu.drive()["entity_files"].as_array().unwrap().len(), 1);
    // Delete: to the trash, out of the list.
    let (st, del) = json_call(
        &format!("{drive}/v1.0/files"),
        "DELETE",
        &at,
        &json!([{"uuid": u1}]),
    );
    assert_eq!((st, del), (200, json!({"result": true})));
    let (_, list) = json_call(&format!("{drive}/v1.0/files"), "GET", &at, &json!({}));
    assert_eq!(list["_embedded"]["files"].as_array().unwrap().len(), 1);
    let (_, trash) = json_call(
        &format!("{drive}/v1.0/files?filter[deleted]=true"),
        "GET",
        &at,
        &json!({}),
    );
    assert_eq!(trash["_embedded"]["files"][0]["uuid"], json!(u1));
}

#[test]
fn the_drive_is_configurable() {
    let (emu, _) = setup(1000);
    assert!(emu.set_drive(json!({"max_part_size": 0})).is_err());
    assert!(emu.set_drive(json!({"max_part_size": 17 << 20})).is_err());
    assert!(emu.set_drive(json!({"nope": 1})).is_err());
    emu.set_drive(json!({"max_part_size": 4096, "drive_url": "http://127.0.0.2:1"}))
        .unwrap();
    let d = post_json(&emu, "/_emulator/drive", &json!({}));
    assert_eq!(d.json()["max_part_size"], json!(4096));
    assert_eq!(d.json()["drive_url"], json!("http://127.0.0.2:1"));
    assert!(Emulator::start(EmulatorConfig {
        drive_max_part_size: 0,
        ..EmulatorConfig::default()
    })
    .is_err());
}
