//! The on-disk reservations of one network: `<dataDir>/<ip>@<owner hash>`
//! holds the owner; `lock` serialises every process and also carries the allocation
//! cursor (one fixed-width line per pool, rewritten in place: truncating a
//! file on ext4 forces a flush, which cost more than the rest of the IPAM).
//! Reservations go through a temp file and rename, so a crash never leaves
//! one without its owner (which DEL could not release). Must never be used
//! without holding the lock.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{IpamError, Owner};

const LOCK_FILE: &str = "lock";
/// Bytes per cursor line: the longest IPv6 text (39) padded, plus '\n'.
const CURSOR_SLOT: usize = 48;
const TMP_PREFIX: &str = ".tmp-";

#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// The store with its lock held; dropping it unlocks.
pub struct Locked<'a> {
    lock: Flock<File>,
    dir: &'a Path,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Blocks until this process holds the store's exclusive lock.
    pub fn lock(&self) -> Result<Locked<'_>, IpamError> {
        let io = |what| {
            move |source| IpamError::Io {
                path: self.dir.clone(),
                what,
                source,
            }
        };
        let path = self.dir.join(LOCK_FILE);
        // Fast path: the store exists (every ADD but a node's first).
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir).map_err(io("create directory"))?;
                OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io("open lock file"))?
            }
            Err(e) => return Err(io("open lock file")(e)),
        };
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io("flock")(std::io::Error::from(errno)))?;
        let locked = Locked {
            lock,
            dir: &self.dir,
        };
        Ok(locked)
    }
}

impl Locked<'_> {
    fn io(&self, what: &'static str) -> impl FnOnce(std::io::Error) -> IpamError + '_ {
        move |source| IpamError::Io {
            path: self.dir.to_path_buf(),
            what,
            source,
        }
    }

    /// Every reservation file by name, without opening any: `<ip>@<hash of
    /// owner>` (a bare `<ip>` is accepted, owner unknown). Listing names is
    /// what keeps ADD cheap on a full node; opening every record cost ~10 us
    /// per pod. A temp file seen while we hold the lock was left by a writer
    /// that died before its rename: it never became a reservation, so it goes.
    fn scan(&self) -> Result<Vec<Entry>, IpamError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.dir).map_err(self.io("list reservations"))? {
            let entry = entry.map_err(self.io("list reservations"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let (ip, hash) = match name.split_once('@') {
                Some((ip, hash)) => (ip, u64::from_str_radix(hash, 16).ok()),
                None => (name, None),
            };
            let Ok(ip) = ip.parse::<IpAddr>() else {
                continue;
            };
            out.push(Entry {
                ip,
                owner_hash: hash,
                name: name.to_string(),
            });
        }
        Ok(out)
    }

    fn read_owner(&self, entry: &Entry) -> Owner {
        // An unreadable record keeps its address taken (GC removes it).
        fs::read_to_string(self.dir.join(&entry.name))
            .ok()
            .and_then(|t| Owner::from_record(&t))
            .unwrap_or_else(|| Owner::new("", ""))
    }

    /// The records that may belong to `owner` (hash match, or no hash),
    /// confirmed by reading just those.
    fn entries_of(&self, owner: &Owner) -> Result<Vec<Entry>, IpamError> {
        let hash = owner.key_hash();
        Ok(self
            .scan()?
            .into_iter()
            .filter(|e| e.owner_hash.is_none_or(|h| h == hash))
            .filter(|e| self.read_owner(e) == *owner)
            .collect())
    }

    /// Every reserved address (names only).
    pub fn taken(&self) -> Result<HashSet<IpAddr>, IpamError> {
        Ok(self.scan()?.into_iter().map(|e| e.ip).collect())
    }

    /// What allocation needs, from one listing: every reserved address, and
    /// those `owner` holds already (only their records are read).
    pub fn taken_and_held(
        &self,
        owner: &Owner,
    ) -> Result<(HashSet<IpAddr>, Vec<IpAddr>), IpamError> {
        let hash = owner.key_hash();
        let entries = self.scan()?;
        let held = entries
            .iter()
            .filter(|e| e.owner_hash.is_none_or(|h| h == hash))
            .filter(|e| self.read_owner(e) == *owner)
            .map(|e| e.ip)
            .collect();
        Ok((entries.into_iter().map(|e| e.ip).collect(), held))
    }

    /// Every reservation with its owner (reads every record: GC only).
    pub fn reservations(&self) -> Result<HashMap<IpAddr, Owner>, IpamError> {
        Ok(self
            .scan()?
            .into_iter()
            .map(|e| {
                let owner = self.read_owner(&e);
                (e.ip, owner)
            })
            .collect())
    }

    /// The allocation cursor of each of `pools` pools (None: start over).
    pub fn last_reserved(&self, pools: usize) -> Vec<Option<IpAddr>> {
        let mut buf = vec![0u8; pools * CURSOR_SLOT];
        let n = self.lock.read_at(&mut buf, 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        let mut lines = text.split('\n').map(|l| l.trim().parse().ok());
        (0..pools).map(|_| lines.next().flatten()).collect()
    }

    /// The cursor is only a hint (a torn write just changes which free
    /// address comes next), so it is written in place without a rename.
    fn set_cursor(&self, pool: usize, ip: IpAddr) {
        let line = format!("{:<width$}\n", ip.to_string(), width = CURSOR_SLOT - 1);
        let _ = self
            .lock
            .write_at(line.as_bytes(), (pool * CURSOR_SLOT) as u64);
    }

    /// Records `ips[i]` (from pool i) as held by `owner`. All or nothing: on
    /// failure the ones already written are removed again.
    pub fn reserve(&self, ips: &[IpAddr], owner: &Owner) -> Result<(), IpamError> {
        let mut written = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let name = record_name(*ip, owner);
            match self.write_atomic(&name, &owner.to_record()) {
                Ok(()) => written.push(name),
                Err(e) => {
                    for name in written {
                        let _ = fs::remove_file(self.dir.join(name));
                    }
                    return Err(e);
                }
            }
            self.set_cursor(i, *ip);
        }
        Ok(())
    }

    fn write_atomic(&self, name: &str, content: &str) -> Result<(), IpamError> {
        let tmp = self.dir.join(format!("{TMP_PREFIX}{name}"));
        fs::write(&tmp, content).map_err(self.io("write reservation"))?;
        fs::rename(&tmp, self.dir.join(name)).map_err(self.io("commit reservation"))
    }

    /// Releases everything `owner` holds; returns what was released.
    pub fn release(&self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let doomed = self.entries_of(owner)?;
        self.remove(doomed)
    }

    /// GC: releases every reservation whose owner is not in `keep`.
    pub fn release_all_except(&self, keep: &HashSet<Owner>) -> Result<Vec<IpAddr>, IpamError> {
        let doomed: Vec<Entry> = self
            .scan()?
            .into_iter()
            .filter(|e| !keep.contains(&self.read_owner(e)))
            .collect();
        self.remove(doomed)
    }

    fn remove(&self, doomed: Vec<Entry>) -> Result<Vec<IpAddr>, IpamError> {
        let mut released = Vec::new();
        for e in doomed {
            match fs::remove_file(self.dir.join(&e.name)) {
                Ok(()) => released.push(e.ip),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(self.io("remove reservation")(err)),
            }
        }
        released.sort();
        Ok(released)
    }

    /// The addresses `owner` holds.
    pub fn held_by(&self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let mut ips: Vec<IpAddr> = self.entries_of(owner)?.into_iter().map(|e| e.ip).collect();
        ips.sort();
        Ok(ips)
    }
}

