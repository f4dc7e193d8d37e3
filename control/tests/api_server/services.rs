//! Service allocations: ClusterIPs and NodePorts given, released and
//! refused when taken, distinct under concurrent creates.

use libtest_mimic::Failed;
use serde_json::json;

use crate::fixture::*;
use crate::http::*;

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
