//! amoCRM's drive host (files), on a listener of its own: upload sessions
//! (`POST /v1.0/sessions`), parts posted to the URL each answer names, the
//! file list (`/v1.0/files`), rename and delete; and, on the account host,
//! the files of an entity (`/api/v4/{entity}/{id}/files`).
//!
//! A file's bytes are never kept: each part is hashed (SHA-256) as it
//! arrives and counted, so a 200 MB upload costs the emulator one part.
//! A part's URL names the part; a part posted again to its URL (the client
//! lost the answer) is answered as the first time and applied once.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::{
    bad_request, exists, method_not_allowed, not_found, problem, unauthorized, validation_error,
    FieldError, HAL,
};
use crate::http::{Request, Response};
use crate::oauth::access_status;
use crate::Shared;

/// The default `max_part_size` of an upload session.
pub const DEFAULT_MAX_PART_SIZE: u64 = 512 * 1024;
/// The largest `max_part_size` the emulator can be set to: its largest body.
pub const MAX_PART_LIMIT: u64 = crate::http::MAX_BODY as u64;
/// The largest file a session accepts (amoCRM's own limit depends on the plan).
pub const MAX_FILE_SIZE: u64 = 2 << 30;

struct Session {
    file_name: String,
    file_size: u64,
    content_type: String,
    file_uuid: Option<String>,
    max_part_size: u64,
    received: u64,
    /// The number of the part expected next, from 1.
    next_part: u64,
    hasher: Sha256,
    /// The last part applied: its number, length and the answer given.
    last: Option<(u64, usize, Value)>,
}

#[derive(Clone)]
struct FileRec {
    id: u64,
    uuid: String,
    version_uuid: String,
    name: String,
    size: u64,
    sha256: String,
    content_type: String,
    created_at: i64,
    updated_at: i64,
    deleted_at: Option<i64>,
    versions: u32,
    parts: u64,
}

#[derive(Default)]
struct DriveStats {
    sessions_opened: u64,
    parts_received: u64,
    parts_repeated: u64,
    parts_dropped: u64,
    bytes_received: u64,
}

pub struct DriveState {
    max_part_size: u64,
    /// Drop the connection (without an answer) after applying the Nth part
    /// from when this was set, once.
    drop_part: Option<u64>,
    parts_since_set: u64,
    /// What `account?with=drive_url` names instead of this drive host.
    drive_url: Option<String>,
    sessions: HashMap<String, Session>,
    files: Vec<FileRec>,
    next_id: u64,
    stats: DriveStats,
    /// (entity type, id) → attached file uuids, in order.
    entity_files: BTreeMap<(String, u64), Vec<String>>,
}

impl DriveState {
    pub fn new(max_part_size: u64) -> DriveState {
        DriveState {
            max_part_size,
            drop_part: None,
            parts_since_set: 0,
            drive_url: None,
            sessions: HashMap::new(),
            files: Vec::new(),
            next_id: 1,
            stats: DriveStats::default(),
            entity_files: BTreeMap::new(),
        }
    }
}

fn drive(shared: &Shared) -> std::sync::MutexGuard<'_, DriveState> {
    shared.drive.lock().unwrap_or_else(|e| e.into_inner())
}

/// This drive host's own URL: the account host's name with the drive port.
pub fn own_url(shared: &Shared) -> String {
    let host = match shared.referer.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => shared.referer.as_str(),
    };
    format!("http://{host}:{}", shared.drive_port)
}

/// What `GET /api/v4/account?with=drive_url` answers.
pub fn drive_url(shared: &Shared) -> String {
    drive(shared)
        .drive_url
        .clone()
        .unwrap_or_else(|| own_url(shared))
}

