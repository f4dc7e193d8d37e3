//! The keys every CNI network config carries (name, type, cniVersion,
//! prevResult, dns, GC's valid attachments). Plugin-specific keys belong to
//! the plugin's own config type; this must never interpret them.

use serde::Deserialize;

use super::error::{CniError, ErrorCode};
use super::result::{CniResult, Dns};

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConfHeader {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// Kept raw: DEL must succeed even when a runtime hands back a result
    /// we cannot read; ADD and CHECK decode it with `prev_result()`.
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
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

impl NetConfHeader {
    /// The decoded prevResult, if there is one.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                CniError::new(
                    ErrorCode::INVALID_NETWORK_CONFIG,
                    "prevResult is not a CNI result",
                    format!(
                        "{e}; prevResult must be the result of the previous plugin in the chain"
                    ),
                )
            }),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}
