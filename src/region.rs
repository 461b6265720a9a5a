//! The file backend's shared memory: the rate limiter's slots and the
//! counters of one account, in a small file beside the token file
//! (`<token_path>.shm`) that every PHP process of the host maps into its
//! memory. An API call updates it with a few atomic operations — no system
//! call, no lock, no parsing.
//!
//! Layout: 64-bit words, native byte order; a magic word, then
//! [`SLOTS`] rate-limit slots, then one counter per [`Counter`] index; from
//! the fourth page on, the admin page's history (see [`crate::history`]):
//! 1440 one-minute buckets, then the last refreshes. Earlier versions made
//! the file three pages long, without the history: such a file is grown in
//! place (zeros appended, nothing moved), so that a process of the earlier
//! version still running during a deploy keeps its mapping and its words.
//!
//! A page of a mapped file that the file system must find room for when it
//! is written (copy-on-write file systems, btrfs and ZFS, on a full disk)
//! would kill the process with SIGBUS. So the file is written whole when it
//! is made, and it is mapped only on file systems that write a page in
//! place (ext2/3/4, XFS, tmpfs, overlayfs); elsewhere the region lives in
//! `/dev/shm` under a name derived from the token path. Made or mapped
//! nowhere (no room, no permission), the process keeps a private region:
//! its own requests stay within the limit, and its counts are its own.
//!
//! A request in flight also holds a lock on one byte of the file per slot
//! (an open file description lock, which the kernel drops when the process
//! dies): a slot whose holder was killed mid-request is told apart from one
//! still in flight, and freed a window later instead of at its deadline.
//!
//! A process checks at most once a second that the file it mapped is still
//! the one at that path (deleted or replaced, the new one is mapped), and
//! maps it again after a fork (locks belong to the process that took them).

use crate::metrics::Counter;
use crate::ratelimit::{self, Ticket};
use crate::state::{Budget, Counters};
use memmap2::MmapRaw;
use std::fs::{File, OpenOptions};

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAGIC: u64 = u64::from_le_bytes(*b"AMOSHM01");
/// Rate-limit slots: more than the largest `rate_limit` (100).
pub const SLOTS: usize = 128;
const FIRST_SLOT: usize = 8;
const FIRST_COUNTER: usize = FIRST_SLOT + SLOTS;
/// Where the history starts: after the three pages of earlier versions,
/// which leave room for counters added later.
const HISTORY_AT: usize = 1536;
const _: () = assert!(FIRST_COUNTER + Counter::COUNT <= HISTORY_AT);
/// The size of the file earlier versions made (and still map).
const V1_SIZE: usize = HISTORY_AT * 8;
const FIRST_MINUTE: usize = HISTORY_AT;
const FIRST_REFRESH: usize = FIRST_MINUTE + crate::history::MINUTE_WORDS;
const WORDS: usize = FIRST_REFRESH + crate::history::REFRESH_WORDS;
/// The file's size: whole pages.
const SIZE: usize = (WORDS * 8).next_multiple_of(4096);
/// Where the per-slot claim locks are (bytes, beyond what earlier versions
/// mapped): the same offset for every version, so that during a deploy the
/// old and the new processes see each other's claims.
const CLAIMS_AT: usize = V1_SIZE;
const RECHECK: Duration = Duration::from_secs(1);

struct Mapped {
    map: MmapRaw,
    /// The file's device and inode (none for a private region).
    identity: Option<(u64, u64)>,
    /// This process's own open file: the claims on slots are locks on it.
    file: Option<File>,
    /// The fork generation that opened it (claims are per process).
    generation: u64,
}

impl Mapped {
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is SIZE bytes, page-aligned, shared only with
        // other processes that touch it through atomics, and lives as long
        // as `self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const AtomicU64, WORDS) }
    }

    fn slots(&self) -> &[AtomicU64] {
        &self.words()[FIRST_SLOT..FIRST_COUNTER]
    }

    fn counter(&self, c: Counter) -> &AtomicU64 {
        &self.words()[FIRST_COUNTER + c.index()]
    }

    fn minutes(&self) -> &[AtomicU64] {
        &self.words()[FIRST_MINUTE..FIRST_REFRESH]
    }

    fn refreshes(&self) -> &[AtomicU64] {
        &self.words()[FIRST_REFRESH..WORDS]
    }

    fn private() -> Mapped {
        let map = MmapRaw::from(
            memmap2::MmapMut::map_anon(SIZE).expect("an anonymous mapping of a few pages"),
        );
        Mapped {
            map,
            identity: None,
            file: None,
            generation: crate::net::fork_generation(),
        }
    }

    /// Sets or clears this process's lock on slot `i`'s byte (an open file
    /// description lock: the kernel drops it when the process dies).
    fn lock(&self, i: usize, kind: libc::c_short) -> bool {
        use std::os::fd::AsRawFd;
        let Some(file) = &self.file else {
            return true;
        };
        // SAFETY: a zeroed flock is valid; the fd is open for the call.
        let mut l: libc::flock = unsafe { std::mem::zeroed() };
        l.l_type = kind;
        l.l_whence = libc::SEEK_SET as libc::c_short;
        l.l_start = (CLAIMS_AT + i) as libc::off_t;
        l.l_len = 1;
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &l) == 0 }
    }
}

