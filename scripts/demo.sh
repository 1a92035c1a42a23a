#!/usr/bin/env bash
# A few-second tour: a container runtime (our libcni driver) runs the chain
# bridge + host-local -> $PLUGIN for one container, in throwaway namespaces
# (a two-uplink "host" like incident 1, a container, an upstream). It shows
# the host's routes before, the ADD result, the container's address, the
# host's routes after, DEL, and the cleanup. The machine's own network is
# never touched. Run as root.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# The plugin at the end of the chain. Debian's tuning (a passthrough) stands
# in until hostguard speaks CNI; then make this "hostguard" (or run
# PLUGIN=hostguard scripts/demo.sh).
PLUGIN=${PLUGIN:-hostguard}

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/deps.sh
source "$HG_REPO/scripts/lib/deps.sh"
# shellcheck source=lib/netns.sh
source "$HG_REPO/scripts/lib/netns.sh"
# shellcheck source=lib/chain.sh
source "$HG_REPO/scripts/lib/chain.sh"
# shellcheck source=lib/cnidriver.sh
source "$HG_REPO/scripts/lib/cnidriver.sh"

hg_require_root
hg_ensure_deps
(cd "$HG_REPO" && cargo build --release --locked --quiet) || hg_die "cargo build --release failed"
hg_build_cnidriver
hg_init
T=$HG_TMP

if [[ -t 1 ]]; then
	say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
else
	say() { printf '\n%s\n' "$*"; }
fi
show() { # CMD...: print the command as typed, then its output indented
	printf '  $ %s\n' "$*"
	"$@" 2>&1 | sed 's/^/    /'
}

hg_netns_add HOST_NS
hg_netns_add CT_NS
hg_netns_add UP_NS
hg_setup_two_uplink_host "$HOST_NS" "$UP_NS" || hg_die "host namespace setup failed"
BIN_DIRS=$(hg_plugin_bin_dirs "$PLUGIN" "$T") || exit 1
SUBNET=10.88.$(($$ % 250 + 1)).0/24
CONFLIST=$T/demo.conflist
hg_write_chain_conflist "$CONFLIST" "$PLUGIN" "$T" "$SUBNET"
CID=demo-$$
NETNS_PATH=/run/netns/$CT_NS

cni() { # VERB: the runtime's call, run from inside the host namespace
	local t0 rc=0
	t0=$(hg_now_ms)
	hg_run ip netns exec "$HOST_NS" "$HG_CNIDRIVER" "$1" --conflist "$CONFLIST" \
		--bin-dir "$BIN_DIRS" --cache-dir "$T/cache" --netns "$NETNS_PATH" \
		--ifname eth0 --container-id "$CID" >"$T/$1.out" 2>"$T/$1.err" || rc=$?
	printf '  cnidriver %s: exit %d in %d ms\n' "$1" "$rc" "$(($(hg_now_ms) - t0))"
	if ((rc != 0)); then
		sed 's/^/    /' "$T/$1.err"
	fi
	return "$rc"
}

say "hostguard demo: libcni runs bridge + host-local -> $PLUGIN"
echo "  throwaway namespaces: host $HOST_NS, container $CT_NS, upstream $UP_NS"
echo "  conflist: $(jq -c '[.plugins[].type]' "$CONFLIST"), subnet $SUBNET"

say "1. The host has two uplinks and two default routes (incident 1):"
show ip -n "$HOST_NS" -br addr show
show ip -n "$HOST_NS" route show default
hg_host_view "$HOST_NS" >"$T/before"

say "2. ADD: the runtime attaches container $CID"
if cni add; then
	jq -r '"  result (cniVersion \(.cniVersion)):",
		(.interfaces | to_entries[] | "    interface \(.key): \(.value.name) \(.value.mac)\(if .value.sandbox then " in " + .value.sandbox else "" end)"),
		(.ips[] | "    ip \(.address) gateway \(.gateway) on interface \(.interface)"),
		(.routes[]? | "    route \(.dst)")' "$T/add.out"

	say "3. Inside the container"
	show ip -n "$CT_NS" -br addr show dev eth0
	show ip -n "$CT_NS" route show
	gw=$(jq -r '.ips[0].gateway' "$T/add.out")
	# the gateway is the bridge inside our own host namespace
	ping=(ping)
	command -v ping >/dev/null 2>&1 || ping=(busybox ping)
	show ip netns exec "$CT_NS" "${ping[@]}" -c 1 -W 1 "$gw"
else
	echo "  ADD failed; the runtime now calls DEL to clean up"
fi

say "4. The host after ADD: the bridge added its own link and subnet route"
show ip -n "$HOST_NS" route show
if diff -u --label before --label after "$T/before" <(hg_host_view "$HOST_NS") >"$T/diff"; then
	echo "  default routes and rules: unchanged"
else
	echo "  default routes and rules CHANGED:"
	sed 's/^/    /' "$T/diff"
fi

say "5. DEL: the runtime detaches the container"
cni del
show ip -n "$CT_NS" -br link show
show ip -n "$HOST_NS" route show default

say "6. Cleanup: every namespace and temp file of this demo goes"
dir=$T
hg_cleanup
left=$(ip netns list | awk -v p="hg-$$-" 'index($1, p) == 1' | wc -l)
echo "  namespaces of this run left: $left; work dir $([[ -e $dir ]] && echo "still there" || echo removed)"
