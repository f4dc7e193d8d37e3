//! The pod worker's side of its written volumes: the objects and tokens
//! they are made from, and keeping them current while containers run —
//! tokens replaced when due (`token::refresh`), everything rewritten from
//! its sources every minute as kubelet's periodic remount does. Failures
//! keep the last files and are logged once per change.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::pod::volumes::{self, projected, Tokens};
use crate::pod_worker::pod::name_of;
use crate::pod_worker::worker::Worker;
use crate::runtime::container_runtime::ContainerRuntime;
use crate::sandbox::pod_sandbox as sandbox;
use crate::source::snapshot::ObjectStore;
use crate::status::api::from_api;
use crate::token::pod_tokens::NoTokens;
use crate::token::request::ApiIssuer;

/// kubelet's sync frequency: written volumes follow their sources this
/// often.
pub(super) const VOLUME_RESYNC: Duration = Duration::from_secs(60);

impl<R: ContainerRuntime> Worker<R> {
    fn api_pod(&self) -> bool {
        self.shared.api.is_some() && from_api(&self.pod)
    }

    /// The ConfigMaps and Secrets the pod names, as of now.
    pub(super) async fn objects(&self) -> Result<ObjectStore> {
        match (&self.shared.api, from_api(&self.pod)) {
            (Some(api), true) => api.objects_for(&self.pod).await,
            _ => Ok(self.shared.objects.clone()),
        }
    }

    /// Fetches the pod's tokens that are missing or due; whether any
    /// changed.
    pub(super) async fn ensure_tokens(&mut self) -> bool {
        let wants = projected::token_requests(&self.pod);
        let client = match (&self.shared.api, from_api(&self.pod)) {
            (Some(api), true) => api.client.clone(),
            _ => return false,
        };
        let pod = self.pod.clone();
        let issuer = ApiIssuer { client, pod: &pod };
        self.tokens
            .ensure(&issuer, &wants, Timestamp::now(), &name_of(&pod))
            .await
    }

    /// Where serviceAccountToken sources read from.
    pub(super) fn token_source(&self) -> &dyn Tokens {
        if self.api_pod() {
            &self.tokens
        } else {
            &NoTokens
        }
    }

    /// The Service variables for a container started now.
    pub(super) fn service_env(&self) -> Result<BTreeMap<String, String>> {
        match &self.shared.services {
            Some(s) => s
                .env_for(&self.pod, from_api(&self.pod))
                .map_err(|message| Error::Config {
                    pod: name_of(&self.pod),
                    message,
                }),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The volumes were just written for a container start.
    pub(super) fn volumes_written(&mut self) {
        if self.volume_sync_at.is_none() {
            self.volume_sync_at = Some(Instant::now() + VOLUME_RESYNC);
        }
    }

    /// When `refresh_volumes` next has work, `now` at the soonest (None:
    /// nothing runs yet).
    pub(super) fn volumes_wake(&self, now: Instant) -> Option<Instant> {
        if !self.slots.values().any(|s| s.running.is_some()) {
            return None;
        }
        let token = self.tokens.next_due().map(|due| {
            let left = due.duration_since(Timestamp::now());
            now + Duration::try_from(left).unwrap_or(Duration::ZERO)
        });
        // Adopted containers (an agent restart) get their volumes
        // rewritten, and fresh tokens, at once.
        let periodic = self.volume_sync_at.unwrap_or(now).max(now);
        Some(token.map_or(periodic, |t| t.min(periodic)))
    }

    /// Rewrites the volumes of running containers when a token is due or
    /// the periodic resync comes round.
    pub(super) async fn refresh_volumes(&mut self) {
        let now = Instant::now();
        if self.terminal.is_some() || self.volumes_wake(now).is_none_or(|at| at > now) {
            return;
        }
        let periodic = self.volume_sync_at.is_none_or(|at| at <= now);
        let changed = self.ensure_tokens().await;
        if !(changed || periodic) {
            // A due token whose fetch failed: the files stay as they are.
            return;
        }
        if periodic {
            self.volume_sync_at = Some(now + VOLUME_RESYNC);
        }
        let errors = match self.objects().await {
            Ok(objects) => {
                let dir = sandbox::pod_dir(&self.shared.opts.root_dir, &self.uid);
                let fields = self.fields();
                volumes::refresh(&self.pod, &dir, &fields, &objects, self.token_source())
            }
            Err(e) => vec![e],
        };
        let msg = (!errors.is_empty()).then(|| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        if msg != self.volume_error {
            match &msg {
                Some(m) => {
                    tracing::warn!(pod = %name_of(&self.pod), error = %m, "refreshing volumes failed; they keep their last contents")
                }
                None => tracing::info!(pod = %name_of(&self.pod), "volumes refreshed again"),
            }
            self.volume_error = msg;
        }
    }
}
