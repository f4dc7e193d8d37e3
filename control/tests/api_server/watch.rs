//! Watches: from a resourceVersion with bookmarks and selectors, and 410
//! Gone (watch and continue) once etcd compacted the history.

use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::json;

use crate::fixture::*;
use crate::http::*;

pub fn watch_from_rv(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/api/v1/namespaces/{ns}/configmaps");
        let a = h.post(&base, &json!({"metadata": {"name": "a", "labels": {"w": "yes"}}})).await?.expect(201, "a")?;
        let start = rv(&a);
        let mut b = h.post(&base, &json!({"metadata": {"name": "b", "labels": {"w": "yes"}}})).await?.expect(201, "b")?;
        b["metadata"]["labels"]["w"] = json!("no");
        h.put(&format!("{base}/b"), &b).await?.expect(200, "b leaves selection")?;
        h.delete(&format!("{base}/a")).await?.expect(200, "delete a")?;
        let url = format!("{base}?watch=true&resourceVersion={start}&allowWatchBookmarks=true&labelSelector=w%3Dyes");
        let evs = h
            .watch(&url, Duration::from_secs(10), |e| e.iter().any(|x| x["type"] == "BOOKMARK"))
            .await?;
        let kinds: Vec<(String, String)> = evs
            .iter()
            .filter(|e| e["type"] != "BOOKMARK")
            .map(|e| (e["type"].as_str().unwrap_or_default().to_string(), e["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string()))
            .collect();
        let want: Vec<(String, String)> = [("ADDED", "b"), ("DELETED", "b"), ("DELETED", "a")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        check(kinds == want, format!("events {kinds:?}"))?;
        let bm = evs.iter().find(|e| e["type"] == "BOOKMARK").cloned().unwrap_or_default();
        check(rv(&bm["object"]) >= rv(&evs[2]["object"]), format!("bookmark {bm} behind events"))?;
        // Without a resourceVersion: the current state first, then changes.
        let h2 = h.clone();
        let base2 = base.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            h2.post(&base2, &json!({"metadata": {"name": "c"}})).await
        });
        let evs = h
            .watch(&format!("{base}?watch=1"), Duration::from_secs(10), |e| e.len() >= 2)
            .await?;
        writer.await.map_err(|e| format!("{e}"))??.expect(201, "c")?;
        let names: Vec<&str> = evs.iter().filter_map(|e| e["object"]["metadata"]["name"].as_str()).collect();
        check(names == ["b", "c"] && evs.iter().all(|e| e["type"] == "ADDED"), format!("{evs:?}"))?;
        // kubectl get --watch asks for Table rows.
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        let evs = h
            .watch_as(&format!("{base}?watch=true"), table, Duration::from_secs(5), |e| e.len() >= 2)
            .await?;
        check(
            evs.iter().all(|e| e["object"]["kind"] == "Table" && e["object"]["rows"][0]["cells"][0].is_string()),
            format!("{evs:?}"),
        )?;
        // A watch on one named object sees only that object.
        let evs = h
            .watch(&format!("{base}/c?watch=true"), Duration::from_secs(5), |e| !e.is_empty())
            .await?;
        check(evs.len() == 1 && evs[0]["object"]["metadata"]["name"] == "c", format!("{evs:?}"))?;
        Ok(())
    })
}

pub fn compaction_410(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    let api = s.api.clone();
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/api/v1/namespaces/{ns}/configmaps");
        let first = h
            .post(&base, &json!({"metadata": {"name": "x0"}}))
            .await?
            .expect(201, "x0")?;
        for i in 1..4 {
            h.post(&base, &json!({"metadata": {"name": format!("x{i}")}}))
                .await?
                .expect(201, "x")?;
        }
        let page = h
            .get(&format!("{base}?limit=1"))
            .await?
            .expect(200, "page")?;
        let token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let last = h
            .post(&base, &json!({"metadata": {"name": "x9"}}))
            .await?
            .expect(201, "x9")?;
        api.storage()
            .compact(rv(&last))
            .await
            .map_err(|e| format!("compact: {e}"))?;
        let evs = h
            .watch(
                &format!("{base}?watch=true&resourceVersion={}", rv(&first)),
                Duration::from_secs(10),
                |e| !e.is_empty(),
            )
            .await?;
        check(
            evs[0]["type"] == "ERROR"
                && evs[0]["object"]["code"] == 410
                && evs[0]["object"]["reason"] == "Expired",
            format!("{evs:?}"),
        )?;
        let gone = h
            .get(&format!("{base}?limit=1&continue={token}"))
            .await?
            .expect(410, "continue after compaction")?;
        check(gone["reason"] == "Expired", format!("{gone}"))?;
        // A watch from a revision still held works.
        let evs = h
            .watch(
                &format!("{base}?watch=true&resourceVersion={}", rv(&last)),
                Duration::from_secs(5),
                |_| true,
            )
            .await?;
        check(evs.is_empty(), format!("{evs:?}"))
    })
}
