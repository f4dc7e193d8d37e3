//! The node-local outputs of the lease: the subnet file for the CNI plugin,
//! masquerade rules and IP forwarding. Never touches peers' state.

use capstan_subnet_file::{GatewayPrefix, SubnetFile};
use ipnetwork::IpNetwork;

use crate::backend::masquerade;
use crate::backend::vxlan;
use crate::component::error::OverlayError;
use crate::component::options::Options;
use crate::subnet::config::NetworkConfig;
use crate::subnet::lease::Lease;

/// This node's IPv6 subnet, when the config is dual-stack and the lease
/// (or, in kube mode, the Node's second podCIDR) has one inside it.
pub(super) fn own_ipv6(cfg: &NetworkConfig, lease: &Lease) -> Option<ipnetwork::Ipv6Network> {
    let n6 = cfg.ipv6_network?;
    lease
        .attrs
        .ipv6_subnet
        .filter(|s| n6.contains(s.network()) && s.prefix() >= n6.prefix())
}

/// Subnet file and masquerade: the node-local outputs of the lease.
pub(super) fn publish_local(
    opts: &Options,
    cfg: &NetworkConfig,
    underlay: &vxlan::Underlay,
    lease: &Lease,
) -> Result<(), OverlayError> {
    SubnetFile {
        network: Some(cfg.network.into()),
        subnet: Some(GatewayPrefix::of_subnet(lease.subnet.into())),
        mtu: Some(vxlan::pod_mtu(cfg, underlay)),
        ip_masq: Some(opts.ip_masq),
        ipv6_network: own_ipv6(cfg, lease)
            .and(cfg.ipv6_network)
            .map(IpNetwork::from),
        ipv6_subnet: own_ipv6(cfg, lease).map(|s| GatewayPrefix::of_subnet(s.into())),
    }
    .write(&opts.subnet_file)?;
    let v6 = own_ipv6(cfg, lease).zip(cfg.ipv6_network);
    if opts.ip_masq {
        if masquerade::ensure(cfg.network.into(), lease.subnet.into())? {
            tracing::info!(
                table = masquerade::TABLE,
                family = "ip",
                "masquerade rules installed"
            );
        }
        match v6 {
            Some((subnet6, network6)) => {
                if masquerade::ensure(network6.into(), subnet6.into())? {
                    tracing::info!(
                        table = masquerade::TABLE,
                        family = "ip6",
                        "masquerade rules installed"
                    );
                }
            }
            None => masquerade::remove("ip6")?,
        }
    } else {
        masquerade::remove("ip")?;
        masquerade::remove("ip6")?;
    }
    Ok(())
}

/// Re-installs the masquerade table if something removed or changed it.
pub(super) async fn keep_masquerade(network: ipnetwork::IpNetwork, subnet: ipnetwork::IpNetwork) {
    match tokio::task::spawn_blocking(move || masquerade::ensure(network, subnet)).await {
        Ok(Ok(true)) => tracing::warn!(
            table = masquerade::TABLE,
            "masquerade rules were missing or changed; restored"
        ),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "masquerade rules could not be restored; will retry")
        }
        Err(e) => tracing::warn!(error = %e, "masquerade check panicked"),
    }
}

pub(super) fn enable_forwarding(ipv6: bool) -> Result<(), OverlayError> {
    const V4: &str = "/proc/sys/net/ipv4/ip_forward";
    const V6: &str = "/proc/sys/net/ipv6/conf/all/forwarding";
    let paths: &[&'static str] = if ipv6 { &[V4, V6] } else { &[V4] };
    for &path in paths {
        let on = std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1");
        if !on {
            std::fs::write(path, "1")
                .map_err(|source| OverlayError::Forwarding { path, source })?;
            tracing::info!(path, "enabled forwarding");
        }
    }
    Ok(())
}
