//! REST behaviour: discovery, CRUD, errors, selectors, watch, patches,
//! pods, services, subresources, restarts, namespaces.

use super::http::*;
use super::*;

pub fn discovery(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let v = h.get("/version").await?.expect(200, "version")?;
        check(v["major"] == "1", format!("version {v}"))?;
        let api = h.get("/api").await?.expect(200, "/api")?;
        check(api["versions"] == json!(["v1"]), format!("{api}"))?;
        let apis = h.get("/apis").await?.expect(200, "/apis")?;
        let names: Vec<&str> = apis["groups"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
        for g in ["apps", "discovery.k8s.io", "coordination.k8s.io"] {
            check(names.contains(&g), format!("{g} missing from {names:?}"))?;
        }
        let core = h.get("/api/v1").await?.expect(200, "/api/v1")?;
        let pods = core["resources"].as_array().into_iter().flatten().find(|r| r["name"] == "pods").cloned().unwrap_or_default();
        check(pods["namespaced"] == true && pods["shortNames"] == json!(["po"]), format!("{pods}"))?;
        let apps = h.get("/apis/apps/v1").await?.expect(200, "apps/v1")?;
        check(apps["groupVersion"] == "apps/v1", format!("{apps}"))?;
        h.get("/apis/apps/v2").await?.expect(404, "unknown version")?;
        // Aggregated discovery, asked for the way kubectl asks.
        let req = Request::builder()
            .uri("/apis")
            .header("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
            .body(Body::empty())
            .map_err(|e| format!("{e}"))?;
        let resp = h.0.clone().oneshot(req).await.map_err(|e| format!("{e}"))?;
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        check(ct.contains("as=APIGroupDiscoveryList"), format!("content-type {ct}"))?;
        Ok(())
    })
}

pub fn crud_configmap(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/api/v1/namespaces/{ns}/configmaps");
        let cm = json!({"metadata": {"name": "cfg", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let made = h.post(&base, &cm).await?.expect(201, "create")?;
        check(
            made["kind"] == "ConfigMap"
                && made["metadata"]["uid"]
                    .as_str()
                    .is_some_and(|u| u.len() == 36),
            format!("{made}"),
        )?;
        check(
            made["metadata"]["creationTimestamp"].is_string()
                && made["metadata"]["namespace"] == ns.as_str(),
            format!("{made}"),
        )?;
        let got = h.get(&format!("{base}/cfg")).await?.expect(200, "get")?;
        check(got == made, format!("get {got} != create {made}"))?;
        let list = h.get(&base).await?.expect(200, "list")?;
        check(
            list["kind"] == "ConfigMapList" && list["items"].as_array().map(Vec::len) == Some(1),
            format!("{list}"),
        )?;
        let mut upd = got.clone();
        upd["data"]["k"] = json!("w");
        let after = h
            .put(&format!("{base}/cfg"), &upd)
            .await?
            .expect(200, "update")?;
        check(
            rv(&after) > rv(&made) && after["data"]["k"] == "w",
            format!("{after}"),
        )?;
        check(
            after["metadata"]["uid"] == made["metadata"]["uid"],
            "uid kept",
        )?;
        h.delete(&format!("{base}/cfg"))
            .await?
            .expect(200, "delete")?;
        let nf = h
            .get(&format!("{base}/cfg"))
            .await?
            .expect(404, "get after delete")?;
        check(
            nf["reason"] == "NotFound" && nf["kind"] == "Status",
            format!("{nf}"),
        )?;
        // Stored under the documented key, as JSON without resourceVersion.
        Ok(())
    })?;
    let mut kv = s.etcd.kv_client();
    let ns = unique("key");
    let h = http(s);
    s.run(async move {
        h.post("/api/v1/namespaces", &json!({"metadata": {"name": ns}}))
            .await?
            .expect(201, "ns")?;
        h.post(
            &format!("/api/v1/namespaces/{ns}/secrets"),
            &json!({"metadata": {"name": "s"}, "stringData": {"x": "y"}}),
        )
        .await?
        .expect(201, "secret")?;
        let r = kv
            .get(format!("/registry/secrets/{ns}/s"), None)
            .await
            .map_err(|e| format!("{e}"))?;
        let stored: Value =
            serde_json::from_slice(r.kvs().first().map(|k| k.value()).unwrap_or_default())
                .map_err(|e| format!("{e}"))?;
        check(
            stored["data"]["x"] == "eQ==" && stored["metadata"].get("resourceVersion").is_none(),
            format!("{stored}"),
        )
    })
}

pub fn conflicts(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/api/v1/namespaces/{ns}/configmaps");
        let cm = json!({"metadata": {"name": "c"}, "data": {"k": "1"}});
        let v1 = h.post(&base, &cm).await?.expect(201, "create")?;
        let dup = h.post(&base, &cm).await?.expect(409, "duplicate create")?;
        check(
            dup["reason"] == "AlreadyExists" && dup["details"]["name"] == "c",
            format!("{dup}"),
        )?;
        let mut a = v1.clone();
        a["data"]["k"] = json!("2");
        h.put(&format!("{base}/c"), &a)
            .await?
            .expect(200, "first update")?;
        let mut stale = v1.clone();
        stale["data"]["k"] = json!("3");
        let c = h
            .put(&format!("{base}/c"), &stale)
            .await?
            .expect(409, "stale update")?;
        check(c["reason"] == "Conflict", format!("{c}"))?;
        let now = h.get(&format!("{base}/c")).await?.expect(200, "get")?;
        check(now["data"]["k"] == "2", "stale update did not win")?;
        h.put(
            &format!("{base}/missing"),
            &json!({"metadata": {"name": "missing"}}),
        )
        .await?
        .expect(404, "update missing")?;
        Ok(())
    })
}

