//! A lab node's own mount namespace, kept as a file the way `ip netns`
//! keeps network namespaces: a bind mount of `/proc/PID/ns/mnt` onto
//! `<lab dir>/mntns/<node>` (that directory a private mount of itself, so
//! the binding never propagates into the namespace it names). Inside it
//! the node-local paths a kubelet and a CNI DaemonSet use by default
//! (`/opt/cni/bin`, `/etc/cni/net.d`, `/run/capstan`, ...) are bind mounts
//! of the node's directories and `/sys/fs/bpf` is a bpffs of its own, so a
//! `hostPath` in a pod means the node's path, as on a real machine.
//!
//! Propagation: the host's mounts are seen as slave (a netns the host adds
//! later still appears in the node), the node's own mounts (these binds,
//! containerd's rootfs overlays, the kubelet's pod namespace files) never
//! reach the host. It never mounts anything in the host's namespace but
//! the namespace files below the lab directory, which teardown unmounts.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::LabError;

/// Node-local paths: (path inside the node, directory below the node's
/// lab directory it is bound from). The host gets the path as an empty
/// directory if it lacks it (a mount point needs one); nothing is ever
/// written into the host's copy.
pub const NODE_PATHS: &[(&str, &str)] = &[
    ("/opt/cni/bin", "opt/cni/bin"),
    ("/etc/cni/net.d", "etc/cni/net.d"),
    ("/run/capstan", "run/capstan"),
    ("/var/lib/cni", "var/lib/cni"),
    ("/var/lib/capstan", "var/lib/capstan"),
    ("/var/log/pods", "var/log/pods"),
    ("/run/containerd", "run/containerd"),
];

/// Where the node gets a bpffs of its own.
pub const BPFFS: &str = "/sys/fs/bpf";

/// The directory holding a lab's namespace files.
pub fn dir(lab_dir: &Path) -> PathBuf {
    lab_dir.join("mntns")
}

/// Makes `dir(lab_dir)` a private mount of itself (once), so namespace
/// files bound below it neither propagate into the node namespaces (a
/// namespace containing its own file is refused) nor out of the host's.
pub fn prepare_dir(lab_dir: &Path) -> Result<PathBuf, LabError> {
    let d = dir(lab_dir);
    std::fs::create_dir_all(&d).map_err(LabError::io(format!("create {}", d.display())))?;
    if !crate::mounts::mounts_under(&d)
        .iter()
        .any(|m| Path::new(m) == d)
    {
        mount(
            Some(&d),
            &d,
            None,
            libc::MS_BIND,
            "bind the mntns dir onto itself",
        )?;
    }
    mount(
        None,
        &d,
        None,
        libc::MS_PRIVATE,
        "make the mntns dir private",
    )?;
    Ok(d)
}

/// Makes node `node`'s mount namespace and binds it to `file` (below
/// `prepare_dir`). `node_dir` holds the directories of `NODE_PATHS`.
pub fn create(file: &Path, node_dir: &Path) -> Result<(), LabError> {
    for (path, sub) in NODE_PATHS {
        std::fs::create_dir_all(path)
            .map_err(LabError::io(format!("create mount point {path}")))?;
        std::fs::create_dir_all(node_dir.join(sub))
            .map_err(LabError::io(format!("create {}/{sub}", node_dir.display())))?;
    }
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| LabError::Other(format!("path {} holds a NUL byte", p.display())))
    };
    // Everything the child needs is allocated before the fork: between
    // fork and exec only raw syscalls run.
    let binds: Vec<(CString, CString)> = NODE_PATHS
        .iter()
        .map(|(path, sub)| Ok((cstr(&node_dir.join(sub))?, cstr(Path::new(path))?)))
        .collect::<Result<_, LabError>>()?;
    // Every lab's namespace-file directory, this one's included: the new
    // namespace drops its copies so it never holds another node's
    // namespace alive.
    let detach: Vec<CString> = ns_dirs()
        .iter()
        .map(|d| cstr(Path::new(d)))
        .collect::<Result<_, LabError>>()?;
    let bpffs = cstr(Path::new(BPFFS))?;
    let mut holder = Command::new(sleep_program());
    holder
        .arg("infinity")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe syscalls on memory allocated before
    // the fork.
    unsafe {
        holder.pre_exec(move || {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Host mounts keep arriving (slave), nothing goes back.
            check(raw_mount(None, c"/", None, libc::MS_REC | libc::MS_SLAVE))?;
            for d in &detach {
                libc::umount2(d.as_ptr(), libc::MNT_DETACH);
            }
            for (src, dst) in &binds {
                check(raw_mount(Some(src), dst, None, libc::MS_BIND))?;
                check(raw_mount(None, dst, None, libc::MS_PRIVATE))?;
            }
            check(raw_mount(Some(c"bpf"), &bpffs, Some(c"bpf"), 0))?;
            check(raw_mount(None, &bpffs, None, libc::MS_PRIVATE))?;
            Ok(())
        });
    }
    // spawn returns once the child has exec'd: the namespace is complete.
    let mut child = holder.spawn().map_err(LabError::io(format!(
        "make mount namespace {}",
        file.display()
    )))?;
    let bound = File::create(file)
        .map_err(LabError::io(format!("create {}", file.display())))
        .and_then(|_| {
            let src = PathBuf::from(format!("/proc/{}/ns/mnt", child.id()));
            mount(
                Some(&src),
                file,
                None,
                libc::MS_BIND,
                "bind the node's mount namespace",
            )
        });
    let _ = child.kill();
    let _ = child.wait();
    bound
}

