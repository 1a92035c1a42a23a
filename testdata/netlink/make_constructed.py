#!/usr/bin/env python3
"""Writes the constructed-*.hex fixtures: RTM_NEWLINK messages of team devices, which this kernel
cannot create (no team driver), laid out byte for byte from the kernel's documented UAPI
(include/uapi/linux/netlink.h, rtnetlink.h, if_link.h, if_team via rtnl_link_ops kind "team")
and in the attribute order that the real-*.hex captures from this kernel show.

Run from this directory: python3 make_constructed.py. Each output line is one byte region with a
comment saying what it is; the Rust loader drops everything after '#'.
"""

import struct

RTM_NEWLINK = 16
NLM_F_MULTI = 0x2
ARPHRD_ETHER = 1
IFF_UP, IFF_BROADCAST, IFF_RUNNING, IFF_MULTICAST, IFF_LOWER_UP = 0x1, 0x2, 0x40, 0x1000, 0x10000
UP_FLAGS = IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP

IFLA_ADDRESS, IFLA_BROADCAST, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 2, 3, 4, 5
IFLA_MASTER, IFLA_LINKINFO, IFLA_LINK_NETNSID = 10, 18, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND = 1, 2, 4
IFLA_VLAN_ID, IFLA_VLAN_FLAGS, IFLA_VLAN_PROTOCOL = 1, 2, 5
ETH_P_8021Q = 0x8100
VLAN_FLAG_REORDER_HDR = 0x1


class Region:
    """A run of bytes with a comment; nested attributes are lists of regions."""

    def __init__(self, data, comment, indent=0):
        self.data, self.comment, self.indent = data, comment, indent


def pad4(n):
    return (n + 3) & ~3


def nla(kind, payload, name, comment, indent=0):
    """One attribute: struct nlattr { u16 nla_len; u16 nla_type; } + payload + pad to 4."""
    regions = [Region(struct.pack("<HH", 4 + len(payload), kind),
                      f"nlattr {name}: nla_len={4 + len(payload)} nla_type={kind}", indent)]
    if payload:
        regions.append(Region(payload, comment, indent + 1))
    padding = pad4(len(payload)) - len(payload)
    if padding:
        regions.append(Region(b"\0" * padding, f"padding to 4 bytes", indent + 1))
    return regions


def nest(kind, name, children, indent=0):
    """A nested attribute; the kernel's nla_nest_start_noflag() sets no NLA_F_NESTED bit."""
    body = b"".join(r.data for r in children)
    head = Region(struct.pack("<HH", 4 + len(body), kind),
                  f"nlattr {name} (nested, no NLA_F_NESTED flag): nla_len={4 + len(body)} nla_type={kind}",
                  indent)
    return [head] + children


def string(value):
    return value.encode() + b"\0"


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def message(index, flags, attrs):
    """nlmsghdr (16 bytes) + struct ifinfomsg (16 bytes) + attributes."""
    body = b"".join(r.data for r in attrs)
    length = 16 + 16 + len(body)
    header = [
        Region(struct.pack("<I", length), f"nlmsghdr.nlmsg_len = {length}"),
        Region(struct.pack("<H", RTM_NEWLINK), "nlmsghdr.nlmsg_type = RTM_NEWLINK (16)"),
        Region(struct.pack("<H", NLM_F_MULTI), "nlmsghdr.nlmsg_flags = NLM_F_MULTI (part of a dump)"),
        Region(struct.pack("<I", 1), "nlmsghdr.nlmsg_seq = 1"),
        Region(struct.pack("<I", 0), "nlmsghdr.nlmsg_pid = 0"),
        Region(struct.pack("<BB", 0, 0), "ifinfomsg.ifi_family = AF_UNSPEC, __ifi_pad = 0"),
        Region(struct.pack("<H", ARPHRD_ETHER), "ifinfomsg.ifi_type = ARPHRD_ETHER (1)"),
        Region(struct.pack("<i", index), f"ifinfomsg.ifi_index = {index}"),
        Region(struct.pack("<I", flags),
               f"ifinfomsg.ifi_flags = {flags:#x} (UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP)"),
        Region(struct.pack("<I", 0), "ifinfomsg.ifi_change = 0"),
    ]
    return header + attrs


def common(name, mtu, address):
    """The attributes every fixture carries, in the kernel's order (IFNAME .. MTU .. ADDRESS)."""
    return (
        nla(IFLA_IFNAME, string(name), "IFLA_IFNAME", f'"{name}\\0"')
        + nla(IFLA_MTU, struct.pack("<I", mtu), "IFLA_MTU", f"u32 {mtu}")
    )