pub fn malformed(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let pods = format!("/api/v1/namespaces/{ns}/pods");
        let bad = h.send("POST", &pods, "application/json", b"{not json".to_vec()).await?.expect(400, "bad json")?;
        check(bad["reason"] == "BadRequest", format!("{bad}"))?;
        h.post(&pods, &json!({"kind": "Service", "metadata": {"name": "x"}})).await?.expect(400, "kind mismatch")?;
        h.post(&pods, &json!({"metadata": {"name": "x"}, "spec": {"containers": "nope"}})).await?.expect(400, "wrong shape")?;
        h.get("/api/v1/namespaces/default/bogus").await?.expect(404, "unknown resource")?;
        h.send("POST", &pods, "application/vnd.kubernetes.protobuf", b"x".to_vec()).await?.expect(400, "protobuf without its magic")?;
        h.send("POST", &pods, "text/plain", b"x".to_vec()).await?.expect(415, "text body")?;
        h.patch(&format!("{pods}/x"), "application/apply-patch+yaml", &json!({})).await?.expect(415, "apply patch")?;
        let big = json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(300 * 1024)}});
        let tl = h.post(&format!("/api/v1/namespaces/{ns}/configmaps"), &big).await?.expect(413, "too large")?;
        check(tl["reason"] == "RequestEntityTooLarge", format!("{tl}"))?;
        let inv = json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 0}]}]}});
        let e = h.post(&pods, &inv).await?.expect(422, "invalid pod")?;
        let fields: Vec<&str> = e["details"]["causes"].as_array().into_iter().flatten().filter_map(|c| c["field"].as_str()).collect();
        for f in ["metadata.name", "spec.containers[0].image", "spec.containers[0].ports[0].containerPort"] {
            check(fields.contains(&f), format!("cause {f} missing: {e}"))?;
        }
        check(e["reason"] == "Invalid" && e["details"]["kind"] == "Pod", format!("{e}"))?;
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 70000, "name": "b"}]}});
        let e = h.post(&format!("/api/v1/namespaces/{ns}/services"), &svc).await?.expect(422, "invalid service")?;
        let fields: Vec<&str> = e["details"]["causes"].as_array().into_iter().flatten().filter_map(|c| c["field"].as_str()).collect();
        check(fields.contains(&"spec.ports[0].name") && fields.contains(&"spec.ports[1].port"), format!("{e}"))?;
        let sel = h.get(&format!("{pods}?fieldSelector=spec.bogus%3Dx")).await?.expect(400, "bad field selector")?;
        check(sel["reason"] == "BadRequest", format!("{sel}"))?;
        h.get(&format!("{pods}?continue=garbage")).await?.expect(400, "bad continue")?;
        Ok(())
    })
}

