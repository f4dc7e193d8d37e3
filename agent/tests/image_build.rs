//! deploy/image/build.sh: two builds of this commit are the same archive
//! (same manifest digest), and the image it imports into a real containerd
//! runs what the DaemonSet runs: the static agent, `install-cni` copying
//! the plugin out through a bind mount, and the `nft` and `conntrack` the
//! proxy execs, with the libraries and loader the image carries.

use std::path::{Path, PathBuf};
use std::process::Command;

use capstan_lab::{privileged, Lab};

fn build_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/image/build.sh")
}

/// The profile packaged: debug, which test.sh has already built once for
/// the DaemonSet suites (the release image differs by one cargo flag and
/// would cost CI a cold release build of the agent);
/// `CAPSTAN_IMAGE_PROFILE=release` tests that one.
fn profile_args() -> &'static [&'static str] {
    match std::env::var("CAPSTAN_IMAGE_PROFILE").as_deref() {
        Ok("release") => &[],
        _ => &["--debug"],
    }
}

/// Runs build.sh with `args`: (archive path, manifest digest).
fn build(args: &[&str]) -> (PathBuf, String) {
    let out = Command::new(build_sh())
        .args(profile_args())
        .args(args)
        .output()
        .expect("run deploy/image/build.sh");
    assert!(
        out.status.success(),
        "build.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = stdout.lines();
    let (Some(path), Some(digest), None) = (lines.next(), lines.next(), lines.next()) else {
        panic!("build.sh prints the archive and the digest, not:\n{stdout}");
    };
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    (PathBuf::from(path), digest.to_string())
}

fn image() -> String {
    format!("capstan.local/capstan:{}", env!("CARGO_PKG_VERSION"))
}

/// `ctr run --rm IMAGE` of `cmd` in the node's containerd: its stdout.
fn run_in_image(node: &capstan_lab::Node, id: &str, mounts: &[String], cmd: &[&str]) -> String {
    let mut c = node.ctr().expect("ctr");
    c.args(["run", "--rm"]);
    for m in mounts {
        c.args(["--mount", m]);
    }
    c.arg(image()).arg(id).args(cmd);
    let out = c.output().expect("ctr run");
    assert!(
        out.status.success(),
        "{cmd:?} in the image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_image_is_reproducible_and_runs_what_the_daemonset_runs() {
    if !privileged::require(
        "image_build",
        &["ctr", "containerd", "runc", "nft", "conntrack", "strip"],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a.oci.tar");
    let b = tmp.path().join("b.oci.tar");
    let (a_path, a_digest) = build(&["--out", &a.to_string_lossy()]);
    let (b_path, b_digest) = build(&["--out", &b.to_string_lossy()]);
    assert_eq!(
        (a_path.as_path(), b_path.as_path()),
        (a.as_path(), b.as_path())
    );
    assert_eq!(a_digest, b_digest, "two builds, two digests");
    assert!(
        std::fs::read(&a).expect("a") == std::fs::read(&b).expect("b"),
        "same digest, different archives"
    );

    let lab = Lab::builder()
        .nodes(1)
        .etcd(false)
        .containerd(true)
        .image(false)
        .build()
        .expect("lab");
    let node = lab.node(0);
    let sock = node.containerd_socket();
    let c = tmp.path().join("c.oci.tar");
    let (_, c_digest) = build(&[
        "--out",
        &c.to_string_lossy(),
        "--import",
        &sock.to_string_lossy(),
        "--namespace",
        capstan_lab::containerd::NAMESPACE,
    ]);
    assert_eq!(c_digest, a_digest);
    let listed = capstan_lab::cmd::stdout(node.ctr().expect("ctr").args(["images", "ls", "-q"]))
        .expect("ctr images ls");
    assert!(listed.lines().any(|l| l == image()), "{listed}");

    let id = |what: &str| format!("{}-image-{what}", lab.prefix());
    let version = run_in_image(
        &node,
        &id("agent"),
        &[],
        &["/usr/bin/capstan-agent", "--version"],
    );
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let nft = run_in_image(&node, &id("nft"), &[], &["nft", "--version"]);
    assert!(nft.starts_with("nftables v"), "{nft}");
    let conntrack = run_in_image(&node, &id("conntrack"), &[], &["conntrack", "--version"]);
    assert!(conntrack.contains("conntrack v"), "{conntrack}");

    // The init container's job, into a host directory.
    let bin_dir = tmp.path().join("opt-cni-bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    let mount = format!(
        "type=bind,src={},dst=/opt/cni/bin,options=rbind:rw",
        bin_dir.display()
    );
    let installed = run_in_image(
        &node,
        &id("install"),
        &[mount],
        &[
            "/usr/bin/capstan-agent",
            "install-cni",
            "--from=/opt/capstan/cni",
            "--bin-dir=/opt/cni/bin",
        ],
    );
    assert_eq!(installed.trim(), "installed /opt/cni/bin/capstan");
    // The plugin runs on the host as the runtime would exec it: static,
    // nothing from the image needed.
    let out = Command::new(bin_dir.join("capstan"))
        .env("CNI_COMMAND", "VERSION")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("exec the installed plugin");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("supportedVersions"),
        "{text}"
    );
}
