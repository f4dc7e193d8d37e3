//! A create or an update in the order every kind shares: the generic
//! status rules, then the kind's strategy (`kinds::strategy_for`), the
//! metadata's validation and the kind's. Pure over JSON; the REST layer
//! stores and commits allocations.

use serde_json::Value;

use super::kinds::strategy_for;
use super::meta;
use crate::resources::{Resource, Sub};
use crate::status::{ApiError, Cause};

fn invalid(res: &Resource, obj: &Value, causes: Vec<Cause>) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            res.group,
            res.kind,
            meta::name_of(obj),
            causes,
        ))
    }
}

/// Defaults and validates a new object whose metadata `meta::prepare_create`
/// already set.
pub fn prepare_create(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    let strategy = strategy_for(res.kind);
    if res.reset_status_on_create {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    strategy.prepare_for_create(obj);
    strategy.canonicalize(obj);
    validate_create(res, obj)
}

/// The validation of a new object alone (again after admission changed it).
pub fn validate_create(res: &Resource, obj: &Value) -> Result<(), ApiError> {
    let strategy = strategy_for(res.kind);
    let mut causes = Vec::new();
    meta::validate(res, obj, &mut causes);
    strategy.validate(obj, &mut causes);
    invalid(res, obj, causes)
}

/// Defaults and validates an update of the main resource (`sub` = None) or
/// of its status; `new` already carries the server-owned metadata.
pub fn prepare_update(
    res: &Resource,
    old: &Value,
    new: &mut Value,
    sub: Option<Sub>,
) -> Result<(), ApiError> {
    match sub {
        Some(Sub::Status) => {
            // A status write changes the status and nothing else.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(o) = merged.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            *new = merged;
            return Ok(());
        }
        Some(_) => return Ok(()),
        None => {}
    }
    if res.has(Sub::Status) {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    let strategy = strategy_for(res.kind);
    strategy.canonicalize(new);
    strategy.prepare_for_update(old, new);
    let mut causes = Vec::new();
    meta::validate(res, new, &mut causes);
    strategy.validate(new, &mut causes);
    strategy.validate_update(old, new, &mut causes);
    invalid(res, new, causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn status_update_keeps_everything_but_status() {
        let pods = find("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"phase": "Pending"}});
        let mut new = json!({"metadata": {"name": "p", "labels": {"a": "2"}}, "spec": {"x": 2}, "status": {"phase": "Running"}});
        prepare_update(pods, &old, &mut new, Some(Sub::Status)).unwrap();
        assert_eq!(new["status"]["phase"], "Running");
        assert_eq!(new["spec"]["x"], 1);
        assert_eq!(new["metadata"]["labels"]["a"], "1");
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let secrets = find("", "v1", "secrets").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        prepare_create(secrets, &mut s).unwrap();
        assert_eq!(s["data"]["k"], "dg==");
        assert!(s.get("stringData").is_none());
    }
}
