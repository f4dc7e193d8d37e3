//! Reading images back from containerd's stores: the image record, index,
//! manifest and config blobs, under the name as given or as containerd's CRI
//! normalizes it. Reads only; pulling is `pull`'s job.

use std::collections::HashMap;

use containerd_client::services::v1::CreateRequest as CreateLease;
use containerd_client::services::v1::DeleteRequest as DeleteLease;
use containerd_client::services::v1::{GetImageRequest, ReadContentRequest};
use containerd_client::tonic::Code;
use tokio_stream::StreamExt;

use super::client::{err, Containerd};
use super::pull;
use crate::error::{Error, Result};
use crate::runtime::container_runtime::ImageInfo;
use crate::runtime::image::{self, ImageConfig, Index, Manifest};

impl Containerd {
    pub(super) async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut stream = self
            .client
            .content()
            .read(self.req(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(err("read content", digest))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend(chunk.map_err(err("read content", digest))?.data);
        }
        Ok(out)
    }

    pub(super) fn bad_image(name: &str, what: impl std::fmt::Display) -> Error {
        Error::Image {
            image: name.to_string(),
            message: what.to_string(),
        }
    }

    /// A lease `capstan-<tag>` that keeps what is made under it from
    /// containerd's GC until it is dropped (or an hour passes, should the
    /// agent die in between).
    pub(super) async fn lease(&self, tag: &str) -> Result<String> {
        let id = format!("capstan-{tag}");
        self.client
            .leases()
            .create(
                self.req(CreateLease {
                    id: id.clone(),
                    labels: HashMap::from([(
                        "containerd.io/gc.expire".to_string(),
                        // RFC 3339.
                        k8s_openapi::jiff::Timestamp::now()
                            .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(3600))
                            .map(|t| t.to_string())
                            .unwrap_or_default(),
                    )]),
                }),
            )
            .await
            .map_err(err("create lease", tag))?;
        Ok(id)
    }

    pub(super) async fn drop_lease(&self, id: &str) {
        let _ = self
            .client
            .leases()
            .delete(self.req(DeleteLease {
                id: id.to_string(),
                sync: false,
            }))
            .await;
    }

    pub(super) async fn image_exact(&self, name: &str) -> Result<Option<ImageInfo>> {
        let img = match self
            .client
            .images()
            .get(self.req(GetImageRequest {
                name: name.to_string(),
            }))
            .await
        {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(err("get image", name)(s)),
        };
        let target = img
            .and_then(|i| i.target)
            .ok_or_else(|| Self::bad_image(name, "image record has no target"))?;
        let mut manifest_digest = target.digest.clone();
        let mut bytes = self.read_blob(&target.digest).await?;
        if image::is_index(&target.media_type) {
            let index: Index =
                serde_json::from_slice(&bytes).map_err(|e| Self::bad_image(name, e))?;
            let m = image::pick_manifest(&index)
                .ok_or_else(|| Self::bad_image(name, "no manifest for this platform"))?;
            manifest_digest = m.digest.clone();
            bytes = self.read_blob(&manifest_digest).await?;
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Self::bad_image(name, e))?;
        let config: ImageConfig =
            serde_json::from_slice(&self.read_blob(&manifest.config.digest).await?)
                .map_err(|e| Self::bad_image(name, e))?;
        let chain_id = image::chain_id(&config.rootfs.diff_ids)
            .ok_or_else(|| Self::bad_image(name, "image has no layers"))?;
        let c = config.config.unwrap_or_default();
        Ok(Some(ImageInfo {
            name: name.to_string(),
            id: manifest.config.digest,
            manifest_digest,
            chain_id,
            env: c.env.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
        }))
    }

    pub(super) async fn lookup(&self, name: &str) -> Result<Option<ImageInfo>> {
        match self.image_exact(name).await? {
            Some(i) => Ok(Some(i)),
            // `busybox` is stored as docker.io/library/busybox:latest.
            None => match pull::normalized(name).filter(|n| n != name) {
                Some(full) => Ok(self.image_exact(&full).await?.map(|i| ImageInfo {
                    name: name.to_string(),
                    ..i
                })),
                None => Ok(None),
            },
        }
    }
}
