//! Pulling an image into containerd 1.6, which has no pull RPC (transfer is
//! 2.x): blobs from the registry are streamed into the content store, the
//! layers are unpacked into overlayfs snapshots named by chain ID through
//! the diff service, and the image record points at the manifest. All of it
//! under one lease, and with the `containerd.io/gc.ref.*` labels that tie
//! index → manifest → config/layers → snapshot, so containerd's GC keeps
//! exactly what the image record reaches once the lease is gone.
//!
//! About 500 lines with its test: fetch, write, unpack and record are one
//! pipeline under one lease, and splitting it would scatter that lease.

use std::collections::HashMap;

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, Image, Info, InfoRequest, UpdateImageRequest, UpdateRequest,
    WriteAction, WriteContentRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor as CDescriptor;
use futures::StreamExt;
use oci_client::manifest::OciDescriptor;
use oci_client::Reference;

use super::client::{err, Containerd, SNAPSHOTTER};
use crate::error::{Error, Result};
use crate::runtime::image::{self, ImageConfig, Index, Manifest};
use crate::runtime::registry::{Credentials, RawManifest, Registry, Session};

/// Content is written in chunks of at most this (gRPC's default message
/// limit is 4 MiB).
const CHUNK: usize = 1 << 20;

fn pull_err(image: &str, what: impl std::fmt::Display) -> Error {
    Error::Image {
        image: image.to_string(),
        message: what.to_string(),
    }
}

/// The name containerd stores a reference under (`busybox` →
/// `docker.io/library/busybox:latest`), as containerd's CRI does.
pub fn normalized(name: &str) -> Option<String> {
    let r: Reference = name.parse().ok()?;
    Some(r.whole())
}

impl Containerd {
    /// Fetches `name` from its registry and unpacks it; the image is then
    /// present under its normalized name.
    pub(super) async fn pull_image(
        &self,
        registry: &Registry,
        name: &str,
        credentials: &Credentials,
    ) -> Result<String> {
        let reference: Reference = name
            .parse()
            .map_err(|e| pull_err(name, format!("invalid image reference: {e}")))?;
        let stored_name = reference.whole();
        let auth = credentials.for_registry(reference.resolve_registry());
        let registry = &registry.session();
        let lease = self
            .lease(&format!("pull-{}", reference.repository()))
            .await?;
        let result = async {
            let top = registry
                .manifest(&reference, &auth)
                .await
                .map_err(|e| pull_err(name, e))?;
            let target = CDescriptor {
                media_type: top.media_type.clone(),
                digest: top.digest.clone(),
                size: top.bytes.len() as i64,
                annotations: HashMap::new(),
            };
            let manifest_raw = if image::is_index(&top.media_type) {
                let index: Index =
                    serde_json::from_slice(&top.bytes).map_err(|e| pull_err(name, e))?;
                let picked = image::pick_manifest(&index)
                    .ok_or_else(|| pull_err(name, "no manifest for this platform in the index"))?;
                let by_digest = reference.clone_with_digest(picked.digest.clone());
                let m = registry
                    .manifest(&by_digest, &auth)
                    .await
                    .map_err(|e| pull_err(name, e))?;
                let labels = HashMap::from([(
                    "containerd.io/gc.ref.content.m.0".to_string(),
                    m.digest.clone(),
                )]);
                self.put_bytes(&top, labels, &lease).await?;
                m
            } else {
                top
            };
            let manifest: Manifest =
                serde_json::from_slice(&manifest_raw.bytes).map_err(|e| pull_err(name, e))?;

            let config_bytes = self
                .fetch_all(registry, &reference, &manifest.config)
                .await
                .map_err(|e| pull_err(name, e))?;
            let config: ImageConfig =
                serde_json::from_slice(&config_bytes).map_err(|e| pull_err(name, e))?;
            let chains = image::chain_ids(&config.rootfs.diff_ids);
            if chains.len() != manifest.layers.len() || chains.is_empty() {
                return Err(pull_err(
                    name,
                    format!(
                        "{} layers in the manifest, {} diff IDs in the config",
                        manifest.layers.len(),
                        chains.len()
                    ),
                ));
            }
            for layer in &manifest.layers {
                self.put_stream(registry, &reference, layer, &lease)
                    .await
                    .map_err(|e| pull_err(name, e))?;
            }
            self.unpack(&manifest.layers, &chains, &lease).await?;

            let top_chain = chains.last().cloned().unwrap_or_default();
            self.put_blob(
                &manifest.config.digest,
                &config_bytes,
                HashMap::from([(
                    format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                    top_chain,
                )]),
                &lease,
            )
            .await?;
            let mut labels = HashMap::from([(
                "containerd.io/gc.ref.content.config".to_string(),
                manifest.config.digest.clone(),
            )]);
            for (i, l) in manifest.layers.iter().enumerate() {
                labels.insert(
                    format!("containerd.io/gc.ref.content.l.{i}"),
                    l.digest.clone(),
                );
            }
            self.put_bytes(&manifest_raw, labels, &lease).await?;
            self.set_image(&stored_name, target).await
        }
        .await;
        self.drop_lease(&lease).await;
        result.map(|()| stored_name)
    }

