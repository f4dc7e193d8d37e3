//! REST behaviour: discovery, CRUD, errors, patches, pods, subresources,
//! restarts, namespaces.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Extension;
use capstan_apiserver::auth::{AllowAll, Attributes, Authorizer, Decision, User};
use capstan_apiserver::{router, ApiServer};
use libtest_mimic::Failed;
use serde_json::{json, Value};

use crate::fixture::*;
use crate::http::*;

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
        let resp = h.call(req).await?;
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
