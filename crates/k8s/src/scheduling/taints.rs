//! Taints and tolerations, as `Toleration.ToleratesTaint` and
//! `FindMatchingUntoleratedTaint` in k8s.io/api and component-helpers
//! decide them. The scheduler filters on NoSchedule and NoExecute; kubelet
//! admission on NoExecute only: the caller says which effects count. Pure.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Does `t` tolerate `taint`? An empty effect matches every effect, an
/// empty key (with Exists) every key; an empty operator is Equal.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Does any of `tolerations` tolerate `taint`?
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` with an effect `counts` accepts that no toleration
/// tolerates.
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    counts: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| counts(t))
        .find(|t| !tolerated(tolerations, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        }
    }

    /// Cases of k8s.io/api/core/v1 TestTolerationToleratesTaint.
    #[test]
    fn toleration_tolerates_taint() {
        let foo_bar = taint("foo", Some("bar"), "NoSchedule");
        let table = [
            (
                "empty toleration and taint",
                tol(None, None, None, None),
                taint("", None, ""),
                true,
            ),
            (
                "same key, operator Exists",
                tol(Some("foo"), Some("Exists"), None, Some("NoSchedule")),
                foo_bar.clone(),
                true,
            ),
            (
                "same key, Equal, same value",
                tol(Some("foo"), Some("Equal"), Some("bar"), Some("NoSchedule")),
                foo_bar.clone(),
                true,
            ),
            (
                "same key, Equal, other value",
                tol(Some("foo"), Some("Equal"), Some("baz"), Some("NoSchedule")),
                foo_bar.clone(),
                false,
            ),
            (
                "empty operator is Equal",
                tol(Some("foo"), None, Some("bar"), Some("NoSchedule")),
                foo_bar.clone(),
                true,
            ),
            (
                "other effect",
                tol(Some("foo"), Some("Exists"), None, Some("NoExecute")),
                foo_bar.clone(),
                false,
            ),
            (
                "empty effect matches all",
                tol(Some("foo"), Some("Exists"), None, None),
                foo_bar.clone(),
                true,
            ),
            (
                "empty key with Exists matches all",
                tol(None, Some("Exists"), None, None),
                foo_bar.clone(),
                true,
            ),
            (
                "other key",
                tol(Some("other"), Some("Exists"), None, None),
                foo_bar.clone(),
                false,
            ),
            (
                "empty key, Equal compares values only",
                tol(None, Some("Equal"), Some("bar"), None),
                foo_bar.clone(),
                true,
            ),
            (
                "unknown operator",
                tol(Some("foo"), Some("Gt"), Some("bar"), None),
                foo_bar,
                false,
            ),
        ];
        for (name, t, taint, want) in table {
            assert_eq!(tolerates(&t, &taint), want, "{name}");
        }
    }

    #[test]
    fn untolerated_taint_of_the_counted_effects() {
        let taints = [
            taint("a", None, "PreferNoSchedule"),
            taint("b", Some("x"), "NoSchedule"),
            taint("c", None, "NoExecute"),
        ];
        let none: [Toleration; 0] = [];
        let sched = |t: &Taint| t.effect == "NoSchedule" || t.effect == "NoExecute";
        assert_eq!(
            find_untolerated(&taints, &none, sched).map(|t| t.key.as_str()),
            Some("b")
        );
        let kubelet = |t: &Taint| t.effect == "NoExecute";
        assert_eq!(
            find_untolerated(&taints, &none, kubelet).map(|t| t.key.as_str()),
            Some("c")
        );
        let all = [tol(None, Some("Exists"), None, None)];
        assert_eq!(find_untolerated(&taints, &all, sched), None);
    }
}
