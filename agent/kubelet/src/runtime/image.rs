//! Image metadata from containerd's content store: image record → index →
//! manifest (linux/amd64) → config, and the layers' chain ID (the name of
//! the unpacked top snapshot). Pure parts here; reads come via a closure.

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct RootFs {
    pub diff_ids: Vec<String>,
}

pub fn is_index(media_type: &str) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list")
}

/// The manifest for this machine's platform out of an index.
pub fn pick_manifest(index: &Index) -> Option<&Descriptor> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    index
        .manifests
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .or_else(|| index.manifests.iter().find(|d| d.platform.is_none()))
}

/// chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)):
/// the snapshot name of every layer stacked on the ones below it.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(below) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{below} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// The top layer's chain ID: the snapshot a container's rootfs sits on.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    chain_ids(diff_ids).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids() {
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(&["sha256:a".into()]).as_deref(), Some("sha256:a"));
        let two = chain_id(&["sha256:a".into(), "sha256:b".into()]).unwrap();
        let want = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"sha256:a sha256:b"))
        );
        assert_eq!(two, want);
    }

    #[test]
    fn picks_platform_manifest() {
        let idx: Index = serde_json::from_str(
            r#"{"manifests":[{"mediaType":"m","digest":"sha256:arm","platform":{"architecture":"s390x","os":"linux"}},
                {"mediaType":"m","digest":"sha256:x","platform":{"architecture":"amd64","os":"linux"}},
                {"mediaType":"m","digest":"sha256:y","platform":{"architecture":"arm64","os":"linux"}}]}"#,
        )
        .unwrap();
        let d = pick_manifest(&idx).unwrap();
        assert!(d.digest == "sha256:x" || d.digest == "sha256:y");
    }
}
