//! A small state file that every PHP process of the host reads and rewrites
//! under flock (the rate-limit log, the metrics). Opened once per process and
//! re-opened after fork: a descriptor inherited from the parent shares its
//! open file description, and with it the parent's lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct SharedFile {
    path: PathBuf,
    file: Mutex<Option<(u32, File)>>,
}

impl SharedFile {
    pub fn new(path: PathBuf) -> SharedFile {
        SharedFile {
            path,
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the whole file contents with the exclusive lock held;
    /// `f` returns the new contents (or `None` to leave them) and a result.
    pub fn update<T>(&self, f: impl FnOnce(Vec<u8>) -> (Option<Vec<u8>>, T)) -> std::io::Result<T> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if guard.as_ref().map(|(p, _)| *p) != Some(pid) {
            if let Some(parent) = self.path.parent() {
                crate::files::ensure_folder(parent)?;
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&self.path)?;
            crate::files::take_folder_owner(&self.path);
            if let Some(inherited) = guard.take() {
                std::mem::forget(inherited);
            }
            *guard = Some((pid, f));
        }
        let file = &mut guard.as_mut().expect("opened above").1;
        fs2::FileExt::lock_exclusive(&*file)?;
        let result = (|| {
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut bytes)?;
            let (new, out) = f(bytes);
            if let Some(new) = new {
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&new)?;
                file.set_len(new.len() as u64)?;
            }
            Ok(out)
        })();
        let _ = fs2::FileExt::unlock(&*file);
        result
    }
}
