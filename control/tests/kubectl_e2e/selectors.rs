//! Label and field selectors, in a namespace and across all of them.

use libtest_mimic::Failed;

use crate::manifests::*;
use crate::support::*;

pub fn label_and_field_selectors(s: &Suite) -> Result<(), Failed> {
    let docs = [
        pod_yaml("sel-a", Some("node-1"), "    app: web\n    tier: front\n"),
        pod_yaml("sel-b", Some("node-2"), "    app: web\n    tier: back\n"),
        pod_yaml("sel-c", None, "    app: db\n"),
    ]
    .join("---\n");
    create(s, &docs)?;
    let names = |args: &[&str]| -> Result<Vec<String>, Failed> {
        let mut all = vec!["get", "pods", "-n", NS, "-o", "name"];
        all.extend_from_slice(args);
        // Other tests' controllers run pods in this namespace too.
        let mut v: Vec<String> = kubectl_ok(s, &all)?
            .lines()
            .filter(|l| l.starts_with("pod/sel-"))
            .map(String::from)
            .collect();
        v.sort();
        Ok(v)
    };
    check(
        names(&["-l", "app=web"])? == ["pod/sel-a", "pod/sel-b"],
        || "app=web".into(),
    )?;
    check(
        names(&["-l", "app=web,tier!=front"])? == ["pod/sel-b"],
        || "tier!=front".into(),
    )?;
    check(names(&["-l", "app in (db)"])? == ["pod/sel-c"], || {
        "set-based".into()
    })?;
    check(names(&["-l", "!tier,app"])? == ["pod/sel-c"], || {
        "existence".into()
    })?;
    check(
        names(&["--field-selector", "spec.nodeName=node-1"])? == ["pod/sel-a"],
        || "nodeName".into(),
    )?;
    check(
        names(&["--field-selector", "metadata.name=sel-b"])? == ["pod/sel-b"],
        || "metadata.name".into(),
    )?;
    check(
        names(&["--field-selector", "spec.nodeName=", "-l", "app"])? == ["pod/sel-c"],
        || "unscheduled".into(),
    )?;
    // Across namespaces, with both kinds of selector.
    let all = kubectl_ok(
        s,
        &[
            "get",
            "pods",
            "-A",
            "-l",
            "app=web",
            "--field-selector",
            "spec.nodeName!=node-1",
            "-o",
            "name",
        ],
    )?;
    check(all.trim() == "pod/sel-b", || all.clone())?;
    let err = kubectl_err(
        s,
        &s.admin_kubeconfig(),
        &[
            "get",
            "pods",
            "-n",
            NS,
            "--field-selector",
            "spec.noSuchField=x",
        ],
        None,
    )?;
    check(
        err.contains("field label not supported")
            || err.contains("BadRequest")
            || err.contains("not supported"),
        || err.clone(),
    )?;
    Ok(())
}
