//! The on-disk reservations of one network: `<dataDir>/<ip>` holds the
//! owner; `lock` serialises every process and also carries the allocation
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

    /// Every reservation; a record that cannot be read is kept with an empty
    /// owner so the address is not handed out twice (GC removes it). A temp
    /// file seen while we hold the lock was left by a writer that died
    /// before its rename: it never became a reservation, so it goes.
    pub fn reservations(&self) -> Result<HashMap<IpAddr, Owner>, IpamError> {
        let mut out = HashMap::new();
        for entry in fs::read_dir(self.dir).map_err(self.io("list reservations"))? {
            let entry = entry.map_err(self.io("list reservations"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            let owner = fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| Owner::from_record(&t))
                .unwrap_or_else(|| Owner::new("", ""));
            out.insert(ip, owner);
        }
        Ok(out)
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
            match self.write_atomic(&ip.to_string(), &owner.to_record()) {
                Ok(()) => written.push(*ip),
                Err(e) => {
                    for ip in written {
                        let _ = fs::remove_file(self.dir.join(ip.to_string()));
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
        self.release_where(|o| o == owner)
    }

    /// GC: releases every reservation whose owner is not in `keep`.
    pub fn release_all_except(&self, keep: &HashSet<Owner>) -> Result<Vec<IpAddr>, IpamError> {
        self.release_where(|o| !keep.contains(o))
    }

    fn release_where(&self, doomed: impl Fn(&Owner) -> bool) -> Result<Vec<IpAddr>, IpamError> {
        let mut released = Vec::new();
        for (ip, owner) in self.reservations()? {
            if doomed(&owner) {
                match fs::remove_file(self.dir.join(ip.to_string())) {
                    Ok(()) => released.push(ip),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io("remove reservation")(e)),
                }
            }
        }
        released.sort();
        Ok(released)
    }

    pub fn held_by(&self, owner: &Owner) -> Result<Vec<IpAddr>, IpamError> {
        let mut ips: Vec<IpAddr> = self
            .reservations()?
            .into_iter()
            .filter(|(_, o)| o == owner)
            .map(|(ip, _)| ip)
            .collect();
        ips.sort();
        Ok(ips)
    }
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
