//! Token storage behind one narrow interface, and its file backend: atomic
//! writes (temp file in the same folder, fsync, rename, fsync the folder),
//! mode 0600, and a cross-process lock (flock on `<token file>.lock`).

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::lock;
use crate::token::{self, TokenPair};
use std::fs::{self, File};
use std::io::{ErrorKind as IoKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Identifies one version of the stored pair cheaply: a writer replaces the
/// file by rename, so a new inode (or size/mtime) means a new pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Version {
    fn of(meta: &fs::Metadata) -> Version {
        Version {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }

    /// A version kept by a shared store (Redis): the pair's generation,
    /// counted up by every write, and when it was written (the store's
    /// clock, microseconds), so that a pair deleted and written anew is not
    /// mistaken for an old one of the same generation. No file has device
    /// `u64::MAX`.
    pub fn generation(generation: u64, written_us: u64) -> Version {
        Version {
            dev: u64::MAX,
            ino: generation,
            size: 0,
            mtime_ns: written_us as i128,
        }
    }
}

/// The title of the error a save gets when this process's refresh lock was
/// taken over meanwhile: a newer pair is stored, and this one is dropped.
pub const LOCK_LOST: &str = "Refresh lock taken over";

/// Held while refreshing; dropping it releases the lock.
pub trait StoreLock {}

/// amoCRM refused a refresh token: when, why, and which token it was (a
/// fingerprint, never the token), so that no process sends it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub at: i64,
    pub reason: String,
    pub fingerprint: String,
}

