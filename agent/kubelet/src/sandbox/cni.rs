//! Runs CNI plugins as the spec says: the network config list is the
//! lowest-sorted file in the conf dir (as kubelet does), each plugin is
//! exec'd from the bin dir with CNI_* in the environment and its config on
//! stdin; ADD chains prevResult forward, DEL runs in reverse. Never keeps
//! state itself: the ADD result is returned for the caller to record.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Cni {
    pub conf_dir: PathBuf,
    pub bin_dir: PathBuf,
}

/// Who the attachment is for (CNI_ARGS as kubelet passes them).
pub struct Attachment<'a> {
    pub sandbox_id: &'a str,
    pub netns: &'a Path,
    pub pod_namespace: &'a str,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
}

pub const IFNAME: &str = "eth0";

/// A conflist (or a single .conf turned into a list of one).
pub fn parse_conf(text: &str, conflist: bool) -> std::result::Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if conflist {
        if !v["plugins"].is_array() {
            return Err("conflist without a plugins array".into());
        }
        return Ok(v);
    }
    Ok(json!({
        "cniVersion": v["cniVersion"].clone(),
        "name": v["name"].clone(),
        "plugins": [v],
    }))
}

/// Pod IPs out of a CNI result (1.x `ips[].address`, `a.b.c.d/len`).
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .collect()
}

/// The config a plugin gets on stdin: its own object plus the list's
/// name and version, and the previous plugin's result.
pub fn plugin_input(list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    conf["name"] = list["name"].clone();
    if let Some(p) = prev {
        conf["prevResult"] = p.clone();
    }
    conf
}

impl Cni {
    /// The lowest-sorted *.conflist/*.conf/*.json in the conf dir.
    pub fn load(&self) -> Result<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.conf_dir)
            .map_err(Error::io("read CNI conf dir", &self.conf_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        files.sort();
        let path = files.first().ok_or_else(|| Error::Cni {
            op: "load",
            sandbox: String::new(),
            message: format!("no network config in {}", self.conf_dir.display()),
        })?;
        let text = std::fs::read_to_string(path).map_err(Error::io("read CNI config", path))?;
        let conflist = path.extension().and_then(|e| e.to_str()) == Some("conflist");
        parse_conf(&text, conflist).map_err(|message| Error::Cni {
            op: "load",
            sandbox: String::new(),
            message: format!("{}: {message}", path.display()),
        })
    }

    async fn exec(
        &self,
        command: &'static str,
        at: &Attachment<'_>,
        conf: &Value,
    ) -> Result<Value> {
        let fail = |message: String| Error::Cni {
            op: command,
            sandbox: at.sandbox_id.to_string(),
            message,
        };
        let kind = conf["type"]
            .as_str()
            .ok_or_else(|| fail("plugin without a type".into()))?;
        let bin = self.bin_dir.join(kind);
        let mut child = tokio::process::Command::new(&bin)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", at.sandbox_id)
            .env("CNI_NETNS", at.netns)
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_PATH", &self.bin_dir)
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                    at.pod_namespace, at.pod_name, at.sandbox_id, at.pod_uid
                ),
            )
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("run {}: {e}", bin.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let bytes = serde_json::to_vec(conf).unwrap_or_default();
            // A plugin may answer without reading stdin (broken pipe is fine).
            let _ = stdin.write_all(&bytes).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("wait {}: {e}", bin.display())))?;
        let stdout: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
        };
        if !out.status.success() {
            let msg = stdout["msg"]
                .as_str()
                .map(|m| match stdout["details"].as_str() {
                    Some(d) if !d.is_empty() => format!("{m}: {d}"),
                    _ => m.to_string(),
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            return Err(fail(format!("{kind}: {msg}")));
        }
        Ok(stdout)
    }

    /// ADD through every plugin of the list; the final result.
    pub async fn add(&self, at: &Attachment<'_>) -> Result<Value> {
        let list = self.load()?;
        let mut prev: Option<Value> = None;
        for plugin in list["plugins"].as_array().into_iter().flatten() {
            let conf = plugin_input(&list, plugin, prev.as_ref());
            let r = self.exec("ADD", at, &conf).await?;
            prev = Some(r);
        }
        prev.ok_or_else(|| Error::Cni {
            op: "ADD",
            sandbox: at.sandbox_id.to_string(),
            message: "empty plugin list".into(),
        })
    }

    /// DEL through the list in reverse, with the recorded ADD result.
    pub async fn del(&self, at: &Attachment<'_>, prev: Option<&Value>) -> Result<()> {
        let list = self.load()?;
        let plugins: Vec<&Value> = list["plugins"].as_array().into_iter().flatten().collect();
        for plugin in plugins.into_iter().rev() {
            let conf = plugin_input(&list, plugin, prev);
            self.exec("DEL", at, &conf).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_parsing_inputs_and_results() {
        let one = parse_conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"capstan"}"#,
            false,
        )
        .unwrap();
        assert_eq!(one["plugins"][0]["type"], "capstan");
        assert!(parse_conf(r#"{"name":"n"}"#, true).is_err());
        let list = json!({"cniVersion":"1.1.0","name":"net","plugins":[{"type":"a"}]});
        let input = plugin_input(&list, &list["plugins"][0], Some(&json!({"ips":[]})));
        assert_eq!(input["name"], "net");
        assert_eq!(input["cniVersion"], "1.1.0");
        assert!(input["prevResult"].is_object());
        let r = json!({"ips":[{"address":"10.244.1.5/24"},{"address":"fd00::5/64"}]});
        let ips = result_ips(&r);
        assert_eq!(ips.len(), 2);
        assert_eq!(ips[0].to_string(), "10.244.1.5");
    }
}
