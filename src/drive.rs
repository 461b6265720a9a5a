//! Files, the way amoCRM stores them: on the account's drive host (a host
//! of its own, named by `GET /api/v4/account?with=drive_url`, API `v1.0`),
//! uploaded through a session in parts, and attached to leads, contacts,
//! companies and customers (`/api/v4/{entity}/{id}/files`).
//!
//! A file goes from disk to the drive host one part at a time: the process
//! holds one part (at most [`MAX_PART_BYTES`]), whatever the file's size.

use crate::client::{encode_query, AmoCore};
use crate::error::{Error, ErrorKind, Result};
use crate::host;
use crate::services;
use crate::transport;
use once_cell::sync::Lazy;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

/// The largest part accepted from the drive host's `max_part_size`: one
/// part is held in memory (twice, while it is sent), so a drive host asking
/// for more is refused rather than followed.
pub const MAX_PART_BYTES: u64 = 16 << 20;

/// How often one part is sent again after it failed without an answer (a
/// dropped connection, a timeout, 502/503/504), with backoff; the session
/// goes on from that part, never from the start.
pub const PART_RETRIES: u32 = 5;

/// The entity types files attach to.
pub const ENTITY_TYPES: [&str; 4] = ["leads", "contacts", "companies", "customers"];

/// The drive origin of each account host this process has asked about:
/// an account's drive host does not move between requests.
static DRIVES: Lazy<Mutex<HashMap<String, String>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// What `upload()` takes besides the path.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UploadOptions {
    /// The name amoCRM shows; default the file's own name.
    pub file_name: Option<String>,
    /// Default: from the name's extension, else application/octet-stream.
    pub content_type: Option<String>,
    /// A new version of this existing file.
    pub file_uuid: Option<String>,
    pub with_preview: bool,
}

