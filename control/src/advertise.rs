//! The address the `default/kubernetes` endpoints advertise: the
//! `--advertise-address` flag, else the bind address when it is a
//! specific IPv4 one, else the host's first non-loopback IPv4 address (of
//! an interface that is up), as kube-apiserver picks one.

use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, thiserror::Error)]
pub enum AdvertiseError {
    #[error(
        "--bind-address {0} is IPv6; the kubernetes service is IPv4: pass --advertise-address"
    )]
    Ipv6Bind(IpAddr),
    #[error("no non-loopback IPv4 address on this host to advertise: pass --advertise-address")]
    NoAddress,
    #[error("list the host's addresses: {0}")]
    List(nix::Error),
}

/// The first candidate that is not loopback, link-local or unspecified.
pub fn first_usable(candidates: impl IntoIterator<Item = Ipv4Addr>) -> Option<Ipv4Addr> {
    candidates
        .into_iter()
        .find(|a| !a.is_loopback() && !a.is_unspecified() && !a.is_link_local())
}

fn host_addresses() -> Result<Vec<Ipv4Addr>, AdvertiseError> {
    use nix::net::if_::InterfaceFlags;
    Ok(nix::ifaddrs::getifaddrs()
        .map_err(AdvertiseError::List)?
        .filter(|i| i.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|i| {
            i.address
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map(|s| s.ip())
        })
        .collect())
}

pub fn advertise_address(flag: Option<Ipv4Addr>, bind: IpAddr) -> Result<Ipv4Addr, AdvertiseError> {
    if let Some(a) = flag {
        return Ok(a);
    }
    match bind {
        IpAddr::V4(a) if !a.is_unspecified() => Ok(a),
        IpAddr::V6(a) if !a.is_unspecified() => Err(AdvertiseError::Ipv6Bind(bind)),
        _ => first_usable(host_addresses()?).ok_or(AdvertiseError::NoAddress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_bind_then_the_host() {
        let a = Ipv4Addr::new(192, 168, 5, 5);
        let b = IpAddr::from([10, 0, 0, 7]);
        assert_eq!(advertise_address(Some(a), b).unwrap(), a);
        assert_eq!(
            advertise_address(None, b).unwrap(),
            Ipv4Addr::new(10, 0, 0, 7)
        );
        assert!(matches!(
            advertise_address(None, "fd00::1".parse().unwrap()),
            Err(AdvertiseError::Ipv6Bind(_))
        ));
        let picked = first_usable([
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(169, 254, 1, 1),
            Ipv4Addr::new(172, 16, 0, 2),
        ]);
        assert_eq!(picked, Some(Ipv4Addr::new(172, 16, 0, 2)));
        assert_eq!(first_usable([Ipv4Addr::LOCALHOST]), None);
    }
}
