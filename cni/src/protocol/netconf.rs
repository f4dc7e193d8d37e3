//! The keys every CNI network config carries (name, type, cniVersion,
//! prevResult, dns, GC's valid attachments). Plugin-specific keys belong to
//! the plugin's own config type; this must never interpret them.

use serde::Deserialize;

use super::result::{CniResult, Dns};

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConfHeader {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    #[serde(default)]
    pub prev_result: Option<CniResult>,
    #[serde(default)]
    pub dns: Option<Dns>,
    /// GC (1.1.0): attachments the runtime still knows; anything else is
    /// garbage. `cni.dev/attachments` is the name an early 1.1 draft used.
    #[serde(
        default,
        rename = "cni.dev/valid-attachments",
        alias = "cni.dev/attachments"
    )]
    pub valid_attachments: Option<Vec<Attachment>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}
