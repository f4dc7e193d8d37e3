//! In-cluster identity, the kubelet's side: a `projected` volume with all
//! four source kinds (files, modes, the AtomicWriter's layout, read-only;
//! a missing non-optional source holds the pod in ContainerCreating with a
//! FailedMount Event until it exists); a pod reads its auto-mounted token
//! and calls the API server through `KUBERNETES_SERVICE_HOST/PORT`; the
//! Service variables and service links are in its environment; a token the
//! kubelet replaces (after an agent restart, which fetches fresh tokens
//! for adopted pods) is visible inside the running container.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::kube_suite::wait_for;
use crate::suite::*;
use crate::support::*;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The container's log once it printed `END`.
fn log_until_end(s: &Suite, pod: &str) -> Result<String, Failed> {
    wait_for(
        &format!("{pod} printed END"),
        Duration::from_secs(40),
        || {
            s.kubectl(&["logs", pod], None)
                .ok()
                .filter(|l| l.lines().any(|x| x == "END"))
        },
        || format!("{}\npod: {:?}", s.log(), s.get(&["pod", pod])),
    )
}

/// `PREFIX rest` lines as (rest) by prefix, first one wins.
fn tagged(log: &str, tag: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix(tag).map(|r| r.trim_start().to_string()))
        .collect()
}

/// The claims of a JWT (its middle part), without checking the signature
/// (the API server's job; this test looks at what the kubelet asked for).
fn claims(jwt: &str) -> Result<Value, Failed> {
    let payload = jwt
        .trim()
        .split('.')
        .nth(1)
        .ok_or_else(|| format!("not a JWT: {jwt:?}"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("JWT payload {payload:?}: {e}"))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// A projected volume of secret (item with its own mode), configMap (every
/// key; another one optional and absent), downwardAPI and a
/// serviceAccountToken (audience, 600 s) under defaultMode 0440.
pub fn projected_volume_all_kinds(s: &Suite) -> Result<(), Failed> {
    let node = s.lab.node(0).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: proj-creds, namespace: default}}
data: {{user: Ym9i}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: proj-cm, namespace: default}}
data: {{a.txt: A, b.txt: B}}
---
apiVersion: v1
kind: Pod
metadata: {{name: projected, namespace: default, labels: {{app: projected}}}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  volumes:
  - name: p
    projected:
      defaultMode: 288
      sources:
      - secret: {{name: proj-creds, items: [{{key: user, path: creds/user, mode: 256}}]}}
      - configMap: {{name: proj-cm}}
      - configMap: {{name: proj-absent, optional: true}}
      - downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}, {{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}
      - serviceAccountToken: {{path: token, expirationSeconds: 600, audience: capstan-test}}
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: p, mountPath: /p}}]
    command:
    - sh
    - -c
    - |
      for f in creds/user a.txt b.txt labels name token; do
        echo "FILE $f $(stat -L -c %a /p/$f) $(cat /p/$f)"
      done
      echo "DATA $(readlink /p/..data)"
      echo "LINK $(readlink /p/token)"
      if touch /p/x 2>/dev/null; then echo "MOUNT rw"; else echo "MOUNT ro"; fi
      echo END
      sleep 3600
"#
        )),
    )?;
    let log = log_until_end(s, "projected")?;
    let files: BTreeMap<String, (String, String)> = tagged(&log, "FILE ")
        .into_iter()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            let (f, m, v) = (it.next()?, it.next()?, it.next().unwrap_or(""));
            Some((f.to_string(), (m.to_string(), v.to_string())))
        })
        .collect();
    let want = |f: &str, mode: &str, value: &str| -> Result<(), Failed> {
        match files.get(f) {
            Some((m, v)) if m == mode && v == value => Ok(()),
            other => Err(format!("{f}: want {mode} {value:?}, got {other:?}\n{log}").into()),
        }
    };
    want("creds/user", "400", "bob")?;
    want("a.txt", "440", "A")?;
    want("b.txt", "440", "B")?;
    want("labels", "440", "app=\"projected\"")?;
    want("name", "440", "projected")?;
    let (mode, jwt) = files.get("token").cloned().unwrap_or_default();
    if mode != "440" {
        return Err(format!("token mode {mode}\n{log}").into());
    }
    let c = claims(&jwt)?;
    let aud = c["aud"].as_array().cloned().unwrap_or_default();
    if aud != [Value::from("capstan-test")]
        || c["sub"] != "system:serviceaccount:default:default"
        || c["kubernetes.io"]["pod"]["name"] != "projected"
        || c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i) != Some(600)
    {
        return Err(format!("token claims are not the projection's: {c}").into());
    }
    let data = tagged(&log, "DATA ").join("");
    if !data.starts_with("..20") || tagged(&log, "LINK ") != ["..data/token"] {
        return Err(format!("not the AtomicWriter's layout:\n{log}").into());
    }
    if tagged(&log, "MOUNT ") != ["ro"] {
        return Err(format!("the projected volume is writable:\n{log}").into());
    }

    // A missing non-optional source: ContainerCreating and FailedMount
    // until it appears, then the pod starts.
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: projected-missing, namespace: default}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  volumes:
  - name: late
    projected:
      sources: [{{configMap: {{name: proj-late}}}}]
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: late, mountPath: /late}}]
    command: [sh, -c, "cat /late/k; echo; echo END; sleep 3600"]
