//! The core's files path without PHP, against the in-process emulator's
//! drive host: parts from disk, a lost answer re-sent to its part's URL, a
//! 502 on a part retried, and the drive's own URLs checked like account hosts.

use amocrm::client::AmoCore;
use amocrm::drive::{Drive, EntityFiles, UploadOptions};
use amocrm::error::ErrorKind;
use amocrm_emulator::{Emulator, EmulatorConfig};

#[path = "support/emulated.rs"]
mod emulated;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn start(part: u64) -> (Emulator, tempfile::TempDir, AmoCore) {
    let emu = Emulator::start(EmulatorConfig {
        rate_limit: 0,
        drive_max_part_size: part,
        ..EmulatorConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("t.json");
    emulated::seed(&emu, &token_path, 86_400);
    let core = AmoCore::new(emulated::config(
        &emu,
        &token_path,
        &[("rate_limit", "0"), ("retry_backoff_ms", "10")],
    ));
    (emu, dir, core)
}

fn file(dir: &Path, size: usize) -> (PathBuf, String) {
    let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
    let path = dir.join("data.bin");
    std::fs::write(&path, &bytes).unwrap();
    let sha = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path, sha)
}

fn stored(emu: &Emulator, uuid: &Value) -> Value {
    emu.drive()["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| &f["uuid"] == uuid)
        .cloned()
        .unwrap()
}

#[test]
fn parts_from_disk_a_lost_answer_and_a_502_each_cost_one_part() {
    let (emu, dir, core) = start(1000);
    let (path, sha) = file(dir.path(), 5500);
    emu.set_drive(json!({"drop_part": 2})).unwrap();
    // Part 1's first try meets a 502 (the drive's gateway): sent again.
    emu.add_fault(json!({"path": "/v1.0/upload/", "method": "POST", "action": "respond", "status": 502, "body": "<html>502</html>", "times": 1}))
        .unwrap();
    let f = Drive::new(&core)
        .upload(&path, &UploadOptions::default())
        .unwrap();
    assert_eq!(f["size"], 5500);
    let s = stored(&emu, &f["uuid"]);
    assert_eq!(
        (s["sha256"].as_str(), s["parts"].as_u64()),
        (Some(sha.as_str()), Some(6))
    );
    let d = emu.drive();
    assert_eq!(d["stats"]["sessions_opened"], 1);
    assert_eq!(d["stats"]["parts_received"], 6);
    assert_eq!(d["stats"]["parts_repeated"], 1);
    assert_eq!(d["stats"]["bytes_received"], 5500);

    // Attach, list, detach.
    let lead = core
        .request(
            "POST",
            "/api/v4/leads",
            None,
            Some(&json!([{"name": "x"}])),
            None,
        )
        .unwrap()
        .unwrap();
    let id = lead["_embedded"]["leads"][0]["id"].as_i64().unwrap();
    let files = EntityFiles::new(&core, "leads", id).unwrap();
    let uuid = f["uuid"].as_str().unwrap().to_string();
    assert_eq!(files.get(&json!({})).unwrap(), Vec::<Value>::new());
    files.add(std::slice::from_ref(&uuid)).unwrap();
    assert_eq!(
        files.get(&json!({})).unwrap(),
        vec![json!({"file_uuid": uuid})]
    );
    files.delete(std::slice::from_ref(&uuid)).unwrap();
    assert_eq!(files.get(&json!({})).unwrap(), Vec::<Value>::new());
}

#[test]
fn a_part_that_keeps_failing_ends_the_upload_after_the_bounded_tries() {
    let (emu, dir, core) = start(1000);
    let (path, _) = file(dir.path(), 2500);
    emu.add_fault(json!({"path": "/v1.0/upload/", "action": "reset"}))
        .unwrap();
    let e = Drive::new(&core)
        .upload(&path, &UploadOptions::default())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transport, "{}", e.message);
    assert_eq!(
        emu.stats()["faults"]["reset"],
        json!(amocrm::drive::PART_RETRIES + 1),
        "the first part was tried 1 + PART_RETRIES times, never more"
    );
    assert_eq!(emu.drive()["stats"]["sessions_opened"], 1);
}

#[test]
fn urls_the_drive_names_are_checked_before_anything_is_sent() {
    let (emu, dir, core) = start(1000);
    let (path, _) = file(dir.path(), 10);
    let drive = emu.drive_url();
    for (answer, says) in [
        (
            json!({"upload_url": "http://127.0.0.2:9/x", "max_part_size": 1000}),
            "allowed_domains",
        ),
        (
            json!({"upload_url": format!("{drive}/v1.0/upload/x/1"), "max_part_size": 17 << 20}),
            "parts of 17825792 bytes",
        ),
        (
            json!({"upload_url": format!("{drive}/v1.0/upload/x/1"), "max_part_size": 0}),
            "parts of 0 bytes",
        ),
        (json!({"max_part_size": 1000}), "no upload_url"),
    ] {
        emu.add_fault(json!({"path": "/v1.0/sessions", "action": "respond", "status": 200, "body": answer, "times": 1}))
            .unwrap();
        let e = Drive::new(&core)
            .upload(&path, &UploadOptions::default())
            .unwrap_err();
        assert!(e.message.contains(says), "{answer}: {}", e.message);
    }
    assert_eq!(emu.drive()["stats"]["parts_received"], 0);
}

#[test]
fn a_drive_host_outside_allowed_domains_is_never_asked() {
    let (emu, dir, core) = start(1000);
    let (path, _) = file(dir.path(), 10);
    for url in [
        "https://drive.example.com",
        "http://127.0.0.2:9",
        "https://localhost.example.com",
    ] {
        emu.set_drive(json!({ "drive_url": url })).unwrap();
        let e = Drive::new(&core)
            .upload(&path, &UploadOptions::default())
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config, "{url}: {}", e.message);
        assert!(e.message.contains("allowed_domains"), "{}", e.message);
    }
    assert_eq!(emu.drive()["stats"]["sessions_opened"], 0);
}
