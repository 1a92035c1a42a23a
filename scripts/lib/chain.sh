# shellcheck shell=bash
# The chain the e2e scripts and the demo run: a "host" namespace shaped like
# incident 1 (two uplinks, two default routes), bridge + host-local, then the
# plugin under test. Needs common.sh and netns.sh.

# hg_setup_two_uplink_host HOST UPSTREAM: in HOST, eth0 172.26.0.3/27 and eth1
# 172.26.0.35/27 with one default route each (incident 1, case A); their
# gateways 172.26.0.1 and .33 are the veth peers inside UPSTREAM.
hg_setup_two_uplink_host() {
	local host=$1 up=$2
	ip -n "$host" link add eth0 type veth peer name up0 netns "$up" &&
		ip -n "$host" link add eth1 type veth peer name up1 netns "$up" &&
		ip -n "$host" addr add 172.26.0.3/27 dev eth0 &&
		ip -n "$host" addr add 172.26.0.35/27 dev eth1 &&
		ip -n "$up" addr add 172.26.0.1/27 dev up0 &&
		ip -n "$up" addr add 172.26.0.33/27 dev up1 &&
		ip -n "$host" link set eth0 up &&
		ip -n "$host" link set eth1 up &&
		ip -n "$up" link set up0 up &&
		ip -n "$up" link set up1 up &&
		ip -n "$host" route add default via 172.26.0.1 dev eth0 proto static &&
		ip -n "$host" route append default via 172.26.0.33 dev eth1 proto static
}

# hg_host_view NS: what hostguard guards in NS (default routes of every table,
# both families, and the policy rules), one item a line, for before/after diffs.
hg_host_view() {
	local ns=$1
	ip -n "$ns" -4 route show table all default
	ip -n "$ns" -6 route show table all default
	ip -n "$ns" -4 rule show | sed 's/^/rule /'
	ip -n "$ns" -6 rule show | sed 's/^/rule6 /'
}

# hg_plugin_entry TYPE DIR: the conflist entry for the plugin under test, its
# state kept under DIR (never the host's /var/lib/cni or /run/cni).
hg_plugin_entry() {
	local type=$1 dir=$2
	case $type in
	hostguard)
		jq -nc --arg d "$dir/hostguard" '{type: "hostguard", stateDir: $d, runDir: ($d + "/run"),
			logFile: ($d + ".log"), logLevel: "debug"}'
		;;
	tuning) jq -nc --arg d "$dir/tuning" '{type: "tuning", dataDir: $d}' ;;
	*) jq -nc --arg t "$type" '{type: $t}' ;;
	esac
}

# hg_plugin_bin_dirs TYPE DIR: prints the plugin search path: a private
# directory, then Debian's /usr/lib/cni. hostguard comes from $HOSTGUARD_BIN
# (default target/release/hostguard); any other TYPE from $PLUGIN_BIN when set
# (a stand-in plugin), else from /usr/lib/cni.
hg_plugin_bin_dirs() {
	local type=$1 dir=$2 bin=
	mkdir -p "$dir/bin"
	if [[ $type == hostguard ]]; then
		bin=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}
	elif [[ -n ${PLUGIN_BIN:-} ]]; then
		bin=$PLUGIN_BIN
	fi
	if [[ -n $bin ]]; then
		[[ -x $bin ]] || {
			if [[ $type == hostguard ]]; then
				hg_log "hostguard binary not found at $bin: run 'cargo build --release' or set HOSTGUARD_BIN"
			else
				hg_log "PLUGIN_BIN $bin is not an executable file"
			fi
			return 1
		}
		ln -sf "$(realpath "$bin")" "$dir/bin/$type"
	fi
	echo "$dir/bin:/usr/lib/cni"
}

# hg_write_chain_conflist OUT TYPE DIR SUBNET: bridge + host-local + TYPE.
hg_write_chain_conflist() {
	local out=$1 type=$2 dir=$3 subnet=$4 entry
	entry=$(hg_plugin_entry "$type" "$dir") || return 1
	jq --arg ipam "$dir/ipam" --arg subnet "$subnet" --argjson plugin "$entry" '
		.plugins[0].ipam.dataDir = $ipam
		| .plugins[0].ipam.ranges = [[{subnet: $subnet}]]
		| .plugins += [$plugin]' "$HG_REPO/testdata/e2e/bridge-chain.conflist" >"$out"
}

# hg_write_status_gc_conflist OUT TYPE DIR: a spec 1.1.0 list of TYPE alone.
hg_write_status_gc_conflist() {
	local out=$1 type=$2 dir=$3 entry
	entry=$(hg_plugin_entry "$type" "$dir") || return 1
	jq --argjson plugin "$entry" '.plugins = [$plugin]' \
		"$HG_REPO/testdata/e2e/status-gc.conflist" >"$out"
}

