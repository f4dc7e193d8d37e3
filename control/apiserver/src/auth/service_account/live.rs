//! Whether the objects a token names still exist: the service account,
//! and the pod, secret or node it is bound to, read from storage with a
//! short cache of objects found. A deleted object is refused at most
//! `CACHE_TTL` (2 s) after its deletion; a missing one is never cached, so
//! an object made a moment ago is seen at once. The rules (uid, deletion
//! grace) are the pure `check`, after kube-apiserver's `claims.go`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::claims::{ObjectRef, LEEWAY_SECONDS};
use crate::resources;
use crate::rest;
use crate::storage::Storage;

/// How long an object found stays trusted without reading it again: the
/// bound on how long a token outlives the deletion of its pod.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Entries beyond this are dropped wholesale (the cache is an
/// optimisation; a flood of distinct tokens must not grow it unbounded).
const MAX_ENTRIES: usize = 10_000;

/// What the checks need of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub uid: String,
    /// `metadata.deletionTimestamp` as Unix seconds, when being deleted.
    pub deleted_at: Option<i64>,
}

impl Live {
    pub fn of(v: &Value) -> Live {
        let meta = |k: &str| v.pointer(&format!("/metadata/{k}")).and_then(Value::as_str);
        Live {
            uid: meta("uid").unwrap_or_default().to_string(),
            deleted_at: meta("deletionTimestamp")
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .map(|t| t.as_second()),
        }
    }
}

/// The kinds a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    ServiceAccount,
    Pod,
    Secret,
    Node,
}

impl Bound {
    pub fn plural(self) -> &'static str {
        match self {
            Bound::ServiceAccount => "serviceaccounts",
            Bound::Pod => "pods",
            Bound::Secret => "secrets",
            Bound::Node => "nodes",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Bound::ServiceAccount => "service account",
            Bound::Pod => "pod",
            Bound::Secret => "secret",
            Bound::Node => "node",
        }
    }
}

const INVALIDATED: &str = "service account token has been invalidated";

/// Whether the object a claim names is still the one the token was made
/// for: present, the same uid, and not deleted longer ago than the
/// leeway (a terminating pod keeps its token while it shuts down).
pub fn check(
    kind: Bound,
    ns: &str,
    claim: &ObjectRef,
    found: Option<&Live>,
    now: i64,
) -> Result<(), String> {
    let Some(live) = found else {
        return Err(match kind {
            Bound::ServiceAccount => format!("serviceaccounts \"{}\" not found", claim.name),
            _ => INVALIDATED.into(),
        });
    };
    if live
        .deleted_at
        .is_some_and(|t| t < now.saturating_sub(LEEWAY_SECONDS))
    {
        return Err(match kind {
            Bound::ServiceAccount => {
                format!("service account {ns}/{} has been deleted", claim.name)
            }
            _ => INVALIDATED.into(),
        });
    }
    if live.uid != claim.uid {
        return Err(match kind {
            Bound::ServiceAccount => format!(
                "service account UID ({}) does not match claim ({})",
                live.uid, claim.uid
            ),
            k => format!(
                "{} UID ({}) does not match service account {} ref claim ({})",
                k.word(),
                live.uid,
                k.word(),
                claim.uid
            ),
        });
    }
    Ok(())
}

pub struct LiveObjects {
    storage: Storage,
    cache: Mutex<HashMap<String, (Live, Instant)>>,
}

impl LiveObjects {
    pub fn new(storage: Storage) -> Self {
        LiveObjects {
            storage,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The object, from the cache when read less than `CACHE_TTL` ago.
    pub async fn get(&self, kind: Bound, ns: &str, name: &str) -> Result<Option<Live>, String> {
        let res = resources::find("", "v1", kind.plural())
            .ok_or_else(|| format!("{} missing from the resource table", kind.plural()))?;
        let ns = res.namespaced.then_some(ns);
        let key = self.storage.key(&rest::object_path(res, ns, name));
        if let Some(hit) = self.cached(&key) {
            return Ok(Some(hit));
        }
        let found = self
            .storage
            .get(&key)
            .await
            .map_err(|e| format!("looking up {} {name}: {e}", kind.word()))?;
        let live = found.map(|s| Live::of(&s.value));
        if let Some(l) = &live {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if c.len() >= MAX_ENTRIES {
                c.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                if c.len() >= MAX_ENTRIES {
                    c.clear();
                }
            }
            c.insert(key, (l.clone(), Instant::now()));
        }
        Ok(live)
    }

    fn cached(&self, key: &str) -> Option<Live> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match c.get(key) {
            Some((l, at)) if at.elapsed() < CACHE_TTL => Some(l.clone()),
            Some(_) => {
                c.remove(key);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn r(uid: &str) -> ObjectRef {
        ObjectRef {
            name: "x".into(),
            uid: uid.into(),
        }
    }

    fn live(uid: &str, deleted_at: Option<i64>) -> Live {
        Live {
            uid: uid.into(),
            deleted_at,
        }
    }

    #[test]
    fn present_same_uid_passes() {
        for k in [
            Bound::ServiceAccount,
            Bound::Pod,
            Bound::Secret,
            Bound::Node,
        ] {
            assert_eq!(check(k, "ns", &r("u"), Some(&live("u", None)), NOW), Ok(()));
        }
    }

    #[test]
    fn missing_recreated_or_long_deleted_fails() {
        assert_eq!(
            check(Bound::Pod, "ns", &r("u"), None, NOW),
            Err(INVALIDATED.into())
        );
        assert_eq!(
            check(Bound::ServiceAccount, "ns", &r("u"), None, NOW),
            Err("serviceaccounts \"x\" not found".into())
        );
        assert_eq!(
            check(Bound::Pod, "ns", &r("u"), Some(&live("v", None)), NOW),
            Err("pod UID (v) does not match service account pod ref claim (u)".into())
        );
        assert_eq!(
            check(
                Bound::ServiceAccount,
                "ns",
                &r("u"),
                Some(&live("v", None)),
                NOW
            ),
            Err("service account UID (v) does not match claim (u)".into())
        );
        // Terminating: fine until the leeway past its deletion time.
        let term = live("u", Some(NOW - LEEWAY_SECONDS));
        assert_eq!(check(Bound::Pod, "ns", &r("u"), Some(&term), NOW), Ok(()));
        let gone = live("u", Some(NOW - LEEWAY_SECONDS - 1));
        assert_eq!(
            check(Bound::Pod, "ns", &r("u"), Some(&gone), NOW),
            Err(INVALIDATED.into())
        );
        assert_eq!(
            check(Bound::ServiceAccount, "ns", &r("u"), Some(&gone), NOW),
            Err("service account ns/x has been deleted".into())
        );
    }

    #[test]
    fn live_from_stored_metadata() {
        let v = json!({"metadata": {"uid": "u", "deletionTimestamp": "2023-11-14T22:13:20Z"}});
        assert_eq!(Live::of(&v), live("u", Some(1_700_000_000)));
        assert_eq!(Live::of(&json!({})), live("", None));
    }
}
