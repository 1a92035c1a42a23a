//! One link as NetworkManager sees it: the facts its device matching looks at, and the runtime
//! record `runDir/devices/<ifindex>` in which the running daemon says whether it manages it.

use std::path::Path;

use anyhow::Result;
use netlink_packet_route::link::LinkLayerType;

use super::config::read_gkeyfile;
use crate::keyfile;
use crate::netlink::{format_mac, InfoKind, LinkExt, LinkMessage};

/// What NetworkManager's matching looks at for one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFacts {
    pub name: String,
    pub ifindex: u32,
    /// Lowercase `aa:bb:cc:dd:ee:ff`; the permanent address when the kernel reports one (that is
    /// what `mac:` specs match), else the current one.
    pub mac: Option<String>,
    /// NetworkManager's device type name, as `type:` specs and `nmcli -f GENERAL.TYPE` spell it.
    pub nm_type: String,
}

impl LinkFacts {
    /// Facts for a link known by name only; `kernel_kind` is `IFLA_INFO_KIND` (None for a NIC).
    pub fn new(name: &str, ifindex: u32, mac: Option<&str>, kernel_kind: Option<&str>) -> Self {
        LinkFacts {
            name: name.to_owned(),
            ifindex,
            mac: mac.map(str::to_ascii_lowercase),
            nm_type: nm_type_for_kind(kernel_kind, None).to_owned(),
        }
    }

    pub fn from_message(msg: &LinkMessage) -> Option<Self> {
        let name = msg.name()?;
        let kind = msg.kind().map(|k| k.to_string());
        let nm_type = match msg.kind() {
            Some(InfoKind::Other(other)) => other.clone(),
            _ => nm_type_for_kind(kind.as_deref(), Some(msg.header.link_layer_type)).to_owned(),
        };
        Some(LinkFacts {
            name: name.to_owned(),
            ifindex: msg.header.index,
            // The permanent address is what NetworkManager's `mac:` specs match; an empty
            // address attribute is no address at all.
            mac: [msg.permanent_mac(), msg.mac()]
                .into_iter()
                .flatten()
                .find(|mac| !mac.is_empty())
                .map(format_mac),
            nm_type,
        })
    }
}

/// NetworkManager's type name for a kernel link kind (`nm_device_get_type_description()`); kinds
/// NetworkManager has no device class for appear as NMDeviceGeneric under their kernel name.
pub fn nm_type_for_kind(kind: Option<&str>, link_layer: Option<LinkLayerType>) -> &str {
    match kind {
        None => match link_layer {
            Some(LinkLayerType::Loopback) => "loopback",
            Some(LinkLayerType::Infiniband) => "infiniband",
            _ => "ethernet",
        },
        Some("macvtap") => "macvlan",
        Some("ipip" | "gre" | "gretap" | "sit" | "ip6tnl" | "ip6gre" | "ip6gretap" | "vti")
        | Some("vti6" | "erspan" | "ip6erspan") => "ip-tunnel",
        Some(other) => other,
    }
}

/// Reads `devices/<ifindex>`: `Some(managed)` when it says, `None` when there is no file or no key.
pub(super) fn read_device_record(path: &Path) -> Result<Option<bool>> {
    if !path.exists() {
        return Ok(None);
    }
    let parsed = read_gkeyfile(
        path,
        "read NetworkManager's device state; restarting NetworkManager rewrites it",
        "; restarting NetworkManager rewrites this file",
    )?;
    let Some(entry) = parsed.last("device", "managed") else {
        return Ok(None);
    };
    match keyfile::parse_nm_bool(&entry.value) {
        Some(value) => Ok(Some(value)),
        None => anyhow::bail!(
            "{}: line {}: managed={:?} is not a boolean",
            path.display(),
            entry.line,
            entry.value
        ),
    }
}
