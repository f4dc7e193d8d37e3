//! The field paths each resource can be selected by (`fieldSelector`),
//! as Kubernetes registers them per kind. Names only: matching is `list`'s.

use crate::resources::Resource;

/// Field paths each resource can be selected by, beyond metadata.name and
/// metadata.namespace.
pub fn selectable_fields(res: &Resource) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    match res.plural {
        "pods" => f.extend([
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ]),
        "events" => f.extend([
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "reason",
            "type",
        ]),
        "secrets" => f.push("type"),
        "namespaces" => f.push("status.phase"),
        "nodes" => f.push("spec.unschedulable"),
        "replicationcontrollers" | "replicasets" => f.push("status.replicas"),
        _ => {}
    }
    f
}
