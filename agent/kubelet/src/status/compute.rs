//! Pod status from container states, as kubelet computes it: phase,
//! conditions (PodScheduled, Initialized, ContainersReady, Ready), IPs,
//! container statuses. Pure: the worker passes a snapshot and gets a
//! k8s-openapi `PodStatus` back.

use std::net::IpAddr;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started: SystemTime,
    },
    Terminated {
        code: i32,
        signal: Option<i32>,
        reason: String,
        started: SystemTime,
        finished: SystemTime,
        container_id: String,
    },
}

#[derive(Clone, Debug)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last: Option<State>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: i32,
}

pub struct Inputs<'a> {
    pub restart_policy: &'a str,
    pub init: &'a [Container],
    pub app: &'a [Container],
    pub pod_ips: &'a [IpAddr],
    pub host_ip: Option<IpAddr>,
    pub start_time: SystemTime,
}

pub fn time(t: SystemTime) -> Time {
    Time(Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn succeeded(s: &State) -> bool {
    matches!(s, State::Terminated { code: 0, .. })
}

fn failed(s: &State) -> bool {
    matches!(s, State::Terminated { code, .. } if *code != 0)
}

/// kubelet's getPhase, simplified to the states this kubelet produces.
pub fn phase(restart_policy: &str, init: &[Container], app: &[Container]) -> &'static str {
    let init_done = init.iter().all(|c| succeeded(&c.state));
    if !init_done {
        if restart_policy == "Never" && init.iter().any(|c| failed(&c.state)) {
            return "Failed";
        }
        return "Pending";
    }
    let mut running = 0;
    let mut waiting_fresh = 0;
    let mut stopped = 0;
    let mut ok = 0;
    for c in app {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated { code, .. } => {
                stopped += 1;
                if *code == 0 {
                    ok += 1;
                }
            }
            State::Waiting { .. } if c.last.is_some() => running += 1,
            State::Waiting { .. } => waiting_fresh += 1,
        }
    }
    if waiting_fresh > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == app.len() && !app.is_empty() {
        return match restart_policy {
            "Always" => "Running",
            "OnFailure" if ok == stopped => "Succeeded",
            "OnFailure" => "Running",
            _ if ok == stopped => "Succeeded",
            _ => "Failed",
        };
    }
    "Pending"
}

fn state(s: &State) -> ContainerState {
    match s {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started)),
            }),
            ..Default::default()
        },
        State::Terminated {
            code,
            signal,
            reason,
            started,
            finished,
            container_id,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *code,
                signal: *signal,
                reason: Some(reason.clone()),
                started_at: Some(time(*started)),
                finished_at: Some(time(*finished)),
                container_id: Some(format!("containerd://{container_id}")),
                message: None,
            }),
            ..Default::default()
        },
    }
}

fn container_status(c: &Container) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.as_ref().map(|i| format!("containerd://{i}")),
        state: Some(state(&c.state)),
        last_state: Some(c.last.as_ref().map(state).unwrap_or_default()),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        ..Default::default()
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, now: &Time) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: (!ok)
            .then(|| reason.unwrap_or_default().to_string())
            .filter(|r| !r.is_empty()),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    }
}

pub fn build(i: &Inputs<'_>) -> PodStatus {
    let phase = phase(i.restart_policy, i.init, i.app);
    let now = time(i.start_time);
    let initialized = i.init.iter().all(|c| succeeded(&c.state));
    let done = phase == "Succeeded" || phase == "Failed";
    let containers_ready = !done
        && initialized
        && i.app
            .iter()
            .all(|c| c.ready && matches!(c.state, State::Running { .. }));
    let not_ready_reason = if done {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(vec![
            condition("PodScheduled", true, None, &now),
            condition(
                "Initialized",
                initialized,
                Some(if done {
                    "PodCompleted"
                } else {
                    "ContainersNotInitialized"
                }),
                &now,
            ),
            condition(
                "ContainersReady",
                containers_ready,
                Some(not_ready_reason),
                &now,
            ),
            condition("Ready", containers_ready, Some(not_ready_reason), &now),
        ]),
        pod_ip: i.pod_ips.first().map(|ip| ip.to_string()),
        pod_ips: (!i.pod_ips.is_empty()).then(|| {
            i.pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.to_string() })
                .collect()
        }),
        host_ip: i.host_ip.map(|ip| ip.to_string()),
        host_ips: i.host_ip.map(|ip| vec![HostIP { ip: ip.to_string() }]),
        start_time: Some(now),
        init_container_statuses: (!i.init.is_empty())
            .then(|| i.init.iter().map(container_status).collect()),
        container_statuses: Some(i.app.iter().map(container_status).collect()),
        qos_class: None,
        ..Default::default()
    }
}

