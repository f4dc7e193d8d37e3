//! The service proxy: turns Services and EndpointSlices into dataplane rules
//! (nftables or eBPF maps). Nothing is built here yet; see the proxy issues.
