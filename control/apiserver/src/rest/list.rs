//! Lists: one etcd revision across pages, selectors applied while paging,
//! `continue` tokens that carry the revision and the next key.

use serde_json::{json, Value};

use super::stored::{dir_path, with_rv};
use crate::resources::Resource;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::ApiServer;

#[derive(Default, Debug, Clone)]
pub struct ListOptions {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: i64,
    pub continue_token: Option<String>,
}

pub fn matches(opts_label: &LabelSelector, opts_field: &FieldSelector, obj: &Value) -> bool {
    opts_label.matches(obj.pointer("/metadata/labels")) && opts_field.matches(obj)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

fn decode_continue(t: &str) -> Result<ContinueToken, ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {t}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

fn encode_continue(rv: i64, start: &str) -> String {
    use base64::Engine;
    let t = ContinueToken {
        rv,
        start: start.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&t).unwrap_or_default())
}

/// A consistent list (one etcd revision across pages), filtered by the
/// selectors, paged by `limit`/`continue` as Kubernetes pages.
pub async fn list(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    opts: &ListOptions,
) -> Result<Value, ApiError> {
    let dir = api.storage.key(&dir_path(res, ns));
    let (mut revision, mut start) = match &opts.continue_token {
        Some(t) => {
            let c = decode_continue(t)?;
            if !c.start.starts_with(&dir) {
                return Err(ApiError::BadRequest(
                    "continue key is not valid for this list".into(),
                ));
            }
            (c.rv, Some(c.start))
        }
        None => (0, None),
    };
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    let mut remaining = 0;
    loop {
        let want = if opts.limit > 0 {
            opts.limit - items.len() as i64
        } else {
            0
        };
        // Fetch one more than needed to know whether another page exists.
        let fetch = if want > 0 { want + 1 } else { 0 };
        let page = api
            .storage
            .list(&dir, start.as_deref(), revision, fetch)
            .await?;
        revision = page.revision;
        let n = page.items.len() as i64;
        let mut last_key = None;
        for (i, s) in page.items.into_iter().enumerate() {
            if want > 0 && i as i64 == want {
                // The extra item: the next page starts here.
                next = Some(s.key.clone());
                break;
            }
            last_key = Some(s.key.clone());
            if matches(&opts.label, &opts.field, &s.value) {
                items.push(with_rv(s.value, s.mod_revision));
            }
        }
        if next.is_some() {
            remaining = page.remaining + 1;
            if (items.len() as i64) < opts.limit {
                // Filters dropped some: keep filling this page.
                start = next.take();
                continue;
            }
            break;
        }
        if fetch == 0 || n < fetch {
            break;
        }
        // Exactly `fetch` items and all consumed: continue after the last.
        start = last_key.map(|k| format!("{k}\0"));
        if (items.len() as i64) >= opts.limit {
            next = start.clone();
            remaining = page.remaining;
            break;
        }
    }
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(n) = next {
        metadata["continue"] = json!(encode_continue(revision, &n));
        if opts.label.is_empty() && opts.field.is_empty() && remaining > 0 {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}
