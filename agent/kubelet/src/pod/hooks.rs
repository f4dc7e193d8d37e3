//! postStart and preStop handlers (exec, httpGet, sleep), run with a time
//! budget. Reports failure; what to do about it is the pod worker's call.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::probes;
use crate::runtime::container_runtime::ContainerRuntime;

pub async fn run<R: ContainerRuntime>(
    h: &LifecycleHandler,
    c: &Container,
    pod_ip: IpAddr,
    container_id: &str,
    runtime: &R,
    budget: Duration,
) -> Result<(), String> {
    if let Some(e) = &h.exec {
        let process = crate::pod::spec::exec_process(
            &e.command.clone().unwrap_or_default(),
            &[(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            0,
            0,
        );
        return match runtime.exec(container_id, process, budget).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("exec hook exited with {code}")),
            Err(e) => Err(e.to_string()),
        };
    }
    if let Some(g) = &h.http_get {
        let host = g
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .unwrap_or(pod_ip);
        let port = match &g.port {
            IntOrString::Int(p) => u16::try_from(*p).ok(),
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
        .ok_or("hook port not found")?;
        return probes::http_get(host, port, g.path.as_deref().unwrap_or("/"), budget).await;
    }
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(budget)).await;
        return Ok(());
    }
    Err("lifecycle handler has no action".into())
}
