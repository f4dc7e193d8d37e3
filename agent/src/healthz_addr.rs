//! The value of `--healthz-addr`: an address to serve `/healthz` and
//! `/readyz` on, or `off`. The default port is kube-proxy's healthz port,
//! since the agent takes kube-proxy's place on a node.

use std::net::{Ipv4Addr, SocketAddr};

/// kube-proxy's `--healthz-bind-address` port.
pub const DEFAULT_PORT: u16 = 10256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthzAddr {
    Off,
    At(SocketAddr),
}

/// `off` or `host:port` (`0.0.0.0:10256`, `[::]:10256`).
pub fn parse(s: &str) -> Result<HealthzAddr, String> {
    if s == "off" {
        return Ok(HealthzAddr::Off);
    }
    s.parse()
        .map(HealthzAddr::At)
        .map_err(|_| format!("{s:?} is not an address like 0.0.0.0:{DEFAULT_PORT}, or off"))
}

/// On (every address, the default port) when a network component runs;
/// a kubelet-only agent has its own health on its API port.
pub fn default_for(network_components: bool) -> HealthzAddr {
    if network_components {
        HealthzAddr::At(SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)))
    } else {
        HealthzAddr::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_an_address_or_an_error_naming_the_value() {
        assert_eq!(parse("off"), Ok(HealthzAddr::Off));
        assert_eq!(
            parse("127.0.0.1:1"),
            Ok(HealthzAddr::At("127.0.0.1:1".parse().unwrap()))
        );
        assert!(parse("10256").unwrap_err().contains("\"10256\""));
        assert_eq!(default_for(false), HealthzAddr::Off);
        assert_eq!(
            default_for(true),
            HealthzAddr::At("0.0.0.0:10256".parse().unwrap())
        );
    }
}
