//! Real clients against the server: kube-rs (Api, watcher) and kubectl.

use std::time::Duration;

use futures::StreamExt;
use libtest_mimic::Failed;
use serde_json::{json, Value};

use crate::fixture::*;
use crate::http::*;

pub fn kube_client(s: &Suite) -> Result<(), Failed> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
    let addr = s.addr;
    let h = http(s);
    s.run(async move {
        let ns = h.namespace().await?;
        let url: axum::http::Uri = format!("http://{addr}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let cfg = kube::Config::new(url);
        let client = kube::Client::try_from(cfg).map_err(|e| format!("client: {e}"))?;
        let pods: Api<Pod> = Api::namespaced(client, &ns);
        let p: Pod = serde_json::from_value(pod("kp")).map_err(|e| format!("{e}"))?;
        let made = pods
            .create(&PostParams::default(), &p)
            .await
            .map_err(|e| format!("create: {e}"))?;
        let rv0 = made.metadata.resource_version.clone().unwrap_or_default();
        let got = pods.get("kp").await.map_err(|e| format!("get: {e}"))?;
        check(got.metadata.uid == made.metadata.uid, "same pod")?;
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .map_err(|e| format!("list: {e}"))?;
        check(list.items.len() == 1, format!("{} pods", list.items.len()))?;
        let patch = json!({"metadata": {"labels": {"patched": "yes"}}});
        let patched = pods
            .patch("kp", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("patch: {e}"))?;
        check(
            patched
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("patched"))
                .map(String::as_str)
                == Some("yes"),
            "patched label",
        )?;
        let sp = json!({"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}});
        let sm = pods
            .patch("kp", &PatchParams::default(), &Patch::Strategic(&sp))
            .await
            .map_err(|e| format!("strategic: {e}"))?;
        check(
            sm.spec.as_ref().map(|s| s.containers[0].image.clone())
                == Some(Some("busybox:1.37".into())),
            "strategic image",
        )?;
        let mut stream = pods
            .watch(&WatchParams::default(), &rv0)
            .await
            .map_err(|e| format!("watch: {e}"))?
            .boxed();
        let mut seen = 0;
        while seen < 2 {
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(WatchEvent::Modified(_)))) => seen += 1,
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("watch ended early: {other:?}").into()),
            }
        }
        let e = pods
            .get("nope")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        check(e.contains("not found"), format!("kube error {e}"))?;
        // The watcher from kube-runtime (list, then watch) sees a delete.
        use kube::runtime::watcher::{watcher, Config, Event};
        let mut w = watcher(pods.clone(), Config::default()).boxed();
        let mut init_done = false;
        while !init_done {
            match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
                Ok(Some(Ok(Event::InitDone))) => init_done = true,
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("watcher: {other:?}").into()),
            }
        }
        // Streaming lists (sendInitialEvents) end their initial state with
        // the annotated bookmark, which kube-runtime waits for.
        let mut sw = watcher(pods.clone(), Config::default().streaming_lists()).boxed();
        let mut got_init = false;
        while !got_init {
            match tokio::time::timeout(Duration::from_secs(5), sw.next()).await {
                Ok(Some(Ok(Event::InitApply(p)))) => {
                    check(p.metadata.name.as_deref() == Some("kp"), "initial pod")?
                }
                Ok(Some(Ok(Event::InitDone))) => got_init = true,
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("streaming watcher: {other:?}").into()),
            }
        }
        pods.delete("kp", &Default::default())
            .await
            .map_err(|e| format!("delete: {e}"))?;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
                Ok(Some(Ok(Event::Delete(p)))) if p.metadata.name.as_deref() == Some("kp") => break,
                Ok(Some(Ok(_))) => {}
                other => return Err(format!("watcher delete: {other:?}").into()),
            }
        }
        Ok(())
    })
}