impl ratelimit::Claims for Mapped {
    fn claim(&self, i: usize) -> bool {
        self.lock(i, libc::F_WRLCK as libc::c_short)
    }

    fn unclaim(&self, i: usize) {
        self.lock(i, libc::F_UNLCK as libc::c_short);
    }

    fn tells_death(&self) -> bool {
        self.file.is_some()
    }
}

pub struct Region {
    path: PathBuf,
    /// The token folder, whose owner the file takes when root makes it.
    folder: PathBuf,
    mapped: Mutex<(Option<Arc<Mapped>>, Option<Instant>)>,
}

impl Region {
    /// The region for the token file at `token_path` (nothing is opened yet).
    pub fn new(token_path: &Path) -> Region {
        let mut p = token_path.as_os_str().to_owned();
        p.push(".shm");
        let beside = PathBuf::from(p);
        let folder = token_path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let path = if in_place_writes(&folder) {
            beside
        } else {
            dev_shm_path(token_path)
        };
        Region {
            path,
            folder,
            mapped: Mutex::new((None, None)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mapping, made on first use (and again after a fork), and
    /// re-checked once a second.
    fn mapped(&self) -> Arc<Mapped> {
        let mut guard = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        let (current, checked) = &mut *guard;
        if current
            .as_ref()
            .is_some_and(|m| m.generation != crate::net::fork_generation())
        {
            *current = None;
        }
        let due = checked.is_none_or(|t| t.elapsed() >= RECHECK);
        if let (Some(m), false) = (current.as_ref(), due) {
            return m.clone();
        }
        *checked = Some(Instant::now());
        if let Some(m) = current.as_ref() {
            let on_disk = std::fs::metadata(&self.path)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            if m.identity.is_some() && m.identity == on_disk {
                return m.clone();
            }
        }
        let fresh = Arc::new(open(&self.path, &self.folder).unwrap_or_else(|_| Mapped::private()));
        *current = Some(fresh.clone());
        fresh
    }
}

/// Opens (or makes) the region file and maps it.
fn open(path: &Path, folder: &Path) -> std::io::Result<Mapped> {
    crate::files::ensure_folder(folder)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    // In /dev/shm, anyone may have made the file first: it must be ours.
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid && euid != 0 {
        return Err(std::io::Error::other(
            "the region file belongs to another user",
        ));
    }
    fs2::FileExt::lock_exclusive(&file)?;
    let made = (|| {
        use std::os::unix::fs::FileExt;
        let mut magic = [0u8; 8];
        let len = file.metadata()?.len();
        // Positioned reads and writes: the file's offset stays at 0 for
        // the whole write below.
        let ours = file.read_exact_at(&mut magic, 0).is_ok() && u64::from_ne_bytes(magic) == MAGIC;
        let whole = ours && len >= SIZE as u64;
        if ours && !whole && len >= V1_SIZE as u64 {
            // An earlier version's region: zeros appended, every word kept
            // where it was (its processes may have it mapped: never
            // truncate it under them).
            file.write_all_at(&vec![0u8; SIZE - len as usize], len)?;
            file.sync_all()?;
        } else if !whole {
            // Written whole, so that no page needs room later.
            let mut bytes = vec![0u8; SIZE];
            bytes[..8].copy_from_slice(&MAGIC.to_ne_bytes());
            import_old_counters(path, &mut bytes);
            file.set_len(0)?;
            file.write_all_at(&bytes, 0)?;
            file.sync_all()?;
            crate::files::take_owner_of(path, folder);
        }
        MmapRaw::map_raw(&file)
    })();
    let _ = fs2::FileExt::unlock(&file);
    let map = made?;
    if map.len() < SIZE {
        return Err(std::io::Error::other("the region file is too small"));
    }
    Ok(Mapped {
        map,
        identity: Some((meta.dev(), meta.ino())),
        file: Some(file),
        generation: crate::net::fork_generation(),
    })
}

/// The counters of the JSON `.metrics` file that earlier versions kept
/// beside the token file, carried into a new region; the old file and the
/// old `.ratelimit` log are removed.
fn import_old_counters(region: &Path, bytes: &mut [u8]) {
    let Some(token) = region.to_str().and_then(|p| p.strip_suffix(".shm")) else {
        return;
    };
    let old = format!("{token}.metrics");
    if let Ok(json) = std::fs::read(&old) {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&json).unwrap_or_default();
        for (name, v) in map {
            if let (Some(c), Some(n)) = (Counter::from_name(&name), v.as_u64()) {
                let at = (FIRST_COUNTER + c.index()) * 8;
                bytes[at..at + 8].copy_from_slice(&n.to_ne_bytes());
            }
        }
        let _ = std::fs::remove_file(&old);
    }
    let _ = std::fs::remove_file(format!("{token}.ratelimit"));
}

/// Whether a written page of a file in `dir` stays written without needing
/// room again (statfs: ext2/3/4, XFS, tmpfs, ramfs, overlayfs).
fn in_place_writes(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut dir = dir.to_path_buf();
    // The folder may not exist yet: ask about the nearest one that does.
    while !dir.exists() {
        if !dir.pop() {
            return false;
        }
    }
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid out-parameter; `c` is a C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    matches!(
        st.f_type as u64,
        0xEF53 | 0x5846_5342 | 0x0102_1994 | 0x8584_58f6 | 0x794c_7630
    )
}

/// `/dev/shm/amocrm-<hash of the token path>.shm`.
fn dev_shm_path(token_path: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(token_path).unwrap_or_else(|_| token_path.to_path_buf());
    let hash = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("/dev/shm/amocrm-{hex}.shm"))
}

fn now_us() -> u64 {
    crate::clock::now_us()
}

impl Budget for Arc<Region> {
    fn take(&self, limit: u32, hold: Duration) -> crate::error::Result<Result<Ticket, Duration>> {
        let m = self.mapped();
        let slots = &m.slots()[..(limit as usize).clamp(1, SLOTS)];
        Ok(ratelimit::take_slot(
            slots,
            &*m,
            now_us(),
            hold.as_micros() as u64,
            ratelimit::WINDOW.as_micros() as u64,
        )
        .map_err(Duration::from_micros))
    }

