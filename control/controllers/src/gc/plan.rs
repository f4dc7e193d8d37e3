//! The collector's decisions over one snapshot: for every object, whether
//! it is deleted (all owners gone), has its owner references cut (orphan)
//! or its finalizer removed (foreground done, orphaning done). Pure.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use capstan_control_contract::finalizers::{FOREGROUND, ORPHAN};
use capstan_control_contract::owner_kinds::{tracks_owner, Kind};

/// One object of the snapshot, owner or dependent.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: &'static Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

impl Node {
    pub fn new(kind: &'static Kind, m: &ObjectMeta) -> Node {
        Node {
            kind,
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            owners: m.owner_references.clone().unwrap_or_default(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
        }
    }

    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }
}

/// What the collector does to one object.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Delete a dependent (with `foreground` when it has dependents of its
    /// own and an owner waits for it), once the `unconfirmed` owners are
    /// confirmed gone.
    Delete {
        target: usize,
        foreground: bool,
        unconfirmed: Vec<OwnerReference>,
    },
    /// Cut the references to these owner UIDs.
    DropOwners { target: usize, uids: Vec<String> },
    RemoveFinalizer {
        target: usize,
        finalizer: &'static str,
    },
}

/// How a dependent stands towards one of its owners.
enum Standing {
    /// Alive, or of a kind not watched here: keeps the dependent.
    Solid,
    /// Being deleted in the foreground: waits for the dependent to go.
    Waiting,
    /// Deleting with the orphan finalizer: the reference is to be cut.
    Orphaning,
    /// Not in the snapshot.
    Absent,
}

/// The collector's actions for one snapshot (indices into `objects`).
pub fn plan(objects: &[Node]) -> Vec<Action> {
    let by_uid: HashMap<&str, &Node> = objects.iter().map(|o| (o.uid.as_str(), o)).collect();
    let mut has_dependents: HashSet<&str> = HashSet::new();
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut referenced: HashSet<&str> = HashSet::new();
    for o in objects {
        for r in &o.owners {
            has_dependents.insert(r.uid.as_str());
            referenced.insert(r.uid.as_str());
            if r.block_owner_deletion == Some(true) {
                blocked.insert(r.uid.as_str());
            }
        }
    }
    let mut actions = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if o.deleting && o.kind.owner {
            if o.has(ORPHAN) && !referenced.contains(o.uid.as_str()) {
                actions.push(Action::RemoveFinalizer {
                    target: i,
                    finalizer: ORPHAN,
                });
            } else if o.has(FOREGROUND) && !o.has(ORPHAN) && !blocked.contains(o.uid.as_str()) {
                actions.push(Action::RemoveFinalizer {
                    target: i,
                    finalizer: FOREGROUND,
                });
            }
        }
        if o.owners.is_empty() {
            continue;
        }
        let mut solid = false;
        let mut waiting = Vec::new();
        let mut cut = Vec::new();
        let mut absent = Vec::new();
        for r in &o.owners {
            let standing = match by_uid.get(r.uid.as_str()) {
                _ if !tracks_owner(&r.api_version, &r.kind) => Standing::Solid,
                None => Standing::Absent,
                Some(owner) if owner.deleting && owner.has(ORPHAN) => Standing::Orphaning,
                Some(owner) if owner.deleting && owner.has(FOREGROUND) => Standing::Waiting,
                Some(_) => Standing::Solid,
            };
            match standing {
                Standing::Solid => solid = true,
                Standing::Waiting => waiting.push(r.uid.clone()),
                Standing::Orphaning => {
                    // An orphaning owner no longer holds the dependent.
                    cut.push(r.uid.clone());
                }
                Standing::Absent => absent.push(r.clone()),
            }
        }
        if !cut.is_empty() {
            actions.push(Action::DropOwners {
                target: i,
                uids: cut,
            });
            continue;
        }
        if o.deleting {
            continue;
        }
        if solid {
            // Still wanted by someone: a foreground owner stops waiting.
            if !waiting.is_empty() {
                actions.push(Action::DropOwners {
                    target: i,
                    uids: waiting,
                });
            }
            continue;
        }
        actions.push(Action::Delete {
            target: i,
            foreground: !waiting.is_empty() && has_dependents.contains(o.uid.as_str()),
            unconfirmed: absent,
        });
    }
    actions
}
