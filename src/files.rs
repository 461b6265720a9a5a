//! Files the extension writes beside the token file: private (0600), owned
//! by the token folder's owner, replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Gives `path` the owner of its folder. When an admin runs the CLI as root
/// in the PHP user's token folder, the files it creates (the new token file,
/// the lock) stay readable by PHP-FPM's workers. Without root this is a no-op
/// or fails harmlessly.
pub fn take_folder_owner(path: &Path) {
    if let Some(dir) = path.parent() {
        take_owner_of(path, dir);
    }
}

/// Gives `path` the owner of `other` (best effort, as above).
pub fn take_owner_of(path: &Path, other: &Path) {
    if let Ok(meta) = fs::metadata(other) {
        let _ = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()));
    }
}

/// Creates the folder a file goes into when it is missing: mode 0700 and
/// the owner of the folder above it, so that an account's token folder made
/// by a root-run CLI stays the PHP user's (its files take its owner).
pub fn ensure_folder(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    take_folder_owner(dir);
    Ok(())
}

/// Replaces `path` with `bytes` so that a reader sees the old file or the new
/// one, never a part: a temp file in the same folder (mode 0600, the folder's
/// owner), fsync, rename, fsync the folder. Every caller holds the lock, so
/// one fixed temp name is enough, and a writer killed mid-way leaves at most
/// that one file behind, which the next writer truncates.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<fs::Metadata> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    ensure_folder(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let write = || -> std::io::Result<fs::Metadata> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        take_folder_owner(&tmp);
        f.write_all(bytes)?;
        f.sync_all()?;
        let meta = f.metadata()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(meta)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}
