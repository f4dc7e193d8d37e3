//! deletecollection: every object a list selects, each through the
//! ordinary delete; one that is already gone is skipped.

use serde_json::{json, Value};

use super::one::delete;
use super::options::DeleteOptions;
use crate::registry::meta;
use crate::resources::Resource;
use crate::rest::list::{list, ListOptions};
use crate::status::ApiError;
use crate::ApiServer;

pub async fn delete_collection(
    api: &ApiServer,
    res: &Resource,
    ns: Option<&str>,
    list_opts: &ListOptions,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let all = ListOptions {
        limit: 0,
        continue_token: None,
        ..list_opts.clone()
    };
    let listed = list(api, res, ns, &all).await?;
    let mut deleted = Vec::new();
    for item in listed["items"].as_array().into_iter().flatten() {
        let name = meta::name_of(item);
        let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
        match delete(api, res, item_ns.or(ns), name, opts).await {
            Ok((v, _)) => deleted.push(v),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": listed["metadata"]["resourceVersion"]},
        "items": deleted,
    }))
}
