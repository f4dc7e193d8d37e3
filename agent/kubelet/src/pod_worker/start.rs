//! Starting one attempt of a container: the image (pull policy, back-off,
//! credentials), the assembled OCI spec, create and start with the log
//! file, then the watchers and the postStart hook.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Container;

use crate::error::{Error, Result};
use crate::ids;
use crate::paths;
use crate::pod::env::{self, Objects};
use crate::pod::{assemble, hooks, volumes};
use crate::pod_worker::backoff::Backoff;
use crate::pod_worker::labels::label_time;
use crate::pod_worker::pod::{grace, name_of};
use crate::pod_worker::worker::{Running, Worker};
use crate::runtime::container_runtime::{ContainerRuntime, CreateRequest, ImageInfo};
use crate::runtime::registry;
use crate::sandbox::pod_sandbox as sandbox;

impl<R: ContainerRuntime> Worker<R> {
    pub(super) async fn image(&mut self, c: &Container) -> Result<ImageInfo> {
        let name = c.image.clone().unwrap_or_default();
        // Before the pull policy, as kubelet: never looked up or pulled.
        if let Some(message) = crate::pod::image_ref::invalid(&name) {
            return Err(Error::InvalidImage { message });
        }
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let cached = self.slots.get(&c.name).and_then(|s| s.image.clone());
        if let Some(i) = cached.filter(|i| i.name == name && policy != "Always") {
            return Ok(i);
        }
        let present = if policy == "Always" {
            None
        } else {
            self.shared.runtime.image(&name).await?
        };
        if let Some(i) = present {
            let slot = self.slots.entry(c.name.clone()).or_default();
            slot.image = Some(i.clone());
            return Ok(i);
        }
        if policy == "Never" {
            return Err(Error::Image {
                image: name,
                message: "ErrImageNeverPull: not present and imagePullPolicy is Never".into(),
            });
        }
        let now = Instant::now();
        if let Some(slot) = self.slots.get(&c.name) {
            if slot.pull_backoff.ready_at(now).is_some() {
                return Err(Error::PullBackOff {
                    image: name,
                    last: slot.pull_error.clone().unwrap_or_default(),
                });
            }
        }
        let credentials = self.pull_credentials().await;
        let pulled = self.shared.runtime.pull(&name, &credentials).await;
        let slot = self.slots.entry(c.name.clone()).or_default();
        match pulled {
            Ok(i) => {
                slot.pull_backoff = Backoff::default();
                slot.pull_error = None;
                slot.image = Some(i.clone());
                Ok(i)
            }
            Err(e) => {
                slot.pull_backoff.failed(now);
                slot.pull_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Registry credentials from the pod's imagePullSecrets, in order;
    /// a missing or malformed secret is skipped (the pull then runs
    /// anonymously and the registry's refusal says why), as kubelet does.
    pub(super) async fn pull_credentials(&self) -> registry::Credentials {
        let mut credentials = registry::Credentials::default();
        let pod = &self.pod;
        let refs = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        if refs.is_empty() {
            return credentials;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let objects = match self.objects().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(pod = %name_of(pod), error = %e, "reading imagePullSecrets");
                return credentials;
            }
        };
        for r in refs {
            let Some(secret) = objects.secret(ns, &r.name) else {
                tracing::warn!(pod = %name_of(pod), secret = %r.name, "imagePullSecret not found");
                continue;
            };
            let data: std::collections::HashMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            if let Err(e) = credentials.add_secret(&data) {
                tracing::warn!(pod = %name_of(pod), secret = %r.name, error = %e, "unusable imagePullSecret");
            }
        }
        credentials
    }

    pub(super) async fn start(&mut self, c: &Container, init: bool) -> Result<()> {
        let t0 = Instant::now();
        let image = self.image(c).await?;
        let Some(rec) = self.sandbox.clone() else {
            return Ok(());
        };
        let opts = self.shared.opts.clone();
        let pod = self.pod.clone();
        let fields = self.fields();
        let pod_dir = sandbox::pod_dir(&opts.root_dir, &self.uid);
        let objects = self.objects().await?;
        self.ensure_tokens().await;
        let vols = volumes::prepare(&pod, &pod_dir, &fields, &objects, self.token_source())?;
        self.volumes_written();
        let service_env = self.service_env()?;
        let env =
            env::build(&pod, c, &image.env, &service_env, &fields, &objects).map_err(|e| {
                Error::Config {
                    pod: name_of(&pod),
                    message: e.0,
                }
            })?;
        let etc = sandbox::write_etc(
            &opts.root_dir,
            &rec,
            pod.metadata.name.as_deref().unwrap_or(""),
            &opts.cluster_dns,
            &opts.cluster_domain,
        )?;
        let slot = self.slots.entry(c.name.clone()).or_default();
        let attempt = slot.next_attempt;
        let id = ids::container_id(&self.shared.owner, &self.uid, &c.name, attempt);
        let cgroups_path = format!(
            "/{}/pod{}/{id}",
            opts.cgroup_root.trim_matches('/'),
            self.uid
        );
        let input = assemble::build(assemble::Parts {
            pod: &pod,
            container: c,
            image: &image,
            env,
            volume_mounts: volumes::mounts(&pod, c, &vols)?,
            etc: &etc,
            namespaces: &rec.namespaces(),
            cgroups_path,
        });
        let now = SystemTime::now();
        let labels = HashMap::from([
            (ids::LABEL_OWNER.to_string(), self.shared.owner.clone()),
            (ids::LABEL_POD_UID.to_string(), self.uid.clone()),
            (
                ids::LABEL_POD_NAME.to_string(),
                pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                ids::LABEL_POD_NAMESPACE.to_string(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (ids::LABEL_CONTAINER_NAME.to_string(), c.name.clone()),
            (ids::LABEL_ATTEMPT.to_string(), attempt.to_string()),
            (ids::LABEL_INIT.to_string(), init.to_string()),
            (ids::LABEL_STARTED_AT.to_string(), label_time(now)),
        ]);
        // A leftover of a failed earlier try of this very attempt goes first.
        self.shared.runtime.remove(&id).await?;
        self.shared
            .runtime
            .create(CreateRequest {
                id: id.clone(),
                image: image.clone(),
                spec: crate::pod::spec::build(&input),
                labels,
            })
            .await?;
        let log_dir = paths::pod_log_dir(
            &opts.pod_log_dir,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or(""),
            &self.uid,
        );
        let log = paths::container_log_path(&log_dir, &c.name, attempt);
        if let Err(e) = self.shared.runtime.start(&id, &log).await {
            let _ = self.shared.runtime.remove(&id).await;
            return Err(e);
        }
        let slot = self.slots.entry(c.name.clone()).or_default();
        slot.next_attempt = attempt + 1;
        slot.waiting = None;
        slot.image = Some(image);
        let older = slot.prev.take();
        slot.running = Some(Running {
            id: id.clone(),
            attempt,
            started: now,
            ready: false,
            startup_ok: false,
            killing: false,
            tasks: Vec::new(),
        });
        tracing::info!(pod = %name_of(&pod), container = %c.name, id = %id, attempt, elapsed_ms = t0.elapsed().as_millis() as u64, "container started");
        self.watch(&c.name, &id, attempt);
        // Only the latest exited attempt is kept (for lastState).
        if let Some(old) = older {
            if !init {
                let _ = self.shared.runtime.remove(&old.id).await;
            }
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let ip = self.pod_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]));
            let budget = grace(&pod).max(Duration::from_secs(1));
            if let Err(msg) = hooks::run(h, c, ip, &id, self.shared.runtime.as_ref(), budget).await
            {
                tracing::warn!(pod = %name_of(&pod), container = %c.name, error = %msg, "postStart hook failed; killing container");
                if let Some(r) = self.slots.get_mut(&c.name).and_then(|s| s.running.as_mut()) {
                    r.killing = true;
                }
                self.kill_in_background(&c.name, id, attempt, grace(&pod));
            }
        }
        Ok(())
    }
}
