//! The node IPAM flags, checked as kube-controller-manager checks them:
//! `--cluster-cidr` is one CIDR or two of different families (dual-stack,
//! the first family is the node's `spec.podCIDR`); `--node-cidr-mask-size`
//! is for single-stack clusters only, `--node-cidr-mask-size-ipv4/-ipv6`
//! (defaults 24 and 64) for their family.

use ipnetwork::IpNetwork;

pub const DEFAULT_MASK_V4: u8 = 24;
pub const DEFAULT_MASK_V6: u8 = 64;

/// Errors name the flag: they are shown to the operator as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--cluster-cidr: {0:?} is not a CIDR like 10.244.0.0/16")]
    NotACidr(String),
    #[error("--cluster-cidr is empty")]
    Empty,
    #[error("--cluster-cidr: at most two CIDRs (one IPv4, one IPv6), got {0}")]
    TooMany(usize),
    #[error("--cluster-cidr: {0} and {1} are the same family; dual-stack needs one IPv4 and one IPv6 CIDR")]
    SameFamily(IpNetwork, IpNetwork),
    #[error("--node-cidr-mask-size is not allowed with a dual-stack --cluster-cidr; use --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6")]
    SingleMaskOnDualStack,
    #[error("--node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6 are not allowed together with --node-cidr-mask-size")]
    MixedMaskFlags,
    #[error("--node-cidr-mask-size-{flag_family} is not allowed with a single-stack {cluster_family} --cluster-cidr")]
    MaskForAbsentFamily {
        flag_family: &'static str,
        cluster_family: &'static str,
    },
    #[error("{flag} {mask} does not fit in --cluster-cidr {cluster} (needs {min}..={max})")]
    MaskDoesNotFit {
        flag: &'static str,
        mask: u8,
        cluster: IpNetwork,
        min: u8,
        max: u8,
    },
}

/// The mask-size flags as given (None: not on the command line).
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskFlags {
    pub single: Option<u8>,
    pub v4: Option<u8>,
    pub v6: Option<u8>,
}

/// One family's pool: node CIDRs of `/mask` carved from `cluster`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub cluster: IpNetwork,
    pub mask: u8,
}

/// The validated node IPAM configuration: one pool per family, in
/// `--cluster-cidr` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCidrs {
    pools: Vec<Pool>,
}

/// `--cluster-cidr`'s value: comma-separated CIDRs. Host bits are dropped
/// (10.244.1.0/16 means 10.244.0.0/16), as before and as Go's ParseCIDR.
pub fn parse_cluster_cidrs(s: &str) -> Result<Vec<IpNetwork>, ConfigError> {
    let parts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(ConfigError::Empty);
    }
    if parts.len() > 2 {
        return Err(ConfigError::TooMany(parts.len()));
    }
    let mut out = Vec::new();
    for p in parts {
        // A bare address parses as a /32 or /128; a pool must say its size.
        let net: IpNetwork = p
            .contains('/')
            .then(|| p.parse().ok())
            .flatten()
            .ok_or_else(|| ConfigError::NotACidr(p.to_string()))?;
        let net = IpNetwork::new(net.network(), net.prefix())
            .map_err(|_| ConfigError::NotACidr(p.to_string()))?;
        out.push(net);
    }
    if let [a, b] = out[..] {
        if a.is_ipv4() == b.is_ipv4() {
            return Err(ConfigError::SameFamily(a, b));
        }
    }
    Ok(out)
}

