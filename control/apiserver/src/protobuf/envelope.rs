//! The envelope: the magic `k8s\0`, then a `runtime.Unknown` whose typeMeta
//! names the kind and whose raw bytes are the typed message.

use prost_reflect::{DynamicMessage, MessageDescriptor, Value as PValue};
use serde_json::Value;

use super::{json, pool, ProtoError};

const MAGIC: &[u8] = b"k8s\0";
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// A protobuf body as the JSON object of its kind, with apiVersion and kind.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::NoMagic)?;
    let pool = pool()?;
    let unknown = pool
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| ProtoError::Descriptor(format!("{UNKNOWN} is missing")))?;
    let env = DynamicMessage::decode(unknown, rest).map_err(ProtoError::Envelope)?;
    let string = |m: &DynamicMessage, f: &str| -> String {
        m.get_field_by_name(f)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let encoding = string(&env, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtoError::Encoding(encoding));
    }
    let type_meta = env
        .get_field_by_name("typeMeta")
        .and_then(|v| v.as_message().cloned())
        .ok_or(ProtoError::NoTypeMeta)?;
    let api_version = string(&type_meta, "apiVersion");
    let kind = string(&type_meta, "kind");
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtoError::NoTypeMeta);
    }
    let desc = message_of(&api_version, &kind).ok_or_else(|| ProtoError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let raw = match env.get_field_by_name("raw").as_deref() {
        Some(PValue::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let msg = DynamicMessage::decode(desc, raw).map_err(|source| ProtoError::Message {
        kind: kind.clone(),
        source,
    })?;
    let mut obj = serde_json::Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    if let Value::Object(fields) = json::message(&msg)? {
        obj.extend(fields);
    }
    Ok(Value::Object(obj))
}

/// `apps/v1` `Deployment` is `k8s.io.api.apps.v1.Deployment`; the core
/// group (`v1`) is `k8s.io.api.core.v1`, and a group's package is its first
/// label (`discovery.k8s.io/v1` is `k8s.io.api.discovery.v1`).
fn message_of(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    // Options kinds live in meta/v1 and are registered in every group
    // version (a typed client sends its own group's apiVersion).
    if kind == "DeleteOptions" {
        return pool()
            .ok()?
            .get_message_by_name("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions");
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let package = match group.split('.').next() {
        Some("") | None => "core",
        Some(g) => g,
    };
    if [package, version, kind]
        .iter()
        .any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return None;
    }
    pool()
        .ok()?
        .get_message_by_name(&format!("k8s.io.api.{package}.{version}.{kind}"))
}