impl UploadOptions {
    /// From `upload()`'s options array; an unknown key or a bad value is
    /// refused, named.
    pub fn from_value(v: &Value) -> Result<UploadOptions> {
        let obj = match v {
            Value::Object(o) => o.clone(),
            Value::Array(a) if a.is_empty() => Map::new(),
            _ => {
                return Err(Error::argument(
                    "options",
                    "must be an array keyed by option name",
                ))
            }
        };
        let mut o = UploadOptions::default();
        for (k, v) in &obj {
            let text = || {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Error::argument(k, "must be a string"))
            };
            match k.as_str() {
                "file_name" => {
                    let name = text()?;
                    if name.trim().is_empty()
                        || name.len() > 255
                        || name.chars().any(char::is_control)
                    {
                        return Err(Error::argument(
                            "file_name",
                            "must be 1 to 255 bytes without control characters",
                        ));
                    }
                    o.file_name = Some(name);
                }
                "content_type" => {
                    let t = text()?;
                    check_content_type(&t)?;
                    o.content_type = Some(t);
                }
                "file_uuid" => {
                    let u = text()?;
                    check_uuid("file_uuid", &u)?;
                    o.file_uuid = Some(u);
                }
                "with_preview" => {
                    o.with_preview = v
                        .as_bool()
                        .ok_or_else(|| Error::argument("with_preview", "must be a bool"))?
                }
                other => {
                    return Err(Error::argument(
                        "options",
                        format!(
                        "unknown option `{}` (file_name, content_type, file_uuid, with_preview)",
                        crate::error::excerpt(other.as_bytes(), 60)
                    ),
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// A MIME type that fits in a header: `type/subtype` and parameters, of
/// visible ASCII.
fn check_content_type(t: &str) -> Result<()> {
    let ok = t.len() <= 255
        && t.bytes().all(|b| (0x20..0x7f).contains(&b))
        && t.split(';').next().is_some_and(|m| {
            let mut parts = m.trim().split('/');
            let good = |s: Option<&str>| {
                s.is_some_and(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
                })
            };
            good(parts.next()) && good(parts.next()) && parts.next().is_none()
        });
    if ok {
        Ok(())
    } else {
        Err(Error::argument(
            "content_type",
            format!(
                "`{}` is not a MIME type such as application/pdf",
                crate::error::excerpt(t.as_bytes(), 80)
            ),
        ))
    }
}

/// A file's uuid as amoCRM gives it: 8-4-4-4-12 hex digits.
pub fn check_uuid(name: &str, u: &str) -> Result<()> {
    let groups: Vec<&str> = u.split('-').collect();
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Error::argument(
            name,
            format!(
                "`{}` is not a file uuid (8-4-4-4-12 hex digits)",
                crate::error::excerpt(u.as_bytes(), 60)
            ),
        ))
    }
}

/// The Content-Type for a file name, from its extension.
pub fn guess_content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// A file to upload, checked before any request: it exists, is a regular
/// file, can be read, and is not empty.
pub struct LocalFile {
    pub file: std::fs::File,
    pub size: u64,
    pub name: String,
}

impl LocalFile {
    pub fn open(path: &Path) -> Result<LocalFile> {
        let shown = path.display().to_string();
        let bad = |why: String| Error::argument("path", format!("{shown}: {why}"));
        if path.as_os_str().is_empty() {
            return Err(Error::argument("path", "is empty"));
        }
        let meta = std::fs::metadata(path).map_err(|e| {
            bad(match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => {
                    "cannot be reached (permission denied)".to_string()
                }
                _ => format!("cannot be read ({e})"),
            })
        })?;
        if meta.is_dir() {
            return Err(bad("is a directory, not a file".into()));
        }
        if !meta.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        let file = std::fs::File::open(path).map_err(|e| {
            bad(match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "is not readable (permission denied)".into()
                }
                _ => format!("cannot be opened ({e})"),
            })
        })?;
        if meta.len() == 0 {
            return Err(bad("is empty: amoCRM's drive stores no empty file".into()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        Ok(LocalFile {
            file,
            size: meta.len(),
            name,
        })
    }
}

/// An absolute URL the drive host named (its own address, an upload URL, a
/// next page) checked as an account host is: within `allowed_domains`, over
/// https (plain http only to loopback in `insecure_http` mode), no user
/// info. Returns the URL and its origin.
pub fn check_drive_url(
    url: &str,
    what: &str,
    allowed: &[String],
    insecure_http: bool,
) -> Result<(String, String)> {
    let refuse = |why: String| {
        Error::new(
            ErrorKind::Api,
            format!(
                "amoCRM named `{}` as the {what}: {why}; nothing was sent there",
                crate::error::excerpt(url.as_bytes(), 120)
            ),
        )
        .with_title("Drive host refused")
    };
    let parsed = url::Url::parse(url).map_err(|e| refuse(format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("not an http(s) URL".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("it carries user info".into()));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| refuse("it has no host".into()))?;
    let host_port = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    if let Err(why) = host::check_account_host(&host_port, allowed) {
        // The request would carry the token: the admin decides.
        return Err(Error::config(
            "allowed_domains",
            format!("amoCRM named the {what} `{host_port}`, and {why}; nothing was sent there"),
        ));
    }
    let origin = host::origin(&host_port, insecure_http)?;
    if !origin.starts_with(&format!("{}://", parsed.scheme())) {
        return Err(refuse(format!(
            "{} is refused here (expected {origin})",
            parsed.scheme()
        )));
    }
    let mut full = parsed.clone();
    full.set_fragment(None);
    Ok((full.to_string(), origin))
}

/// The drive host's answer as JSON (`None` for a 204).
fn answer(resp: transport::Response) -> Result<Option<Value>> {
    transport::decode(resp)
}

/// The files service: the drive host of the client's account.
pub struct Drive<'a> {
    pub core: &'a AmoCore,
}

/// A page of the drive's file list and the next page's URL.
pub struct FilesPage {
    pub items: Vec<Value>,
    pub next: Option<String>,
}

impl<'a> Drive<'a> {
    pub fn new(core: &'a AmoCore) -> Drive<'a> {
        Drive { core }
    }

    fn check(&self, url: &str, what: &str) -> Result<String> {
        let c = self.core.config();
        check_drive_url(url, what, &c.allowed_domains, c.insecure_http).map(|(u, _)| u)
    }

    /// The drive host's origin (`https://drive-b.amocrm.ru`), asked of the
    /// account once per process and account host.
    pub fn origin(&self) -> Result<String> {
        let account_host = self.core.fresh_pair()?.base_domain;
        if let Some(o) = drives().get(&account_host) {
            return Ok(o.clone());
        }
        let account = self
            .core
            .request(
                "GET",
                "/api/v4/account",
                Some(&json!({"with": ["drive_url"]})),
                None,
                None,
            )?
            .unwrap_or(Value::Null);
        let url = account
            .get("drive_url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Api,
                    "amoCRM's GET /api/v4/account?with=drive_url named no drive_url",
                )
                .with_title("No drive host")
            })?;
        let c = self.core.config();
        let (_, origin) = check_drive_url(url, "drive host", &c.allowed_domains, c.insecure_http)?;
        drives().insert(account_host, origin.clone());
        Ok(origin)
    }

    fn call(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Option<Value>> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON values always serialize"));
        let body = bytes.as_deref().map(|b| (b, "application/json"));
        let retries = self.core.config().max_retries;
        answer(self.core.send_to(method, url, body, false, retries)?)
    }

    /// Uploads the file at `path`: a session, then its parts from disk, one
    /// in memory at a time; returns the file as the drive host describes it
    /// (`uuid`, `version_uuid`, `name`, `size`, …).
    pub fn upload(&self, path: &Path, options: &UploadOptions) -> Result<Value> {
        let mut local = LocalFile::open(path)?;
        let name = options
            .file_name
            .clone()
            .unwrap_or_else(|| local.name.clone());
        let content_type = options
            .content_type
            .clone()
            .unwrap_or_else(|| guess_content_type(&name).to_string());
        let origin = self.origin()?;
        let mut session = json!({
            "file_name": name,
            "file_size": local.size,
            "content_type": content_type,
        });
        if options.with_preview {
            session["with_preview"] = json!(true);
        }
        if let Some(u) = &options.file_uuid {
            session["file_uuid"] = json!(u);
        }
        let opened = self
            .call("POST", &format!("{origin}/v1.0/sessions"), Some(&session))?
            .unwrap_or(Value::Null);
        let bad_session = |why: &str| {
            Error::new(
                ErrorKind::Api,
                format!("the drive host's upload session is not usable: {why}"),
            )
            .with_title("Bad upload session")
        };
        let mut url = self.check(
            opened
                .get("upload_url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_session("it names no upload_url"))?,
            "upload URL",
        )?;
        let part = opened
            .get("max_part_size")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| bad_session("it names no max_part_size"))?;
        if part == 0 || part > MAX_PART_BYTES {
            return Err(bad_session(&format!(
                "it asks for parts of {part} bytes; this client sends parts of 1 byte to {} MiB",
                MAX_PART_BYTES >> 20
            )));
        }
        let mut buf = vec![0u8; part.min(local.size) as usize];
        let mut sent = 0u64;
        loop {
            let n = (local.size - sent).min(part) as usize;
            local.file.read_exact(&mut buf[..n]).map_err(|e| {
                Error::argument(
                    "path",
                    format!(
                        "{}: could not read bytes {sent}..{} ({e}); did the file shrink while it was sent?",
                        path.display(),
                        sent + n as u64
                    ),
                )
            })?;
            // The part's URL names the part: sending it again after a
            // failure without an answer stores it once.
            let resp = self.core.send_to(
                "POST",
                &url,
                Some((&buf[..n], content_type.as_str())),
                true,
                PART_RETRIES,
            )?;
            sent += n as u64;
            let got = answer(resp)?.unwrap_or(Value::Null);
            match got
                .get("next_url")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
            {
                Some(next) if sent < local.size => url = self.check(next, "next part's URL")?,
                Some(_) => {
                    return Err(bad_session(&format!(
                        "it asks for more after all {} bytes were sent",
                        local.size
                    )))
                }
                None if sent < local.size => {
                    return Err(bad_session(&format!(
                        "it ended the upload after {sent} of {} bytes",
                        local.size
                    )))
                }
                None => return Ok(got),
            }
        }
    }

    /// One page of files (`filter`, `page`, `limit`, …), and the next page's URL.
    pub fn page(&self, params: &Value) -> Result<FilesPage> {
        let query = encode_query(&services::list_query(params)?)?;
        let origin = self.origin()?;
        let sep = if query.is_empty() { "" } else { "?" };
        self.page_at(&format!("{origin}/v1.0/files{sep}{query}"))
    }

    /// The page at a URL a previous page named.
    pub fn page_at(&self, url: &str) -> Result<FilesPage> {
        let url = self.check(url, "next page's URL")?;
        let Some(mut got) = self.call("GET", &url, None)? else {
            return Ok(FilesPage {
                items: Vec::new(),
                next: None,
            });
        };
        let next = got
            .pointer("/_links/next/href")
            .and_then(Value::as_str)
            .map(str::to_string);
        let items = match got.pointer_mut("/_embedded/files").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(Error::new(
                    ErrorKind::Api,
                    "the drive host's file list has no _embedded.files",
                ))
            }
        };
        Ok(FilesPage { items, next })
    }