fn family(n: &IpNetwork) -> &'static str {
    if n.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl ClusterCidrs {
    /// kube-controller-manager's rules for which mask flag applies, then
    /// a check that each mask fits its cluster CIDR and leaves room for a
    /// gateway and a pod (at most /30 and /126).
    pub fn new(cidrs: &[IpNetwork], masks: MaskFlags) -> Result<Self, ConfigError> {
        let first = cidrs.first().ok_or(ConfigError::Empty)?;
        let dual = cidrs.len() > 1;
        let (v4, v6, single_flag) = if dual {
            if masks.single.is_some() {
                return Err(ConfigError::SingleMaskOnDualStack);
            }
            (masks.v4, masks.v6, false)
        } else if let Some(m) = masks.single {
            if masks.v4.is_some() || masks.v6.is_some() {
                return Err(ConfigError::MixedMaskFlags);
            }
            (Some(m), Some(m), true)
        } else {
            let absent = if first.is_ipv4() {
                masks.v6.map(|_| "ipv6")
            } else {
                masks.v4.map(|_| "ipv4")
            };
            if let Some(flag_family) = absent {
                return Err(ConfigError::MaskForAbsentFamily {
                    flag_family,
                    cluster_family: family(first),
                });
            }
            (masks.v4, masks.v6, false)
        };
        let mut pools = Vec::new();
        for &cluster in cidrs {
            let (mask, flag, max) = if cluster.is_ipv4() {
                (
                    v4.unwrap_or(DEFAULT_MASK_V4),
                    "--node-cidr-mask-size-ipv4",
                    30,
                )
            } else {
                (
                    v6.unwrap_or(DEFAULT_MASK_V6),
                    "--node-cidr-mask-size-ipv6",
                    126,
                )
            };
            let flag = if single_flag {
                "--node-cidr-mask-size"
            } else {
                flag
            };
            if mask < cluster.prefix() || mask > max {
                return Err(ConfigError::MaskDoesNotFit {
                    flag,
                    mask,
                    cluster,
                    min: cluster.prefix(),
                    max,
                });
            }
            pools.push(Pool { cluster, mask });
        }
        Ok(ClusterCidrs { pools })
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    pub fn is_dual_stack(&self) -> bool {
        self.pools.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(s: &str) -> Vec<IpNetwork> {
        parse_cluster_cidrs(s).unwrap()
    }

    fn masks(single: Option<u8>, v4: Option<u8>, v6: Option<u8>) -> MaskFlags {
        MaskFlags { single, v4, v6 }
    }

    #[test]
    fn parses_one_or_two_families() {
        assert_eq!(
            cidrs("10.244.0.0/16"),
            vec!["10.244.0.0/16".parse().unwrap()]
        );
        assert_eq!(
            cidrs("10.244.0.0/16, fd00:10:244::/56"),
            vec![
                "10.244.0.0/16".parse::<IpNetwork>().unwrap(),
                "fd00:10:244::/56".parse().unwrap()
            ]
        );
        // IPv6 first is allowed: then the IPv6 CIDR is spec.podCIDR.
        assert_eq!(cidrs("fd00::/48,10.0.0.0/8").len(), 2);
        // Host bits dropped, as before.
        assert_eq!(cidrs("10.244.1.0/16")[0].to_string(), "10.244.0.0/16");
    }

    #[test]
    fn rejects_bad_cluster_cidrs() {
        use ConfigError::*;
        assert_eq!(
            parse_cluster_cidrs("10.244.0.0"),
            Err(NotACidr("10.244.0.0".into()))
        );
        assert_eq!(
            parse_cluster_cidrs("nope/8"),
            Err(NotACidr("nope/8".into()))
        );
        assert_eq!(
            parse_cluster_cidrs("10.0.0.0/33"),
            Err(NotACidr("10.0.0.0/33".into()))
        );
        assert_eq!(parse_cluster_cidrs(" , "), Err(Empty));
        assert_eq!(
            parse_cluster_cidrs("10.0.0.0/8,fd00::/48,10.1.0.0/16"),
            Err(TooMany(3))
        );
        assert!(matches!(
            parse_cluster_cidrs("10.0.0.0/8,192.168.0.0/16"),
            Err(SameFamily(..))
        ));
        assert!(matches!(
            parse_cluster_cidrs("fd00::/48,fd01::/48"),
            Err(SameFamily(..))
        ));
        for e in [
            parse_cluster_cidrs("x").unwrap_err(),
            parse_cluster_cidrs("10.0.0.0/8,192.168.0.0/16").unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(
                text.starts_with("--cluster-cidr") && !text.contains('\n'),
                "{text}"
            );
        }
    }

    #[test]
    fn mask_defaults_and_flags_as_kube_controller_manager() {
        let dual = cidrs("10.244.0.0/16,fd00:10:244::/56");
        let c = ClusterCidrs::new(&dual, MaskFlags::default()).unwrap();
        assert!(c.is_dual_stack());
        assert_eq!(c.pools()[0].mask, 24);
        assert_eq!(c.pools()[1].mask, 64);
        let c = ClusterCidrs::new(&dual, masks(None, Some(25), Some(60))).unwrap();
        assert_eq!((c.pools()[0].mask, c.pools()[1].mask), (25, 60));
        assert_eq!(
            ClusterCidrs::new(&dual, masks(Some(24), None, None)),
            Err(ConfigError::SingleMaskOnDualStack)
        );
        // Single-stack: the old flag keeps working, alone.
        let v4 = cidrs("10.244.0.0/16");
        let c = ClusterCidrs::new(&v4, masks(Some(26), None, None)).unwrap();
        assert_eq!(
            c.pools(),
            &[Pool {
                cluster: v4[0],
                mask: 26
            }]
        );
        assert_eq!(
            ClusterCidrs::new(&v4, MaskFlags::default())
                .unwrap()
                .pools()[0]
                .mask,
            24
        );
        assert_eq!(
            ClusterCidrs::new(&v4, masks(None, Some(23), None))
                .unwrap()
                .pools()[0]
                .mask,
            23
        );
        assert_eq!(
            ClusterCidrs::new(&v4, masks(Some(24), Some(24), None)),
            Err(ConfigError::MixedMaskFlags)
        );
        assert!(matches!(
            ClusterCidrs::new(&v4, masks(None, None, Some(64))),
            Err(ConfigError::MaskForAbsentFamily {
                flag_family: "ipv6",
                ..
            })
        ));
        let v6 = cidrs("fd00::/48");
        assert_eq!(
            ClusterCidrs::new(&v6, MaskFlags::default())
                .unwrap()
                .pools()[0]
                .mask,
            64
        );
        assert!(matches!(
            ClusterCidrs::new(&v6, masks(None, Some(24), None)),
            Err(ConfigError::MaskForAbsentFamily {
                flag_family: "ipv4",
                ..
            })
        ));
    }

    #[test]
    fn masks_must_fit_and_errors_name_the_flag() {
        let dual = cidrs("10.244.0.0/16,fd00:10:244::/56");
        let e = ClusterCidrs::new(&dual, masks(None, Some(8), None)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--node-cidr-mask-size-ipv4 8 does not fit"),
            "{e}"
        );
        let e = ClusterCidrs::new(&dual, masks(None, None, Some(48))).unwrap_err();
        assert!(
            e.to_string().starts_with("--node-cidr-mask-size-ipv6 48"),
            "{e}"
        );
        let e = ClusterCidrs::new(&dual, masks(None, Some(31), None)).unwrap_err();
        assert!(e.to_string().contains("16..=30"), "{e}");
        let v4 = cidrs("10.244.0.0/16");
        let e = ClusterCidrs::new(&v4, masks(Some(12), None, None)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--node-cidr-mask-size 12 does not fit"),
            "{e}"
        );
        assert!(ClusterCidrs::new(&v4, masks(Some(16), None, None)).is_ok());
    }
}
