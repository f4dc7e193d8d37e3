//! kubectl's generators send protobuf: what they create must read back as
//! the same object created from their JSON with `create -f`.

use libtest_mimic::Failed;

use crate::support::*;

/// The fields the server fills in per object, different between any two
/// (a pod's `kube-api-access-<random>` volume name among them); and Go's
/// zero values (0, false), which protobuf carries for every value field
/// while Go's JSON leaves them out (Kubernetes reads both as unset).
pub fn comparable(mut v: serde_json::Value) -> serde_json::Value {
    fn strip_zeros(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !(x == &serde_json::json!(0) || x == &serde_json::json!(false)));
                m.values_mut().for_each(strip_zeros);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip_zeros),
            serde_json::Value::String(s) if s.starts_with("kube-api-access-") => {
                *s = "kube-api-access-*".into();
            }
            _ => {}
        }
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
    if let Some(spec) = v["spec"].as_object_mut() {
        // Allocated per service.
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    strip_zeros(&mut v);
    v
}

/// kubectl's generators send protobuf: each one creates in namespace A,
/// and the object it prints with `--dry-run=client -o json` (the very
/// object it would send) goes to namespace B with `create -f` (JSON). Both
/// must read back the same, and carry what the generator was asked for.
pub fn protobuf_generators_match_create_f(s: &Suite) -> Result<(), Failed> {
    let (a, b) = ("proto-a", "proto-b");
    // `create namespace` is a generator too.
    for ns in [a, b] {
        kubectl_ok(s, &["create", "namespace", ns])?;
    }
    let result = (|| -> Result<(), Failed> {
        let ns = json(&kubectl_ok(s, &["get", "namespace", a, "-o", "json"])?)?;
        check(ns["metadata"]["name"] == a, || format!("namespace: {ns}"))?;
        let generators: &[(&str, &str, &[&str])] = &[
            (
                "configmap",
                "cm1",
                &[
                    "create",
                    "configmap",
                    "cm1",
                    "--from-literal=greeting=hello world",
                    "--from-literal=empty=",
                ],
            ),
            (
                "secret",
                "sec1",
                &[
                    "create",
                    "secret",
                    "generic",
                    "sec1",
                    "--from-literal=password=s3cr3t\u{1}",
                ],
            ),
            (
                "deployment",
                "web",
                &[
                    "create",
                    "deployment",
                    "web",
                    "--image=registry.local/web:1.2",
                    "--replicas=2",
                    "--port=8080",
                ],
            ),
            (
                "deployment",
                "zero",
                &[
                    "create",
                    "deployment",
                    "zero",
                    "--image=registry.local/web:1.2",
                    "--replicas=0",
                ],
            ),
            (
                "service",
                "svc1",
                &["create", "service", "clusterip", "svc1", "--tcp=80:8080"],
            ),
            (
                "service",
                "web-svc",
                &[
                    "expose",
                    "deployment",
                    "web",
                    "--name=web-svc",
                    "--port=80",
                    "--target-port=8080",
                ],
            ),
            (
                "pod",
                "runner",
                &[
                    "run",
                    "runner",
                    "--image=registry.local/busybox:1",
                    "--restart=Never",
                    "--labels=app=runner,tier=test",
                    "--env=MODE=proto",
                    "--",
                    "sleep",
                    "3600",
                ],
            ),
        ];
        for (kind, name, args) in generators {
            // Flags go before a `--` (after it they are the container's).
            let with_ns = |ns: &str, extra: &[&str]| {
                let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
                let mut v: Vec<String> = args[..at].iter().map(|a| a.to_string()).collect();
                v.extend(["-n".to_string(), ns.to_string()]);
                v.extend(extra.iter().map(|e| e.to_string()));
                v.extend(args[at..].iter().map(|a| a.to_string()));
                v
            };
            let run_args = with_ns(a, &[]);
            let refs: Vec<&str> = run_args.iter().map(String::as_str).collect();
            kubectl_ok(s, &refs)?;
            let dry = with_ns(b, &["--dry-run=client", "-o", "json"]);
            let refs: Vec<&str> = dry.iter().map(String::as_str).collect();
            let manifest = kubectl_ok(s, &refs)?;
            kubectl_in(s, &["create", "-n", b, "-f", "-"], Some(&manifest))?;
            let got =
                |ns: &str| -> Result<serde_json::Value, Failed> { get_json(s, kind, name, ns) };
            let (pa, pb) = (comparable(got(a)?), comparable(got(b)?));
            check(pa == pb, || {
                format!("{kind}/{name}: protobuf create\n{pa:#}\ndiffers from create -f\n{pb:#}")
            })?;
        }
        // And what each was asked for.
        let cm = get_json(s, "cm", "cm1", a)?;
        check(
            cm["data"]["greeting"] == "hello world" && cm["data"]["empty"] == "",
            || format!("configmap: {cm}"),
        )?;
        let pw = get_path(s, "secret", "sec1", a, "{.data.password}")?;
        let pw = base64_decode(&pw)?;
        check(pw == b"s3cr3t\x01", || format!("secret decodes to {pw:?}"))?;
        let d = get_json(s, "deploy", "web", a)?;
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        check(
            d["spec"]["replicas"] == 2
                && d["spec"]["selector"]["matchLabels"]["app"] == "web"
                && d["spec"]["template"]["metadata"]["labels"]["app"] == "web"
                && d["metadata"]["labels"]["app"] == "web"
                && c["image"] == "registry.local/web:1.2"
                && c["ports"][0]["containerPort"] == 8080,
            || format!("deployment: {d}"),
        )?;
        let zero = get_path(s, "deploy", "zero", a, "{.spec.replicas}")?;
        check(zero == "0", || format!("--replicas=0 reads back {zero:?}"))?;
        let svc = get_json(s, "svc", "web-svc", a)?;
        check(
            svc["spec"]["selector"]["app"] == "web"
                && svc["spec"]["ports"][0]["port"] == 80
                && svc["spec"]["ports"][0]["targetPort"] == 8080
                && svc["spec"]["clusterIP"]
                    .as_str()
                    .is_some_and(|ip| !ip.is_empty()),
            || format!("exposed service: {svc}"),
        )?;
        let pod = get_json(s, "pod", "runner", a)?;
        let c = &pod["spec"]["containers"][0];
        check(
            pod["metadata"]["labels"]["tier"] == "test"
                && pod["spec"]["restartPolicy"] == "Never"
                && c["image"] == "registry.local/busybox:1"
                && c["args"] == serde_json::json!(["sleep", "3600"])
                && c["env"][0]["value"] == "proto",
            || format!("pod: {pod}"),
        )?;
        Ok(())
    })();
    for ns in [a, b] {
        let _ = kubectl(s, &["delete", "namespace", ns, "--wait=false"], None);
    }
    result
}