pub struct DenySecrets;
impl Authorizer for DenySecrets {
    fn authorize(&self, _u: &User, a: &Attributes<'_>) -> Decision {
        if a.resource == "secrets" {
            Decision::Deny("secrets are off limits".into())
        } else if a.name == Some("forbidden-name") {
            // A create is authorized with the body's name.
            Decision::Deny("that name is taken by policy".into())
        } else {
            Decision::Allow
        }
    }
}

pub fn auth_errors(s: &Suite) -> Result<(), Failed> {
    let etcd = s.etcd.clone();
    s.run(async move {
        let anon = Http(router(Arc::new(ApiServer::new(
            etcd.clone(),
            config(),
            Arc::new(AllowAll),
        ))));
        let e = anon
            .get("/api/v1/namespaces")
            .await?
            .expect(401, "anonymous")?;
        check(e["reason"] == "Unauthorized", format!("{e}"))?;
        let api = Arc::new(ApiServer::new(etcd, config(), Arc::new(DenySecrets)));
        let h = Http(router(api).layer(Extension(admin())));
        let e = h
            .get("/api/v1/namespaces/default/secrets")
            .await?
            .expect(403, "denied")?;
        check(
            e["reason"] == "Forbidden"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("off limits")),
            format!("{e}"),
        )?;
        h.get("/api/v1/namespaces/default/configmaps")
            .await?
            .expect(200, "allowed")?;
        Ok(())
    })
}

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

pub fn patches(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/apis/apps/v1/namespaces/{ns}/deployments");
        let d = h.post(&base, &deployment("web")).await?.expect(201, "deployment")?;
        check(d["spec"]["strategy"]["type"] == "RollingUpdate" && d["metadata"]["generation"] == 1, format!("{d}"))?;
        let url = format!("{base}/web");
        let m = h.patch(&url, "application/merge-patch+json", &json!({"metadata": {"labels": {"x": "1"}}})).await?.expect(200, "merge")?;
        check(m["metadata"]["labels"]["x"] == "1" && m["metadata"]["generation"] == 1, format!("{m}"))?;
        let j = h.patch(&url, "application/json-patch+json", &json!([{"op": "replace", "path": "/spec/replicas", "value": 5}])).await?.expect(200, "json")?;
        check(j["spec"]["replicas"] == 5 && j["metadata"]["generation"] == 2, format!("{j}"))?;
        h.patch(&url, "application/json-patch+json", &json!([{"op": "test", "path": "/spec/replicas", "value": 1}])).await?.expect(422, "failed test op")?;
        // As kubectl apply sends it: one container changed by name, the
        // other untouched, the order given.
        let sp = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "redis:7.2"}]}}}});
        let st = h.patch(&url, "application/strategic-merge-patch+json", &sp).await?.expect(200, "strategic")?;
        let cs = &st["spec"]["template"]["spec"]["containers"];
        check(cs[0]["name"] == "a" && cs[0]["image"] == "nginx:1.25" && cs[1]["image"] == "redis:7.2", format!("{cs}"))?;
        let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}});
        let st = h.patch(&url, "application/strategic-merge-patch+json", &del).await?.expect(200, "strategic delete")?;
        check(st["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len) == Some(1), format!("{st}"))?;
        let stale = json!({"metadata": {"resourceVersion": d["metadata"]["resourceVersion"]}, "spec": {"replicas": 1}});
        h.patch(&url, "application/merge-patch+json", &stale).await?.expect(409, "stale patch")?;
        let bad = json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}});
        h.patch(&url, "application/merge-patch+json", &bad).await?.expect(422, "patch to invalid")?;
        h.patch(&format!("{base}/missing"), "application/merge-patch+json", &json!({})).await?.expect(404, "patch missing")?;
        Ok(())
    })
}