def addresses(address):
    return (
        nla(IFLA_ADDRESS, mac(address), "IFLA_ADDRESS", address)
        + nla(IFLA_BROADCAST, mac("ff:ff:ff:ff:ff:ff"), "IFLA_BROADCAST", "ff:ff:ff:ff:ff:ff")
    )


def write(path, title, regions):
    total = sum(len(r.data) for r in regions)
    with open(path, "w") as out:
        out.write(f"# CONSTRUCTED by make_constructed.py, not captured: {title}\n")
        out.write(f"# {total} bytes, little endian (x86-64 native order). See README.md.\n")
        for r in regions:
            out.write(f"{'  ' * r.indent}{r.data.hex(' '):<48} # {r.comment}\n")


TEAM0, ETH0, ETH1, VLAN, VETH = 4, 2, 3, 5, 6
TEAM_MAC = "52:54:00:12:34:56"

write("constructed-team0-master.hex", "team master team0 (ifindex 4)",
      message(TEAM0, UP_FLAGS,
              common("team0", 1500, TEAM_MAC) + addresses(TEAM_MAC)
              + nest(IFLA_LINKINFO, "IFLA_LINKINFO",
                     nla(IFLA_INFO_KIND, string("team"), "IFLA_INFO_KIND", '"team\\0" (team has no fill_info: no IFLA_INFO_DATA)', 1))))

# A team gives its ports its own MAC; the port's permanent MAC stays in IFLA_PERM_ADDRESS (left out).
write("constructed-eth1-team-port.hex", "physical NIC eth1 (ifindex 3), port of team0",
      message(ETH1, UP_FLAGS,
              common("eth1", 1500, TEAM_MAC)
              + nla(IFLA_MASTER, struct.pack("<I", TEAM0), "IFLA_MASTER", f"u32 {TEAM0} = team0")
              + addresses(TEAM_MAC)
              + nest(IFLA_LINKINFO, "IFLA_LINKINFO",
                     nla(IFLA_INFO_SLAVE_KIND, string("team"), "IFLA_INFO_SLAVE_KIND",
                         '"team\\0" = master\'s rtnl_link_ops->kind (a NIC has no ops: no IFLA_INFO_KIND)', 1))))

vlan_data = (
    nla(IFLA_VLAN_PROTOCOL, struct.pack(">H", ETH_P_8021Q), "IFLA_VLAN_PROTOCOL", "be16 0x8100 (802.1Q)", 2)
    + nla(IFLA_VLAN_ID, struct.pack("<H", 10), "IFLA_VLAN_ID", "u16 10", 2)
    + nla(IFLA_VLAN_FLAGS, struct.pack("<II", VLAN_FLAG_REORDER_HDR, 0xFFFFFFFF), "IFLA_VLAN_FLAGS",
          "struct ifla_vlan_flags { flags = REORDER_HDR, mask = ~0 }", 2)
)
write("constructed-team0.10-vlan.hex", "VLAN team0.10 (ifindex 5) on team0",
      message(VLAN, UP_FLAGS,
              common("team0.10", 1500, TEAM_MAC) + addresses(TEAM_MAC)
              + nest(IFLA_LINKINFO, "IFLA_LINKINFO",
                     nla(IFLA_INFO_KIND, string("vlan"), "IFLA_INFO_KIND", '"vlan\\0"', 1)
                     + nest(IFLA_INFO_DATA, "IFLA_INFO_DATA", vlan_data, 1))
              + nla(IFLA_LINK, struct.pack("<I", TEAM0), "IFLA_LINK", f"u32 {TEAM0} = team0 (lower device)")))

write("constructed-eth0-plain.hex", "plain physical NIC eth0 (ifindex 2), for contrast",
      message(ETH0, UP_FLAGS, common("eth0", 1500, "52:54:00:aa:bb:01") + addresses("52:54:00:aa:bb:01")))

write("constructed-veth0-plain.hex",
      "veth0 (ifindex 6) whose peer is in another netns, for contrast; its IFLA_LINK (4) "
      "collides with team0's ifindex on purpose",
      message(VETH, UP_FLAGS,
              common("veth0", 1500, "0a:58:0a:f4:00:01") + addresses("0a:58:0a:f4:00:01")
              + nest(IFLA_LINKINFO, "IFLA_LINKINFO",
                     nla(IFLA_INFO_KIND, string("veth"), "IFLA_INFO_KIND", '"veth\\0"', 1))
              + nla(IFLA_LINK_NETNSID, struct.pack("<i", 0), "IFLA_LINK_NETNSID", "s32 0 (peer's namespace)")
              + nla(IFLA_LINK, struct.pack("<I", TEAM0), "IFLA_LINK", "u32 4 = peer's ifindex IN THAT namespace")))