/// One reservation file, as its name tells.
struct Entry {
    ip: IpAddr,
    owner_hash: Option<u64>,
    name: String,
}

/// `<ip>@<owner hash>`: the owner's records are found from the directory
/// listing alone; the content (the owner in full) settles hash collisions.
fn record_name(ip: IpAddr, owner: &Owner) -> String {
    format!("{ip}@{:016x}", owner.key_hash())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "capstan-ipam-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn ip_c() -> IpAddr {
        "10.0.0.4".parse().expect("literal")
    }

    #[test]
    fn reserve_release_and_gc() {
        let dir = tempdir();
        let store = Store::new(&dir);
        let a = Owner::new("a", "eth0");
        let b = Owner::new("b", "eth0");
        let ip_a: IpAddr = "10.0.0.2".parse().expect("literal");
        let ip_b: IpAddr = "10.0.0.3".parse().expect("literal");
        {
            let l = store.lock().expect("lock");
            l.reserve(&[ip_a], &a).expect("reserve");
            l.reserve(&[ip_b], &b).expect("reserve");
            assert_eq!(l.reservations().expect("list").len(), 2);
            assert_eq!(l.last_reserved(1), vec![Some(ip_b)]);
            let v6: IpAddr = "fd00:10:244:1:ffff:ffff:ffff:fffe"
                .parse()
                .expect("literal");
            let c = Owner::new("c", "eth0");
            l.reserve(&[ip_c(), v6], &c).expect("dual-stack reserve");
            assert_eq!(l.last_reserved(2), vec![Some(ip_c()), Some(v6)]);
            assert_eq!(l.release(&c).expect("release c").len(), 2);
            assert_eq!(l.held_by(&a).expect("held"), vec![ip_a]);
            // A bare `<ip>` record (no hash in the name) still counts.
            let d = Owner::new("d", "eth0");
            fs::write(dir.join("10.0.0.7"), d.to_record()).expect("write");
            assert!(l
                .taken()
                .expect("taken")
                .contains(&"10.0.0.7".parse().expect("literal")));
            assert_eq!(l.release(&d).expect("release d").len(), 1);
            assert_eq!(l.release(&a).expect("release"), vec![ip_a]);
            assert!(l.release(&a).expect("release twice").is_empty());
            fs::write(dir.join(".tmp-10.0.0.9"), "x").expect("write");
        }
        let l = store.lock().expect("lock again");
        assert_eq!(l.reservations().expect("list").len(), 1);
        assert!(!dir.join(".tmp-10.0.0.9").exists(), "stale temp file swept");
        let keep: HashSet<Owner> = HashSet::new();
        assert_eq!(l.release_all_except(&keep).expect("gc"), vec![ip_b]);
        drop(l);
        let _ = fs::remove_dir_all(&dir);
    }
}