fn extension(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

fn render(shared: &Shared, f: &FileRec) -> Value {
    let base = own_url(shared);
    let by = json!({"id": 1001, "type": "user"});
    json!({
        "id": f.id,
        "uuid": f.uuid,
        "version_uuid": f.version_uuid,
        "name": f.name,
        "sanitized_name": f.name.replace(['/', '\\'], "_"),
        "type": "file",
        "size": f.size,
        "source_id": null,
        "is_trashed": f.deleted_at.is_some(),
        "created_at": f.created_at,
        "created_by": by,
        "updated_at": f.updated_at,
        "updated_by": by,
        "deleted_at": f.deleted_at,
        "deleted_by": if f.deleted_at.is_some() { by.clone() } else { Value::Null },
        "has_multiple_versions": f.versions > 1,
        "metadata": {"extension": extension(&f.name), "mime_type": f.content_type},
        "previews": null,
        "_links": {
            "self": {"href": format!("{base}/v1.0/files/{}", f.uuid)},
            "download": {"href": format!("{base}/download/{}/{}", f.uuid, f.version_uuid)},
            "download_version": {"href": format!("{base}/download/{}/{}", f.uuid, f.version_uuid)},
        },
    })
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let token = req
        .header("authorization")
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let now = shared.now();
    token.is_some_and(|t| access_status(&shared.lock(), &t, now) == "valid")
}

fn json_body(req: &Request) -> Result<Value, Response> {
    serde_json::from_slice(&req.body).map_err(|_| bad_request("The body is not valid JSON"))
}

fn field_error(path: &str, detail: &str) -> Response {
    validation_error(vec![(
        "0".into(),
        vec![FieldError::new("InvalidValue", path, detail)],
    )])
}

/// A request on the drive listener; `None` drops the connection unanswered.
pub fn serve(shared: &Shared, req: &Request) -> Option<Response> {
    if !authorized(shared, req) {
        return Some(unauthorized());
    }
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let m = req.method.as_str();
    Some(match segs.as_slice() {
        ["v1.0", "sessions"] => match m {
            "POST" => open_session(shared, req),
            _ => method_not_allowed("POST"),
        },
        ["v1.0", "upload", sid, n] => match (m, n.parse::<u64>()) {
            ("POST", Ok(n)) if n > 0 => return part(shared, req, sid, n),
            ("POST", _) => not_found(),
            _ => method_not_allowed("POST"),
        },
        ["v1.0", "files"] => match m {
            "GET" => list(shared, req),
            "DELETE" => delete(shared, req),
            _ => method_not_allowed("GET, DELETE"),
        },
        ["v1.0", "files", uuid] => match m {
            "GET" => match find(shared, uuid) {
                Some(f) => Response::json(200, HAL, &render(shared, &f)),
                None => not_found(),
            },
            "PATCH" => rename(shared, req, uuid),
            _ => method_not_allowed("GET, PATCH"),
        },
        _ => not_found(),
    })
}

fn find(shared: &Shared, uuid: &str) -> Option<FileRec> {
    drive(shared).files.iter().find(|f| f.uuid == uuid).cloned()
}

fn open_session(shared: &Shared, req: &Request) -> Response {
    let b = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = b
        .get("file_name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
    else {
        return field_error("file_name", "file_name is required");
    };
    let size = match b.get("file_size").and_then(Value::as_u64) {
        Some(s) if s > 0 && s <= MAX_FILE_SIZE => s,
        _ => return field_error("file_size", "file_size must be from 1 byte to 2 GiB"),
    };
    let Some(ct) = b
        .get("content_type")
        .and_then(Value::as_str)
        .filter(|s| s.contains('/'))
    else {
        return field_error("content_type", "content_type is required");
    };
    let file_uuid = b
        .get("file_uuid")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(u) = &file_uuid {
        if find(shared, u).is_none_or(|f| f.deleted_at.is_some()) {
            return field_error("file_uuid", "no such file");
        }
    }
    let sid = crate::util::uuid_like();
    let mut d = drive(shared);
    let max = d.max_part_size;
    d.sessions.insert(
        sid.clone(),
        Session {
            file_name: name.to_string(),
            file_size: size,
            content_type: ct.to_string(),
            file_uuid,
            max_part_size: max,
            received: 0,
            next_part: 1,
            hasher: Sha256::new(),
            last: None,
        },
    );
    d.stats.sessions_opened += 1;
    drop(d);
    Response::json(
        200,
        HAL,
        &json!({
            "session_id": sid,
            "upload_url": format!("{}/v1.0/upload/{sid}/1", own_url(shared)),
            "max_file_size": MAX_FILE_SIZE,
            "max_part_size": max,
        }),
    )
}

fn part(shared: &Shared, req: &Request, sid: &str, n: u64) -> Option<Response> {
    let now = shared.now();
    let base = own_url(shared);
    let mut d = drive(shared);
    let d = &mut *d;
    let Some(s) = d.sessions.get_mut(sid) else {
        return Some(not_found());
    };
    let len = req.body.len();
    // The same part again (its answer was lost): the same answer, applied once.
    if let Some((last_n, last_len, answer)) = &s.last {
        if *last_n == n {
            if *last_len != len {
                return Some(bad_request("A repeated part must have the length it had"));
            }
            d.stats.parts_repeated += 1;
            return Some(Response::json(200, HAL, answer));
        }
    }
    if n != s.next_part {
        return Some(bad_request(&format!(
            "Part {n} is out of order: part {} is expected",
            s.next_part
        )));
    }
    if len == 0 || len as u64 > s.max_part_size {
        return Some(bad_request(&format!(
            "A part must be from 1 to {} bytes, got {len}",
            s.max_part_size
        )));
    }
    let after = s.received + len as u64;
    if after > s.file_size || (after < s.file_size && len as u64 != s.max_part_size) {
        return Some(bad_request(&format!(
            "Every part but the last must be {} bytes, and all must add up to {}",
            s.max_part_size, s.file_size
        )));
    }
    s.hasher.update(&req.body);
    s.received = after;
    s.next_part += 1;
    d.stats.parts_received += 1;
    d.stats.bytes_received += len as u64;
    let answer = if after < s.file_size {
        json!({
            "session_id": sid,
            "next_url": format!("{base}/v1.0/upload/{sid}/{}", n + 1),
            "received": after,
        })
    } else {
        let sha = crate::util::hex(&s.hasher.clone().finalize());
        let (name, ct, size, parts, version_of) = (
            s.file_name.clone(),
            s.content_type.clone(),
            s.file_size,
            n,
            s.file_uuid.clone(),
        );
        let rec = match version_of.and_then(|u| d.files.iter_mut().find(|f| f.uuid == u)) {
            Some(f) => {
                f.version_uuid = crate::util::uuid_like();
                f.size = size;
                f.sha256 = sha;
                f.content_type = ct;
                f.updated_at = now;
                f.versions += 1;
                f.parts = parts;
                f.clone()
            }
            None => {
                let rec = FileRec {
                    id: d.next_id,
                    uuid: crate::util::uuid_like(),
                    version_uuid: crate::util::uuid_like(),
                    name,
                    size,
                    sha256: sha,
                    content_type: ct,
                    created_at: now,
                    updated_at: now,
                    deleted_at: None,
                    versions: 1,
                    parts,
                };
                d.next_id += 1;
                d.files.push(rec.clone());
                rec
            }
        };
        render(shared, &rec)
    };
    let s = d.sessions.get_mut(sid).expect("looked up above");
    s.last = Some((n, len, answer.clone()));
    d.parts_since_set += 1;
    if d.drop_part == Some(d.parts_since_set) {
        d.drop_part = None;
        d.stats.parts_dropped += 1;
        return None;
    }
    Some(Response::json(200, HAL, &answer))
}

fn list(shared: &Shared, req: &Request) -> Response {
    let pairs = req.query_pairs();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (page, limit) = match crate::api::page_limit(&pairs) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let deleted = get("filter[deleted]").is_some_and(|v| v == "1" || v == "true");
    let uuids: Option<Vec<String>> =
        get("filter[uuid]").map(|v| v.split(',').map(str::to_string).collect());
    let all: Vec<Value> = {
        let d = drive(shared);
        d.files
            .iter()
            .filter(|f| f.deleted_at.is_some() == deleted)
            .filter(|f| uuids.as_ref().is_none_or(|u| u.contains(&f.uuid)))
            .map(|f| render(shared, f))
            .collect()
    };
    let (slice, has_next) = crate::api::paginate(all, page, limit);
    if slice.is_empty() {
        return Response::empty(204);
    }
    let base = format!("{}/v1.0/files", own_url(shared));
    let href = |p: usize| json!({"href": format!("{base}?page={p}&limit={limit}")});
    let mut links = json!({"self": href(page)});
    if has_next {
        links["next"] = href(page + 1);
    }
    if page > 1 {
        links["prev"] = href(page - 1);
    }
    Response::json(
        200,
        HAL,
        &json!({"_page": page, "_links": links, "_embedded": {"files": slice}}),
    )
}

fn rename(shared: &Shared, req: &Request, uuid: &str) -> Response {
    let b = match json_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = b
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
    else {
        return field_error("name", "name is required");
    };
    let now = shared.now();
    let rec = {
        let mut d = drive(shared);
        let Some(f) = d
            .files
            .iter_mut()
            .find(|f| f.uuid == uuid && f.deleted_at.is_none())
        else {
            return not_found();
        };
        f.name = name.to_string();
        f.updated_at = now;
        f.clone()
    };
    Response::json(200, HAL, &render(shared, &rec))
}

fn uuids_of(b: &Value, key: &str) -> Result<Vec<String>, Response> {
    let items = b
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| field_error("0", "a non-empty list is expected"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            it.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| field_error(&format!("{i}.{key}"), "is required"))
        })
        .collect()
}

