//! In-process requests to the router and the fixtures the tests share.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use futures::StreamExt;
use libtest_mimic::Failed;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::fixture::*;

#[derive(Clone)]
pub struct Http(pub Router);

pub struct Answer {
    pub code: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn expect(self, code: u16, what: &str) -> Result<Value, Failed> {
        if self.code.as_u16() != code {
            return Err(format!("{what}: want {code}, got {} {}", self.code, self.body).into());
        }
        Ok(self.body)
    }
}

impl Http {
    /// One request through the router, as the admin.
    pub async fn call(&self, req: Request<Body>) -> Result<axum::response::Response, Failed> {
        Ok(self
            .0
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| format!("{e}"))?)
    }
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        ct: &str,
        body: Vec<u8>,
    ) -> Result<Answer, Failed> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", ct)
            .body(Body::from(body))
            .map_err(|e| format!("request: {e}"))?;
        let resp = self.call(req).await?;
        let code = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(|e| format!("body: {e}"))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{method} {path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?
        };
        Ok(Answer { code, body })
    }
    pub async fn get(&self, path: &str) -> Result<Answer, Failed> {
        self.send("GET", path, "application/json", Vec::new()).await
    }
    pub async fn post(&self, path: &str, v: &Value) -> Result<Answer, Failed> {
        self.send("POST", path, "application/json", v.to_string().into_bytes())
            .await
    }
    pub async fn put(&self, path: &str, v: &Value) -> Result<Answer, Failed> {
        self.send("PUT", path, "application/json", v.to_string().into_bytes())
            .await
    }
    pub async fn patch(&self, path: &str, ct: &str, v: &Value) -> Result<Answer, Failed> {
        self.send("PATCH", path, ct, v.to_string().into_bytes())
            .await
    }
    pub async fn delete(&self, path: &str) -> Result<Answer, Failed> {
        self.send("DELETE", path, "application/json", Vec::new())
            .await
    }
    pub async fn namespace(&self) -> Result<String, Failed> {
        let ns = unique("t");
        self.post("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await?
            .expect(201, "create namespace")?;
        Ok(ns)
    }
    /// Reads watch events until `until` says stop or the deadline passes.
    pub async fn watch(
        &self,
        path: &str,
        deadline: Duration,
        until: impl FnMut(&[Value]) -> bool + Send,
    ) -> Result<Vec<Value>, Failed> {
        self.watch_as(path, "application/json", deadline, until)
            .await
    }
    /// A watch with this Accept header.
    pub async fn watch_as(
        &self,
        path: &str,
        accept: &str,
        deadline: Duration,
        mut until: impl FnMut(&[Value]) -> bool + Send,
    ) -> Result<Vec<Value>, Failed> {
        let req = Request::builder()
            .uri(path)
            .header("accept", accept)
            .body(Body::empty())
            .map_err(|e| format!("request: {e}"))?;
        let resp = self.call(req).await?;
        if resp.status() != StatusCode::OK {
            return Err(format!("watch {path}: {}", resp.status()).into());
        }
        let mut stream = resp.into_body().into_data_stream();
        let mut buf = Vec::new();
        let mut events = Vec::new();
        let end = tokio::time::Instant::now() + deadline;
        while !until(&events) {
            let chunk = match tokio::time::timeout_at(end, stream.next()).await {
                Err(_) => return Err(format!("watch {path}: timed out; got {events:?}").into()),
                Ok(None) => break,
                Ok(Some(c)) => c.map_err(|e| format!("watch body: {e}"))?,
            };
            buf.extend_from_slice(&chunk);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let v: Value = serde_json::from_slice(&line).map_err(|e| format!("event: {e}"))?;
                events.push(v);
            }
        }
        Ok(events)
    }
}

pub fn http(s: &Suite) -> Http {
    Http(s.app.clone())
}

pub fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]}})
}

pub fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "redis:7"}]}}}})
}

pub fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn service(name: &str, ty: &str, node_port: Option<i64>, ip: Option<&str>) -> Value {
    let mut port = json!({"port": 80, "targetPort": 8080});
    if let Some(np) = node_port {
        port["nodePort"] = json!(np);
    }
    let mut s = json!({"metadata": {"name": name}, "spec": {"type": ty, "selector": {"app": name}, "ports": [port]}});
    if let Some(ip) = ip {
        s["spec"]["clusterIP"] = json!(ip);
    }
    s
}
