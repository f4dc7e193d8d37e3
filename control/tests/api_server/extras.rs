//! Pod logs through a node agent stand-in, and latency figures.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use libtest_mimic::Failed;
use serde_json::json;

use crate::fixture::*;
use crate::http::*;

/// A stand-in for a node agent's log endpoint: echoes what it was asked.
pub async fn fake_agent() -> Result<std::net::SocketAddr, Failed> {
    use axum::extract::{Path, RawQuery};
    let app = Router::new().route(
        "/containerLogs/{ns}/{pod}/{container}",
        axum::routing::get(
            |Path((ns, pod, c)): Path<(String, String, String)>, RawQuery(q): RawQuery| async move {
                format!("log of {ns}/{pod}/{c} ?{}\n", q.unwrap_or_default())
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| format!("{e}"))?;
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok(addr)
}

pub fn pod_log(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let agent = fake_agent().await?;
        let ns = h.namespace().await?;
        let node = unique("lognode");
        let n = json!({"metadata": {"name": node}, "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port()}}}});
        h.post("/api/v1/nodes", &n).await?.expect(201, "node")?;
        let pods = format!("/api/v1/namespaces/{ns}/pods");
        let mut p = pod("lp");
        p["spec"]["containers"] =
            json!([{"name": "a", "image": "i:1"}, {"name": "b", "image": "i:1"}]);
        h.post(&pods, &p).await?.expect(201, "pod")?;
        let e = h
            .get(&format!("{pods}/lp/log?container=b"))
            .await?
            .expect(400, "unscheduled")?;
        check(
            e["message"].as_str().is_some_and(|m| m.contains("host")),
            format!("{e}"),
        )?;
        let binding = json!({"target": {"kind": "Node", "name": node}});
        h.post(&format!("{pods}/lp/binding"), &binding)
            .await?
            .expect(201, "bind")?;
        let e = h
            .get(&format!("{pods}/lp/log"))
            .await?
            .expect(400, "which container")?;
        check(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("choose one of: [a b]")),
            format!("{e}"),
        )?;
        let req = Request::builder()
            .uri(format!("{pods}/lp/log?container=b&tailLines=5&follow=true"))
            .body(Body::empty())
            .map_err(|e| format!("{e}"))?;
        let resp = h.call(req).await?;
        check(
            resp.status() == StatusCode::OK,
            format!("log status {}", resp.status()),
        )?;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map_err(|e| format!("{e}"))?;
        let text = String::from_utf8_lossy(&body);
        check(
            text.starts_with(&format!("log of {ns}/lp/b ?"))
                && text.contains("tailLines=5")
                && text.contains("follow=true"),
            text.to_string(),
        )?;
        // A node whose agent is gone: 503 with the node named.
        let mut down = n.clone();
        down["metadata"]["name"] = json!(format!("{node}-down"));
        down["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = json!(1);
        h.post("/api/v1/nodes", &down)
            .await?
            .expect(201, "down node")?;
        let mut q = pod("lq");
        q["spec"]["nodeName"] = json!(format!("{node}-down"));
        h.post(&pods, &q).await?.expect(201, "pod on down node")?;
        let e = h
            .get(&format!("{pods}/lq/log"))
            .await?
            .expect(503, "agent down")?;
        check(
            e["message"].as_str().is_some_and(|m| m.contains("-down")),
            format!("{e}"),
        )
    })
}

pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Prints request latencies (in-process router, real etcd) so regressions
/// are visible; checks only that everything answered.
pub fn measure(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/api/v1/namespaces/{ns}/pods");
        let n = 200;
        let (mut creates, mut gets) = (Vec::new(), Vec::new());
        for i in 0..n {
            let t = std::time::Instant::now();
            h.post(&base, &pod(&format!("m{i}"))).await?.expect(201, "create")?;
            creates.push(t.elapsed());
            let t = std::time::Instant::now();
            h.get(&format!("{base}/m{i}")).await?.expect(200, "get")?;
            gets.push(t.elapsed());
        }
        let t = std::time::Instant::now();
        let l = h.get(&base).await?.expect(200, "list")?;
        let list = t.elapsed();
        check(l["items"].as_array().map(Vec::len) == Some(n), "all listed")?;
        // Watch latency: create → event on an open watch.
        let url = format!("{base}?watch=true&resourceVersion={}", rv(&l));
        let h2 = h.clone();
        let base2 = base.clone();
        let writer = tokio::spawn(async move {
            let mut at = Vec::new();
            for i in 0..20 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                at.push(std::time::Instant::now());
                h2.post(&base2, &pod(&format!("w{i}"))).await?.expect(201, "create")?;
            }
            Ok::<_, Failed>(at)
        });
        let mut arrivals = Vec::new();
        let evs = h
            .watch(&url, Duration::from_secs(10), |e| {
                while arrivals.len() < e.len() {
                    arrivals.push(std::time::Instant::now());
                }
                e.len() >= 20
            })
            .await?;
        let sent = writer.await.map_err(|e| format!("{e}"))??;
        check(evs.len() == 20, "20 events")?;
        // The closure runs once before any event: arrivals line up with
        // events from the first chunk on.
        let mut lat: Vec<Duration> = sent
            .iter()
            .zip(arrivals.iter())
            .map(|(s, a)| a.saturating_duration_since(*s))
            .collect();
        eprintln!(
            "api latency (in-process, real etcd, debug build): create p50 {:?}, get p50 {:?}, list of {n} pods {:?}, create-request-start-to-watch-event p50 {:?}",
            median(&mut creates),
            median(&mut gets),
            list,
            median(&mut lat)
        );
        h.delete(&base).await?.expect(200, "cleanup")?;
        Ok(())
    })
}