    /// One file by uuid, or `None` when the drive host has none.
    pub fn get_one(&self, uuid: &str) -> Result<Option<Value>> {
        check_uuid("uuid", uuid)?;
        let origin = self.origin()?;
        match self.call("GET", &format!("{origin}/v1.0/files/{uuid}"), None) {
            Err(e) if e.status == 404 => Ok(None),
            other => other,
        }
    }

    /// Renames a file: `item` holds its `uuid` and the new `name`.
    pub fn update_one(&self, item: &Value) -> Result<Value> {
        let uuid = item
            .get("uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::argument("uuid", "the item needs the file's uuid"))?;
        check_uuid("uuid", uuid)?;
        let name = item
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::argument("name", "the item needs the new name (a string)"))?;
        if name.trim().is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
            return Err(Error::argument(
                "name",
                "must be 1 to 255 bytes without control characters",
            ));
        }
        let origin = self.origin()?;
        let body = json!({"uuid": uuid, "name": name});
        Ok(self
            .call("PATCH", &format!("{origin}/v1.0/files/{uuid}"), Some(&body))?
            .unwrap_or(body))
    }

    /// Deletes files by uuid (to the drive's trash).
    pub fn delete(&self, uuids: &[String]) -> Result<()> {
        if uuids.is_empty() {
            return Err(Error::argument("uuids", "is empty: name at least one file"));
        }
        for u in uuids {
            check_uuid("uuids", u)?;
        }
        let origin = self.origin()?;
        let body: Vec<Value> = uuids.iter().map(|u| json!({ "uuid": u })).collect();
        self.call(
            "DELETE",
            &format!("{origin}/v1.0/files"),
            Some(&Value::Array(body)),
        )?;
        Ok(())
    }
}

