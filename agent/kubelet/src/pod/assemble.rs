//! Turns one container of a pod into a `SpecInput`: process (command merge,
//! env), user, security context, cgroup limits, mounts (volumes and the
//! pod's /etc files) and the pod namespaces to join. Pure over its inputs.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::pod::command;
use crate::pod::spec::{self, BindMount, SpecInput};
use crate::runtime::container_runtime::ImageInfo;
use crate::sandbox::netns::PodNamespaces;
use crate::sandbox::pod_sandbox::EtcFiles;

pub struct Parts<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image: &'a ImageInfo,
    pub env: Vec<(String, String)>,
    pub volume_mounts: Vec<BindMount>,
    pub etc: &'a EtcFiles,
    pub namespaces: &'a PodNamespaces,
    pub cgroups_path: String,
}

/// `uid[:gid]` from an image's User when numeric (names would need the
/// image's /etc/passwd; they fall back to root).
pub fn image_user(user: &str) -> (Option<u32>, Option<u32>) {
    let mut it = user.splitn(2, ':');
    let uid = it.next().and_then(|u| u.parse().ok());
    let gid = it.next().and_then(|g| g.parse().ok());
    (uid, gid)
}

pub fn build(p: Parts<'_>) -> SpecInput {
    let pod_spec = p.pod.spec.clone().unwrap_or_default();
    let pod_sc = pod_spec.security_context.clone().unwrap_or_default();
    let sc = p.container.security_context.clone().unwrap_or_default();
    let vars: std::collections::HashMap<String, String> = p.env.iter().cloned().collect();
    let merged = command::merge(
        p.container.command.as_deref(),
        p.container.args.as_deref(),
        &p.image.entrypoint,
        &p.image.cmd,
    );
    let args = merged.iter().map(|a| command::expand(a, &vars)).collect();
    let (img_uid, img_gid) = image_user(&p.image.user);
    let uid = sc
        .run_as_user
        .or(pod_sc.run_as_user)
        .map(|u| u as u32)
        .or(img_uid)
        .unwrap_or(0);
    let gid = sc
        .run_as_group
        .or(pod_sc.run_as_group)
        .map(|g| g as u32)
        .or(img_gid)
        .unwrap_or(0);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let host_network = pod_spec.host_network == Some(true);
    let mut mounts = p.volume_mounts;
    let taken = |d: &str, m: &[BindMount]| m.iter().any(|x| x.destination == d);
    for (dest, src) in [
        ("/etc/hosts", &p.etc.hosts),
        ("/etc/resolv.conf", &p.etc.resolv),
        ("/etc/hostname", &p.etc.hostname),
    ] {
        if !taken(dest, &mounts) {
            mounts.push(BindMount {
                destination: dest.into(),
                source: src.display().to_string(),
                read_only: false,
            });
        }
    }
    let hostname = p
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| p.pod.metadata.name.clone())
        .unwrap_or_default();
    SpecInput {
        args,
        env: p.env,
        cwd: p
            .container
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| p.image.working_dir.clone()),
        uid,
        gid,
        additional_gids: pod_sc
            .supplemental_groups
            .iter()
            .flatten()
            .map(|g| *g as u32)
            .collect(),
        hostname,
        mounts,
        net_ns: p.namespaces.net.as_ref().map(|n| n.display().to_string()),
        host_network,
        ipc_ns: Some(p.namespaces.ipc.display().to_string()),
        uts_ns: (!host_network).then(|| p.namespaces.uts.display().to_string()),
        cgroups_path: p.cgroups_path,
        privileged: sc.privileged == Some(true),
        caps_add: caps.add.unwrap_or_default(),
        caps_drop: caps.drop.unwrap_or_default(),
        read_only_rootfs: sc.read_only_root_filesystem == Some(true),
        no_new_privileges: sc.allow_privilege_escalation == Some(false),
        limits: spec::limits(p.container.resources.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, PodSpec, SecurityContext};
    use std::path::PathBuf;

    #[test]
    fn security_context_user_and_command() {
        let pod = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                security_context: Some(PodSecurityContext {
                    run_as_user: Some(1000),
                    supplemental_groups: Some(vec![5]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = Container {
            args: Some(vec!["echo $(X)".into()]),
            security_context: Some(SecurityContext {
                run_as_group: Some(2000),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let image = ImageInfo {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["ignored".into()],
            user: "7:8".into(),
            working_dir: "/w".into(),
            ..Default::default()
        };
        let etc = EtcFiles {
            hosts: PathBuf::from("/e/hosts"),
            resolv: PathBuf::from("/e/resolv.conf"),
            hostname: PathBuf::from("/e/hostname"),
        };
        let ns = PodNamespaces {
            net: Some("/n/x".into()),
            ipc: "/n/x.ipc".into(),
            uts: "/n/x.uts".into(),
        };
        let s = build(Parts {
            pod: &pod,
            container: &c,
            image: &image,
            env: vec![("X".into(), "1".into())],
            volume_mounts: vec![],
            etc: &etc,
            namespaces: &ns,
            cgroups_path: "/cg".into(),
        });
        assert_eq!(s.args, ["/bin/sh", "-c", "echo 1"]);
        assert_eq!((s.uid, s.gid), (1000, 2000));
        assert_eq!(s.additional_gids, [5]);
        assert_eq!(s.cwd, "/w");
        assert_eq!(s.hostname, "p");
        assert!(s.read_only_rootfs);
        assert_eq!(s.caps_add, ["NET_ADMIN"]);
        assert_eq!(s.mounts.len(), 3);
        assert_eq!(s.net_ns.as_deref(), Some("/n/x"));
        assert_eq!(image_user("nobody"), (None, None));
    }
}
