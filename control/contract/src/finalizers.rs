//! The garbage collector's deletion finalizers: the API server adds them
//! for a `propagationPolicy` and the collector acts on and removes them.
//! Names only; what each one means is `rest::delete` and `gc`.

/// The finalizer that makes the garbage collector orphan the dependents.
pub const ORPHAN: &str = "orphan";
/// The finalizer that makes the garbage collector delete the dependents
/// before the owner goes.
pub const FOREGROUND: &str = "foregroundDeletion";
