//! What a pod leaves on the node: a removed manifest runs preStop and
//! SIGTERM and cleans everything up; after a kill -9 the restarted agent
//! adopts its pods and sweeps orphans.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;

use crate::suite::*;
use crate::support::*;

pub fn netns_files(s: &Suite) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&s.netns_prefix()))
        .collect()
}

pub fn ipam_records(s: &Suite) -> Vec<String> {
    std::fs::read_dir(s.dir().join("var/lib/cni/networks/capstan"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains('@'))
        .collect()
}

pub fn containers_of(s: &Suite, uid: &str) -> Result<Vec<String>, Failed> {
    let out = s.ctr(&[
        "containers",
        "ls",
        "-q",
        &format!("labels.\"io.kubernetes.pod.uid\"=={uid}"),
    ])?;
    Ok(out.lines().map(str::to_string).collect())
}

pub fn graceful_delete(s: &Suite) -> Result<(), Failed> {
    let marker_dir = s.dir().join("graceful");
    std::fs::create_dir_all(&marker_dir)?;
    s.put(
        "graceful.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c", "trap 'echo sigterm >> /m/events; exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /m/events"]}}
    volumeMounts: [{{name: m, mountPath: /m}}]
  volumes:
  - {{name: m, hostPath: {{path: {}}}}}
"#,
            marker_dir.display()
        ),
    );
    let st = s.wait_status("graceful", "Running", Duration::from_secs(20), running)?;
    let uid = st["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let ip = pod_ip(&st).ok_or("no IP")?;
    let ns_before = netns_files(s);
    check(!ns_before.is_empty(), "no namespace files")?;
    let records_before = ipam_records(s);
    check(
        records_before
            .iter()
            .any(|r| r.starts_with(&ip.to_string())),
        format!("no IPAM record for {ip}: {records_before:?}"),
    )?;
    let t0 = Instant::now();
    s.delete("graceful.yaml");
    wait_for("status file removed", Duration::from_secs(15), || {
        s.status("graceful").is_none()
    })
    .map_err(|e| format!("{e:?}\n{}", s.log()))?;
    let took = t0.elapsed();
    let events = std::fs::read_to_string(marker_dir.join("events")).unwrap_or_default();
    check(
        events == "prestop\nsigterm\n",
        format!("hook/signal order: {events:?}"),
    )?;
    // Exited on SIGTERM: well within the 10 s grace period.
    check(
        took < Duration::from_secs(8),
        format!("deletion took {took:?}"),
    )?;
    check(containers_of(s, &uid)?.is_empty(), "containers left")?;
    check(
        !ipam_records(s)
            .iter()
            .any(|r| r.starts_with(&ip.to_string())),
        "IP not released (no CNI DEL)",
    )?;
    let sid_files: Vec<String> = netns_files(s)
        .into_iter()
        .filter(|n| !ns_before.contains(n) || n.is_empty())
        .collect();
    check(
        sid_files.is_empty(),
        format!("new namespace files {sid_files:?}"),
    )?;
    check(
        !s.root().join("pods").join(&uid).exists(),
        "pod state dir left",
    )?;
    Ok(())
}

pub fn adoption_after_restart(s: &Suite) -> Result<(), Failed> {
    s.put(
        "orphan.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: orphan}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: {IMAGE}, command: ["sleep", "3600"]}}
"#
        ),
    );
    let orphan = s.wait_status("orphan", "Running", Duration::from_secs(20), running)?;
    let orphan_uid = orphan["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let orphan_ip = pod_ip(&orphan).ok_or("no orphan IP")?;
    let web = s.wait_status("web", "Running", Duration::from_secs(5), running)?;
    let web_id = container_id(&web, "web");
    let web_ip = pod_ip(&web).ok_or("no web IP")?;
    let web_record: Vec<String> = ipam_records(s)
        .into_iter()
        .filter(|r| r.starts_with(&format!("{web_ip}@")))
        .collect();
    check(
        web_record.len() == 1,
        format!("web IPAM record {web_record:?}"),
    )?;

    // kill -9 the agent; while it is down the orphan's manifest goes.
    if let Some(mut d) = s.agent.lock().unwrap_or_else(|e| e.into_inner()).take() {
        d.kill();
    }
    s.delete("orphan.yaml");
    let mut ping = s.lab.node(0).command("ping").map_err(|e| e.to_string())?;
    let mut ping = ping
        .args(["-i", "0.2", "-W", "1", &web_ip.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    s.start_agent();
    // The orphan's containers, IP and namespaces are swept.
    wait_for("orphan swept", Duration::from_secs(20), || {
        containers_of(s, &orphan_uid).is_ok_and(|c| c.is_empty())
            && !ipam_records(s)
                .iter()
                .any(|r| r.starts_with(&format!("{orphan_ip}@")))
    })
    .map_err(|e| format!("{e:?}\n{}", s.log()))?;
    eprintln!("orphan swept {:?} after restart", t0.elapsed());
    let web2 = s.wait_status(
        "web",
        "Ready after restart",
        Duration::from_secs(10),
        |st| running(st) && condition(st, "Ready") == "True",
    )?;
    std::thread::sleep(Duration::from_millis(600));
    let _ = ping.kill();
    let out = ping.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sent = text.lines().filter(|l| l.contains("icmp_seq")).count();
    check(sent >= 3, format!("ping output {text}"))?;
    let seqs: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let max = seqs.iter().copied().max().unwrap_or(0);
    check(
        seqs.len() as u32 == max,
        format!("ping lost replies across the agent restart: {seqs:?}"),
    )?;
    check(
        container_id(&web2, "web") == web_id,
        "web container replaced",
    )?;
    check(
        container(&web2, "web")["restartCount"] == 0,
        "web restarted",
    )?;
    check(pod_ip(&web2) == Some(web_ip), "web IP changed (CNI re-ADD)")?;
    // Only web's reservation is left, the very one ADD made before.
    wait_for("only web's IP reserved", Duration::from_secs(10), || {
        ipam_records(s) == web_record
    })
    .map_err(|e| format!("{e:?}: {:?} vs {web_record:?}", ipam_records(s)))?;
    check(
        http_get(s, web_ip, "/")?.trim() == format!("web-{NODE}"),
        "web not serving",
    )?;
    Ok(())
}