fn delete(shared: &Shared, req: &Request) -> Response {
    let uuids = match json_body(req).and_then(|b| uuids_of(&b, "uuid")) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = shared.now();
    let mut d = drive(shared);
    for u in &uuids {
        if !d.files.iter().any(|f| &f.uuid == u) {
            drop(d);
            return field_error("uuid", &format!("no file {u}"));
        }
    }
    for f in d.files.iter_mut().filter(|f| uuids.contains(&f.uuid)) {
        f.deleted_at.get_or_insert(now);
    }
    Response::json(200, HAL, &json!({"result": true}))
}

/// `/api/v4/{et}/{id}/files` on the account host.
pub fn entity_files(shared: &Shared, req: &Request, et: &str, id: &str) -> Response {
    let Some(id) = id.parse::<u64>().ok().filter(|n| *n > 0) else {
        return not_found();
    };
    if !exists(&shared.lock(), et, id) {
        return not_found();
    }
    let key = (et.to_string(), id);
    let self_href =
        json!({"self": {"href": format!("http://{}/api/v4/{et}/{id}/files", shared.referer)}});
    let m = if req.method == "HEAD" {
        "GET"
    } else {
        req.method.as_str()
    };
    match m {
        "GET" => {
            let d = drive(shared);
            let list = d.entity_files.get(&key).cloned().unwrap_or_default();
            if list.is_empty() {
                return Response::empty(204);
            }
            let files: Vec<Value> = list.iter().map(|u| json!({"file_uuid": u})).collect();
            Response::json(
                200,
                HAL,
                &json!({"_links": self_href, "_embedded": {"files": files}}),
            )
        }
        "PUT" => {
            let uuids = match json_body(req).and_then(|b| uuids_of(&b, "file_uuid")) {
                Ok(u) => u,
                Err(r) => return r,
            };
            let mut d = drive(shared);
            for (i, u) in uuids.iter().enumerate() {
                if !d
                    .files
                    .iter()
                    .any(|f| &f.uuid == u && f.deleted_at.is_none())
                {
                    return validation_error(vec![(
                        "0".into(),
                        vec![FieldError::new(
                            "NotFound",
                            format!("{i}.file_uuid"),
                            "File not found",
                        )],
                    )]);
                }
            }
            let list = d.entity_files.entry(key).or_default();
            for u in &uuids {
                if !list.contains(u) {
                    list.push(u.clone());
                }
            }
            let files: Vec<Value> = uuids.iter().map(|u| json!({"file_uuid": u})).collect();
            Response::json(
                200,
                HAL,
                &json!({"_links": self_href, "_embedded": {"files": files}}),
            )
        }
        "DELETE" => {
            let uuids = match json_body(req).and_then(|b| uuids_of(&b, "file_uuid")) {
                Ok(u) => u,
                Err(r) => return r,
            };
            let mut d = drive(shared);
            if let Some(list) = d.entity_files.get_mut(&key) {
                list.retain(|u| !uuids.contains(u));
            }
            Response::empty(204)
        }
        _ => method_not_allowed("GET, PUT, DELETE"),
    }
}

