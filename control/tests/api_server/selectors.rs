//! Label and field selectors, and paging with limit/continue.

use libtest_mimic::Failed;
use serde_json::{json, Value};

use crate::fixture::*;
use crate::http::*;

pub fn selectors_and_paging(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let pods = format!("/api/v1/namespaces/{ns}/pods");
        for i in 0..7 {
            let mut p = pod(&format!("p{i}"));
            p["metadata"]["labels"] =
                json!({"app": if i % 2 == 0 { "even" } else { "odd" }, "i": i.to_string()});
            if i < 3 {
                p["spec"]["nodeName"] = json!("n1");
            }
            h.post(&pods, &p).await?.expect(201, "create pod")?;
        }
        let names = |v: &Value| -> Vec<String> {
            v["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        };
        let even = h
            .get(&format!("{pods}?labelSelector=app%3Deven"))
            .await?
            .expect(200, "label")?;
        check(
            names(&even) == ["p0", "p2", "p4", "p6"],
            format!("{:?}", names(&even)),
        )?;
        let set = h
            .get(&format!("{pods}?labelSelector=i%20in%20(1,2),app!%3Deven"))
            .await?
            .expect(200, "set")?;
        check(names(&set) == ["p1"], format!("{:?}", names(&set)))?;
        let on = h
            .get(&format!("{pods}?fieldSelector=spec.nodeName%3Dn1"))
            .await?
            .expect(200, "field")?;
        check(
            names(&on) == ["p0", "p1", "p2"],
            format!("{:?}", names(&on)),
        )?;
        let unbound = h
            .get(&format!("{pods}?fieldSelector=spec.nodeName%3D"))
            .await?
            .expect(200, "unbound")?;
        check(names(&unbound).len() == 4, format!("{:?}", names(&unbound)))?;
        let by_name = h
            .get(&format!("{pods}?fieldSelector=metadata.name%3Dp5"))
            .await?
            .expect(200, "name")?;
        check(names(&by_name) == ["p5"], format!("{:?}", names(&by_name)))?;
        // Paging: 3 + 3 + 1, all at the first page's revision.
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut revs = Vec::new();
        for page in 0.. {
            let url = if token.is_empty() {
                format!("{pods}?limit=3")
            } else {
                format!("{pods}?limit=3&continue={token}")
            };
            let v = h.get(&url).await?.expect(200, "page")?;
            seen.extend(names(&v));
            revs.push(v["metadata"]["resourceVersion"].clone());
            if page == 0 {
                check(
                    v["metadata"]["remainingItemCount"] == 4,
                    format!("remaining {}", v["metadata"]),
                )?;
                // A write between pages must not show up in later pages.
                h.post(&pods, &pod("p9")).await?.expect(201, "late pod")?;
            }
            match v["metadata"]["continue"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => break,
            }
        }
        check(
            seen == ["p0", "p1", "p2", "p3", "p4", "p5", "p6"],
            format!("{seen:?}"),
        )?;
        check(
            revs.windows(2).all(|w| w[0] == w[1]),
            format!("revisions {revs:?}"),
        )?;
        // Paging with a selector fills pages with matches.
        let v = h
            .get(&format!("{pods}?limit=2&labelSelector=app%3Dodd"))
            .await?
            .expect(200, "filtered page")?;
        check(
            names(&v) == ["p1", "p3"] && v["metadata"]["continue"].is_string(),
            format!("{v}"),
        )?;
        // All namespaces.
        let all = h
            .get("/api/v1/pods?labelSelector=app%3Dodd")
            .await?
            .expect(200, "all namespaces")?;
        check(names(&all).len() >= 3, "cluster-wide list")?;
        Ok(())
    })
}
