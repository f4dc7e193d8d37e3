//! The garbage collector's finalizers on delete: `propagationPolicy` picks
//! `orphan` or `foregroundDeletion` (or neither) for kinds the collector
//! serves as owners. What they make the collector do is `gc`'s.

use serde_json::Value;

pub use capstan_control_contract::finalizers::{FOREGROUND, ORPHAN};

use super::options::Propagation;

/// The finalizers an object has after a delete with `policy`: the
/// collector's two are replaced by the one the policy asks for; without a
/// policy the object's own choice stands. Kinds the collector does not
/// track as owners never get them (nothing would remove them).
pub fn finalizers_after_delete(
    current: &[String],
    policy: Option<Propagation>,
    tracked_owner: bool,
) -> Vec<String> {
    if !tracked_owner {
        return current.to_vec();
    }
    let Some(policy) = policy else {
        return current.to_vec();
    };
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    match policy {
        Propagation::Orphan => out.push(ORPHAN.into()),
        Propagation::Foreground => out.push(FOREGROUND.into()),
        Propagation::Background => {}
    }
    out
}

pub(super) fn finalizers_of(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn policy_picks_the_collectors_finalizer() {
        let f = finalizers_after_delete;
        assert_eq!(
            f(&[], Some(Propagation::Foreground), true),
            v(&[FOREGROUND])
        );
        assert_eq!(
            f(&v(&["x"]), Some(Propagation::Orphan), true),
            v(&["x", ORPHAN])
        );
        // Switching policy replaces the other one.
        assert_eq!(
            f(&v(&[ORPHAN]), Some(Propagation::Foreground), true),
            v(&[FOREGROUND])
        );
        assert_eq!(
            f(&v(&[FOREGROUND, "x"]), Some(Propagation::Background), true),
            v(&["x"])
        );
        // No policy: the object's own finalizers stand.
        assert_eq!(f(&v(&[ORPHAN]), None, true), v(&[ORPHAN]));
        // A kind nobody collects dependents of gets nothing added.
        assert!(f(&[], Some(Propagation::Foreground), false).is_empty());
    }
}
