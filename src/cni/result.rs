//! ADD's result: `prevResult` in the shape of the configuration's `cniVersion`. The result shapes
//! the spec defines differ in one field between the two families hostguard speaks: 0.3.x and 0.4.0
//! carry `ips[].version` ("4" or "6"), 1.x does not. Converting adds or drops that field and
//! nothing else, so every field hostguard does not know is kept. A result of an older shape
//! (0.1.0 / 0.2.0, with `ip4`/`ip6`) or of a version no spec defines is refused with code 1: a
//! relabelled result would tell the runtime something false about its own addresses.

use serde_json::{Map, Value};

use super::error::{code, CniError, CniResult};
use super::version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// 0.3.0, 0.3.1, 0.4.0: `ips[].version` present.
    Legacy,
    /// 1.0.0, 1.1.0: no `ips[].version`.
    Current,
}

fn family(cni_version: &str) -> Option<Family> {
    match cni_version {
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Family::Legacy),
        "1.0.0" | "1.1.0" => Some(Family::Current),
        _ => None,
    }
}

/// `prev` as a result of version `target` (the configuration's, already validated).
pub fn convert(prev: &Map<String, Value>, target: &str) -> CniResult<Value> {
    let source = match prev.get("cniVersion") {
        // libcni re-serializes every result it passes on, so a missing version means a caller
        // that built the prevResult by hand for this very configuration.
        None | Some(Value::Null) => target.to_string(),
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(CniError::invalid_config(format!(
                "prevResult.cniVersion must be a string, not {}",
                crate::config::kind_of(other)
            )))
        }
    };
    if prev.contains_key("ip4") || prev.contains_key("ip6") {
        return Err(refuse(format!(
            "prevResult has the ip4/ip6 shape of CNI 0.1.0 and 0.2.0 (labelled {:?}), which \
             hostguard cannot convert to {target}",
            crate::config::shorten(&source)
        )));
    }
    let from = family(&source).ok_or_else(|| {
        refuse(format!(
            "prevResult has cniVersion {:?}, a result version hostguard cannot convert to {target}",
            crate::config::shorten(&source)
        ))
    })?;
    let to = family(target).ok_or_else(|| refuse(format!("no result shape for {target}")))?;
    let mut out = prev.clone();
    if from != to {
        if let Some(Value::Array(ips)) = out.get_mut("ips") {
            for (i, ip) in ips.iter_mut().enumerate() {
                let Value::Object(ip) = ip else { continue };
                match to {
                    Family::Current => {
                        ip.remove("version");
                    }
                    Family::Legacy => {
                        let version = ip_version(ip).ok_or_else(|| {
                            refuse(format!(
                                "prevResult.ips[{i}] has no address hostguard can read, so its \
                                 IP version for a {target} result is unknown"
                            ))
                        })?;
                        ip.insert("version".into(), Value::String(version.into()));
                    }
                }
            }
        }
    }
    out.insert("cniVersion".into(), Value::String(target.to_string()));
    Ok(Value::Object(out))
}

fn ip_version(ip: &Map<String, Value>) -> Option<&'static str> {
    let address = ip.get("address")?.as_str()?;
    let net: ipnetwork::IpNetwork = address.parse().ok()?;
    Some(if net.is_ipv4() { "4" } else { "6" })
}

fn refuse(msg: String) -> CniError {
    CniError::new(
        code::INCOMPATIBLE_VERSION,
        msg,
        format!(
            "hostguard converts results between the shapes of {}; set the same cniVersion on \
             every plugin of the conflist, or a version all of them support.",
            version::SUPPORTED.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prev(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn unknown_fields_and_numbers_are_kept() {
        let p = prev(
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}],
                            "x-vendor":{"a":1},"routes":[{"dst":"0.0.0.0/0","mtu":1400}]}),
        );
        let out = convert(&p, "1.1.0").unwrap();
        assert_eq!(out["cniVersion"], "1.1.0");
        assert_eq!(out["x-vendor"]["a"], 1);
        assert_eq!(out["routes"][0]["mtu"], 1400);
        assert!(out["ips"][0].get("version").is_none());
    }

    #[test]
    fn a_1_x_result_gains_ip_versions_in_a_0_x_config() {
        let p = prev(json!({"cniVersion":"1.0.0","ips":[
            {"address":"10.0.0.2/24","interface":0},{"address":"fd00::2/64"}]}));
        let out = convert(&p, "0.3.1").unwrap();
        assert_eq!(out["cniVersion"], "0.3.1");
        assert_eq!(out["ips"][0]["version"], "4");
        assert_eq!(out["ips"][0]["interface"], 0);
        assert_eq!(out["ips"][1]["version"], "6");
    }

    #[test]
    fn a_0_x_result_loses_ip_versions_in_a_1_x_config() {
        let p = prev(
            json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}],
                            "dns":{"nameservers":["10.0.0.1"]}}),
        );
        let out = convert(&p, "1.0.0").unwrap();
        assert_eq!(out["ips"][0], json!({"address":"10.0.0.2/24"}));
        assert_eq!(out["dns"]["nameservers"][0], "10.0.0.1");
        let same = convert(&p, "0.3.0").unwrap();
        assert_eq!(same["ips"][0]["version"], "4");
    }

    #[test]
    fn results_without_a_conversion_are_code_1() {
        for bad in [
            json!({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}),
            json!({"cniVersion":"1.0.0","ip4":{"ip":"10.0.0.2/24"}}),
            json!({"cniVersion":"9.9.9","ips":[]}),
            json!({"cniVersion":"0.1.0"}),
            json!({"cniVersion":"1.0.0","ips":[{"address":"nonsense"}]}),
        ] {
            let err = convert(&prev(bad.clone()), "0.4.0").unwrap_err();
            assert_eq!(err.code, 1, "{bad}: {err}");
        }
        let err = convert(&prev(json!({"cniVersion":"9.9.9"})), "1.1.0").unwrap_err();
        assert_eq!(err.code, 1);
        let err = convert(&prev(json!({"cniVersion":4})), "1.1.0").unwrap_err();
        assert_eq!(err.code, 7);
    }

    #[test]
    fn a_result_without_a_version_is_the_configurations() {
        let p = prev(json!({"ips":[{"address":"10.0.0.2/24"}]}));
        assert_eq!(convert(&p, "0.4.0").unwrap()["cniVersion"], "0.4.0");
    }
}