/// Where token pairs live. The file store implements it now; a shared store
/// (Redis) for fleets of servers fits the same four verbs.
pub trait TokenStore: Send + Sync {
    /// The current version without reading the pair; `None` when nothing is stored.
    fn version(&self) -> Result<Option<Version>>;
    /// The stored pair and its version; `None` when nothing is stored.
    fn load(&self) -> Result<Option<(TokenPair, Version)>>;
    /// Replaces the stored pair with a complete new one, atomically. The
    /// caller holds the lock, and the store refuses the write if it no
    /// longer does (it was taken over while the process was stopped).
    fn save(&self, pair: &TokenPair) -> Result<Version>;
    /// Takes the exclusive cross-process lock, waiting at most `wait` for a
    /// running holder (a stopped one is taken over).
    fn lock(&self, wait: Duration) -> Result<Box<dyn StoreLock>> {
        self.lock_unless(wait, &mut || false)?.ok_or_else(|| {
            Error::storage(format!(
                "{}: the wait for its lock ended without it",
                self.location()
            ))
        })
    }
    /// [`TokenStore::lock`], except that while another process holds the
    /// lock, `settled` is asked at every look; once it answers true the wait
    /// ends without the lock (`None`): the holder did what the caller needed
    /// (a waiter for a refresh sees the refreshed pair stored).
    fn lock_unless(
        &self,
        wait: Duration,
        settled: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Box<dyn StoreLock>>>;
    /// Takes the lock only if nobody holds it.
    fn try_lock(&self) -> Result<Option<Box<dyn StoreLock>>>;
    /// Where the pair lives, for messages.
    fn location(&self) -> String;
    /// Remembers that amoCRM refused the stored refresh token; the next
    /// successful save forgets it.
    fn mark_refused(&self, refusal: &Refusal) -> Result<()>;
    /// The last refusal, until a new pair is saved.
    fn refused(&self) -> Result<Option<Refusal>>;
}

pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    refused_path: PathBuf,
    /// The lock this process holds, if any: `save` checks it is still the
    /// lock file's.
    held: Mutex<Weak<lock::Held>>,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        let path = path.into();
        let beside = |suffix: &str| {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            path.with_file_name(name)
        };
        FileStore {
            lock_path: beside(".lock"),
            refused_path: beside(".refused"),
            path,
            held: Mutex::new(Weak::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fault(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::storage(format!("token file {}: {what}: {e}", self.path.display()))
    }
}

struct FileLock(#[allow(dead_code)] Arc<lock::Held>);

impl StoreLock for FileLock {}

impl TokenStore for FileStore {
    fn version(&self) -> Result<Option<Version>> {
        match fs::metadata(&self.path) {
            Ok(m) => Ok(Some(Version::of(&m))),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(self.fault("cannot stat", e)),
        }
    }

    fn load(&self) -> Result<Option<(TokenPair, Version)>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
            Err(e) => return Err(self.fault("cannot open", e)),
        };
        // The version of the very file we read, not of whatever the path
        // names a moment later.
        let meta = file.metadata().map_err(|e| self.fault("cannot stat", e))?;
        if !meta.is_file() {
            return Err(self.fault("cannot read", "not a regular file"));
        }
        if meta.len() > token::MAX_FILE_BYTES {
            return Err(self.fault("cannot read", "larger than 64 KiB, not a token file"));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // Read at most the limit, even if the file grew since the stat.
        (&mut file)
            .take(token::MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.fault("cannot read", e))?;
        let mut pair = TokenPair::from_json(&bytes)
            .and_then(|p| {
                token::check_token("access_token", &p.access_token)?;
                p.refresh_token
                    .as_ref()
                    .map_or(Ok(()), |r| token::check_token("refresh_token", r))?;
                Ok(p)
            })
            .map_err(|why| self.fault("corrupt", why))?;
        if pair.updated_at == 0 {
            pair.updated_at = meta.mtime();
        }
        Ok(Some((pair, Version::of(&meta))))
    }

    fn save(&self, pair: &TokenPair) -> Result<Version> {
        let lost = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .is_some_and(|h| !h.still_ours());
        if lost {
            return Err(self
                .fault(
                    "not written",
                    "this process was stopped while it held the lock and another has taken the lock over; its pair is dropped and the stored one kept",
                )
                .with_title(LOCK_LOST));
        }
        let meta = write_atomic(&self.path, &pair.to_json())
            .map_err(|e| self.fault("cannot write (the previous pair is kept)", e))?;
        // A new pair: whatever amoCRM refused before no longer applies.
        let _ = fs::remove_file(&self.refused_path);
        Ok(Version::of(&meta))
    }

    fn lock_unless(
        &self,
        wait: Duration,
        settled: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Box<dyn StoreLock>>> {
        let Some(held) = lock::acquire_unless(&self.lock_path, wait, settled)? else {
            return Ok(None);
        };
        let held = Arc::new(held);
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&held);
        Ok(Some(Box::new(FileLock(held))))
    }

    fn try_lock(&self) -> Result<Option<Box<dyn StoreLock>>> {
        Ok(lock::try_acquire(&self.lock_path)?.map(|h| {
            let held = Arc::new(h);
            *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&held);
            Box::new(FileLock(held)) as Box<dyn StoreLock>
        }))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn mark_refused(&self, refusal: &Refusal) -> Result<()> {
        let note = serde_json::json!({
            "at": refusal.at,
            "reason": refusal.reason,
            "fingerprint": refusal.fingerprint,
        });
        write_atomic(&self.refused_path, note.to_string().as_bytes()).map_err(|e| {
            Error::storage(format!(
                "{}: cannot write: {e}",
                self.refused_path.display()
            ))
        })?;
        Ok(())
    }

    fn refused(&self) -> Result<Option<Refusal>> {
        match fs::read(&self.refused_path) {
            Ok(bytes) => {
                // Written atomically; a note that cannot be read still says
                // amoCRM refused the pair stored now (it is written under the
                // lock, for the pair of that moment).
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                Ok(Some(Refusal {
                    at: v["at"].as_i64().unwrap_or(0),
                    reason: v["reason"].as_str().unwrap_or("refused").to_string(),
                    fingerprint: v["fingerprint"].as_str().unwrap_or("").to_string(),
                }))
            }
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage(format!(
                "{}: cannot read: {e}",
                self.refused_path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::os::unix::fs::PermissionsExt;

    fn pair(n: i64) -> TokenPair {
        TokenPair {
            access_token: Secret::new(format!("a{n}")),
            refresh_token: Some(Secret::new(format!("r{n}"))),
            expires_at: 1000 + n,
            base_domain: "x.amocrm.ru".into(),
            updated_at: n,
        }
    }

    #[test]
    fn save_is_atomic_private_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("sub/tokens.json"));
        assert!(store.load().unwrap().is_none());
        assert!(store.version().unwrap().is_none());
        let v1 = store.save(&pair(1)).unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v2 = store.save(&pair(2)).unwrap();
        assert_ne!(v1, v2);
        let (loaded, v) = store.load().unwrap().unwrap();
        assert_eq!(loaded, pair(2));
        assert_eq!(v, v2);
        assert_eq!(store.version().unwrap(), Some(v2));
        // no temp files left behind
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn files_take_the_owner_of_the_token_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("www");
        fs::create_dir(&folder).unwrap();
        let me = fs::metadata(&folder).unwrap().uid();
        if me != 0 {
            return; // only root can give files away; CI runs as root
        }
        std::os::unix::fs::chown(&folder, Some(65534), Some(65534)).unwrap();
        let store = FileStore::new(folder.join("tokens.json"));
        drop(store.lock(Duration::from_secs(1)).unwrap());
        store.save(&pair(1)).unwrap();
        store
            .mark_refused(&Refusal {
                at: 1,
                reason: "revoked".into(),
                fingerprint: "f".into(),
            })
            .unwrap();
        for name in ["tokens.json", "tokens.json.lock", "tokens.json.refused"] {
            let m = fs::metadata(folder.join(name)).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{name}");
        }
    }

    #[test]
    fn a_write_after_the_lock_was_taken_over_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stopped = FileStore::new(dir.path().join("tokens.json"));
        let other = FileStore::new(dir.path().join("tokens.json"));
        let held = stopped.lock(Duration::from_secs(1)).unwrap();
        // What a waiter does to a stopped holder's lock: a new lock file.
        fs::remove_file(dir.path().join("tokens.json.lock")).unwrap();
        let taken = other.lock(Duration::from_secs(1)).unwrap();
        other.save(&pair(2)).unwrap();
        let e = stopped.save(&pair(1)).unwrap_err();
        assert!(e.message.contains("taken the lock over"), "{}", e.message);
        assert_eq!(other.load().unwrap().unwrap().0, pair(2));
        drop((held, taken));
    }

    #[test]
    fn corrupt_file_names_path_and_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, b"{\"access_token\": \"abc\"").unwrap();
        let e = FileStore::new(&path).load().unwrap_err();
        assert!(e.message.contains(path.to_str().unwrap()));
        assert!(e.message.contains("corrupt"));
    }
}
