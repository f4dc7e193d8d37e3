//! Admission that needs more than the object itself: kube-apiserver's
//! ServiceAccount plugin on pod create (the account must exist; the token
//! volume goes in). The mutation is pure (`service_account`); this file
//! only reads the account. It runs after the namespace check and before
//! the object is written; it never writes.

pub mod service_account;

use std::time::Duration;

use serde_json::Value;

use crate::registry::meta;
use crate::rest;
use crate::status::ApiError;
use crate::ApiServer;

use service_account::DEFAULT_SERVICE_ACCOUNT;

/// Which admission plugins run (kube-apiserver's
/// `--disable-admission-plugins` switches them off).
#[derive(Clone, Debug)]
pub struct Plugins {
    pub service_account: bool,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins {
            service_account: true,
        }
    }
}

/// The plugin names `--disable-admission-plugins` accepts.
pub const KNOWN_PLUGINS: &[&str] = &["ServiceAccount"];

impl Plugins {
    /// All plugins but the named ones; an unknown name is an error.
    pub fn without(disabled: &[String]) -> Result<Plugins, String> {
        let mut p = Plugins::default();
        for name in disabled.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match name {
                "ServiceAccount" => p.service_account = false,
                other => {
                    return Err(format!(
                        "unknown admission plugin {other:?} (known: {})",
                        KNOWN_PLUGINS.join(", ")
                    ))
                }
            }
        }
        Ok(p)
    }
}

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
