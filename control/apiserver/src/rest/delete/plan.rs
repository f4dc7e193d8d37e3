//! What one delete does to a stored object — unchanged, marked (grace
//! period, finalizers) or removed — and the grace period it gets. Pure:
//! the write is `object`'s.

use serde_json::Value;

use crate::resources::Resource;

/// What one delete does to the stored object.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DeleteStep {
    /// Already being deleted and nothing to shorten or re-finalize.
    Unchanged,
    /// Kept (grace period or finalizers); `restart_clock` sets a new
    /// deletionTimestamp and grace period.
    Mark {
        restart_clock: bool,
    },
    Remove,
}

/// Kubernetes' rules: a pending grace period can only be shortened (and
/// while it runs the finalizers are not touched); an object with
/// finalizers stays; a second delete of an object that only waits for
/// finalizers may switch the collector's finalizer and otherwise does
/// nothing.
pub(super) fn plan_delete(
    deleting: bool,
    old_grace: i64,
    grace: i64,
    finalizers_change: bool,
    no_finalizers_left: bool,
) -> DeleteStep {
    if deleting && old_grace > 0 {
        if grace >= old_grace {
            return DeleteStep::Unchanged;
        }
        if grace == 0 && no_finalizers_left {
            return DeleteStep::Remove;
        }
        return DeleteStep::Mark {
            restart_clock: true,
        };
    }
    if deleting {
        // Only finalizers hold it: a grace period no longer applies.
        return if no_finalizers_left {
            DeleteStep::Remove
        } else if finalizers_change {
            DeleteStep::Mark {
                restart_clock: false,
            }
        } else {
            DeleteStep::Unchanged
        };
    }
    if grace > 0 || !no_finalizers_left {
        DeleteStep::Mark {
            restart_clock: true,
        }
    } else {
        DeleteStep::Remove
    }
}

/// The grace period a delete gets: only pods bound to a node and not yet
/// finished wait for their kubelet.
pub(super) fn graceful_period(res: &Resource, obj: &Value, asked: Option<i64>) -> i64 {
    if res.kind != "Pod" {
        return 0;
    }
    let node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node.is_empty() || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    asked
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_steps_follow_kubernetes() {
        use DeleteStep::*;
        // Plain object: gone.
        assert_eq!(plan_delete(false, 0, 0, false, true), Remove);
        // Finalizers keep it.
        assert_eq!(
            plan_delete(false, 0, 0, true, false),
            Mark {
                restart_clock: true
            }
        );
        // Second delete of a finalizing object: a no-op unless the policy changed.
        assert_eq!(plan_delete(true, 0, 0, false, false), Unchanged);
        assert_eq!(
            plan_delete(true, 0, 0, true, false),
            Mark {
                restart_clock: false
            }
        );
        // Switching to background with nothing else pending removes it.
        assert_eq!(plan_delete(true, 0, 0, true, true), Remove);
        // Graceful pods: only a shorter grace period changes anything.
        assert_eq!(
            plan_delete(false, 0, 30, false, true),
            Mark {
                restart_clock: true
            }
        );
        assert_eq!(plan_delete(true, 30, 30, false, true), Unchanged);
        assert_eq!(
            plan_delete(true, 30, 5, false, true),
            Mark {
                restart_clock: true
            }
        );
        assert_eq!(plan_delete(true, 30, 0, false, true), Remove);
        assert_eq!(
            plan_delete(true, 30, 0, false, false),
            Mark {
                restart_clock: true
            }
        );
        // Waiting only for finalizers: a grace period does not restart the clock.
        assert_eq!(plan_delete(true, 0, 30, false, false), Unchanged);
    }
}
