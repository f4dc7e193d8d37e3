//! Keeps the `default/kubernetes` objects as `plan` says: at start and
//! every `INTERVAL` (kube-apiserver's endpoint reconcile interval), each
//! one created when missing and updated when edited. Writes go through
//! the REST layer as the server itself (no authorization: it is the
//! server). A failure is logged once per change of outcome and retried on
//! the next round.

use std::sync::Arc;
use std::time::Duration;

use crate::resources::{self, Resource};
use crate::rest::{self, Change};
use crate::status::ApiError;
use crate::ApiServer;

use super::plan::{
    desired_endpoints, desired_service, desired_slice, fix, Target, NAME, NAMESPACE,
};

/// How often the objects are checked.
pub const INTERVAL: Duration = Duration::from_secs(10);

fn resource(group: &str, plural: &str) -> Result<&'static Resource, ApiError> {
    resources::find(group, "v1", plural)
        .ok_or_else(|| ApiError::Internal(format!("{plural} missing from the resource table")))
}

/// Makes or fixes one object; whether it wrote.
async fn ensure(
    api: &ApiServer,
    res: &Resource,
    want: serde_json::Value,
) -> Result<bool, ApiError> {
    match rest::get(api, res, Some(NAMESPACE), NAME).await {
        Err(ApiError::NotFound(_)) => {
            match rest::create(api, res, Some(NAMESPACE), want).await {
                Ok(_) => Ok(true),
                // Made meanwhile (another server): the next round checks it.
                Err(ApiError::AlreadyExists(_)) => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(stored) => {
            let current = rest::with_rv(stored.value, stored.mod_revision);
            match fix(&current, &want) {
                None => Ok(false),
                Some(fixed) => {
                    rest::update(
                        api,
                        res,
                        Some(NAMESPACE),
                        NAME,
                        None,
                        Change::Replace(fixed),
                    )
                    .await?;
                    Ok(true)
                }
            }
        }
    }
}

/// One round over the Service, Endpoints and EndpointSlice; what it wrote.
pub async fn reconcile(api: &ApiServer, t: &Target) -> Result<Vec<&'static str>, ApiError> {
    let mut wrote = Vec::new();
    let steps = [
        (resource("", "services")?, desired_service(t)),
        (resource("", "endpoints")?, desired_endpoints(t)),
        (
            resource("discovery.k8s.io", "endpointslices")?,
            desired_slice(t),
        ),
    ];
    for (res, want) in steps {
        if ensure(api, res, want).await? {
            wrote.push(res.plural);
        }
    }
    Ok(wrote)
}

/// Reconciles until `shutdown` resolves.
pub async fn run(api: Arc<ApiServer>, t: Target, shutdown: impl std::future::Future<Output = ()>) {
    tracing::info!(cluster_ip = %t.cluster_ip, address = %t.address, port = t.port, "keeping the default/kubernetes service");
    let mut tick = tokio::time::interval(INTERVAL);
    let mut last_error: Option<String> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        match reconcile(&api, &t).await {
            Ok(wrote) => {
                if !wrote.is_empty() {
                    tracing::info!(?wrote, "restored the default/kubernetes service objects");
                }
                if last_error.take().is_some() {
                    tracing::info!("the default/kubernetes service objects are in place again");
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(error = %msg, "keeping the default/kubernetes service failed; retrying");
                }
                last_error = Some(msg);
            }
        }
    }
}
