//! The cross-process refresh lock: `flock` on a lock file beside the token
//! file, which the kernel releases when its holder dies — so a holder killed
//! with SIGKILL blocks nobody.
//!
//! A holder *stopped* with SIGSTOP (a debugger, a frozen cgroup) keeps its
//! flock. So the holder writes its pid into the file, and a process that has
//! waited its whole `wait` for a holder that is stopped takes the lock over:
//! it removes the lock file (the stopped holder keeps a lock on a file nobody
//! opens any more) and locks a new one. When the stopped holder resumes, the
//! lock it holds is no longer the lock file's: [`Held::still_ours`] says so,
//! and the store refuses its write. A holder that is slow but running is
//! never taken over: the waiter gives up with an error instead.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file as the kernel knows it: a takeover makes a new one.
type FileId = (u64, u64);

fn file_id(meta: &fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// A held lock; dropping it releases it.
pub struct Held {
    file: File,
    id: FileId,
    path: PathBuf,
}

impl Held {
    /// Whether this is still the lock everybody else waits on: false once a
    /// stopped holder's lock was taken over.
    pub fn still_ours(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| file_id(&m) == self.id)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Closing the file releases the flock too; unlock first so that a
        // descriptor leaked into a child process cannot hold it.
        let _ = fs2::FileExt::unlock(&self.file);
    }
}

/// What became of a wait.
enum Waited {
    Locked,
    /// The lock file was replaced (taken over) while waiting: wait on the new one.
    Replaced,
    TimedOut,
    /// What the caller waited for was done meanwhile: no need for the lock.
    Settled,
}

/// Takes the lock, waiting at most `wait` for a running holder; a holder
/// that is stopped when the wait ends is taken over.
#[cfg(test)]
pub fn acquire(path: &Path, wait: Duration) -> Result<Held> {
    acquire_unless(path, wait, &mut || false).map(|h| h.expect("never settled"))
}

/// [`acquire`], except that while another process holds the lock, `settled`
/// is asked at every look; once it answers true the wait ends without the
/// lock (`None`): what the holder was doing is what the caller needed.
pub fn acquire_unless(
    path: &Path,
    wait: Duration,
    settled: &mut dyn FnMut() -> bool,
) -> Result<Option<Held>> {
    let mut deadline = Instant::now() + wait;
    loop {
        let (file, id) = open(path)?;
        match wait_for(&file, id, path, deadline, settled)? {
            Waited::Locked => return Ok(Some(held(file, id, path))),
            Waited::Settled => return Ok(None),
            // Replaced by another waiter's takeover: wait on the new file,
            // for its holder, as long as for any.
            Waited::Replaced => deadline = Instant::now() + wait,
            Waited::TimedOut if current(path) != Some(id) => deadline = Instant::now() + wait,
            // Who holds the file this process waited on.
            Waited::TimedOut => match holder(&file) {
                Some((_, true)) => {
                    take_over(path, id);
                    // The new lock file may be taken by another waiter first:
                    // wait for it as for any holder.
                    deadline = Instant::now() + wait;
                }
                holder => {
                    let who = match holder {
                        Some((pid, _)) => format!("process {pid}, still running,"),
                        None => "another process".to_string(),
                    };
                    return Err(Error::storage(format!(
                        "lock file {}: {who} held it for over {} s",
                        path.display(),
                        wait.as_secs()
                    )));
                }
            },
        }
    }
}

/// Takes the lock if nobody holds it.
pub fn try_acquire(path: &Path) -> Result<Option<Held>> {
    let (file, id) = open(path)?;
    match fs2::FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(Some(held(file, id, path))),
        Err(e) if busy(&e) => Ok(None),
        Err(e) => Err(fault(path, "cannot lock", e)),
    }
}

fn fault(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::storage(format!("lock file {}: {what}: {e}", path.display()))
}

/// flock's "somebody holds it" (EWOULDBLOCK, 11 on Linux).
fn busy(e: &std::io::Error) -> bool {
    e.kind() == IoKind::WouldBlock || e.raw_os_error() == Some(11)
}