    async fn fetch_all(
        &self,
        registry: &Session,
        reference: &Reference,
        d: &image::Descriptor,
    ) -> std::result::Result<Vec<u8>, String> {
        let mut s = registry.blob(reference, &oci(d)).await?;
        let mut out = Vec::new();
        while let Some(chunk) = s.stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| format!("blob {}: {e}", d.digest))?);
        }
        Ok(out)
    }

    /// Labels of present content, or None when it is absent.
    async fn content_labels(&self, digest: &str) -> Result<Option<HashMap<String, String>>> {
        match self
            .client
            .content()
            .info(self.req(InfoRequest {
                digest: digest.to_string(),
            }))
            .await
        {
            Ok(r) => Ok(Some(r.into_inner().info.unwrap_or_default().labels)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(err("content info", digest)(s)),
        }
    }

    /// Ensures `labels` on present content (e.g. a layer shared with an
    /// image pulled before).
    async fn label_content(&self, digest: &str, labels: HashMap<String, String>) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        self.client
            .content()
            .update(self.req(UpdateRequest {
                info: Some(Info {
                    digest: digest.to_string(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            }))
            .await
            .map_err(err("label content", digest))?;
        Ok(())
    }

    async fn put_bytes(
        &self,
        m: &RawManifest,
        labels: HashMap<String, String>,
        lease: &str,
    ) -> Result<()> {
        self.put_blob(&m.digest, &m.bytes, labels, lease).await
    }

    async fn put_blob(
        &self,
        digest: &str,
        bytes: &[u8],
        labels: HashMap<String, String>,
        lease: &str,
    ) -> Result<()> {
        if self.content_labels(digest).await?.is_some() {
            return self.label_content(digest, labels).await;
        }
        let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let writing = self.write(digest, bytes.len() as i64, labels, rx, lease);
        let feeding = async move {
            for c in chunks {
                if tx.send(Ok(bytes::Bytes::from(c))).await.is_err() {
                    break;
                }
            }
        };
        let (written, ()) = tokio::join!(writing, feeding);
        written
    }

    /// Streams one registry blob into the content store unless present.
    async fn put_stream(
        &self,
        registry: &Session,
        reference: &Reference,
        d: &image::Descriptor,
        lease: &str,
    ) -> std::result::Result<(), String> {
        if self
            .content_labels(&d.digest)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(());
        }
        let mut source = registry.blob(reference, &oci(d)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let writing = self.write(&d.digest, d.size, HashMap::new(), rx, lease);
        let feeding = async move {
            while let Some(chunk) = source.stream.next().await {
                let failed = chunk.is_err();
                let chunk = chunk.map_err(|e| e.to_string());
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        };
        let (written, ()) = tokio::join!(writing, feeding);
        written.map_err(|e| e.to_string())
    }

    /// One content write: WRITE requests at increasing offsets, then a
    /// COMMIT that containerd verifies against `digest` and `total`.
    async fn write(
        &self,
        digest: &str,
        total: i64,
        labels: HashMap<String, String>,
        mut chunks: tokio::sync::mpsc::Receiver<std::result::Result<bytes::Bytes, String>>,
        lease: &str,
    ) -> Result<()> {
        let write_ref = format!("capstan-pull-{digest}");
        let (req_tx, req_rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        let (fail_tx, mut fail_rx) = tokio::sync::mpsc::channel::<String>(1);
        let (r, d) = (write_ref.clone(), digest.to_string());
        let feeder = tokio::spawn(async move {
            let mut offset = 0i64;
            while let Some(chunk) = chunks.recv().await {
                let data = match chunk {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = fail_tx.send(e).await;
                        return;
                    }
                };
                for piece in data.chunks(CHUNK) {
                    let req = WriteContentRequest {
                        action: WriteAction::Write as i32,
                        r#ref: r.clone(),
                        total,
                        expected: d.clone(),
                        offset,
                        data: piece.to_vec(),
                        labels: HashMap::new(),
                    };
                    offset += piece.len() as i64;
                    if req_tx.send(req).await.is_err() {
                        return;
                    }
                }
            }
            let _ = req_tx
                .send(WriteContentRequest {
                    action: WriteAction::Commit as i32,
                    r#ref: r,
                    total,
                    expected: d,
                    offset,
                    data: Vec::new(),
                    labels,
                })
                .await;
        });
        let requests = tokio_stream::wrappers::ReceiverStream::new(req_rx);
        let outcome = async {
            let mut responses = self
                .client
                .content()
                .write(self.leased(requests, lease))
                .await
                .map_err(err("write content", digest))?
                .into_inner();
            let mut committed = false;
            while let Some(resp) = responses.next().await {
                let resp = resp.map_err(err("write content", digest))?;
                if resp.action == WriteAction::Commit as i32 {
                    committed = true;
                }
            }
            Ok::<bool, Error>(committed)
        }
        .await;
        let _ = feeder.await;
        if let Ok(reason) = fail_rx.try_recv() {
            return Err(pull_err(digest, format!("download failed: {reason}")));
        }
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => Err(pull_err(digest, "content write ended without a commit")),
            Err(e) => Err(e),
        }
    }

    /// Layer i becomes snapshot chains[i] on top of chains[i-1]; layers
    /// already unpacked (shared with other images) are skipped.
    async fn unpack(
        &self,
        layers: &[image::Descriptor],
        chains: &[String],
        lease: &str,
    ) -> Result<()> {
        for (i, (layer, chain)) in layers.iter().zip(chains).enumerate() {
            let present = self
                .client
                .snapshots()
                .stat(self.req(StatSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: chain.clone(),
                }))
                .await;
            match present {
                Ok(_) => continue,
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(err("stat snapshot", chain)(s)),
            }
            let parent = if i == 0 {
                String::new()
            } else {
                chains[i - 1].clone()
            };
            let key = format!("capstan-extract-{}-{chain}", std::process::id());
            let mounts = self
                .client
                .snapshots()
                .prepare(self.leased(
                    PrepareSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key: key.clone(),
                        parent,
                        labels: HashMap::new(),
                    },
                    lease,
                ))
                .await
                .map_err(err("prepare snapshot", chain))?
                .into_inner()
                .mounts;
            let applied = async {
                self.client
                    .diff()
                    .apply(self.leased(
                        ApplyRequest {
                            diff: Some(CDescriptor {
                                media_type: layer.media_type.clone(),
                                digest: layer.digest.clone(),
                                size: layer.size,
                                annotations: HashMap::new(),
                            }),
                            mounts,
                            payloads: HashMap::new(),
                            sync_fs: false,
                        },
                        lease,
                    ))
                    .await
                    .map_err(err("apply layer", &layer.digest))?;
                self.client
                    .snapshots()
                    .commit(self.leased(
                        CommitSnapshotRequest {
                            snapshotter: SNAPSHOTTER.into(),
                            name: chain.clone(),
                            key: key.clone(),
                            labels: HashMap::new(),
                        },
                        lease,
                    ))
                    .await
                    .map_err(err("commit snapshot", chain))?;
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = applied {
                // The active extraction snapshot is ours alone; a failed
                // unpack must not leave it behind.
                let _ = self
                    .client
                    .snapshots()
                    .remove(self.req(RemoveSnapshotRequest {
                        snapshotter: SNAPSHOTTER.into(),
                        key,
                    }))
                    .await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Creates the image record, or repoints an existing one (a tag that
    /// moved).
    async fn set_image(&self, name: &str, target: CDescriptor) -> Result<()> {
        let image = Image {
            name: name.to_string(),
            target: Some(target),
            ..Default::default()
        };
        match self
            .client
            .images()
            .create(self.req(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                self.client
                    .images()
                    .update(self.req(UpdateImageRequest {
                        image: Some(image),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["target".into()],
                        }),
                        source_date_epoch: None,
                    }))
                    .await
                    .map_err(err("update image", name))?;
                Ok(())
            }
            Err(s) => Err(err("create image", name)(s)),
        }
    }
}

fn oci(d: &image::Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_like_containerd_cri() {
        assert_eq!(
            normalized("busybox").as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            normalized("127.0.0.1:5000/capstan/test:v1").as_deref(),
            Some("127.0.0.1:5000/capstan/test:v1")
        );
        assert_eq!(normalized("Not A Reference"), None);
    }
}
