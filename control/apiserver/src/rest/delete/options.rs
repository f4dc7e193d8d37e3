//! DeleteOptions: grace period, preconditions and the propagation policy
//! (with the deprecated `orphanDependents`), from the body or the query,
//! and the preconditions checked against the stored object.

use serde_json::Value;

use crate::resources::Resource;
use crate::rest::stored::subject;
use crate::status::{ApiError, Cause};
use crate::storage::Stored;

/// What happens to an object's dependents (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    fn parse(v: &str) -> Result<Self, ApiError> {
        match v {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(invalid_options(Cause::not_supported(
                "propagationPolicy",
                format!("{other:?}"),
                &["Foreground", "Background", "Orphan"],
            ))),
        }
    }
}

fn invalid_options(c: Cause) -> ApiError {
    ApiError::invalid("meta.k8s.io", "DeleteOptions", "", vec![c])
}

#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// None: the object's own GC finalizers decide, else background.
    pub propagation: Option<Propagation>,
    /// The deprecated `orphanDependents` as given: an explicit `false` is
    /// what makes a delete that leaves the object in place answer 202.
    pub orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// From a `DeleteOptions` body (may be empty).
    pub fn from_body(body: &Value) -> Result<Self, ApiError> {
        let mut o = DeleteOptions {
            grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            precondition_rv: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            propagation: None,
            orphan_dependents: None,
        };
        o.set_propagation(
            body.get("propagationPolicy").and_then(Value::as_str),
            body.get("orphanDependents").and_then(Value::as_bool),
        )?;
        Ok(o)
    }

    /// `propagationPolicy` and the deprecated `orphanDependents`, from the
    /// body or the query; setting both is invalid, as in Kubernetes.
    pub fn set_propagation(
        &mut self,
        policy: Option<&str>,
        orphan_dependents: Option<bool>,
    ) -> Result<(), ApiError> {
        if policy.is_some() && orphan_dependents.is_some() {
            return Err(invalid_options(Cause::invalid(
                "propagationPolicy",
                policy.unwrap_or_default(),
                "orphanDependents and deletionPropagation cannot be both set",
            )));
        }
        if let Some(p) = policy {
            self.propagation = Some(Propagation::parse(p)?);
        }
        if let Some(o) = orphan_dependents {
            self.orphan_dependents = Some(o);
            self.propagation = Some(if o {
                Propagation::Orphan
            } else {
                Propagation::Background
            });
        }
        Ok(())
    }
}

/// DeleteOptions.preconditions against the stored object.
pub(super) fn check_preconditions(
    res: &Resource,
    name: &str,
    opts: &DeleteOptions,
    current: &Stored,
) -> Result<(), ApiError> {
    if let Some(uid) = &opts.precondition_uid {
        if current
            .value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            != Some(uid.as_str())
        {
            return Err(ApiError::Conflict {
                subject: subject(res, name),
                msg: format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current
                        .value
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
            });
        }
    }
    if let Some(rv) = &opts.precondition_rv {
        if *rv != current.mod_revision.to_string() {
            return Err(ApiError::Conflict {
                subject: subject(res, name),
                msg: format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", current.mod_revision),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_from_body_and_conflicts() {
        let o = DeleteOptions::from_body(&json!({"propagationPolicy": "Foreground"})).unwrap();
        assert_eq!(o.propagation, Some(Propagation::Foreground));
        let o = DeleteOptions::from_body(&json!({"orphanDependents": true})).unwrap();
        assert_eq!(o.propagation, Some(Propagation::Orphan));
        assert!(DeleteOptions::from_body(&json!({"propagationPolicy": "Sideways"})).is_err());
        assert!(DeleteOptions::from_body(
            &json!({"propagationPolicy": "Orphan", "orphanDependents": false})
        )
        .is_err());
    }
}