# hg_result_address RESULT_FILE NETNS_PATH IFNAME: the address the result
# assigns to the container interface (the one whose sandbox is NETNS_PATH).
hg_result_address() {
	jq -r --arg ns "$2" --arg ifn "$3" '
		. as $r
		| [range(0; ($r.interfaces // []) | length)
		   | select($r.interfaces[.].sandbox == $ns and $r.interfaces[.].name == $ifn)] as $idx
		| [$r.ips[]? | select(.interface as $i | any($idx[]; . == $i))][0].address // empty' "$1"
}

# hg_result_mac RESULT_FILE NETNS_PATH IFNAME: that interface's MAC.
hg_result_mac() {
	jq -r --arg ns "$2" --arg ifn "$3" '
		[.interfaces[]? | select(.sandbox == $ns and .name == $ifn) | .mac][0] // empty' "$1"
}

# --- the real runtimes' chain (e2e-containerd, e2e-podman, e2e-install, demo) --

# The policy rule and the readiness interface hg_setup_guarded_host adds, and
# the hostguard entry that guards / waits for them.
HG_RULE_PRIO=100
HG_RULE_TABLE=77
HG_READY_IF=hg-ready
HG_READY_NET=192.168.231.0/30
HG_UPLINK_IF=eth1
HG_UPLINK_BR=br-up

# hg_setup_guarded_host HOST UPSTREAM SUBNET: incident 1's two uplinks, then
# what the other guards act on: a policy rule sending SUBNET (the pods) to
# table 77, whose default route leaves by eth1 (incident 2's kind of rule), and
# an interface with an address in HG_READY_NET that waitFor waits on (what
# tunl0 or flannel.1 is on a real node; a veth, as this kernel has no dummy).
hg_setup_guarded_host() {
	local host=$1 up=$2 subnet=$3
	hg_setup_two_uplink_host "$host" "$up" &&
		ip -n "$host" route add default via 172.26.0.33 dev eth1 proto static table "$HG_RULE_TABLE" &&
		ip -n "$host" rule add priority "$HG_RULE_PRIO" from "$subnet" table "$HG_RULE_TABLE" &&
		ip -n "$host" link add "$HG_READY_IF" type veth peer name "$HG_READY_IF-p" &&
		ip -n "$host" addr add "${HG_READY_NET%.*}.1/30" dev "$HG_READY_IF" &&
		ip -n "$host" link set "$HG_READY_IF-p" up &&
		ip -n "$host" link set "$HG_READY_IF" up
}

# hg_has_uplink BIN: whether this hostguard build attaches uplinks: it knows
# the `uplink` subcommand (without arguments that is only a usage error).
hg_has_uplink() {
	local out
	out=$("$1" uplink release 2>&1 </dev/null)
	[[ $out != *'unknown command "uplink"'* ]]
}

# hg_hostguard_entry DIR [UPLINK]: hostguard's conflist entry for the guarded
# host: route guard on, rules.match on the pod rule, waitFor on HG_READY_IF,
# state, log and NetworkManager dirs under DIR; with UPLINK=1 it also attaches
# eth1 to the bridge br-up.
hg_hostguard_entry() {
	local dir=$1 uplink=${2:-0}
	jq -nc --arg d "$dir" --argjson prio "$HG_RULE_PRIO" --argjson table "$HG_RULE_TABLE" \
		--arg ready "$HG_READY_IF" --arg net "$HG_READY_NET" --argjson uplink "$uplink" \
		--arg upif "$HG_UPLINK_IF" --arg upbr "$HG_UPLINK_BR" '
		{type: "hostguard", logFile: ($d + "/hostguard.log"), logLevel: "debug",
		 stateDir: ($d + "/hostguard"), runDir: ($d + "/hostguard/run"),
		 routes: {restore: true},
		 rules: {match: [{priority: $prio, table: $table}], restore: true},
		 refuse: {team: true, networkManager: true},
		 networkManager: {runDir: ($d + "/nm/run"), confDir: ($d + "/nm/etc")},
		 waitFor: {interfaces: [{name: $ready, up: true, cidr: $net}], timeoutMs: 5000}}
		+ (if $uplink == 1 then {uplink: {interface: $upif, bridge: $upbr}} else {} end)'
}

# hg_runtime_conflist NAME SUBNET DIR ENTRY: the upstream a node would have
# (bridge + host-local + portmap, spec 1.0.0), with ENTRY (JSON, or "" for
# none) appended. host-local keeps its leases under DIR.
hg_runtime_conflist() {
	local name=$1 subnet=$2 dir=$3 entry=${4:-}
	jq --arg name "$name" --arg ipam "$dir/ipam" --arg subnet "$subnet" --argjson plugin "${entry:-null}" '
		.name = $name
		| .plugins[0].ipam.dataDir = $ipam
		| .plugins[0].ipam.ranges = [[{subnet: $subnet}]]
		| .plugins += [{type: "portmap", capabilities: {portMappings: true}}]
		| if $plugin then .plugins += [$plugin] else . end' "$HG_REPO/testdata/e2e/bridge-chain.conflist"
}

# hg_sorted_view NS: the guarded view (hg_host_view), sorted: restoring a
# route by append changes its place in the dump, not what it is.
hg_sorted_view() {
	hg_host_view "$1" | sort
}
