//! Turns one invocation (environment + stdin) into one answer (stdout +
//! exit code): version negotiation, command gating, panic capture. Every
//! failure becomes the spec's error JSON; this must never panic or print
//! anything but the answer.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::env::{Command, Invocation};
use super::error::{CniError, ErrorCode};
use super::netconf::NetConfHeader;
use super::result::CniResult;
use super::version::CniVersion;

/// Everything a plugin command gets: the environment, the negotiated
/// version, the common config keys and the raw config for its own keys.
#[derive(Debug)]
pub struct Request {
    pub invocation: Invocation,
    pub version: CniVersion,
    pub header: NetConfHeader,
    pub raw: Value,
}

/// The plugin's work, one method per command that takes a network config.
pub trait Plugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    fn del(&self, req: &Request) -> Result<(), CniError>;
    fn check(&self, req: &Request) -> Result<(), CniError>;
    fn gc(&self, req: &Request) -> Result<(), CniError>;
    fn status(&self, req: &Request) -> Result<(), CniError>;
}

/// What the process must print on stdout and exit with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub exit_code: i32,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            exit_code: 0,
        }
    }

    fn error(err: &CniError, version: &str) -> Self {
        Outcome {
            stdout: err.to_json(version).to_string(),
            exit_code: 1,
        }
    }
}

pub fn dispatch(
    plugin: &dyn Plugin,
    env: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Outcome {
    // The version for error answers: the config's own, when we speak it.
    let parsed: Result<Value, serde_json::Error> = serde_json::from_slice(stdin);
    let answer_version = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .and_then(|s| CniVersion::parse(s).ok())
        .unwrap_or(CniVersion::LATEST);

    let invocation = match Invocation::from_env(env) {
        Ok(inv) => inv,
        Err(err) => return Outcome::error(&err, answer_version.as_str()),
    };
    if invocation.command == Command::Version {
        return Outcome::ok(version_answer(answer_version));
    }

    let result = catch_unwind(AssertUnwindSafe(|| run(plugin, invocation, parsed)));
    match result {
        Ok(Ok(stdout)) => Outcome::ok(stdout),
        Ok(Err(err)) => {
            tracing::warn!(code = err.code.0, msg = %err.msg, details = %err.details, "command failed");
            Outcome::error(&err, answer_version.as_str())
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let err = CniError::new(
                ErrorCode::INTERNAL,
                "capstan-cni hit an internal error",
                format!("{what}; this is a bug, please report it with the plugin's log"),
            );
            Outcome::error(&err, answer_version.as_str())
        }
    }
}

fn version_answer(version: CniVersion) -> String {
    serde_json::json!({
        "cniVersion": version.as_str(),
        "supportedVersions": CniVersion::supported_list(),
    })
    .to_string()
}

fn run(
    plugin: &dyn Plugin,
    invocation: Invocation,
    parsed: Result<Value, serde_json::Error>,
) -> Result<String, CniError> {
    let raw = parsed.map_err(|e| {
        CniError::new(
            ErrorCode::DECODE_FAILURE,
            "network configuration on stdin is not valid JSON",
            format!("{e}; the runtime must pass the network config as a JSON object on stdin"),
        )
    })?;
    if !raw.is_object() {
        return Err(CniError::new(
            ErrorCode::DECODE_FAILURE,
            "network configuration on stdin is not a JSON object",
            format!("got {}", short(&raw)),
        ));
    }
    let version_text = raw
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            CniError::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                "network configuration has no cniVersion",
                format!(
                    "set \"cniVersion\" to one of {}",
                    CniVersion::supported_list().join(", ")
                ),
            )
        })?;
    let version = CniVersion::parse(version_text)?;
    let header: NetConfHeader = serde_json::from_value(raw.clone()).map_err(|e| {
        CniError::new(
            ErrorCode::INVALID_NETWORK_CONFIG,
            "invalid network configuration",
            format!("{e}; a network config needs string fields \"name\" and \"type\""),
        )
    })?;
    let command = invocation.command;
    let gate = |ok: bool, name: &str, since: &str| {
        if ok {
            Ok(())
        } else {
            Err(CniError::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!("{name} is not defined for cniVersion {version}"),
                format!("{name} needs cniVersion {since} or later"),
            ))
        }
    };
    let req = Request {
        invocation,
        version,
        header,
        raw,
    };
    match command {
        Command::Add => plugin.add(&req).map(|r| r.to_json(version).to_string()),
        Command::Del => plugin.del(&req).map(|()| String::new()),
        Command::Check => {
            gate(version.has_check(), "CHECK", "0.4.0")?;
            plugin.check(&req).map(|()| String::new())
        }
        Command::Gc => {
            gate(version.has_gc_and_status(), "GC", "1.1.0")?;
            plugin.gc(&req).map(|()| String::new())
        }
        Command::Status => {
            gate(version.has_gc_and_status(), "STATUS", "1.1.0")?;
            plugin.status(&req).map(|()| String::new())
        }
        Command::Version => Ok(version_answer(version)),
    }
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        s.truncate(80);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Plugin for Fake {
        fn add(&self, _: &Request) -> Result<CniResult, CniError> {
            Ok(CniResult::default())
        }
        fn del(&self, _: &Request) -> Result<(), CniError> {
            panic!("boom")
        }
        fn check(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn gc(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn status(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn env(cmd: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k| match k {
            "CNI_COMMAND" => Some(cmd.into()),
            "CNI_CONTAINERID" => Some("c1".into()),
            "CNI_NETNS" => Some("/run/netns/x".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            _ => None,
        }
    }

    fn code(o: &Outcome) -> u64 {
        let v: Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        v["code"].as_u64().unwrap_or(0)
    }

    #[test]
    fn malformed_json_is_code_6() {
        let o = dispatch(&Fake, env("ADD"), b"{not json");
        assert_eq!((o.exit_code, code(&o)), (1, 6));
    }

    #[test]
    fn unknown_version_is_code_1() {
        let o = dispatch(
            &Fake,
            env("ADD"),
            br#"{"cniVersion":"0.9.9","name":"n","type":"capstan"}"#,
        );
        assert_eq!((o.exit_code, code(&o)), (1, 1));
    }

    #[test]
    fn check_before_0_4_0_is_refused() {
        let o = dispatch(
            &Fake,
            env("CHECK"),
            br#"{"cniVersion":"0.3.1","name":"n","type":"capstan"}"#,
        );
        assert_eq!(code(&o), 1);
        let o = dispatch(
            &Fake,
            env("GC"),
            br#"{"cniVersion":"1.0.0","name":"n","type":"capstan"}"#,
        );
        assert_eq!(code(&o), 1);
    }

    #[test]
    fn a_panic_becomes_an_error_answer() {
        let o = dispatch(
            &Fake,
            env("DEL"),
            br#"{"cniVersion":"1.1.0","name":"n","type":"capstan"}"#,
        );
        assert_eq!((o.exit_code, code(&o)), (1, 102));
    }

    #[test]
    fn version_lists_supported() {
        let o = dispatch(&Fake, env("VERSION"), br#"{"cniVersion":"1.0.0"}"#);
        let v: Value = serde_json::from_str(&o.stdout).unwrap_or_default();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["supportedVersions"].as_array().map(Vec::len), Some(5));
    }
}