pub fn kubectl_cmd(
    s: &Suite,
    dir: &std::path::Path,
    args: &[&str],
) -> Result<(bool, String), Failed> {
    let mut c = std::process::Command::new("kubectl");
    c.env("KUBECONFIG", dir.join("none"))
        .env("HOME", dir)
        .arg(format!("--server=http://{}", s.addr))
        .arg(format!("--cache-dir={}", dir.join("cache").display()))
        .args(args);
    let out = capstan_lab::kubectl::run(c, None)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

pub fn kubectl(s: &Suite) -> Result<(), Failed> {
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let dir = tmp.path();
    let h = http(s);
    let ns = s.run(async move { h.namespace().await })?;
    let manifest = dir.join("web.yaml");
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        env:\n        - {{name: A, value: a}}\n        - {{name: B, value: b}}\n        ports:\n        - containerPort: 80\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  type: NodePort\n  selector: {{app: web}}\n  ports:\n  - port: 80\n"
    );
    std::fs::write(&manifest, &yaml).map_err(|e| format!("write manifest: {e}"))?;
    let m = manifest.display().to_string();
    let run = |args: &[&str]| -> Result<String, Failed> {
        let (ok, text) = kubectl_cmd(s, dir, args)?;
        if ok {
            Ok(text)
        } else {
            Err(format!("kubectl {args:?} failed:\n{text}").into())
        }
    };
    // One field of the Deployment, as kubectl reads it.
    let web_field = |path: &str| {
        let output = format!("jsonpath={path}");
        run(&["-n", &ns, "get", "deploy", "web", "-o", &output])
    };
    // kubectl before 1.27 validates and explains only with the protobuf
    // OpenAPI v2 document, which this server does not serve.
    let (_, v) = kubectl_cmd(s, dir, &["version", "--client", "-o", "json"])?;
    let minor: u32 = serde_json::from_str::<Value>(&v)
        .ok()
        .and_then(|v| {
            v["clientVersion"]["minor"]
                .as_str()
                .and_then(|m| m.trim_end_matches('+').parse().ok())
        })
        .unwrap_or(0);
    let modern = minor >= 27;
    let validate = if modern {
        "--validate=strict"
    } else {
        "--validate=false"
    };
    let out = run(&["apply", validate, "-f", &m])?;
    check(
        out.contains("deployment.apps/web created") && out.contains("service/web created"),
        out.clone(),
    )?;
    // Apply again with a changed image: a strategic merge patch.
    // Also drop env B: apply must send the deletion, not merge it back.
    let changed = yaml
        .replace("nginx:1.25", "nginx:1.27")
        .replace("        - {name: B, value: b}\n", "");
    std::fs::write(&manifest, changed).map_err(|e| format!("{e}"))?;
    let out = run(&["apply", validate, "-f", &m])?;
    check(out.contains("deployment.apps/web configured"), out.clone())?;
    let img = web_field("{.spec.template.spec.containers[0].image}")?;
    check(img == "nginx:1.27", format!("image {img}"))?;
    let env = web_field("{.spec.template.spec.containers[0].env[*].name}")?;
    check(env == "A", format!("env after apply: {env}"))?;
    // Server-side dry run (kubectl diff, apply --dry-run=server) changes nothing.
    let (_, diff) = kubectl_cmd(s, dir, &["diff", "-f", &m])?;
    check(
        !diff.to_lowercase().contains("error"),
        format!("kubectl diff: {diff}"),
    )?;
    let out = run(&[
        "-n",
        &ns,
        "scale",
        "deploy/web",
        "--replicas=7",
        "--dry-run=server",
    ])?;
    check(out.contains("server dry run"), out.clone())?;
    let r = web_field("{.spec.replicas}")?;
    check(r == "1", format!("dry run scaled to {r}"))?;
    let dry = dir.join("dry.yaml");
    std::fs::write(
        &dry,
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: {ns}\n"),
    )
    .map_err(|e| format!("{e}"))?;
    let out = run(&[
        "apply",
        "--dry-run=server",
        "-f",
        &dry.display().to_string(),
    ])?;
    check(out.contains("server dry run"), out.clone())?;
    let (ok, _) = kubectl_cmd(s, dir, &["-n", &ns, "get", "configmap", "dry"])?;
    check(!ok, "dry-run create stored the object")?;
    let out = run(&["-n", &ns, "scale", "deploy/web", "--replicas=3"])?;
    check(out.contains("scaled"), out.clone())?;
    // Server-side printing: the columns kubectl shows for these kinds.
    let out = run(&["-n", &ns, "get", "deploy,svc"])?;
    check(
        out.contains("UP-TO-DATE")
            && out.contains("CLUSTER-IP")
            && out.contains("NodePort")
            && out.contains("80:3"),
        out.clone(),
    )?;
    let out = run(&["get", "ns", &ns])?;
    check(
        out.contains("STATUS") && out.contains("Active"),
        out.clone(),
    )?;
    let out = run(&["get", "ns", "-A", "--show-labels"])?;
    check(out.contains("LABELS"), out.clone())?;
    // kubectl get --watch gets Table rows as events too.
    let (_, out) = kubectl_cmd(
        s,
        dir,
        &[
            "-n",
            &ns,
            "get",
            "deploy",
            "--watch",
            "--request-timeout=2s",
        ],
    )?;
    check(
        out.contains("UP-TO-DATE")
            && out.contains("web")
            && !out.to_lowercase().contains("error: "),
        out.clone(),
    )?;
    let out = run(&["-n", &ns, "label", "svc", "web", "tier=fe"])?;
    check(out.contains("labeled"), out.clone())?;
    if modern {
        let out = run(&["explain", "pod.spec.containers.ports"])?;
        check(out.contains("containerPort"), out.clone())?;
    }
    let out = run(&["api-resources"])?;
    check(
        out.contains("deployments") && out.contains("endpointslices"),
        out.clone(),
    )?;
    // Server-side field validation: kubectl sends fieldValidation=Strict.
    let typo = dir.join("typo.yaml");
    std::fs::write(&typo, format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: {ns}\ndatta:\n  k: v\n")).map_err(|e| format!("{e}"))?;
    let (ok, out) = kubectl_cmd(s, dir, &["apply", "-f", &typo.display().to_string()])?;
    check(
        !ok && out.contains("unknown field \"datta\""),
        format!("typo accepted: {out}"),
    )?;
    let out = run(&["-n", &ns, "delete", "-f", &m])?;
    check(out.contains("deleted"), out)
}
