//! Answers a posted review: dispatches by kind to the self reviews
//! (`reviews`), SubjectAccessReview (`subject_review`) and TokenReview
//! (`token_review`). Apart from `reviews` so those modules can share its
//! helpers without importing each other in a circle.

use serde_json::Value;

use crate::auth::User;
use crate::reviews::{access, decode, rules, whoami, Review};
use crate::status::ApiError;
use crate::ApiServer;

/// Answers one review for `user` (posted into `ns` for a namespaced
/// one): the reviewed object back with its status.
pub async fn review(
    api: &ApiServer,
    r: &Review,
    user: &User,
    ns: Option<&str>,
    body: Value,
) -> Result<Value, ApiError> {
    let out = match r.kind {
        "SelfSubjectAccessReview" => {
            serde_json::to_value(access(api, r, user, decode(r, body)?).await?)
        }
        "SelfSubjectRulesReview" => serde_json::to_value(rules(&api.rbac, user, decode(r, body)?)),
        "TokenReview" => {
            serde_json::to_value(crate::token_review::review(api, decode(r, body)?).await?)
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            Ok(crate::subject_review::review(api, r, ns, body)?)
        }
        _ => serde_json::to_value(whoami(user, decode(r, body)?)),
    };
    let mut v = out.map_err(|e| ApiError::Internal(format!("encoding {}: {e}", r.kind)))?;
    v["apiVersion"] = Value::from(format!("{}/{}", r.group, r.version));
    v["kind"] = Value::from(r.kind);
    Ok(v)
}
