//! Builds the lab's test image, `capstan.local/busybox:lab`, as an OCI
//! image archive without any registry: Debian's static busybox with every
//! applet linked, plus the project's `capstan-testsrv` and the shared
//! libraries it needs. The archive is cached by content and imported into
//! each node's containerd with `ctr images import`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::LabError;

pub const TEST_IMAGE: &str = "capstan.local/busybox:lab";
const BUSYBOX: &str = "/bin/busybox";

struct Blob {
    digest: String,
    size: usize,
    bytes: Vec<u8>,
}

fn blob(bytes: Vec<u8>) -> Blob {
    Blob {
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        size: bytes.len(),
        bytes,
    }
}

/// Returns the path of the image archive, building it if the cache has none
/// for these exact inputs.
pub fn build(cache_dir: &Path, testsrv: &Path) -> Result<PathBuf, LabError> {
    let layer = layer_tar(testsrv)?;
    let layer = blob(layer);
    let key = &layer.digest["sha256:".len().."sha256:".len() + 16];
    let out = cache_dir.join(format!("test-image-{key}.tar"));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(cache_dir).map_err(LabError::io("create image cache dir"))?;
    let config = blob(
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "WorkingDir": "/"
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            "history": [{"created_by": "capstan-lab test image"}]
        }))
        .map_err(|e| LabError::Other(e.to_string()))?,
    );
    let manifest = blob(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer.digest, "size": layer.size}]
        }))
        .map_err(|e| LabError::Other(e.to_string()))?,
    );
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.digest, "size": manifest.size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": "lab"}
        }]
    }))
    .map_err(|e| LabError::Other(e.to_string()))?;

    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(LabError::io("create image archive"))?;
    let mut ar = tar::Builder::new(file);
    let mut add = |path: &str, bytes: &[u8]| -> Result<(), LabError> {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        ar.append_data(&mut h, path, bytes)
            .map_err(LabError::io(format!("write {path} into image archive")))
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    for b in [&layer, &config, &manifest] {
        let name = format!("blobs/sha256/{}", &b.digest["sha256:".len()..]);
        add(&name, &b.bytes)?;
    }
    ar.into_inner()
        .and_then(|mut f| f.flush())
        .map_err(LabError::io("finish image archive"))?;
    std::fs::rename(&tmp, &out).map_err(LabError::io("move image archive into cache"))?;
    Ok(out)
}

/// The single layer: busybox and its applet links, the test server, and
/// the libraries the test server links against (it is built for the host).
fn layer_tar(testsrv: &Path) -> Result<Vec<u8>, LabError> {
    let mut ar = tar::Builder::new(Vec::new());
    ar.mode(tar::HeaderMode::Deterministic);
    for dir in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "run",
        "var", "var/log", "root",
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        ar.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .map_err(LabError::io("write directory into layer"))?;
    }
    add_file(&mut ar, Path::new(BUSYBOX), "bin/busybox", 0o755)?;
    let applets = crate::cmd::stdout(Command::new(BUSYBOX).arg("--list-full"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "bin/busybox" {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        ar.append_link(&mut h, applet, "/bin/busybox")
            .map_err(LabError::io(format!("link applet {applet}")))?;
    }
    add_file(&mut ar, testsrv, "bin/capstan-testsrv", 0o755)?;
    let libs = shared_libraries(testsrv)?;
    // Parent directories first: the layer must be complete on its own.
    let parents: std::collections::BTreeSet<PathBuf> = libs
        .iter()
        .flat_map(|l| {
            l.ancestors()
                .skip(1)
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .filter(|d| d.as_os_str().len() > 1)
        .collect();
    for dir in parents {
        let inside = dir.to_string_lossy().trim_start_matches('/').to_string();
        if ["usr", "usr/bin", "usr/sbin", "bin", "sbin"].contains(&inside.as_str()) {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        ar.append_data(&mut h, format!("{inside}/"), std::io::empty())
            .map_err(LabError::io("write library directory into layer"))?;
    }
    for lib in libs {
        let inside = lib.to_string_lossy().trim_start_matches('/').to_string();
        add_file(&mut ar, &lib, &inside, 0o755)?;
    }
    for (path, text) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        ar.append_data(&mut h, path, text.as_bytes())
            .map_err(LabError::io(format!("write {path} into layer")))?;
    }
    ar.into_inner().map_err(LabError::io("finish layer"))
}

fn add_file(
    ar: &mut tar::Builder<Vec<u8>>,
    src: &Path,
    inside: &str,
    mode: u32,
) -> Result<(), LabError> {
    let bytes = std::fs::read(src).map_err(LabError::io(format!("read {}", src.display())))?;
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(mode);
    ar.append_data(&mut h, inside, bytes.as_slice())
        .map_err(LabError::io(format!("write {inside} into layer")))
}

/// Resolved paths of the shared libraries (and the loader) a binary needs.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, LabError> {
    let out = crate::cmd::stdout(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    for line in out.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}
