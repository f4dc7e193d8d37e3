//! The CNI spec versions this plugin speaks and what each one allows.
//! Must never accept a version whose result shape it cannot produce.

use std::fmt;

use super::error::{CniError, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    pub const SUPPORTED: [CniVersion; 5] = [
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn parse(text: &str) -> Result<Self, CniError> {
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::INCOMPATIBLE_VERSION,
                    format!("unsupported cniVersion {text:?}"),
                    format!(
                        "capstan supports cniVersion {}; set one of them in the network config",
                        Self::supported_list().join(", ")
                    ),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    pub fn supported_list() -> Vec<&'static str> {
        Self::SUPPORTED.iter().map(|v| v.as_str()).collect()
    }

    /// CHECK arrived in 0.4.0.
    pub fn has_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// GC and STATUS arrived in 1.1.0.
    pub fn has_gc_and_status(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// Before 1.0.0 every `ips` entry carried `"version": "4"|"6"`.
    pub fn ips_carry_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// Interface `mtu`/`socketPath`/`pciID` and route `mtu`/`advmss`/
    /// `priority`/`table`/`scope` are 1.1.0 fields.
    pub fn has_1_1_fields(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_and_rejects_others_with_code_1() {
        assert_eq!(CniVersion::parse("1.1.0").ok(), Some(CniVersion::V1_1_0));
        assert_eq!(CniVersion::parse("0.3.1").ok(), Some(CniVersion::V0_3_1));
        let err = CniVersion::parse("0.2.0").err().map(|e| e.code);
        assert_eq!(err, Some(ErrorCode::INCOMPATIBLE_VERSION));
        assert!(CniVersion::parse("9.9.9").is_err());
    }

    #[test]
    fn feature_gates_follow_the_spec() {
        assert!(!CniVersion::V0_3_1.has_check());
        assert!(CniVersion::V0_4_0.has_check());
        assert!(!CniVersion::V1_0_0.has_gc_and_status());
        assert!(CniVersion::V1_1_0.has_gc_and_status());
    }
}