pub fn pod_lifecycle(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let pods = format!("/api/v1/namespaces/{ns}/pods");
        let p = h.post(&pods, &pod("p")).await?.expect(201, "pod")?;
        check(p["status"]["phase"] == "Pending" && p["spec"]["restartPolicy"] == "Always" && p["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent", format!("{p}"))?;
        // An unbound pod goes at once.
        h.delete(&format!("{pods}/p")).await?.expect(200, "delete unbound")?;
        h.get(&format!("{pods}/p")).await?.expect(404, "unbound gone")?;
        h.post(&pods, &pod("q")).await?.expect(201, "pod q")?;
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "q"}, "target": {"kind": "Node", "name": "n1"}});
        h.post(&format!("{pods}/q/binding"), &binding).await?.expect(201, "bind")?;
        let q = h.get(&format!("{pods}/q")).await?.expect(200, "bound")?;
        check(q["spec"]["nodeName"] == "n1", format!("{q}"))?;
        let again = h.post(&format!("{pods}/q/binding"), &binding).await?.expect(409, "bind twice")?;
        check(again["reason"] == "Conflict", format!("{again}"))?;
        // Changing nodeName through update is forbidden.
        let mut moved = q.clone();
        moved["spec"]["nodeName"] = json!("n2");
        h.put(&format!("{pods}/q"), &moved).await?.expect(422, "move pod")?;
        // A bound pod is marked, then removed when the kubelet deletes with grace 0.
        let marked = h.send("DELETE", &format!("{pods}/q"), "application/json", br#"{"gracePeriodSeconds": 20}"#.to_vec()).await?.expect(200, "graceful")?;
        check(marked["metadata"]["deletionTimestamp"].is_string() && marked["metadata"]["deletionGracePeriodSeconds"] == 20, format!("{marked}"))?;
        let still = h.get(&format!("{pods}/q")).await?.expect(200, "still there")?;
        check(still["metadata"]["deletionTimestamp"].is_string(), "marked")?;
        // The kubelet's status writes still work while it terminates.
        let mut st = still.clone();
        st["status"]["phase"] = json!("Running");
        h.put(&format!("{pods}/q/status"), &st).await?.expect(200, "status while terminating")?;
        h.send("DELETE", &format!("{pods}/q?gracePeriodSeconds=0"), "application/json", Vec::new()).await?.expect(200, "grace 0")?;
        h.get(&format!("{pods}/q")).await?.expect(404, "removed")?;
        // Finalizers hold an object until they are gone.
        let cm = format!("/api/v1/namespaces/{ns}/configmaps");
        h.post(&cm, &json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})).await?.expect(201, "cm")?;
        // Left in place: 200 with the object, as Kubernetes answers; 202
        // only when the client asked for cascading (orphanDependents=false).
        let held = h.delete(&format!("{cm}/f")).await?.expect(200, "finalized delete")?;
        check(held["metadata"]["deletionTimestamp"].is_string(), format!("{held}"))?;
        h.delete(&format!("{cm}/f?orphanDependents=false")).await?.expect(202, "cascading delete")?;
        h.patch(&format!("{cm}/f"), "application/merge-patch+json", &json!({"metadata": {"finalizers": null}})).await?.expect(200, "drop finalizer")?;
        h.get(&format!("{cm}/f")).await?.expect(404, "gone after finalizer")?;
        // deletecollection with a selector.
        for n in ["d1", "d2", "keep"] {
            let mut p = pod(n);
            p["metadata"]["labels"] = json!({"del": if n == "keep" { "no" } else { "yes" }});
            h.post(&pods, &p).await?.expect(201, "pod")?;
        }
        let dc = h.delete(&format!("{pods}?labelSelector=del%3Dyes")).await?.expect(200, "deletecollection")?;
        check(dc["items"].as_array().map(Vec::len) == Some(2), format!("{dc}"))?;
        let left = h.get(&pods).await?.expect(200, "list")?;
        check(left["items"].as_array().map(Vec::len) == Some(1), format!("{left}"))
    })
}

