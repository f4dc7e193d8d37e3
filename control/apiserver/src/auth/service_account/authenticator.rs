//! Authenticating a service-account token end to end: the validator's
//! signature and claim checks, then the objects it names in storage
//! (`live.rs`). Request authentication and TokenReview both call this, so
//! they cannot disagree.

use super::claims::ServiceAccountInfo;
use super::live::{check, Bound, LiveObjects};
use super::validator::TokenValidator;
use crate::storage::Storage;

pub struct ServiceAccountAuthenticator {
    validator: TokenValidator,
    live: LiveObjects,
}

impl ServiceAccountAuthenticator {
    pub fn new(validator: TokenValidator, storage: Storage) -> Self {
        ServiceAccountAuthenticator {
            validator,
            live: LiveObjects::new(storage),
        }
    }

    /// None when `token` is not one of ours; otherwise who it names for
    /// the `target` audiences, or why it is refused.
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
        target: &[String],
    ) -> Option<Result<ServiceAccountInfo, String>> {
        let info = match self.validator.verify(token, now, target)? {
            Ok(i) => i,
            Err(e) => return Some(Err(e)),
        };
        Some(self.still_bound(&info, now).await.map(|()| info))
    }

    async fn still_bound(&self, info: &ServiceAccountInfo, now: i64) -> Result<(), String> {
        let ns = info.namespace.as_str();
        let sa = super::claims::ObjectRef {
            name: info.name.clone(),
            uid: info.uid.clone(),
        };
        let mut refs = vec![(Bound::ServiceAccount, &sa)];
        refs.extend(info.secret.iter().map(|s| (Bound::Secret, s)));
        refs.extend(info.pod.iter().map(|p| (Bound::Pod, p)));
        // A pod-bound token's node claim only says where the pod ran, as
        // in Kubernetes; a token bound to the node itself needs the node.
        if info.pod.is_none() {
            refs.extend(info.node.iter().map(|n| (Bound::Node, n)));
        }
        for (kind, claim) in refs {
            let found = self.live.get(kind, ns, &claim.name).await?;
            check(kind, ns, claim, found.as_ref(), now)?;
        }
        Ok(())
    }
}