/// `GET /_emulator/drive`: the drive's settings, counters, files (size and
/// SHA-256, never content) and entity attachments.
pub fn state_json(shared: &Shared) -> Value {
    let d = drive(shared);
    let files: Vec<Value> = d
        .files
        .iter()
        .map(|f| {
            json!({
                "uuid": f.uuid, "version_uuid": f.version_uuid, "name": f.name, "size": f.size,
                "sha256": f.sha256, "content_type": f.content_type, "versions": f.versions,
                "parts": f.parts, "deleted": f.deleted_at.is_some(),
            })
        })
        .collect();
    let attached: Vec<Value> = d
        .entity_files
        .iter()
        .flat_map(|((et, id), list)| {
            list.iter()
                .map(move |u| json!({"entity_type": et, "entity_id": id, "file_uuid": u}))
        })
        .collect();
    let s = &d.stats;
    json!({
        "drive_url": d.drive_url.clone().unwrap_or_else(|| own_url(shared)),
        "max_part_size": d.max_part_size,
        "drop_part": d.drop_part,
        "sessions_open": d.sessions.len(),
        "stats": {
            "sessions_opened": s.sessions_opened,
            "parts_received": s.parts_received,
            "parts_repeated": s.parts_repeated,
            "parts_dropped": s.parts_dropped,
            "bytes_received": s.bytes_received,
        },
        "files": files,
        "entity_files": attached,
    })
}

