//! Restarting both agents leaves containers untouched and a ping across
//! the overlay loses nothing.

use std::time::Duration;

use libtest_mimic::Failed;
use serde_json::Value;

use crate::kube_suite::wait_for;
use crate::kube_suite::{lines, Stream};
use crate::seed::ready_demo_pods;
use crate::suite::*;
use crate::support::*;

pub fn agent_restart(s: &Suite) -> Result<(), Failed> {
    let before = wait_for(
        "demo pods",
        Duration::from_secs(30),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    let pod_on_1 = before
        .iter()
        .find(|p| p["spec"]["nodeName"] == s.lab.node(1).name())
        .or(before.first())
        .ok_or("no pod")?;
    let ip = pod_on_1["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Ping the pod from the other node (across the overlay) while both
    // agents restart.
    let mut ping = s.lab.node(0).command("ping").map_err(|e| e.to_string())?;
    let ping = ping
        .args(["-i", "0.2", "-W", "1", &ip])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut ping = Stream::start(ping, lines)?;
    let wait_replies = |ping: &mut Stream<String>, n: usize| -> Result<(), Failed> {
        let want = ping.seen.iter().filter(|l| l.contains("icmp_seq=")).count() + n;
        let mut got = ping.seen.iter().filter(|l| l.contains("icmp_seq=")).count();
        while got < want {
            match ping.until(Duration::from_secs(5), |l| l.contains("icmp_seq=")) {
                Ok(_) => got += 1,
                Err(_) => return Err(format!("ping: no reply; got {:?}", ping.seen).into()),
            }
        }
        Ok(())
    };
    wait_replies(&mut ping, 3)?;
    let logs: Vec<std::path::PathBuf> = (0..2)
        .map(|i| s.lab.node(i).dir().join("logs/agent.log"))
        .collect();
    let offsets: Vec<usize> = logs
        .iter()
        .map(|l| std::fs::read(l).map_or(0, |b| b.len()))
        .collect();
    for i in 0..2 {
        if let Some(mut d) = s.agents.lock().unwrap_or_else(|e| e.into_inner())[i].take() {
            d.stop(Duration::from_secs(10));
        }
        s.start_agent(i)?;
    }
    // Each new agent has taken over its node's demo containers (its log
    // says so per pod) before the check, and pings still answer after.
    for pod in &before {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let i = node_index(s, pod);
        wait_for(
            &format!("agent {} adopting {name}", i + 1),
            Duration::from_secs(30),
            || {
                let text = std::fs::read(&logs[i]).ok()?;
                let new = String::from_utf8_lossy(text.get(offsets[i]..)?).into_owned();
                new.lines()
                    .any(|l| l.contains("adopted running container") && l.contains(name))
                    .then_some(())
            },
            || s.log(),
        )?;
    }
    let after = wait_for(
        "demo pods after restart",
        Duration::from_secs(30),
        || ready_demo_pods(s),
        || s.log(),
    )?;
    wait_replies(&mut ping, 3)?;
    let _ = ping.child.kill();
    let _ = ping.until(Duration::from_secs(5), |_| false);
    let seqs: Vec<u32> = ping
        .seen
        .iter()
        .filter_map(|l| l.split("icmp_seq=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    let max = seqs.iter().copied().max().unwrap_or(0);
    if seqs.len() < 5 || seqs.len() as u32 != max {
        return Err(format!("ping lost replies across the agent restarts: {seqs:?}").into());
    }
    let ids = |pods: &[Value]| {
        let mut v: Vec<(String, String, Value)> = pods
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    container_id(p),
                    p["status"]["containerStatuses"][0]["restartCount"].clone(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    if ids(&before) != ids(&after) {
        return Err(format!(
            "containers changed across the agent restart: {:?} → {:?}",
            ids(&before),
            ids(&after)
        )
        .into());
    }
    eprintln!(
        "agent restarts: {} pings, none lost; container IDs unchanged",
        seqs.len()
    );
    Ok(())
}