pub fn service_allocation(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let svcs = format!("/api/v1/namespaces/{ns}/services");
        let a = h.post(&svcs, &service("a", "NodePort", None, None)).await?.expect(201, "a")?;
        let ip = a["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
        let np = a["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0);
        check(ip.starts_with("10.96.0.") && a["spec"]["clusterIPs"] == json!([ip]), format!("{a}"))?;
        check((30000..=32767).contains(&np), format!("nodePort {np}"))?;
        let e = h.post(&svcs, &service("b", "NodePort", Some(np), Some(&ip))).await?.expect(422, "clash")?;
        let msg = e["message"].as_str().unwrap_or_default();
        check(msg.contains("already allocated") && e["details"]["causes"].as_array().map(Vec::len) == Some(2), format!("{e}"))?;
        h.post(&svcs, &service("c", "ClusterIP", None, Some("10.1.2.3"))).await?.expect(422, "out of range")?;
        h.post(&svcs, &service("d", "ClusterIP", Some(30001), None)).await?.expect(422, "nodePort on ClusterIP")?;
        // Updating keeps the allocations; changing the IP is refused.
        let mut upd = a.clone();
        upd["spec"]["ports"][0].as_object_mut().map(|p| p.remove("nodePort"));
        upd["spec"]["clusterIP"] = json!("");
        let kept = h.put(&format!("{svcs}/a"), &upd).await?.expect(200, "update keeps")?;
        check(kept["spec"]["clusterIP"] == ip.as_str() && kept["spec"]["ports"][0]["nodePort"] == np, format!("{kept}"))?;
        // NodePort → ClusterIP releases the node port.
        let to_cip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 8080, "nodePort": null}]}});
        let c = h.patch(&format!("{svcs}/a"), "application/merge-patch+json", &to_cip).await?.expect(200, "to ClusterIP")?;
        check(c["spec"]["ports"][0].get("nodePort").is_none(), format!("{c}"))?;
        let b = h.post(&svcs, &service("b", "NodePort", Some(np), None)).await?.expect(201, "port reusable")?;
        check(b["spec"]["ports"][0]["nodePort"] == np, format!("{b}"))?;
        // Delete releases the IP.
        h.delete(&format!("{svcs}/a")).await?.expect(200, "delete a")?;
        h.post(&svcs, &service("e", "ClusterIP", None, Some(&ip))).await?.expect(201, "ip reusable")?;
        let hl = h.post(&svcs, &json!({"metadata": {"name": "hl"}, "spec": {"clusterIP": "None", "selector": {"app": "x"}}})).await?.expect(201, "headless")?;
        check(hl["spec"]["clusterIPs"] == json!(["None"]), format!("{hl}"))?;
        Ok(())
    })
}

pub fn concurrent_services(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let svcs = format!("/api/v1/namespaces/{ns}/services");
        let mut tasks = Vec::new();
        for i in 0..24 {
            let h = h.clone();
            let svcs = svcs.clone();
            tasks.push(tokio::spawn(async move {
                h.post(&svcs, &service(&format!("s{i}"), "NodePort", None, None))
                    .await
            }));
        }
        let mut ips = std::collections::HashSet::new();
        let mut ports = std::collections::HashSet::new();
        for t in tasks {
            let v = t
                .await
                .map_err(|e| format!("{e}"))??
                .expect(201, "concurrent create")?;
            ips.insert(
                v["spec"]["clusterIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            ports.insert(v["spec"]["ports"][0]["nodePort"].as_i64().unwrap_or(0));
        }
        check(
            ips.len() == 24 && ports.len() == 24,
            format!("{} ips, {} ports", ips.len(), ports.len()),
        )?;
        h.delete(&svcs)
            .await?
            .expect(200, "deletecollection services")?;
        Ok(())
    })
}

