//! A decoded Kubernetes message as the JSON the Go API machinery would write
//! for it. Generic over the descriptor, except for the types whose JSON form
//! is not their message shape (IntOrString, Quantity, Time, MicroTime,
//! RawExtension, FieldsV1) and Go's embedded structs (`inline_` fields).

use base64::Engine;
use prost_reflect::{DynamicMessage, FieldDescriptor, MapKey, ReflectMessage, Value as PValue};
use serde_json::{Map, Value};

use super::ProtoError;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

pub fn message(msg: &DynamicMessage) -> Result<Value, ProtoError> {
    let full = msg.descriptor().full_name().to_string();
    match full.as_str() {
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => return Ok(int_or_string(msg)),
        "k8s.io.apimachinery.pkg.api.resource.Quantity" => {
            return Ok(Value::String(str_field(msg, "string")))
        }
        "k8s.io.apimachinery.pkg.runtime.RawExtension" => return raw_json(msg, &full),
        f if f == format!("{META}.FieldsV1") => return raw_json(msg, &full),
        f if f == format!("{META}.Time") => return Ok(time(msg, false)),
        f if f == format!("{META}.MicroTime") => return Ok(time(msg, true)),
        _ => {}
    }
    let mut out = Map::new();
    for field in msg.descriptor().fields() {
        if !msg.has_field(&field) {
            continue;
        }
        let value = msg.get_field(&field);
        let v = if field.is_map() {
            map(&value)?
        } else if let PValue::List(items) = value.as_ref() {
            Value::Array(items.iter().map(scalar).collect::<Result<_, _>>()?)
        } else {
            scalar(&value)?
        };
        if omitted(&field, &v) {
            continue;
        }
        match field.name().strip_prefix("inline_") {
            Some(_) => {
                if let Value::Object(inner) = v {
                    out.extend(inner);
                }
            }
            None => {
                out.insert(field.name().to_string(), v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Go writes every value field on the wire, zero or not; its JSON leaves
/// the zero ones out (`omitempty`), and Kubernetes reads a zero value field
/// as unset. So zeros ("", 0, false) stay out like the JSON encoder leaves
/// them out: the server's defaulting and validation see "absent", as they
/// would for `kubectl create -f` (a kept `nodePort: 0` is refused on a
/// ClusterIP service). A zero time is null in Go's JSON: out as well.
///
/// The exception are Go pointer fields, written only when set, whose zero
/// means what it says (`--replicas=0`). The proto schema does not tell them
/// from value fields, so the served kinds' pointer fields with a meaningful
/// zero are named in `KEEP_ZERO`.
fn omitted(field: &FieldDescriptor, v: &Value) -> bool {
    if field.is_list() || field.is_map() {
        return false;
    }
    let zero = match v {
        Value::Null => return true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    zero && (v.is_string() || !keep_zero(field))
}

/// `Message.field` (package-relative) of pointer fields whose zero differs
/// from unset: absent is defaulted to something else, or means "not said".
pub(super) const KEEP_ZERO: &[&str] = &[
    "api.apps.v1.DeploymentSpec.replicas",
    "api.apps.v1.DeploymentSpec.revisionHistoryLimit",
    "api.apps.v1.DeploymentSpec.progressDeadlineSeconds",
    "api.apps.v1.ReplicaSetSpec.replicas",
    "api.apps.v1.DaemonSetSpec.revisionHistoryLimit",
    "api.core.v1.ReplicationControllerSpec.replicas",
    "api.core.v1.PodSpec.terminationGracePeriodSeconds",
    "api.core.v1.PodSpec.activeDeadlineSeconds",
    "api.core.v1.PodSpec.automountServiceAccountToken",
    "api.core.v1.PodSpec.enableServiceLinks",
    "api.core.v1.PodSpec.priority",
    "api.core.v1.PodSpec.hostUsers",
    "api.core.v1.ServiceAccount.automountServiceAccountToken",
    "api.core.v1.SecurityContext.runAsUser",
    "api.core.v1.SecurityContext.runAsGroup",
    "api.core.v1.SecurityContext.allowPrivilegeEscalation",
    "api.core.v1.PodSecurityContext.runAsUser",
    "api.core.v1.PodSecurityContext.runAsGroup",
    "api.core.v1.PodSecurityContext.fsGroup",
    "api.core.v1.Probe.terminationGracePeriodSeconds",
    "api.core.v1.ServiceSpec.allocateLoadBalancerNodePorts",
    "api.core.v1.SecretVolumeSource.defaultMode",
    "api.core.v1.ConfigMapVolumeSource.defaultMode",
    "api.core.v1.ProjectedVolumeSource.defaultMode",
    "api.core.v1.DownwardAPIVolumeSource.defaultMode",
    "api.core.v1.KeyToPath.mode",
    "api.core.v1.DownwardAPIVolumeFile.mode",
    "api.discovery.v1.EndpointConditions.ready",
    "api.discovery.v1.EndpointConditions.serving",
    "api.discovery.v1.EndpointConditions.terminating",
    "api.coordination.v1.LeaseSpec.leaseDurationSeconds",
    "api.coordination.v1.LeaseSpec.leaseTransitions",
    "apimachinery.pkg.apis.meta.v1.ObjectMeta.deletionGracePeriodSeconds",
    // 0 deletes at once; `orphanDependents: false` asks for cascading.
    "apimachinery.pkg.apis.meta.v1.DeleteOptions.gracePeriodSeconds",
    "apimachinery.pkg.apis.meta.v1.DeleteOptions.orphanDependents",
];

fn keep_zero(field: &FieldDescriptor) -> bool {
    field
        .full_name()
        .strip_prefix("k8s.io.")
        .is_some_and(|name| KEEP_ZERO.contains(&name))
}

fn scalar(v: &PValue) -> Result<Value, ProtoError> {
    Ok(match v {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::F32(n) => Value::from(f64::from(*n)),
        PValue::F64(n) => Value::from(*n),
        PValue::String(s) => Value::String(s.clone()),
        // Go's encoding/json writes []byte as standard base64.
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::Message(m) => message(m)?,
        PValue::List(items) => Value::Array(items.iter().map(scalar).collect::<Result<_, _>>()?),
        PValue::Map(_) => map(v)?,
    })
}

fn map(v: &PValue) -> Result<Value, ProtoError> {
    let mut out = Map::new();
    if let PValue::Map(entries) = v {
        for (k, val) in entries {
            let key = match k {
                MapKey::String(s) => s.clone(),
                MapKey::Bool(b) => b.to_string(),
                MapKey::I32(n) => n.to_string(),
                MapKey::I64(n) => n.to_string(),
                MapKey::U32(n) => n.to_string(),
                MapKey::U64(n) => n.to_string(),
            };
            out.insert(key, scalar(val)?);
        }
    }
    Ok(Value::Object(out))
}

fn str_field(msg: &DynamicMessage, name: &str) -> String {
    msg.get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn int_field(msg: &DynamicMessage, name: &str) -> i64 {
    match msg.get_field_by_name(name).as_deref() {
        Some(PValue::I64(n)) => *n,
        Some(PValue::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

/// `{type, intVal, strVal}` is a bare number or string in JSON (type 1 is
/// the string form).
fn int_or_string(msg: &DynamicMessage) -> Value {
    if int_field(msg, "type") == 1 {
        Value::String(str_field(msg, "strVal"))
    } else {
        Value::from(int_field(msg, "intVal"))
    }
}

/// Raw bytes that are JSON already (an embedded object, managed fields).
fn raw_json(msg: &DynamicMessage, full: &str) -> Result<Value, ProtoError> {
    let raw = match msg.get_field_by_name("raw").as_deref() {
        Some(PValue::Bytes(b)) if !b.is_empty() => b.clone(),
        _ => return Ok(Value::Null),
    };
    serde_json::from_slice(&raw).map_err(|source| ProtoError::RawJson {
        field: full.to_string(),
        source,
    })
}

/// `{seconds, nanos}` as RFC 3339 in UTC: whole seconds for a Time (Go's
/// proto form drops nanos), microseconds for a MicroTime. An empty message
/// is the zero time, null in Go's JSON.
fn time(msg: &DynamicMessage, micro: bool) -> Value {
    let fields = msg.descriptor();
    if !fields.fields().any(|f| msg.has_field(&f)) {
        return Value::Null;
    }
    let secs = int_field(msg, "seconds");
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return Value::Null;
    };
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micro {
        let micros = int_field(msg, "nanos").clamp(0, 999_999_999) / 1000;
        Value::String(format!("{base}.{micros:06}Z"))
    } else {
        Value::String(format!("{base}Z"))
    }
}