/// A node-pressure eviction made the pod terminal: phase Failed, reason
/// Evicted, not ready, and the DisruptionTarget condition kubelet adds.
/// A pod refused at admission: only phase, reason, message and QoS class,
/// as kubelet's `rejectPod` sets them.
pub fn rejected(qos_class: &str, r: &crate::admission::admit::Rejection) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(r.reason.clone()),
        message: Some(r.status_message()),
        qos_class: Some(qos_class.into()),
        ..Default::default()
    }
}

pub fn evicted(st: &mut PodStatus, message: &str) {
    let now = Time(Timestamp::now());
    st.phase = Some("Failed".into());
    st.reason = Some("Evicted".into());
    st.message = Some(message.to_string());
    let conds = st.conditions.get_or_insert_with(Vec::new);
    for c in conds.iter_mut() {
        if c.type_ == "Ready" || c.type_ == "ContainersReady" {
            c.status = "False".into();
            c.reason = Some("PodCompleted".into());
        }
    }
    conds.push(PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("TerminationByKubelet".into()),
        message: Some(message.to_string()),
        last_transition_time: Some(now),
        ..Default::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: State, last: Option<State>, ready: bool) -> Container {
        Container {
            name: "c".into(),
            image: "i".into(),
            image_id: "id".into(),
            container_id: Some("x".into()),
            state,
            last,
            ready,
            started: true,
            restart_count: 0,
        }
    }
    fn term(code: i32) -> State {
        State::Terminated {
            code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started: SystemTime::UNIX_EPOCH,
            finished: SystemTime::UNIX_EPOCH,
            container_id: "x".into(),
        }
    }
    fn run() -> State {
        State::Running {
            started: SystemTime::UNIX_EPOCH,
        }
    }
    fn wait(r: &str) -> State {
        State::Waiting {
            reason: r.into(),
            message: None,
        }
    }

    #[test]
    fn phases() {
        assert_eq!(
            phase("Always", &[], &[c(wait("ContainerCreating"), None, false)]),
            "Pending"
        );
        assert_eq!(phase("Always", &[], &[c(run(), None, true)]), "Running");
        assert_eq!(
            phase(
                "Always",
                &[],
                &[c(wait("CrashLoopBackOff"), Some(term(1)), false)]
            ),
            "Running"
        );
        assert_eq!(phase("Never", &[], &[c(term(0), None, false)]), "Succeeded");
        assert_eq!(phase("Never", &[], &[c(term(3), None, false)]), "Failed");
        assert_eq!(
            phase("OnFailure", &[], &[c(term(0), None, false)]),
            "Succeeded"
        );
        assert_eq!(
            phase(
                "Always",
                &[c(run(), None, false)],
                &[c(wait("PodInitializing"), None, false)]
            ),
            "Pending"
        );
        assert_eq!(
            phase(
                "Never",
                &[c(term(1), None, false)],
                &[c(wait("PodInitializing"), None, false)]
            ),
            "Failed"
        );
    }

    #[test]
    fn readiness_drives_ready_condition_and_ips_are_reported() {
        let ips: Vec<IpAddr> = vec!["10.244.1.2".parse().unwrap()];
        let app = [c(run(), None, false)];
        let s = build(&Inputs {
            restart_policy: "Always",
            init: &[],
            app: &app,
            pod_ips: &ips,
            host_ip: Some("192.168.0.1".parse().unwrap()),
            start_time: SystemTime::UNIX_EPOCH,
        });
        let cond = |s: &PodStatus, t: &str| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .status
                .clone()
        };
        assert_eq!(cond(&s, "Ready"), "False");
        assert_eq!(cond(&s, "Initialized"), "True");
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.2"));
        assert_eq!(s.host_ip.as_deref(), Some("192.168.0.1"));
        let app = [c(run(), None, true)];
        let s = build(&Inputs {
            restart_policy: "Always",
            init: &[],
            app: &app,
            pod_ips: &ips,
            host_ip: None,
            start_time: SystemTime::UNIX_EPOCH,
        });
        assert_eq!(cond(&s, "Ready"), "True");
        assert_eq!(
            s.container_statuses.unwrap()[0].container_id.as_deref(),
            Some("containerd://x")
        );
    }

    #[test]
    fn eviction_makes_the_pod_failed_and_not_ready() {
        let app = [c(run(), None, true)];
        let mut s = build(&Inputs {
            restart_policy: "Always",
            init: &[],
            app: &app,
            pod_ips: &[],
            host_ip: None,
            start_time: SystemTime::UNIX_EPOCH,
        });
        evicted(&mut s, "The node was low on resource: memory. ");
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("Evicted"));
        assert_eq!(
            s.message.as_deref(),
            Some("The node was low on resource: memory. ")
        );
        let conds = s.conditions.unwrap();
        let get = |t: &str| conds.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(get("Ready").status, "False");
        assert_eq!(get("DisruptionTarget").status, "True");
        assert_eq!(
            get("DisruptionTarget").reason.as_deref(),
            Some("TerminationByKubelet")
        );
    }
}
