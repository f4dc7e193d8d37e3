//! Whether a persistent lab is really running, judged from its recorded
//! state: every namespace still exists and every recorded (or expected)
//! daemon is alive as that program in its namespaces (network and, for a
//! node's daemons, mount). It only reads; the
//! repair (teardown, then a fresh start) is the caller's decision.

use std::os::unix::fs::MetadataExt;

use crate::daemon::process_alive;
use crate::netns::Netns;
use crate::state::{DaemonRecord, LabState};

/// A daemon the caller expects on a place (a node name, `lab` or `host`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub name: String,
    pub place: String,
}

impl std::str::FromStr for Expected {
    type Err = String;

    /// `NAME@PLACE`, e.g. `etcd@lab`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((name, place)) if !name.is_empty() && !place.is_empty() => Ok(Expected {
                name: name.to_string(),
                place: place.to_string(),
            }),
            _ => Err(format!("expected NAME@PLACE (e.g. etcd@lab), not {s:?}")),
        }
    }
}

/// What is wrong with the lab, one short phrase per problem; empty when
/// everything recorded and expected runs. `per_node` names daemons every
/// recorded node must have (e.g. containerd, agent).
pub fn problems(state: &LabState, expected: &[Expected], per_node: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let namespaces =
        std::iter::once(&state.underlay_netns).chain(state.nodes.iter().map(|n| &n.netns));
    for ns in namespaces {
        if Netns::existing(ns).is_err() {
            out.push(format!("netns {ns} missing"));
        }
    }
    for node in &state.nodes {
        if let Some(m) = &node.mntns {
            if !crate::mntns::exists(m) {
                out.push(format!("mount namespace of {} missing", node.name));
            }
        }
    }
    let mut wanted: Vec<Expected> = expected.to_vec();
    for node in &state.nodes {
        for name in per_node {
            wanted.push(Expected {
                name: name.clone(),
                place: node.name.clone(),
            });
        }
    }
    for w in &wanted {
        let recorded = state
            .daemons
            .iter()
            .any(|d| d.spec.name == w.name && d.place == w.place);
        if !recorded {
            out.push(format!("{} on {} never started", w.name, w.place));
        }
    }
    for d in &state.daemons {
        if !runs(d) {
            out.push(format!("{} on {} stopped", d.spec.name, d.place));
        }
    }
    out
}

/// True if the recorded pid is alive AND still that daemon: after a reboot
/// pids are handed out again, so the pid alone proves nothing. The program
/// it was started as must match, and for a daemon in a namespace, the
/// namespace it is in.
fn runs(d: &DaemonRecord) -> bool {
    if !process_alive(d.pid) {
        return false;
    }
    let argv0 = std::fs::read(format!("/proc/{}/cmdline", d.pid))
        .ok()
        .and_then(|raw| {
            raw.split(|&b| b == 0)
                .next()
                .map(|a| String::from_utf8_lossy(a).into_owned())
        });
    if argv0.as_deref() != Some(&*d.spec.program.to_string_lossy()) {
        return false;
    }
    if let Some(m) = &d.spec.mntns {
        let want = crate::mntns::id(m);
        let have = crate::mntns::id(std::path::Path::new(&format!("/proc/{}/ns/mnt", d.pid)));
        if want.is_none() || want != have {
            return false;
        }
    }
    match &d.spec.netns {
        None => true,
        Some(ns) => {
            let want = Netns::existing(ns).and_then(|n| n.id()).ok();
            let have = std::fs::metadata(format!("/proc/{}/ns/net", d.pid))
                .ok()
                .map(|m| (m.dev(), m.ino()));
            want.is_some() && want == have
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::daemon::DaemonSpec;
    use crate::state::NodeState;

    fn record(name: &str, place: &str, program: PathBuf) -> DaemonRecord {
        DaemonRecord {
            place: place.into(),
            spec: DaemonSpec {
                name: name.into(),
                program,
                args: vec![],
                env: vec![],
                netns: None,
                mntns: None,
                log: PathBuf::from("/dev/null"),
            },
            pid: std::process::id(),
        }
    }

    fn state(daemons: Vec<DaemonRecord>) -> LabState {
        LabState {
            prefix: "nohealth".into(),
            dir: PathBuf::from("/nonexistent/nohealth"),
            persistent: true,
            owner: None,
            underlay_netns: "nohealth-test-lab".into(),
            underlay_ip: std::net::Ipv4Addr::new(192, 168, 250, 1),
            nodes: vec![NodeState {
                name: "node-1".into(),
                netns: "nohealth-test-node-1".into(),
                ip: std::net::Ipv4Addr::new(192, 168, 250, 11),
                dir: PathBuf::from("/nonexistent/nohealth/node-1"),
                mntns: None,
            }],
            daemons,
            cgroup_root: "capstan-lab/nohealth".into(),
        }
    }

    /// argv[0] of this test process, as a daemon record would hold it.
    fn me() -> PathBuf {
        let raw = std::fs::read("/proc/self/cmdline").unwrap();
        let argv0 = raw.split(|&b| b == 0).next().unwrap();
        PathBuf::from(String::from_utf8_lossy(argv0).into_owned())
    }

    #[test]
    fn missing_namespaces_and_daemons_are_named() {
        let got = problems(
            &state(vec![]),
            &["etcd@lab".parse().unwrap()],
            &["agent".to_string()],
        );
        assert_eq!(
            got,
            [
                "netns nohealth-test-lab missing",
                "netns nohealth-test-node-1 missing",
                "etcd on lab never started",
                "agent on node-1 never started",
            ]
        );
    }

    #[test]
    fn a_live_pid_counts_only_as_the_program_it_was_started_as() {
        // This process stands in for a daemon: as itself it runs; as
        // another program (a pid handed out again after a reboot) it does not.
        let s = state(vec![
            record("self", "host", me()),
            record("reused", "host", PathBuf::from("/usr/bin/etcd")),
        ]);
        let got = problems(&s, &[], &[]);
        assert!(!got.iter().any(|p| p.starts_with("self ")), "{got:?}");
        assert!(
            got.contains(&"reused on host stopped".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn expected_parses_name_at_place() {
        assert_eq!(
            "etcd@lab".parse::<Expected>(),
            Ok(Expected {
                name: "etcd".into(),
                place: "lab".into()
            })
        );
        assert!("etcd".parse::<Expected>().is_err());
        assert!("@lab".parse::<Expected>().is_err());
    }
}
