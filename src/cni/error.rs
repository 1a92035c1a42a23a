//! The one error type that leaves hostguard in CNI mode. Every failure ends as
//! `{"cniVersion","code","msg","details"}` on stdout with exit status 1.

use std::fmt;

use serde::Serialize;

/// Error codes: 1–99 are the spec's, 100+ are hostguard's own (see the contract).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    pub const DEFAULT_ROUTE_MISSING: u32 = 100;
    pub const REFUSED_TEAM: u32 = 101;
    pub const REFUSED_NETWORK_MANAGER: u32 = 102;
    pub const RULE_MISSING: u32 = 103;
    pub const UPLINK_ROLLED_BACK: u32 = 104;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// An I/O failure with its whole context chain in `details`, for errors that come up from
    /// files or netlink through `anyhow`.
    pub fn io(msg: impl Into<String>, cause: &anyhow::Error) -> Self {
        CniError::new(code::IO_FAILURE, msg, format!("{cause:#}"))
    }

    pub fn invalid_config(msg: impl Into<String>) -> Self {
        CniError::new(
            code::INVALID_CONFIG,
            msg,
            "fix the hostguard entry of the conflist; see the configuration reference in README.md",
        )
    }

    /// The JSON the runtime reads from stdout.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            details: &'a str,
        }
        let wire = Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        // Serializing four plain fields cannot fail; fall back to a fixed text rather than panic.
        serde_json::to_string(&wire).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{cni_version}","code":{},"msg":"error","details":""}}"#,
                self.code
            )
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "code {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

pub type CniResult<T> = Result<T, CniError>;