/// `POST /_emulator/drive {"max_part_size"?, "drop_part"?, "drive_url"?}`:
/// `drop_part` N drops the connection, unanswered, after the Nth part from
/// now was applied (once); `drive_url` (a string, or null for this host)
/// is what the account names.
pub fn configure(shared: &Shared, v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("the body must be a JSON object")?;
    let mut d = drive(shared);
    for (k, v) in o {
        match k.as_str() {
            "max_part_size" => {
                let n = v
                    .as_u64()
                    .filter(|n| (1..=MAX_PART_LIMIT).contains(n))
                    .ok_or(format!("max_part_size must be from 1 to {MAX_PART_LIMIT}"))?;
                d.max_part_size = n;
            }
            "drop_part" => {
                d.drop_part = match v {
                    Value::Null => None,
                    _ => Some(
                        v.as_u64()
                            .filter(|n| *n > 0)
                            .ok_or("drop_part must be 1 or more")?,
                    ),
                };
                d.parts_since_set = 0;
            }
            "drive_url" => {
                d.drive_url = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err("drive_url must be a string or null".into()),
                };
            }
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    Ok(())
}

pub fn control(shared: &Shared, req: &Request) -> Response {
    match req.method.as_str() {
        "GET" => Response::json(200, "application/json", &state_json(shared)),
        "POST" => {
            let v = if req.body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                match serde_json::from_slice(&req.body) {
                    Ok(v) => v,
                    Err(e) => {
                        return Response::json(
                            400,
                            "application/json",
                            &json!({"error": format!("invalid JSON: {e}")}),
                        )
                    }
                }
            };
            match configure(shared, &v) {
                Ok(()) => Response::json(200, "application/json", &state_json(shared)),
                Err(e) => Response::json(400, "application/json", &json!({"error": e})),
            }
        }
        _ => problem(405, "Method Not Allowed", "GET or POST").with_header("Allow", "GET, POST"),
    }
}
