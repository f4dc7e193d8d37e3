//! The agent's ServiceAccount with `deploy/kubernetes/rbac.yaml` applied:
//! exactly the overlay's and the proxy's verbs, nothing more, asked the
//! way the check asks (`kubectl auth can-i --as=...`) and proven
//! with real requests as that service account.

use libtest_mimic::Failed;

use crate::support::*;

const RBAC_YAML: &str = include_str!("../../../deploy/kubernetes/rbac.yaml");
const SA: &str = "system:serviceaccount:capstan-system:capstan";

pub fn agent_service_account_can_i_matrix(r: &Rbac) -> Result<(), Failed> {
    r.namespace("capstan-system")?;
    let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: capstan\n  namespace: capstan-system\n";
    r.admin(&["apply", "--validate=strict", "-f", "-"], Some(sa))?;
    // Server-side dry run first (what `kubectl apply --dry-run=server -k`
    // does), then the real apply, strictly validated against OpenAPI.
    r.admin(&["apply", "--dry-run=server", "-f", "-"], Some(RBAC_YAML))?;
    let out = r.admin(&["apply", "--validate=strict", "-f", "-"], Some(RBAC_YAML))?;
    check(
        out.contains("clusterrole.rbac.authorization.k8s.io/capstan")
            && out.contains("clusterrolebinding.rbac.authorization.k8s.io/capstan"),
        || out.clone(),
    )?;
    let as_sa = format!("--as={SA}");
    let sa_can = |args: &[&str]| -> Result<bool, Failed> {
        let mut all = args.to_vec();
        all.push(&as_sa);
        r.can_i(None, &all)
    };
    // The binding reaches the authorizer through its watch: wait for it.
    r.wait_can_i(None, &["watch", "nodes", &as_sa], true)?;
    let matrix: &[(&[&str], bool)] = &[
        (&["watch", "nodes"], true),
        (&["list", "nodes"], true),
        (&["get", "nodes"], true),
        (&["patch", "nodes"], true),
        (&["list", "services"], true),
        (&["watch", "services", "-A"], true),
        (&["list", "endpointslices.discovery.k8s.io"], true),
        (&["watch", "endpointslices.discovery.k8s.io", "-A"], true),
        (&["list", "secrets"], false),
        (&["list", "secrets", "-A"], false),
        (&["delete", "pods"], false),
        (&["create", "pods"], false),
        (&["delete", "nodes"], false),
        (&["update", "nodes/status"], false),
        (&["create", "services"], false),
        (&["create", "events"], false),
    ];
    for (args, want) in matrix {
        let got = sa_can(args)?;
        check(got == *want, || {
            format!("can-i {args:?} as {SA}: {got}, want {want}")
        })?;
    }
    // Real requests as the service account: allowed reads work (discovery
    // included), the rest is Forbidden with Kubernetes' wording.
    let nodes = r.admin(&["get", "nodes", "-o", "name", &as_sa], None)?;
    check(nodes.contains("node/") || nodes.is_empty(), || {
        nodes.clone()
    })?;
    r.admin(&["get", "services", "-A", &as_sa], None)?;
    r.admin(&["get", "endpointslices", "-A", &as_sa], None)?;
    let err = r.fails(
        None,
        &["get", "secrets", "-n", "capstan-system", &as_sa],
        None,
    )?;
    check(
        err.contains(
            "secrets is forbidden: User \"system:serviceaccount:capstan-system:capstan\" cannot list resource \"secrets\" in API group \"\" in the namespace \"capstan-system\"",
        ),
        || err.clone(),
    )?;
    let err = r.fails(
        None,
        &["delete", "pod", "nope", "-n", "capstan-system", &as_sa],
        None,
    )?;
    check(
        err.contains("forbidden") && err.contains("cannot delete resource \"pods\""),
        || err.clone(),
    )?;
    // The service account's own identity, as it sees itself.
    let who = json(&r.admin(&["auth", "whoami", "-o", "json", &as_sa], None)?)?;
    let groups = who["status"]["userInfo"]["groups"].clone();
    check(
        who["status"]["userInfo"]["username"] == SA
            && groups.as_array().is_some_and(|g| {
                [
                    "system:serviceaccounts",
                    "system:serviceaccounts:capstan-system",
                    "system:authenticated",
                ]
                .iter()
                .all(|w| g.iter().any(|x| x == w))
            }),
        || format!("{who}"),
    )?;
    Ok(())
}
