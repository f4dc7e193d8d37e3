//! deploy/kubernetes against capstan-control with the real kubectl: the
//! rendered capstan.yaml passes `kubectl apply --dry-run=client
//! --validate=strict` and `--dry-run=server --validate=strict` (every
//! field known to the server), as the Kustomize base once every kind in it
//! is served (RBAC's documents wait for rbac.authorization.k8s.io).

use std::path::PathBuf;

use libtest_mimic::Failed;

use crate::support::{check, kubectl, kubectl_ok, text, Suite};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Whether the server serves `group` (discovery), so RBAC documents can
/// be checked; until it does they are left out, and the test says so.
fn serves_group(s: &Suite, group: &str) -> Result<bool, Failed> {
    let out = kubectl(s, &["api-versions"], None)?;
    Ok(text(&out.stdout)
        .lines()
        .any(|l| l.starts_with(&format!("{group}/"))))
}

/// capstan.yaml's documents, without those of `skip_group` when given.
fn documents(skip_group: Option<&str>) -> Result<String, Failed> {
    let path = deploy_dir().join("capstan.yaml");
    let all = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(all
        .split("\n---\n")
        .filter(|doc| skip_group.is_none_or(|g| !doc.contains(&format!("apiVersion: {g}/"))))
        .collect::<Vec<_>>()
        .join("\n---\n"))
}

pub fn rendered_yaml_passes_strict_client_validation(s: &Suite) -> Result<(), Failed> {
    let rbac = "rbac.authorization.k8s.io";
    let skip = (!serves_group(s, rbac)?).then_some(rbac);
    if let Some(g) = skip {
        eprintln!("capstan-control does not serve {g} yet: its documents are left out");
    }
    let docs = documents(skip)?;
    let out = kubectl(
        s,
        &["apply", "--dry-run=client", "--validate=strict", "-f", "-"],
        Some(&docs),
    )?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    check(out.status.success(), || format!("{stderr}\n{stdout}"))?;
    for want in [
        "namespace/capstan-system created (dry run)",
        "serviceaccount/capstan created (dry run)",
        "configmap/capstan-config created (dry run)",
        "daemonset.apps/capstan created (dry run)",
    ] {
        check(stdout.contains(want), || format!("{want:?} in:\n{stdout}"))?;
    }
    // kubectl leaves strict validation to a server that does field
    // validation, so the client dry run above checks kinds and versions
    // only; the server dry run checks every field.
    server_dry_run(s, &docs, skip.is_none())?;
    let bad = docs.replace(
        "hostNetwork: true",
        "hostNetwork: true\n      hostNetwrk: true",
    );
    let out = kubectl(
        s,
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        Some(&bad),
    )?;
    let stderr = text(&out.stderr);
    check(
        !out.status.success() && stderr.contains("hostNetwrk"),
        || format!("a misspelt field passed strict server validation: {stderr}"),
    )
}

/// `kubectl apply --dry-run=server` of the base (`-k`, when every kind in
/// it is served) or of `docs`: the server validates and admits, stores
/// nothing. As with kube-apiserver, namespaced objects need their
/// namespace to exist for that: it is made first and deleted after.
fn server_dry_run(s: &Suite, docs: &str, whole_base: bool) -> Result<(), Failed> {
    let ns = deploy_dir().join("namespace.yaml");
    let ns = ns.to_string_lossy();
    kubectl_ok(s, &["apply", "-f", &ns])?;
    let r = server_dry_run_in_namespace(s, docs, whole_base);
    kubectl_ok(s, &["delete", "-f", &ns, "--wait=false"])?;
    r
}

fn server_dry_run_in_namespace(s: &Suite, docs: &str, whole_base: bool) -> Result<(), Failed> {
    let dir = deploy_dir();
    let dir = dir.to_string_lossy();
    let args: &[&str] = if whole_base {
        &["apply", "--dry-run=server", "--validate=strict", "-k", &dir]
    } else {
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"]
    };
    let out = kubectl(s, args, (!whole_base).then_some(docs))?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    check(out.status.success(), || format!("{stderr}\n{stdout}"))?;
    for want in [
        "serviceaccount/capstan created (server dry run)",
        "configmap/capstan-config created (server dry run)",
        "daemonset.apps/capstan created (server dry run)",
    ] {
        check(stdout.contains(want), || format!("{want:?} in:\n{stdout}"))?;
    }
    let out = kubectl(
        s,
        &["get", "daemonset", "capstan", "-n", "capstan-system"],
        None,
    )?;
    check(!out.status.success(), || {
        "a dry run stored the DaemonSet".to_string()
    })
}