fn drives() -> std::sync::MutexGuard<'static, HashMap<String, String>> {
    DRIVES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The files of one lead, contact, company or customer (on the account host).
pub struct EntityFiles<'a> {
    pub core: &'a AmoCore,
    pub path: String,
}

impl<'a> EntityFiles<'a> {
    pub fn new(core: &'a AmoCore, entity_type: &str, entity_id: i64) -> Result<EntityFiles<'a>> {
        if !ENTITY_TYPES.contains(&entity_type) {
            return Err(Error::argument(
                "entityType",
                format!(
                    "must be one of {}, got `{}`",
                    ENTITY_TYPES.join(", "),
                    crate::error::excerpt(entity_type.as_bytes(), 60)
                ),
            ));
        }
        if entity_id < 1 {
            return Err(Error::argument(
                "entityId",
                format!("must be a positive id, got {entity_id}"),
            ));
        }
        Ok(EntityFiles {
            core,
            path: format!("/api/v4/{entity_type}/{entity_id}/files"),
        })
    }

    fn embedded(got: Option<Value>) -> Vec<Value> {
        match got.and_then(|mut g| g.pointer_mut("/_embedded/files").map(Value::take)) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        }
    }

    /// The attached files (`[{"file_uuid", …}]`); `[]` on 204.
    pub fn get(&self, params: &Value) -> Result<Vec<Value>> {
        let query = services::list_query(params)?;
        Ok(Self::embedded(self.core.request(
            "GET",
            &self.path,
            Some(&query),
            None,
            None,
        )?))
    }

    fn links(uuids: &[String]) -> Result<Value> {
        if uuids.is_empty() {
            return Err(Error::argument(
                "fileUuids",
                "is empty: name at least one file",
            ));
        }
        for u in uuids {
            check_uuid("fileUuids", u)?;
        }
        Ok(Value::Array(
            uuids.iter().map(|u| json!({ "file_uuid": u })).collect(),
        ))
    }