"#
        )),
    )?;
    wait_for(
        "projected-missing waits in ContainerCreating",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "projected-missing"])
                .filter(|p| waiting(p, "reason") == "ContainerCreating")
        },
        || format!("{}\n{:?}", s.log(), s.get(&["pod", "projected-missing"])),
    )?;
    events_for(
        s,
        "projected-missing",
        &[(
            "FailedMount",
            r#"MountVolume.SetUp failed for volume "late" : configmaps "proj-late" not found"#,
        )],
    )?;
    s.kubectl(
        &[
            "create",
            "configmap",
            "proj-late",
            "--from-literal=k=arrived",
        ],
        None,
    )?;
    let late = log_until_end(s, "projected-missing")?;
    if !late.lines().any(|l| l == "arrived") {
        return Err(format!("projected-missing: {late:?}").into());
    }
    for p in ["projected", "projected-missing"] {
        delete_pod(s, p)?;
    }
    s.kubectl(
        &[
            "delete",
            "secret/proj-creds",
            "configmap/proj-cm",
            "configmap/proj-late",
        ],
        None,
    )?;
    Ok(())
}

/// A pod with the auto-mounted `kube-api-access-*` volume reads its token
/// and calls the API server at `https://$KUBERNETES_SERVICE_HOST:
/// $KUBERNETES_SERVICE_PORT` (verified with the mounted ca.crt): /version
/// answers, a read of its own pod is answered as its service account (the
/// pod, or a 403 naming `system:serviceaccount:default:default`), a bad
/// token is 401. Its environment has the Service variables, a service link
/// of a Service made before it, the container's own env winning; a pod
/// with `enableServiceLinks: false` has only the kubernetes ones.
pub fn pod_calls_the_api_with_its_token(s: &Suite) -> Result<(), Failed> {
    let node = s.lab.node(1).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(
            r#"apiVersion: v1
kind: Service
metadata: {name: links-svc, namespace: default}
spec:
  selector: {app: links-none}
  ports: [{name: web, port: 8080, targetPort: 8080}]
"#,
        ),
    )?;
    let svc_ip = wait_for(
        "links-svc has a ClusterIP",
        Duration::from_secs(10),
        || {
            s.get(&["service", "links-svc"])?["spec"]["clusterIP"]
                .as_str()
                .map(String::from)
        },
        || s.log(),
    )?;
    let kubernetes_ip = wait_for(
        "the default/kubernetes Service",
        Duration::from_secs(20),
        || {
            s.get(&["service", "kubernetes", "-n", "default"])?["spec"]["clusterIP"]
                .as_str()
                .map(String::from)
        },
        || s.log(),
    )?;
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: token-reader, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    env: [{{name: LINKS_SVC_SERVICE_PORT, value: overridden}}]
    command:
    - sh
    - -c
    - |
      env | sort | sed 's/^/ENV /'
      D={SA_DIR}
      echo "NS $(cat $D/namespace)"
      U=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
      get() {{ capstan-testsrv get --ca-file $D/ca.crt --token-file "$1" "$U$2" 2>&1 | {{ read code; echo "$3_CODE $code"; tr -d '\n' | sed "s/^/$3_BODY /"; echo; }}; }}
      get $D/token /version VERSION
      get $D/token /api/v1/namespaces/default/pods/token-reader SELF
      echo not-a-token > /tmp/bad
      get /tmp/bad /version BAD
      echo END
      sleep 3600
---
apiVersion: v1
kind: Pod
metadata: {{name: no-links, namespace: default}}
spec:
  nodeName: {node}
  enableServiceLinks: false
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {IMAGE}
    command: [sh, -c, "env | sort | sed 's/^/ENV /'; echo END; sleep 3600"]