fn open(path: &Path) -> Result<(File, FileId)> {
    if let Some(dir) = path.parent() {
        crate::files::ensure_folder(dir).map_err(|e| fault(path, "cannot create its folder", e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| fault(path, "cannot open", e))?;
    crate::files::take_folder_owner(path);
    let id = file
        .metadata()
        .map(|m| file_id(&m))
        .map_err(|e| fault(path, "cannot stat", e))?;
    Ok((file, id))
}

/// How often a waiter looks at the lock: first soon (a refresh takes a few
/// ms), then every `MAX_PAUSE`, which bounds how long the lock stays unused
/// after its holder lets go. A look is a flock and a stat, a few µs.
const FIRST_PAUSE: Duration = Duration::from_micros(500);
const MAX_PAUSE: Duration = Duration::from_millis(4);

fn wait_for(
    file: &File,
    id: FileId,
    path: &Path,
    deadline: Instant,
    settled: &mut dyn FnMut() -> bool,
) -> Result<Waited> {
    let mut pause = FIRST_PAUSE;
    loop {
        match fs2::FileExt::try_lock_exclusive(file) {
            // Locked, but maybe a file that was taken over meanwhile.
            Ok(()) if current(path) == Some(id) => return Ok(Waited::Locked),
            Ok(()) => {
                let _ = fs2::FileExt::unlock(file);
                return Ok(Waited::Replaced);
            }
            Err(e) if busy(&e) => {
                if current(path) != Some(id) {
                    return Ok(Waited::Replaced);
                }
                if settled() {
                    return Ok(Waited::Settled);
                }
                if Instant::now() >= deadline {
                    return Ok(Waited::TimedOut);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => return Err(fault(path, "cannot lock", e)),
        }
    }
}

fn current(path: &Path) -> Option<FileId> {
    fs::metadata(path).ok().map(|m| file_id(&m))
}

/// Writes the holder's pid into the lock file, for waiters to look at.
fn held(mut file: File, id: FileId, path: &Path) -> Held {
    let _ = file
        .set_len(0)
        .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
    Held {
        file,
        id,
        path: path.to_path_buf(),
    }
}

/// The holder's pid (which it wrote into the lock file) and whether it is
/// stopped (SIGSTOP, a debugger's stop).
fn holder(file: &File) -> Option<(u32, bool)> {
    let mut buf = [0u8; 16];
    let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, 0).ok()?;
    let pid: u32 = std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    Some((pid, matches!(state, "T" | "t")))
}

/// Removes the lock file a stopped process holds, unless somebody replaced
/// it already. A second lock file serializes the takeovers themselves; it is
/// held for a stat and an unlink, so a busy one is simply tried again later.
fn take_over(path: &Path, stale: FileId) {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".takeover");
    let Ok((guard, _)) = open(&path.with_file_name(name)) else {
        return;
    };
    if fs2::FileExt::try_lock_exclusive(&guard).is_ok() {
        if current(path) == Some(stale) {
            let _ = fs::remove_file(path);
        }
        let _ = fs2::FileExt::unlock(&guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_times_out_and_names_a_running_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.lock");
        let held = acquire(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock is per open file description: a second open in the same process conflicts too.
        assert!(try_acquire(&path).unwrap().is_none());
        let e = acquire(&path, Duration::from_millis(50)).err().unwrap();
        assert!(e.message.contains("still running"), "{}", e.message);
        assert!(held.still_ours());
        drop(held);
        assert!(try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn a_stopped_holder_is_taken_over_and_knows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.lock");
        // A child process takes the lock, then stops itself.
        let script = format!(
            "exec 9>>{0}; flock -x 9; echo $$ > {0}; kill -STOP $$; sleep 30",
            path.display()
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let stopped = || File::open(&path).ok().and_then(|f| holder(&f));
        while stopped().is_none_or(|(_, stopped)| !stopped) {
            assert!(Instant::now() < deadline, "the child did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        let start = Instant::now();
        let held = acquire(&path, Duration::from_millis(300)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(held.still_ours());
        // Another waiter now waits for us, not for the stopped process.
        assert!(try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(try_acquire(&path).unwrap().is_some());
        let _ = child.kill();
        let _ = child.wait();
    }
}
