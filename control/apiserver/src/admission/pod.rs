//! ServiceAccount admission of a new pod: reads the pod's account (the
//! mutation itself is `service_account`'s, pure) or refuses the pod in
//! kube-apiserver's words. Never writes.

use std::time::Duration;

use serde_json::Value;

use super::service_account::{self, DEFAULT_SERVICE_ACCOUNT};
use crate::registry::meta;
use crate::rest;
use crate::status::ApiError;
use crate::ApiServer;

/// The `default` account may be moments from being made (its controller
/// recreates it after a delete): kube-apiserver looks it up this many
/// times before refusing the pod; other names once.
const DEFAULT_ACCOUNT_ATTEMPTS: usize = 10;

async fn lookup_account(api: &ApiServer, ns: &str, name: &str) -> Result<Value, ApiError> {
    let Some(res) = crate::resources::find("", "v1", "serviceaccounts") else {
        return Err(ApiError::Internal(
            "serviceaccounts missing from the resource table".into(),
        ));
    };
    let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    let pause = Duration::from_millis(100 + rand::random::<u64>() % 100);
    for i in 0..attempts {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        match rest::get(api, res, Some(ns), name).await {
            Ok(s) => return Ok(s.value),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::NotFound(crate::status::Subject {
        group: String::new(),
        kind: "serviceaccount".into(),
        name: name.into(),
    }))
}

/// ServiceAccount admission of a new pod in `ns`. `reported` is the name
/// kube-apiserver puts in the refusal: the pod's name, or its
/// generateName when the name is not made yet.
pub async fn admit_pod(
    api: &ApiServer,
    ns: &str,
    pod: &mut Value,
    reported: &str,
) -> Result<(), ApiError> {
    if !api.config.admission.service_account || service_account::is_mirror_pod(pod) {
        return Ok(());
    }
    let name = service_account::account_name(pod);
    let account = match lookup_account(api, ns, &name).await {
        Ok(a) => a,
        Err(e) => {
            return Err(ApiError::Forbidden(format!(
            "pods \"{reported}\" is forbidden: error looking up service account {ns}/{name}: {e}"
        )))
        }
    };
    service_account::admit(pod, &account, &meta::name_suffix());
    Ok(())
}