"#
        )),
    )?;
    let log = log_until_end(s, "token-reader")?;
    let env: BTreeMap<String, String> = tagged(&log, "ENV ")
        .into_iter()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    let want_env = [
        ("KUBERNETES_SERVICE_HOST", kubernetes_ip.clone()),
        ("KUBERNETES_SERVICE_PORT", "443".into()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443".into()),
        ("KUBERNETES_PORT", format!("tcp://{kubernetes_ip}:443")),
        (
            "KUBERNETES_PORT_443_TCP",
            format!("tcp://{kubernetes_ip}:443"),
        ),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp".into()),
        ("KUBERNETES_PORT_443_TCP_PORT", "443".into()),
        ("KUBERNETES_PORT_443_TCP_ADDR", kubernetes_ip.clone()),
        ("LINKS_SVC_SERVICE_HOST", svc_ip.clone()),
        ("LINKS_SVC_SERVICE_PORT", "overridden".into()),
        ("LINKS_SVC_SERVICE_PORT_WEB", "8080".into()),
        ("LINKS_SVC_PORT", format!("tcp://{svc_ip}:8080")),
        ("LINKS_SVC_PORT_8080_TCP_ADDR", svc_ip.clone()),
    ];
    for (k, v) in &want_env {
        if env.get(*k) != Some(v) {
            return Err(format!("env {k}: want {v:?}, got {:?}\n{log}", env.get(*k)).into());
        }
    }
    if tagged(&log, "NS ") != ["default"] {
        return Err(format!("namespace file:\n{log}").into());
    }
    let one = |tag: &str| tagged(&log, tag).join("");
    let version: Value = serde_json::from_str(&one("VERSION_BODY")).unwrap_or(Value::Null);
    if one("VERSION_CODE") != "200" || !version["gitVersion"].is_string() {
        return Err(format!("GET /version with the token:\n{log}\n{}", s.log()).into());
    }
    let own: Value = serde_json::from_str(&one("SELF_BODY")).unwrap_or(Value::Null);
    let as_sa = match one("SELF_CODE").as_str() {
        "200" => own["metadata"]["name"] == "token-reader",
        "403" => own["message"]
            .as_str()
            .is_some_and(|m| m.contains("system:serviceaccount:default:default")),
        _ => false,
    };
    if !as_sa {
        return Err(
            format!("GET of its own pod was not answered as its service account:\n{log}").into(),
        );
    }
    if one("BAD_CODE") != "401" {
        return Err(format!("a bad token was not refused with 401:\n{log}").into());
    }

    let plain = log_until_end(s, "no-links")?;
    let keys: Vec<String> = tagged(&plain, "ENV ")
        .into_iter()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    if !keys.iter().any(|k| k == "KUBERNETES_SERVICE_HOST")
        || keys.iter().any(|k| k.starts_with("LINKS_SVC_"))
    {
        return Err(format!("enableServiceLinks: false: {keys:?}").into());
    }
    for p in ["token-reader", "no-links"] {
        delete_pod(s, p)?;
    }
    s.kubectl(&["delete", "service", "links-svc"], None)?;
    Ok(())
}

/// The node's copy of the pod's kube-api-access token.
fn node_token(s: &Suite, uid: &str) -> Option<String> {
    let dir = s
        .lab
        .node(0)
        .dir()
        .join("var/lib/capstan/kubelet/pods")
        .join(uid)
        .join("volumes/projected");
    let vol = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("kube-api-access-")
        })?;
    std::fs::read_to_string(vol.path().join("token")).ok()
}

/// After an agent restart the kubelet fetches fresh tokens for the pods it
/// adopts and swaps them in with the AtomicWriter; the running container
/// reads the new token through its bind mount.
pub fn replaced_token_is_visible_in_the_container(s: &Suite) -> Result<(), Failed> {
    let dir = shared_dir(s, 0, "token-watch")?;
    let node = s.lab.node(0).name().to_string();
    s.kubectl(
        &["apply", "--validate=false", "-f", "-"],
        Some(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: token-watch, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: t, hostPath: {{path: {dir}}}}}]
  containers:
  - name: main
    image: {IMAGE}
    volumeMounts: [{{name: t, mountPath: /t}}]
    command:
    - sh
    - -c
    - |
      while true; do
        if [ -f /t/ask ]; then rm -f /t/ask; cat {SA_DIR}/token > /t/.answer; mv /t/.answer /t/answer; fi
        sleep 0.1
      done
"#,
            dir = dir.display()
        )),
    )?;
    let pod = wait_for(
        "token-watch Running",
        Duration::from_secs(30),
        || {
            s.get(&["pod", "token-watch"])
                .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        },
        || s.log(),
    )?;
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ask = || -> Result<String, Failed> {
        let _ = std::fs::remove_file(dir.join("answer"));
        hand_over(&dir, "ask", "")?;
        wait_for(
            "the container's answer",
            Duration::from_secs(10),
            || std::fs::read_to_string(dir.join("answer")).ok(),
            || s.log(),
        )
    };
    let first = ask()?;
    if Some(&first) != node_token(s, &uid).as_ref()
        || claims(&first)?["kubernetes.io"]["pod"]["uid"] != uid.as_str()
    {
        return Err(format!("the container's token is not the pod's: {first:?}").into());
    }
    if let Some(mut d) = s.agents.lock().unwrap_or_else(|e| e.into_inner())[0].take() {
        d.stop(Duration::from_secs(10));
    }
    s.start_agent(0)?;
    let replaced = wait_for(
        "a fresh token on the node",
        Duration::from_secs(30),
        || node_token(s, &uid).filter(|t| *t != first),
        || s.log(),
    )?;
    let second = ask()?;
    if second != replaced {
        return Err(format!("the container reads {second:?}, the node holds {replaced:?}").into());
    }
    let (c1, c2) = (claims(&first)?, claims(&second)?);
    if c2["iat"].as_i64() < c1["iat"].as_i64() || c2["kubernetes.io"]["pod"]["uid"] != uid.as_str()
    {
        return Err(
            format!("the new token is not a newer token of the pod: {c1} then {c2}").into(),
        );
    }
    delete_pod(s, "token-watch")?;
    Ok(())
}
