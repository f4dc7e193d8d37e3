//! The spec's error result: a numeric code, a short `msg` and `details` a
//! person can act on. Owns the code table; must never be printed anywhere but
//! the protocol's stdout answer.

use serde::Serialize;

/// A CNI error code: 1-99 are the spec's well-known codes, 100+ are ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const INCOMPATIBLE_VERSION: ErrorCode = ErrorCode(1);
    pub const UNSUPPORTED_FIELD: ErrorCode = ErrorCode(2);
    pub const UNKNOWN_CONTAINER: ErrorCode = ErrorCode(3);
    pub const INVALID_ENVIRONMENT: ErrorCode = ErrorCode(4);
    pub const IO_FAILURE: ErrorCode = ErrorCode(5);
    pub const DECODE_FAILURE: ErrorCode = ErrorCode(6);
    pub const INVALID_NETWORK_CONFIG: ErrorCode = ErrorCode(7);
    pub const TRY_AGAIN_LATER: ErrorCode = ErrorCode(11);
    pub const NOT_AVAILABLE: ErrorCode = ErrorCode(50);
    pub const NOT_AVAILABLE_LIMITED: ErrorCode = ErrorCode(51);
    /// Plugin-specific: no free address left in the node's subnet.
    pub const ADDRESSES_EXHAUSTED: ErrorCode = ErrorCode(100);
    /// Plugin-specific: CHECK found the attachment differs from its ADD.
    pub const CHECK_FAILED: ErrorCode = ErrorCode(101);
    /// Plugin-specific: a bug (a caught panic); the message says where.
    pub const INTERNAL: ErrorCode = ErrorCode(102);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error object as the spec writes it, tagged with `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}
