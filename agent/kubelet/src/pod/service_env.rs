//! The Service environment variables kubelet gives every container
//! (`getServiceEnvVarMap` + `envvars.FromServices`): `default/kubernetes`
//! always, and with `enableServiceLinks` (default true) every Service of
//! the pod's namespace that has a ClusterIP: `<NAME>_SERVICE_HOST`,
//! `<NAME>_SERVICE_PORT[_<PORT NAME>]` and the Docker-link variables
//! (`<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`).
//! Pure over the Services given.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};

/// Services in `default` whose variables every pod gets.
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// kubelet's `makeEnvVariableName`: upper case, `-` becomes `_`.
fn var_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// A ClusterIP that is set (not empty, not headless `None`).
fn cluster_ip(s: &Service) -> Option<&str> {
    s.spec
        .as_ref()?
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// `host:port`, IPv6 in brackets (Go's `net.JoinHostPort`).
fn join_host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// One Service's variables into `out`.
fn add_service(s: &Service, out: &mut BTreeMap<String, String>) {
    let Some(ip) = cluster_ip(s) else {
        return;
    };
    let prefix = var_name(s.metadata.name.as_deref().unwrap_or_default());
    let ports = s
        .spec
        .as_ref()
        .and_then(|sp| sp.ports.as_deref())
        .unwrap_or_default();
    out.insert(format!("{prefix}_SERVICE_HOST"), ip.to_string());
    let Some(first) = ports.first() else {
        return;
    };
    let port_var = format!("{prefix}_SERVICE_PORT");
    out.insert(port_var.clone(), first.port.to_string());
    for p in ports {
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.insert(format!("{port_var}_{}", var_name(n)), p.port.to_string());
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let lower = proto.to_lowercase();
        let url = format!("{lower}://{}", join_host_port(ip, p.port));
        if i == 0 {
            out.insert(format!("{prefix}_PORT"), url.clone());
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.insert(format!("{pp}_PROTO"), lower);
        out.insert(format!("{pp}_PORT"), p.port.to_string());
        out.insert(format!("{pp}_ADDR"), ip.to_string());
        out.insert(pp, url);
    }
}

/// The variables for a pod in `namespace` from every Service known.
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    enable_service_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        if cluster_ip(s).is_none() {
            continue;
        }
        let name = s.metadata.name.clone().unwrap_or_default();
        let ns = s.metadata.namespace.as_deref().unwrap_or("default");
        if ns == "default" && MASTER_SERVICES.contains(&name.as_str()) {
            chosen.entry(name).or_insert(s);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, s);
        }
    }
    let mut out = BTreeMap::new();
    for s in chosen.values() {
        add_service(s, &mut out);
    }
    out
}

/// The pod's `enableServiceLinks` (the API's default: true).
pub fn links_enabled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};

    fn svc(
        ns: &str,
        name: &str,
        ip: Option<&str>,
        ports: &[(Option<&str>, i32, Option<&str>)],
    ) -> Service {
        let mut s = Service::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.spec = Some(ServiceSpec {
            cluster_ip: ip.map(Into::into),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| ServicePort {
                        name: n.map(Into::into),
                        port: *p,
                        protocol: proto.map(Into::into),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        s
    }

    fn kubernetes() -> Service {
        svc(
            "default",
            "kubernetes",
            Some("10.96.0.1"),
            &[(Some("https"), 443, Some("TCP"))],
        )
    }

    #[test]
    fn the_kubernetes_service_as_every_pod_sees_it() {
        let env = service_env(&[kubernetes()], "team", false);
        let want: BTreeMap<String, String> = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    #[test]
    fn service_links_of_the_namespace_only_with_a_cluster_ip() {
        let all = [
            kubernetes(),
            svc(
                "team",
                "web-api",
                Some("10.96.3.4"),
                &[(None, 80, None), (Some("dns-udp"), 53, Some("UDP"))],
            ),
            svc("team", "headless", Some("None"), &[(None, 80, None)]),
            svc("team", "external", None, &[]),
            svc("other", "elsewhere", Some("10.96.9.9"), &[(None, 80, None)]),
            svc("team", "v6", Some("fd00::1"), &[(None, 8080, None)]),
        ];
        let env = service_env(&all, "team", true);
        assert_eq!(env["WEB_API_SERVICE_HOST"], "10.96.3.4");
        assert_eq!(env["WEB_API_SERVICE_PORT"], "80");
        assert_eq!(env["WEB_API_SERVICE_PORT_DNS_UDP"], "53");
        assert_eq!(env["WEB_API_PORT"], "tcp://10.96.3.4:80");
        assert_eq!(env["WEB_API_PORT_53_UDP"], "udp://10.96.3.4:53");
        assert_eq!(env["WEB_API_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["V6_PORT"], "tcp://[fd00::1]:8080");
        assert!(env.contains_key("KUBERNETES_SERVICE_HOST"));
        for gone in ["HEADLESS_", "EXTERNAL_", "ELSEWHERE_"] {
            assert!(!env.keys().any(|k| k.starts_with(gone)), "{gone}");
        }
        // enableServiceLinks: false keeps only the master service.
        let env = service_env(&all, "team", false);
        assert!(env.keys().all(|k| k.starts_with("KUBERNETES_")), "{env:?}");
        // In `default`, the kubernetes Service counts once either way.
        let env = service_env(&all, "default", true);
        assert_eq!(env["KUBERNETES_PORT"], "tcp://10.96.0.1:443");
    }
}
