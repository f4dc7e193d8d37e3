//! A pod's sandbox: its namespaces, its CNI attachment and its per-pod
//! files (/etc/hosts, /etc/resolv.conf, /etc/hostname), recorded in
//! `<root>/pods/<uid>/sandbox.json` before and after each step so a
//! restarted agent adopts it instead of re-running CNI ADD, and a sweep can
//! undo it. Never touches containers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::sandbox::cni::{self, Attachment, Cni};
use crate::sandbox::netns::{self, PodNamespaces};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub sandbox_id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub host_network: bool,
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: PathBuf,
    /// The CNI ADD result, once ADD succeeded (DEL needs it as prevResult).
    pub cni_result: Option<Value>,
    pub pod_ips: Vec<IpAddr>,
}

impl Record {
    pub fn namespaces(&self) -> PodNamespaces {
        PodNamespaces {
            net: self.net.clone(),
            ipc: self.ipc.clone(),
            uts: self.uts.clone(),
        }
    }
}

pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn record_path(root: &Path, uid: &str) -> PathBuf {
    pod_dir(root, uid).join("sandbox.json")
}

pub fn load(root: &Path, uid: &str) -> Option<Record> {
    let text = std::fs::read(record_path(root, uid)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub fn save(root: &Path, rec: &Record) -> Result<()> {
    let path = record_path(root, &rec.uid);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(Error::io("create pod dir", d))?;
    }
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
    std::fs::write(&tmp, bytes).map_err(Error::io("write sandbox record", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("write sandbox record", &path))
}

/// Pod UIDs that have a sandbox record (for the sweep).
pub fn recorded_uids(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("pods"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("sandbox.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

pub struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv: PathBuf,
    pub hostname: PathBuf,
}

pub fn etc_paths(root: &Path, uid: &str) -> EtcFiles {
    let d = pod_dir(root, uid).join("etc");
    EtcFiles {
        hosts: d.join("hosts"),
        resolv: d.join("resolv.conf"),
        hostname: d.join("hostname"),
    }
}

/// /etc/hosts as kubelet writes it for a pod not on the host network.
pub fn hosts_file(hostname: &str, ips: &[IpAddr]) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// resolv.conf for dnsPolicy ClusterFirst: the cluster DNS servers and the
/// search path `<ns>.svc.<domain> svc.<domain> <domain>`.
pub fn resolv_conf(dns: &[IpAddr], namespace: &str, domain: &str) -> String {
    let mut s = String::new();
    for d in dns {
        s.push_str(&format!("nameserver {d}\n"));
    }
    s.push_str(&format!(
        "search {namespace}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n"
    ));
    s
}

pub fn write_etc(
    root: &Path,
    rec: &Record,
    hostname: &str,
    dns: &[IpAddr],
    domain: &str,
) -> Result<EtcFiles> {
    let f = etc_paths(root, &rec.uid);
    if let Some(d) = f.hosts.parent() {
        std::fs::create_dir_all(d).map_err(Error::io("create pod etc dir", d))?;
    }
    let (hosts, resolv) = if rec.host_network {
        (
            std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        )
    } else {
        (
            hosts_file(hostname, &rec.pod_ips),
            resolv_conf(dns, &rec.namespace, domain),
        )
    };
    std::fs::write(&f.hosts, hosts).map_err(Error::io("write hosts", &f.hosts))?;
    std::fs::write(&f.resolv, resolv).map_err(Error::io("write resolv.conf", &f.resolv))?;
    std::fs::write(&f.hostname, format!("{hostname}\n"))
        .map_err(Error::io("write hostname", &f.hostname))?;
    Ok(f)
}

/// Namespaces, then CNI ADD (skipped for the host network or when the
/// record shows ADD already done).
pub async fn ensure(root: &Path, cni: &Cni, rec: &mut Record, hostname: &str) -> Result<()> {
    let ns = rec.namespaces();
    let ns2 = ns.clone();
    let h = hostname.to_string();
    tokio::task::spawn_blocking(move || netns::create(&ns2, &h))
        .await
        .map_err(|e| Error::Config {
            pod: rec.name.clone(),
            message: e.to_string(),
        })??;
    if rec.host_network || rec.cni_result.is_some() {
        return Ok(());
    }
    let Some(net) = &ns.net else { return Ok(()) };
    let result = cni
        .add(&Attachment {
            sandbox_id: &rec.sandbox_id,
            netns: net,
            pod_namespace: &rec.namespace,
            pod_name: &rec.name,
            pod_uid: &rec.uid,
        })
        .await?;
    rec.pod_ips = cni::result_ips(&result);
    rec.cni_result = Some(result);
    save(root, rec)
}

/// CNI DEL, namespaces, pod dir. Safe to repeat.
pub async fn teardown(root: &Path, cni: &Cni, rec: &Record) -> Result<()> {
    if let (false, Some(net)) = (rec.host_network, &rec.net) {
        if rec.cni_result.is_some() || netns::exists(net) {
            cni.del(
                &Attachment {
                    sandbox_id: &rec.sandbox_id,
                    netns: net,
                    pod_namespace: &rec.namespace,
                    pod_name: &rec.name,
                    pod_uid: &rec.uid,
                },
                rec.cni_result.as_ref(),
            )
            .await?;
        }
    }
    netns::remove(&rec.namespaces())?;
    let dir = pod_dir(root, &rec.uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove pod dir", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_files() {
        let h = hosts_file("web", &["10.244.1.5".parse().unwrap()]);
        assert!(h.contains("127.0.0.1\tlocalhost"));
        assert!(h.ends_with("10.244.1.5\tweb\n"));
        let r = resolv_conf(&["10.96.0.10".parse().unwrap()], "ns1", "cluster.local");
        assert_eq!(
            r,
            "nameserver 10.96.0.10\nsearch ns1.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }
}