    /// Attaches files by uuid; returns amoCRM's answer list.
    pub fn add(&self, uuids: &[String]) -> Result<Vec<Value>> {
        let body = Self::links(uuids)?;
        Ok(Self::embedded(self.core.request(
            "PUT",
            &self.path,
            None,
            Some(&body),
            None,
        )?))
    }

    /// Detaches files by uuid (they stay on the drive).
    pub fn delete(&self, uuids: &[String]) -> Result<()> {
        let body = Self::links(uuids)?;
        self.core
            .request("DELETE", &self.path, None, Some(&body), None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["amocrm.ru".into(), "localhost".into()]
    }

    #[test]
    fn drive_urls_pass_the_account_host_rules() {
        let (u, o) =
            check_drive_url("https://drive-b.amocrm.ru", "drive host", &allowed(), false).unwrap();
        assert_eq!(
            (u.as_str(), o.as_str()),
            ("https://drive-b.amocrm.ru/", "https://drive-b.amocrm.ru")
        );
        let (_, o) = check_drive_url(
            "http://localhost:8080/v1.0/x",
            "drive host",
            &allowed(),
            true,
        )
        .unwrap();
        assert_eq!(o, "http://localhost:8080");
        for (url, insecure, says) in [
            ("https://drive.evil.com", false, "allowed_domains"),
            (
                "https://drive-b.amocrm.ru.evil.com",
                false,
                "allowed_domains",
            ),
            ("http://127.0.0.2:80", true, "allowed_domains"),
            ("http://drive-b.amocrm.ru", false, "http is refused"),
            ("https://user:pw@drive-b.amocrm.ru", false, "user info"),
            ("ftp://drive-b.amocrm.ru", false, "not an http(s) URL"),
            ("drive-b.amocrm.ru", false, "not a URL"),
        ] {
            let e = check_drive_url(url, "drive host", &allowed(), insecure).unwrap_err();
            assert!(e.message.contains(says), "{url}: {}", e.message);
        }
    }

    #[test]
    fn upload_options_are_checked_and_named() {
        let o = UploadOptions::from_value(&json!({"file_name": "a.pdf", "content_type": "application/pdf", "with_preview": true, "file_uuid": "0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"})).unwrap();
        assert!(o.with_preview);
        assert_eq!(
            UploadOptions::from_value(&json!([])).unwrap(),
            UploadOptions::default()
        );
        for (v, says) in [
            (json!({"nope": 1}), "unknown option `nope`"),
            (json!({"file_name": ""}), "`file_name`"),
            (json!({"file_name": "a\nb"}), "`file_name`"),
            (json!({"content_type": "text"}), "`content_type`"),
            (
                json!({"content_type": "text/plain\r\nX: y"}),
                "`content_type`",
            ),
            (json!({"file_uuid": "123"}), "`file_uuid`"),
            (json!({"with_preview": "yes"}), "`with_preview`"),
            (json!("x"), "`options`"),
        ] {
            let e = UploadOptions::from_value(&v).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Config);
            assert!(e.message.contains(says), "{v}: {}", e.message);
        }
    }

    #[test]
    fn local_files_are_checked_before_any_request() {
        let dir = std::env::temp_dir().join(format!("amocrm-drive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, b"").unwrap();
        let full = dir.join("a.txt");
        std::fs::write(&full, b"hello").unwrap();
        for (p, says) in [
            (dir.join("missing.bin"), "no such file"),
            (dir.clone(), "is a directory"),
            (empty.clone(), "is empty"),
            (std::path::PathBuf::from("/dev/null"), "not a regular file"),
        ] {
            let e = LocalFile::open(&p).err().unwrap();
            assert!(
                e.message.contains("`path`") && e.message.contains(says),
                "{}",
                e.message
            );
        }
        let f = LocalFile::open(&full).unwrap();
        assert_eq!((f.size, f.name.as_str()), (5, "a.txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uuids_and_content_types() {
        assert!(check_uuid("u", "83bd6974-d54e-4fed-9fec-a3e5a31220db").is_ok());
        for bad in [
            "",
            "83bd6974d54e4fed9feca3e5a31220db",
            "83bd6974-d54e-4fed-9fec-a3e5a31220dg",
            "../../x",
        ] {
            assert!(check_uuid("u", bad).is_err(), "{bad}");
        }
        assert_eq!(guess_content_type("Отчёт.PDF"), "application/pdf");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
    }
}