/// Unmounts and removes a namespace file; a missing one is not an error.
pub fn delete(file: &Path) {
    if let Ok(c) = CString::new(file.as_os_str().as_bytes()) {
        // SAFETY: valid C string; MNT_DETACH never blocks.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_file(file);
}

/// True if `file` is a bound mount namespace (not just the empty file a
/// crashed set-up or a reboot leaves).
pub fn exists(file: &Path) -> bool {
    id(file).is_some()
}

/// (device, inode) of the namespace a file or `/proc/PID/ns/mnt` names.
pub fn id(file: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    let c = CString::new(file.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs into a zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 || st.f_type as libc::c_long != NSFS_MAGIC
    {
        return None;
    }
    let m = std::fs::metadata(file).ok()?;
    Some((m.dev(), m.ino()))
}

/// Arranges for `cmd` to enter the mount namespace bound at `file`
/// between fork and exec (the child is single-threaded there, as setns
/// into a mount namespace requires). setns resets the working directory
/// to the namespace's root: the caller's directory is restored by path
/// (the node sees the host's tree), so relative paths keep working.
pub fn enter_on_exec(file: &Path, cmd: &mut Command) -> Result<(), LabError> {
    let ns = File::open(file).map_err(LabError::io(format!(
        "open mount namespace {} (is the lab up?)",
        file.display()
    )))?;
    // SAFETY: getcwd into a stack buffer, setns and chdir are plain
    // syscalls; the descriptor is kept open by the closure.
    unsafe {
        cmd.pre_exec(move || {
            let mut cwd = [0u8; 4096];
            let have_cwd = !libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()).is_null();
            check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS))?;
            if !have_cwd || libc::chdir(cwd.as_ptr().cast()) != 0 {
                libc::chdir(c"/".as_ptr());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Mount points of every lab's namespace-file directory on this machine.
fn ns_dirs() -> Vec<String> {
    let base = crate::lab_dir::base_dir();
    crate::mounts::mounts_under(&base)
        .into_iter()
        .filter(|m| {
            Path::new(m)
                .strip_prefix(&base)
                .is_ok_and(|rest| rest.components().count() == 2 && rest.ends_with("mntns"))
        })
        .collect()
}

fn sleep_program() -> PathBuf {
    crate::privileged::which("sleep").unwrap_or_else(|| PathBuf::from("/bin/sleep"))
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// mount(2) on C strings (for the forked child: no allocation).
unsafe fn raw_mount(
    src: Option<&std::ffi::CStr>,
    dst: &std::ffi::CStr,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
) -> libc::c_int {
    libc::mount(
        src.map_or(std::ptr::null(), |s| s.as_ptr()),
        dst.as_ptr(),
        fstype.map_or(std::ptr::null(), |s| s.as_ptr()),
        flags,
        std::ptr::null(),
    )
}

/// mount(2) from the parent, with an error naming the step.
fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    what: &str,
) -> Result<(), LabError> {
    let c = |p: &[u8]| CString::new(p).map_err(|_| LabError::Other(format!("{what}: NUL in path")));
    let src = src.map(|s| c(s.as_os_str().as_bytes())).transpose()?;
    let dst_c = c(dst.as_os_str().as_bytes())?;
    let fstype = fstype.map(|s| c(s.as_bytes())).transpose()?;
    // SAFETY: valid C strings that outlive the call.
    let rc = unsafe { raw_mount(src.as_deref(), &dst_c, fstype.as_deref(), flags) };
    check(rc).map_err(LabError::io(format!("{what} ({})", dst.display())))
}