pub fn subresources(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let base = format!("/apis/apps/v1/namespaces/{ns}/deployments");
        h.post(&base, &deployment("d")).await?.expect(201, "deployment")?;
        let sc = h.get(&format!("{base}/d/scale")).await?.expect(200, "get scale")?;
        check(sc["kind"] == "Scale" && sc["spec"]["replicas"] == 2 && sc["status"]["selector"] == "app=d", format!("{sc}"))?;
        let mut want = sc.clone();
        want["spec"]["replicas"] = json!(4);
        let put = h.put(&format!("{base}/d/scale"), &want).await?.expect(200, "put scale")?;
        check(put["spec"]["replicas"] == 4, format!("{put}"))?;
        h.put(&format!("{base}/d/scale"), &want).await?.expect(409, "stale scale")?;
        h.patch(&format!("{base}/d/scale"), "application/merge-patch+json", &json!({"spec": {"replicas": 1}})).await?.expect(200, "patch scale")?;
        let d = h.get(&format!("{base}/d")).await?.expect(200, "get")?;
        check(d["spec"]["replicas"] == 1 && d["metadata"]["generation"] == 3, format!("{d}"))?;
        // Status writes touch only status; main writes keep status.
        let mut st = d.clone();
        st["status"] = json!({"replicas": 1, "observedGeneration": 3});
        st["spec"]["replicas"] = json!(9);
        let after = h.put(&format!("{base}/d/status"), &st).await?.expect(200, "status")?;
        check(after["status"]["replicas"] == 1 && after["spec"]["replicas"] == 1, format!("{after}"))?;
        let mut main = after.clone();
        main["status"] = json!({"replicas": 7});
        let m = h.put(&format!("{base}/d"), &main).await?.expect(200, "main")?;
        check(m["status"]["replicas"] == 1, format!("{m}"))?;
        let ps = h.patch(&format!("{base}/d/status"), "application/merge-patch+json", &json!({"status": {"availableReplicas": 1}})).await?.expect(200, "patch status")?;
        check(ps["status"]["availableReplicas"] == 1, format!("{ps}"))?;
        // RC scale and node status.
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "rc"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}});
        h.post(&format!("/api/v1/namespaces/{ns}/replicationcontrollers"), &rc).await?.expect(201, "rc")?;
        let sc = h.get(&format!("/api/v1/namespaces/{ns}/replicationcontrollers/rc/scale")).await?.expect(200, "rc scale")?;
        check(sc["status"]["selector"] == "app=rc", format!("{sc}"))?;
        let node = unique("node");
        h.post("/api/v1/nodes", &json!({"metadata": {"name": node}, "status": {"capacity": {"cpu": "2"}}})).await?.expect(201, "node")?;
        let ns_patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let n = h.patch(&format!("/api/v1/nodes/{node}/status"), "application/strategic-merge-patch+json", &ns_patch).await?.expect(200, "node status")?;
        check(n["status"]["capacity"]["cpu"] == "2" && n["status"]["conditions"][0]["type"] == "Ready", format!("{n}"))?;
        h.delete(&format!("/api/v1/nodes/{node}")).await?.expect(200, "delete node")?;
        Ok(())
    })
}

pub fn survive_restart(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    let etcd = s.etcd.clone();
    s.run(async move {
        let ns = h.namespace().await?;
        let svcs = format!("/api/v1/namespaces/{ns}/services");
        let a = h
            .post(&svcs, &service("a", "NodePort", None, None))
            .await?
            .expect(201, "svc")?;
        let fresh = Arc::new(ApiServer::new(etcd, config(), Arc::new(AllowAll)));
        fresh.bootstrap().await.map_err(|e| format!("{e}"))?;
        let h2 = Http(router(fresh).layer(Extension(admin())));
        let got = h2
            .get(&format!("{svcs}/a"))
            .await?
            .expect(200, "read through new server")?;
        check(got == a, format!("{got} != {a}"))?;
        // The new server knows the allocations without being told.
        let ip = a["spec"]["clusterIP"].as_str().unwrap_or_default();
        h2.post(&svcs, &service("b", "ClusterIP", None, Some(ip)))
            .await?
            .expect(422, "allocation survives")?;
        Ok(())
    })
}

pub fn namespaces(s: &Suite) -> Result<(), Failed> {
    let h = http(s);
    s.run(async move {
        let e = h
            .post(
                "/api/v1/namespaces/nope-ns/configmaps",
                &json!({"metadata": {"name": "x"}}),
            )
            .await?
            .expect(404, "missing namespace")?;
        check(e["details"]["kind"] == "namespaces", format!("{e}"))?;
        let ns = h.namespace().await?;
        let svcs = format!("/api/v1/namespaces/{ns}/services");
        let a = h
            .post(&svcs, &service("a", "ClusterIP", None, None))
            .await?
            .expect(201, "svc")?;
        let ip = a["spec"]["clusterIP"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let n = h
            .get(&format!("/api/v1/namespaces/{ns}"))
            .await?
            .expect(200, "get ns")?;
        check(n["status"]["phase"] == "Active", format!("{n}"))?;
        h.delete(&format!("/api/v1/namespaces/{ns}"))
            .await?
            .expect(200, "delete ns")?;
        h.get(&format!("{svcs}/a"))
            .await?
            .expect(404, "contents gone")?;
        let other = h.namespace().await?;
        h.post(
            &format!("/api/v1/namespaces/{other}/services"),
            &service("b", "ClusterIP", None, Some(&ip)),
        )
        .await?
        .expect(201, "ip released with namespace")?;
        Ok(())
    })
}