    fn release(&self, ticket: Ticket) {
        let m = self.mapped();
        ratelimit::release_slot(
            m.slots(),
            &*m,
            ticket,
            now_us(),
            ratelimit::WINDOW.as_micros() as u64,
        );
    }
}

impl Counters for Arc<Region> {
    fn add(&self, increments: &[(Counter, u64)]) {
        let m = self.mapped();
        for (c, by) in increments {
            m.counter(*c).fetch_add(*by, Ordering::Relaxed);
        }
    }

    fn read(&self) -> Vec<(Counter, u64)> {
        let m = self.mapped();
        Counter::all()
            .map(|c| (c, m.counter(c).load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn add_in_minute(
        &self,
        increments: &[(Counter, u64)],
        minute: u64,
        fields: &[(crate::history::Field, u64)],
    ) {
        let m = self.mapped();
        for (c, by) in increments {
            m.counter(*c).fetch_add(*by, Ordering::Relaxed);
        }
        for (f, by) in fields {
            crate::history::add(m.minutes(), minute, *f, *by);
        }
    }

    fn add_refresh(&self, refresh: &crate::history::Refresh) {
        crate::history::push(self.mapped().refreshes(), refresh);
    }

    fn history(
        &self,
        now_minute: u64,
    ) -> (Vec<crate::history::Minute>, Vec<crate::history::Refresh>) {
        let m = self.mapped();
        (
            crate::history::read(m.minutes(), now_minute),
            crate::history::refreshes(m.refreshes()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_share_counters_and_slots() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t.json");
        std::fs::write(
            dir.path().join("t.json.metrics"),
            br#"{"refreshes":3,"api_calls.200":5,"junk":1}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("t.json.ratelimit"), [0u8; 16]).unwrap();
        let a = Arc::new(Region::new(&token));
        let b = Arc::new(Region::new(&token));
        a.add(&[(Counter::Refreshes, 1), (Counter::ApiCalls(200), 2)]);
        b.add(&[(Counter::ApiCalls(429), 1)]);
        let mut seen = b.read();
        seen.sort_by_key(|(c, _)| c.index());
        assert_eq!(
            seen,
            vec![
                (Counter::Refreshes, 4),
                (Counter::ApiCalls(200), 7),
                (Counter::ApiCalls(429), 1)
            ]
        );
        assert!(!dir.path().join("t.json.metrics").exists());
        assert!(!dir.path().join("t.json.ratelimit").exists());
        let meta = std::fs::metadata(a.path()).unwrap();
        assert_eq!(meta.len() as usize, SIZE);
        assert_eq!(meta.mode() & 0o777, 0o600);

        let hold = Duration::from_secs(30);
        let t = a.take(2, hold).unwrap().unwrap();
        let u = b.take(2, hold).unwrap().unwrap();
        // Both in flight: look again soon.
        assert_eq!(a.take(2, hold).unwrap(), Err(ratelimit::POLL));
        a.release(t);
        b.release(u);
        let wait = b.take(2, hold).unwrap().unwrap_err();
        assert!(wait > Duration::from_millis(900), "{wait:?}");
    }

    /// Two mappings of one file stand for two processes: closing one's
    /// file drops its locks as the kernel does when a process dies.
    #[test]
    fn a_slot_whose_holder_died_in_flight_frees_a_window_later() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t.json");
        let hold = Duration::from_secs(30);
        let alive = Arc::new(Region::new(&token));
        let other = Arc::new(Region::new(&token));
        let t = alive.take(1, hold).unwrap().unwrap();
        // In flight, its holder alive: look again soon.
        assert_eq!(other.take(1, hold).unwrap(), Err(ratelimit::POLL));
        alive.release(t);
        let wait = other.take(1, hold).unwrap().unwrap_err();
        assert!(wait > Duration::from_millis(900), "{wait:?}");

        let dying = Arc::new(Region::new(&token));
        std::thread::sleep(ratelimit::WINDOW);
        let _in_flight = dying.take(1, hold).unwrap().unwrap();
        drop(dying);
        // Not held to its deadline (30 s): a window from when the death was seen.
        let wait = other.take(1, hold).unwrap().unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= ratelimit::WINDOW,
            "{wait:?}"
        );
        std::thread::sleep(wait);
        assert!(other.take(1, hold).unwrap().is_ok());
    }

    #[test]
    fn a_deleted_or_torn_file_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t.json");
        let a = Arc::new(Region::new(&token));
        a.add(&[(Counter::Retries, 1)]);
        std::fs::remove_file(a.path()).unwrap();
        std::fs::write(a.path(), b"{\"torn").unwrap();
        // Within the second, the old mapping is still used.
        a.add(&[(Counter::Retries, 1)]);
        assert_eq!(a.read(), vec![(Counter::Retries, 2)]);
        std::thread::sleep(RECHECK);
        assert_eq!(a.read(), vec![]);
        a.add(&[(Counter::Retries, 1)]);
        let b = Arc::new(Region::new(&token));
        assert_eq!(b.read(), vec![(Counter::Retries, 1)]);
    }

    /// A region file of the earlier layout (three pages, no history), in
    /// use by a process of that version during a deploy: the new version
    /// grows it in place, keeps every counter, and the old mapping goes on
    /// sharing the counters with the new one.
    #[test]
    fn an_earlier_versions_region_is_grown_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t.json");
        let path = dir.path().join("t.json.shm");
        let mut bytes = vec![0u8; V1_SIZE];
        bytes[..8].copy_from_slice(&MAGIC.to_ne_bytes());
        let at = (FIRST_COUNTER + Counter::Refreshes.index()) * 8;
        bytes[at..at + 8].copy_from_slice(&5u64.to_ne_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let old_file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let old = memmap2::MmapOptions::new()
            .len(V1_SIZE)
            .map_raw(&old_file)
            .unwrap();
        let old_words =
            unsafe { std::slice::from_raw_parts(old.as_ptr() as *const AtomicU64, V1_SIZE / 8) };
        let inode = std::fs::metadata(&path).unwrap().ino();

        let new = Arc::new(Region::new(&token));
        new.add(&[(Counter::Refreshes, 1)]);
        assert_eq!(new.read(), vec![(Counter::Refreshes, 6)]);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.len() as usize, meta.ino()), (SIZE, inode));
        // The old process sees the new one's counts and the other way round.
        assert_eq!(
            old_words[FIRST_COUNTER + Counter::Refreshes.index()].load(Ordering::Relaxed),
            6
        );
        old_words[FIRST_COUNTER + Counter::Retries.index()].fetch_add(1, Ordering::Relaxed);
        let mut seen = new.read();
        seen.sort_by_key(|(c, _)| c.index());
        assert_eq!(seen, vec![(Counter::Refreshes, 6), (Counter::Retries, 1)]);
        // The history works in the grown part.
        let minute = crate::history::minute_of(crate::clock::now());
        new.add_in_minute(
            &[(Counter::ApiCalls(200), 1)],
            minute,
            &[(crate::history::Field::S2xx, 1)],
        );
        let other = Arc::new(Region::new(&token));
        let (minutes, refreshes) = other.history(minute);
        assert_eq!(minutes.len(), 1);
        assert_eq!(minutes[0].counts[0], 1);
        assert!(refreshes.is_empty());
    }

    #[test]
    fn an_unusable_folder_gives_a_private_region() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"").unwrap();
        let a = Arc::new(Region::new(&file.join("t.json")));
        a.add(&[(Counter::Retries, 2)]);
        assert_eq!(a.read(), vec![(Counter::Retries, 2)]);
    }
}
