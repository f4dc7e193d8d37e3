//! The command line: `init` and `serve` (the default) with their flags, as
//! kube-apiserver and kube-controller-manager spell them, and the checks
//! that make a bad combination a usage error rather than a failed start.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use capstan_apiserver::auth::service_account::DEFAULT_ISSUER;
use capstan_controllers::node_ipam::{self, ClusterCidrs, ConfigError, MaskFlags};
use clap::{Args, Parser, Subcommand};
use ipnetwork::{IpNetwork, Ipv4Network};

#[derive(Parser, Debug)]
#[command(
    name = "capstan-control",
    version,
    about = "Capstan control plane",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Make the cluster CA, certificates, token file and kubeconfigs
    /// (keeps whatever exists).
    Init(InitArgs),
    /// Serve the Kubernetes API over HTTPS (the default).
    Serve(Box<ServeArgs>),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory for the CA, certificates, tokens.csv and kubeconfigs.
    #[arg(long)]
    pub dir: PathBuf,
    /// The API server's URL as clients reach it (https://HOST:PORT).
    #[arg(long)]
    pub server: String,
    /// Extra DNS names or IPs for the serving certificate.
    #[arg(long = "san", value_delimiter = ',')]
    pub sans: Vec<String>,
    /// Nodes to issue credentials for (certificate, token, kubeconfig).
    #[arg(long = "node", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Service ClusterIP range: its first address goes into the SANs.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: Ipv4Network,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// etcd endpoints, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_endpoints: Vec<String>,
    /// CA that signed etcd's serving certificate (etcd over TLS).
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Key of --etcd-certfile.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Key prefix of the API's objects in etcd.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// Directory `init` wrote; sets the four files below unless given.
    #[arg(long)]
    pub pki_dir: Option<PathBuf>,
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA for client certificates.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Bearer tokens: token,user,uid,"group1,group2" per line.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// PEM file of keys that verify service-account tokens (public keys,
    /// PKCS#8 private keys or certificates); repeatable
    /// [default: sa.pub in --pki-dir].
    #[arg(long = "service-account-key-file")]
    pub service_account_key_files: Vec<PathBuf>,
    /// PKCS#8 PEM private key (ECDSA P-256 or RSA) that signs
    /// service-account tokens [default: sa.key in --pki-dir].
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// `iss` of service-account tokens; repeatable: the first is written
    /// into new tokens, tokens of any are accepted.
    #[arg(long = "service-account-issuer", default_value = DEFAULT_ISSUER)]
    pub service_account_issuers: Vec<String>,
    /// Audiences of this API: a token must name one of them, and a
    /// TokenRequest without audiences gets them [default: the first
    /// --service-account-issuer].
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// Longest lifetime a TokenRequest gets (e.g. 24h); longer requests
    /// are shortened to it, with a warning [default: no limit].
    #[arg(long, value_parser = parse_max_token_expiration)]
    pub service_account_max_token_expiration: Option<Duration>,
    /// Give pod-bound tokens asked for with the kubelet's legacy 3607 s a
    /// year's lifetime (with a `warnafter` claim), as kube-apiserver does.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub service_account_extend_token_expiration: bool,
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: Ipv4Network,
    /// NodePort range, FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: (u16, u16),
    /// How long requests in flight may finish after SIGTERM.
    #[arg(long, default_value_t = 5)]
    pub shutdown_grace_seconds: u64,
    /// Controllers to run, as kube-controller-manager: `*` for all, `name`
    /// to add, `-name` to remove; empty for none.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Run the scheduler (`--scheduler=false` to leave pods unbound).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,
    /// Credentials the scheduler and controllers use against this server
    /// (default: the admin kubeconfig in --pki-dir).
    #[arg(long)]
    pub loopback_kubeconfig: Option<PathBuf>,
    /// Give every node a pod CIDR from --cluster-cidr (node IPAM).
    #[arg(long)]
    pub allocate_node_cidrs: bool,
    /// The pod network node CIDRs are carved from: one CIDR, or an IPv4
    /// and an IPv6 one comma-separated (dual-stack; the first is podCIDR).
    #[arg(long, default_value = "10.244.0.0/16", value_parser = parse_cluster_cidr)]
    pub cluster_cidr: ClusterCidrList,
    /// Prefix length of each node's pod CIDR, single-stack clusters only
    /// [default: 24 for IPv4, 64 for IPv6].
    #[arg(long)]
    pub node_cidr_mask_size: Option<u8>,
    /// Prefix length of each node's IPv4 pod CIDR [default: 24].
    #[arg(long)]
    node_cidr_mask_size_ipv4: Option<u8>,
    /// Prefix length of each node's IPv6 pod CIDR [default: 64].
    #[arg(long)]
    node_cidr_mask_size_ipv6: Option<u8>,
    /// How long a node may stay silent before it is Ready=Unknown, e.g. 40s.
    #[arg(long, default_value = "40s", value_parser = parse_seconds)]
    pub node_monitor_grace_period: Duration,
}

/// `--cluster-cidr`'s CIDRs (a named type: clap treats a bare Vec as a
/// list of values).
#[derive(Debug, Clone)]
pub struct ClusterCidrList(pub Vec<IpNetwork>);

fn parse_cluster_cidr(s: &str) -> Result<ClusterCidrList, String> {
    node_ipam::config::parse_cluster_cidrs(s)
        .map(ClusterCidrList)
        // clap names the flag itself: "invalid value 'x' for '--cluster-cidr'".
        .map_err(|e| {
            e.to_string()
                .trim_start_matches("--cluster-cidr: ")
                .to_string()
        })
}

/// The node IPAM configuration when --allocate-node-cidrs is on, checked
/// up front so a bad combination is a usage error, not a failed start.
pub fn node_ipam_config(a: &ServeArgs) -> Result<Option<ClusterCidrs>, ConfigError> {
    if !a.allocate_node_cidrs {
        return Ok(None);
    }
    let masks = MaskFlags {
        single: a.node_cidr_mask_size,
        v4: a.node_cidr_mask_size_ipv4,
        v6: a.node_cidr_mask_size_ipv6,
    };
    ClusterCidrs::new(&a.cluster_cidr.0, masks).map(Some)
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    n.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?} is not a number of seconds like 40s"))
}

/// A Go duration as kube-apiserver's flags take it: `24h`, `1h30m`, `90s`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 24h, 30m or 3600s");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let tail = &rest[digits..];
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let unit = match &tail[..unit_len] {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        rest = &tail[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// kube-apiserver's bounds: 0 (no limit), or between 1 hour and 2^32 s.
fn parse_max_token_expiration(s: &str) -> Result<Duration, String> {
    let d = parse_go_duration(s)?;
    if d != Duration::ZERO && (d < Duration::from_secs(3600) || d.as_secs() > 1 << 32) {
        return Err("must be between 1 hour and 2^32 seconds".into());
    }
    Ok(d)
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not FIRST-LAST"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
    if a == 0 || a > b {
        return Err(format!("empty or zero range {s}"));
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "h", "10", "10d", "1.5h", "-1h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_max_token_expiration("30m").is_err());
        assert_eq!(
            parse_max_token_expiration("2h"),
            Ok(Duration::from_secs(7200))
        );
    }
}
