//! The `CNI_*` environment variables, read once into an `Invocation` and
//! validated per command. Must never read stdin or decide anything about
//! the network.

use std::fmt;
use std::path::PathBuf;

use super::error::{CniError, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }
}

/// `CNI_CONTAINERID`: alphanumeric first, then alphanumerics, `_`, `.`, `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let mut chars = text.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if first_ok && rest_ok {
            Ok(ContainerId(text.to_string()))
        } else {
            Err(CniError::new(
                ErrorCode::INVALID_ENVIRONMENT,
                format!("invalid CNI_CONTAINERID {text:?}"),
                "a container ID starts with a letter or digit and holds only letters, digits, '_', '.' and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `CNI_IFNAME`: a valid Linux interface name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IfName(String);

impl IfName {
    pub fn parse(text: &str) -> Result<Self, CniError> {
        let ok = !text.is_empty()
            && text.len() < 16
            && text != "."
            && text != ".."
            && !text
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if ok {
            Ok(IfName(text.to_string()))
        } else {
            Err(CniError::new(
                ErrorCode::INVALID_ENVIRONMENT,
                format!("invalid CNI_IFNAME {text:?}"),
                "an interface name is 1-15 characters, not '.' or '..', without '/', ':' or whitespace",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One plugin call as the runtime described it in the environment.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub command: Command,
    pub container_id: Option<ContainerId>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<IfName>,
    pub args: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
}

impl Invocation {
    /// Reads the variables through `get` (std::env::var in the binary, a
    /// map in tests) and checks the ones `CNI_COMMAND` requires.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let raw = get("CNI_COMMAND").filter(|s| !s.is_empty());
        let Some(raw) = raw else {
            return Err(missing(
                "CNI_COMMAND",
                "one of ADD, DEL, CHECK, VERSION, GC, STATUS",
            ));
        };
        let command = Command::parse(&raw).ok_or_else(|| {
            CniError::new(
                ErrorCode::INVALID_ENVIRONMENT,
                format!("unknown CNI_COMMAND {raw:?}"),
                "CNI_COMMAND must be one of ADD, DEL, CHECK, VERSION, GC, STATUS",
            )
        })?;
        let non_empty = |name: &str| get(name).filter(|s| !s.is_empty());

        let (need_id, need_netns, need_ifname) = match command {
            Command::Add | Command::Check => (true, true, true),
            Command::Del => (true, false, true),
            Command::Version | Command::Gc | Command::Status => (false, false, false),
        };
        let container_id = match non_empty("CNI_CONTAINERID") {
            Some(id) => Some(ContainerId::parse(&id)?),
            None if need_id => return Err(missing("CNI_CONTAINERID", "the container's ID")),
            None => None,
        };
        let netns = match non_empty("CNI_NETNS") {
            Some(p) => Some(PathBuf::from(p)),
            None if need_netns => {
                return Err(missing(
                    "CNI_NETNS",
                    "the path of the container's network namespace",
                ))
            }
            None => None,
        };
        let ifname = match non_empty("CNI_IFNAME") {
            Some(n) => Some(IfName::parse(&n)?),
            None if need_ifname => {
                return Err(missing(
                    "CNI_IFNAME",
                    "the interface name to create in the container, e.g. eth0",
                ))
            }
            None => None,
        };
        let args = non_empty("CNI_ARGS")
            .map(|a| parse_args(&a))
            .transpose()?
            .unwrap_or_default();
        let path = non_empty("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Invocation {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }
}

fn missing(var: &str, what: &str) -> CniError {
    CniError::new(
        ErrorCode::INVALID_ENVIRONMENT,
        format!("missing required environment variable {var}"),
        format!("the runtime must set {var} to {what}"),
    )
}

/// `CNI_ARGS` is `K=V;K2=V2`.
fn parse_args(text: &str) -> Result<Vec<(String, String)>, CniError> {
    text.split(';')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    CniError::new(
                        ErrorCode::INVALID_ENVIRONMENT,
                        format!("invalid CNI_ARGS entry {kv:?}"),
                        "CNI_ARGS is a ';'-separated list of KEY=VALUE pairs",
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn add_needs_id_netns_and_ifname() {
        let err = Invocation::from_env(env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]))
            .err()
            .map(|e| (e.code, e.msg));
        assert_eq!(
            err,
            Some((
                ErrorCode::INVALID_ENVIRONMENT,
                "missing required environment variable CNI_CONTAINERID".to_string()
            ))
        );
    }

    #[test]
    fn del_without_netns_is_fine() {
        let inv = Invocation::from_env(env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "A=1;B=2"),
        ]));
        let inv = inv.ok();
        assert!(inv
            .as_ref()
            .is_some_and(|i| i.netns.is_none() && i.args.len() == 2));
    }

    #[test]
    fn rejects_bad_names() {
        assert!(IfName::parse("eth0:1").is_err());
        assert!(IfName::parse("a-very-long-name-x").is_err());
        assert!(ContainerId::parse("-abc").is_err());
        assert!(ContainerId::parse("a.b_c-1").is_ok());
    }
}
