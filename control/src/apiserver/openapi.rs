//! OpenAPI documents for kubectl, built once from the `k8s-openapi` types'
//! JSON schemas (schemars): `/openapi/v3` (index) and `/openapi/v3/<gv>`
//! (OpenAPI 3.0, what kubectl 1.27+ uses for apply, explain and client-side
//! validation), and `/openapi/v2` as JSON (protobuf is answered 406).
//! Each kind's schema carries `x-kubernetes-group-version-kind`; each
//! resource's PATCH operation lists the `fieldValidation` parameter, which
//! tells kubectl the server validates fields (it then skips client-side
//! validation, which would need the protobuf v2 document).

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::resources::{self, Resource, RESOURCES};
use super::status::ApiError;

/// The URL path (without `/openapi/v3/`) of a group/version's document.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvk(r: &Resource) -> Value {
    json!([{"group": r.group, "version": r.version, "kind": r.kind}])
}

/// Definitions for `rs` with refs under `path`, kinds tagged with their GVK.
fn definitions(rs: &[&Resource], settings: SchemaSettings) -> Map<String, Value> {
    let mut generator = settings.into_generator();
    let mut roots = Vec::new();
    for r in rs {
        let s = (r.schema)(&mut generator);
        let name = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|p| p.rsplit('/').next())
            .map(str::to_string);
        roots.push((name, *r));
    }
    let mut defs = generator.take_definitions(true);
    for (name, r) in roots {
        if let Some(def) = name.and_then(|n| defs.get_mut(&n)) {
            def["x-kubernetes-group-version-kind"] = gvk(r);
        }
    }
    defs
}

/// The item paths of the resources, each with a PATCH operation that names
/// its kind and the `fieldValidation` parameter (what kubectl looks for).
fn patch_paths(rs: &[&Resource]) -> Map<String, Value> {
    let mut out = Map::new();
    for r in rs {
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        out.insert(path, json!({"patch": op}));
    }
    out
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": "v1.33.0"})
}

struct V3 {
    index: Value,
    docs: Vec<(String, String)>,
}

fn hash(s: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("{:016X}", h.finish())
}

fn v3() -> &'static V3 {
    static V3_DOCS: OnceLock<V3> = OnceLock::new();
    V3_DOCS.get_or_init(|| {
        let mut gvs: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            if !gvs.contains(&(r.group, r.version)) {
                gvs.push((r.group, r.version));
            }
        }
        let mut paths = Map::new();
        let mut docs = Vec::new();
        for (g, v) in gvs {
            let rs = resources::in_group_version(g, v);
            let schemas = definitions(&rs, SchemaSettings::openapi3());
            let doc = json!({
                "openapi": "3.0.0",
                "info": info(),
                "paths": patch_paths(&rs),
                "components": {"schemas": schemas},
            })
            .to_string();
            let path = gv_path(g, v);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
            );
            docs.push((path, doc));
        }
        V3 {
            index: json!({"paths": paths}),
            docs,
        }
    })
}

fn v2_doc() -> &'static str {
    static V2: OnceLock<String> = OnceLock::new();
    V2.get_or_init(|| {
        let all: Vec<&Resource> = RESOURCES.iter().collect();
        let settings = SchemaSettings::draft07().with(|s| {
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
        });
        json!({
            "swagger": "2.0",
            "info": info(),
            "paths": {},
            "definitions": definitions(&all, settings),
        })
        .to_string()
    })
}

fn json_body(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub async fn v2(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let json_ok = accept
        .split(',')
        .map(|p| p.split(';').next().unwrap_or_default().trim())
        .any(|m| matches!(m, "application/json" | "*/*" | "application/*"));
    if !json_ok {
        return (
            StatusCode::NOT_ACCEPTABLE,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "only application/json is served", "reason": "NotAcceptable", "code": 406})
            .to_string(),
        )
            .into_response();
    }
    json_body(v2_doc().to_string())
}

pub async fn v3_index() -> Response {
    json_body(v3().index.to_string())
}

pub async fn v3_doc(Path(gv): Path<String>) -> Response {
    match v3().docs.iter().find(|(p, _)| *p == gv) {
        Some((_, doc)) => json_body(doc.clone()),
        None => ApiError::NoRoute.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_documents_tag_kinds_and_resolve_refs() {
        let docs = &v3().docs;
        let (_, core) = docs.iter().find(|(p, _)| p == "api/v1").unwrap();
        let core: Value = serde_json::from_str(core).unwrap();
        let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let text = core.to_string();
        // Every reference points into this document.
        for part in text.split("\"$ref\":\"").skip(1) {
            let target = part.split('"').next().unwrap();
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                core["components"]["schemas"].get(name).is_some(),
                "{target}"
            );
        }
        assert!(v3().index["paths"].get("apis/apps/v1").is_some());
        let v2: Value = serde_json::from_str(v2_doc()).unwrap();
        assert!(v2["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
    }
}
