//! Spec versions: which ones we speak and which verbs each allows.

use super::error::{code, CniError, CniResult};

pub const CURRENT: &str = "1.1.0";
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A parsed `major.minor.patch`, ordered so that verb gates can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpecVersion(u32, u32, u32);

impl SpecVersion {
    pub const CHECK: SpecVersion = SpecVersion(0, 4, 0);
    pub const STATUS_GC: SpecVersion = SpecVersion(1, 1, 0);

    /// Accepts only the versions in `SUPPORTED`; the error names what we do support.
    pub fn supported(text: &str) -> CniResult<SpecVersion> {
        if !SUPPORTED.contains(&text) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("incompatible CNI version {text:?}"),
                format!("hostguard supports {}", SUPPORTED.join(", ")),
            ));
        }
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        Ok(SpecVersion(
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        ))
    }
}

impl std::fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The VERSION verb's answer.
pub fn version_reply() -> String {
    serde_json::json!({ "cniVersion": CURRENT, "supportedVersions": SUPPORTED }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_order_versions() {
        assert!(SpecVersion::supported("0.3.1").unwrap() < SpecVersion::CHECK);
        assert!(SpecVersion::supported("0.4.0").unwrap() >= SpecVersion::CHECK);
        assert!(SpecVersion::supported("1.0.0").unwrap() < SpecVersion::STATUS_GC);
        assert!(SpecVersion::supported("1.1.0").unwrap() >= SpecVersion::STATUS_GC);
    }

    #[test]
    fn unknown_versions_are_code_1() {
        for bad in ["0.2.0", "1.2.0", "", "1.0", "x"] {
            assert_eq!(SpecVersion::supported(bad).unwrap_err().code, 1, "{bad}");
        }
    }
}
