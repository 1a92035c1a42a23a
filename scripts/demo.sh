#!/usr/bin/env bash
# hostguard in a few seconds, for a newcomer: a throwaway "node" shaped like
# incident 1 (two uplinks, two default routes), a bridge CNI config,
# `hostguard install` chaining it, containerd starting containers through that
# chain, a CNI agent bug deleting a default route and the next container start
# restoring it, the guard daemon restoring it again with no pod at all, and a
# NetworkManager-managed uplink refused. Then everything is removed.
#
# Nothing touches this machine's own network or CNI files: the node is a
# network namespace, and containerd runs in a private mount namespace where
# /etc/cni/net.d and /opt/cni/bin are this demo's own directories (see
# scripts/lib/runtimes.sh). Run as root on Debian 12; missing packages are
# installed first (scripts/lib/deps.sh).
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/deps.sh
source "$HG_REPO/scripts/lib/deps.sh"
# shellcheck source=lib/netns.sh
source "$HG_REPO/scripts/lib/netns.sh"
# shellcheck source=lib/chain.sh
source "$HG_REPO/scripts/lib/chain.sh"
# shellcheck source=lib/runtimes.sh
source "$HG_REPO/scripts/lib/runtimes.sh"

hg_require_root
hg_ensure_deps
(cd "$HG_REPO" && cargo build --release --locked --quiet) || hg_die "cargo build --release failed"
HG=$(realpath "${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}")
t_start=$(hg_now_ms)
hg_init
T=$HG_TMP

if [[ -t 1 ]]; then
	say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
else
	say() { printf '\n%s\n' "$*"; }
fi
# node CMD...: show CMD as typed on the node, run it there, indent its output
node() {
	local shown="$*"
	printf '  node$ %s\n' "${shown//$HG/hostguard}"
	hg_host "$@" 2>&1 | sed 's/^/    /'
}
# routes NS: the node's IPv4 routes, the noise words left out
routes() {
	ip -n "$1" -4 route show | sed -E 's/ proto (kernel|static)//; s/ scope link//; s/ linkdown//; s/ +$//'
}
# side_by_side LEFT_TITLE LEFT_FILE RIGHT_TITLE RIGHT_FILE: lines only on the
# left are marked -, lines only on the right +
side_by_side() {
	awk -v lt="$1" -v rt="$3" '
		NR == FNR { l[++nl] = $0; inl[$0] = 1; next }
		{ r[++nr] = $0; inr[$0] = 1 }
		END {
			printf "    %-42s   %s\n", lt, rt
			n = nl > nr ? nl : nr
			for (i = 1; i <= n; i++) {
				a = (i in l) ? ((l[i] in inr) ? "  " : "- ") l[i] : ""
				b = (i in r) ? ((r[i] in inl) ? "  " : "+ ") r[i] : ""
				printf "    %-42s   %s\n", a, b
			}
		}' "$2" "$4"
}

# show_conflist FILE: one entry per plugin, long ones wrapped between keys
show_conflist() {
	local f=$1 n i
	echo "    cniVersion $(jq -r .cniVersion "$f"), name $(jq -r .name "$f"), plugins:"
	n=$(jq '.plugins | length' "$f")
	for ((i = 0; i < n; i++)); do
		jq -c ".plugins[$i]" "$f" | sed -E 's/,"/, "/g; s/":/": /g' | fold -s -w 92 |
			sed -e '1s/^/    - /' -e '2,$s/^/        /'
	done
}

hg_netns_add NODE || exit 1
hg_netns_add UP || exit 1
hg_setup_two_uplink_host "$NODE" "$UP" || hg_die "node setup failed"
hg_cgroup_add CG
hg_holder_start "$NODE" || exit 1
hg_busybox_rootfs "$T/rootfs" || exit 1

say "hostguard demo: containerd, a bridge CNI, and hostguard chained after it"
echo "  The \"node\" is the network namespace $NODE (its uplinks' gateways live in $UP);"
echo "  containerd and the CNI plugins run inside it. \"node\$\" commands run there too."

say "1. The node has two uplinks, each with a default route (incident 1)"
node ip -4 -br addr show
node ip route show default
routes "$NODE" >"$T/routes-0"

say "2. The primary CNI has written its config; hostguard install chains it"
# the bridge example of conflists/, without its hostguard entry (and IPv4 only)
jq '.plugins |= map(select(.type != "hostguard"))
	| .plugins[0].ipam.ranges |= [.[0]] | .plugins[0].ipam.routes |= [.[0]]' \
	"$HG_REPO/conflists/bridge.conflist" >"$HG_CNI/net.d/10-bridge.conflist"
jq -n --arg d "$T" '{logFile: ($d + "/hostguard.log"), logLevel: "info", stateDir: ($d + "/hostguard"),
	runDir: ($d + "/hostguard/run"),
	routes: {restore: true}}' >"$T/hostguard.json"
node ls /etc/cni/net.d
echo "  plugin config ($T/hostguard.json): $(jq -c . "$T/hostguard.json")"
if "$HG" install --help >/dev/null 2>&1; then
	node "$HG" install --conf-dir /etc/cni/net.d --bin-dir /opt/cni/bin \
		--plugin-config "$T/hostguard.json" --state-dir "$T/hostguard" --run-dir "$T/hostguard/run" --timeout 5
else
	echo "  (hostguard install is not in this build: using the ready conflists/bridge.conflist)"
	jq --slurpfile c "$T/hostguard.json" '.plugins |= (map(select(.type != "hostguard")) + [$c[0] + {type: "hostguard"}])' \
		"$HG_CNI/net.d/10-bridge.conflist" >"$HG_CNI/net.d/00-hostguard.conflist"
	ln -sf "$HG" "$HG_CNI/bin/hostguard"
fi
node ls /etc/cni/net.d
echo "  00-hostguard.conflist, which containerd loads (the first file by name):"
show_conflist "$HG_CNI/net.d/00-hostguard.conflist"

# run_container ID: ctr run --rm --cni; prints the container's eth0 address
run_container() {
	local id=$1
	hg_node_run "$T/$id" ctr --address "$HG_CTD_SOCK" run --rm --cni --rootfs --runc-root "$T/runc" \
		--fifo-dir "$T/fifo" --cgroup "/$CG/$id" "$T/rootfs" "$id" /bin/ip -4 -o addr show dev eth0
	printf '  node$ ctr run --rm --cni --rootfs ./rootfs %s ip -4 -o addr show dev eth0\n' "$id"
	if ((RC == 0)); then
		awk -v ms="$MS ms" '{printf "    %s %s   (%s)\n", $2, $4, ms}' "$OUT"
	else
		sed 's/^/    /' "$ERR"
		hg_ctr_remove_all
	fi
	return "$RC"
}

say "3. containerd starts a container: the bridge gives it an address, hostguard guards the node"
hg_containerd_start "$T/containerd" || exit 1
run_container demo1
routes "$NODE" >"$T/routes-1"
side_by_side "node routes before" "$T/routes-0" "after the first container" "$T/routes-1"
echo "  The bridge added its own subnet route; both default routes are as they were."

say "4. A CNI agent bug deletes eth0's default route (what incident 1's agent did)"
node ip route del default via 172.26.0.1 dev eth0
routes "$NODE" >"$T/routes-2"
echo "  The node has lost its first uplink's route. The next container start:"
run_container demo2
routes "$NODE" >"$T/routes-3"
side_by_side "node routes after the bug" "$T/routes-2" "after the next container start" "$T/routes-3"
jq -r 'select(.msg | startswith("restored")) | "  hostguard log: \(.msg)"' "$T/hostguard.log" 2>/dev/null

say "5. Between pods: hostguard guard repairs the node within milliseconds, no pod needed"
echo "  In the DaemonSet, hostguard guard watches the kernel's route and rule events and puts a"
echo "  baseline route back with the same decisions as ADD. Here it runs in the node:"
printf '  node$ hostguard guard --plugin-config hostguard.json --metrics-addr 127.0.0.1:9353 &\n'
hg_bg GUARD_PID nsenter --target "$HG_HOLDER" --mount --net "$HG" guard \
	--plugin-config "$T/hostguard.json" --metrics-addr 127.0.0.1:9353 >"$T/guard.out" 2>&1
# ready once it answers /healthz (bounded: 5 s)
for _ in $(seq 50); do
	hg_host curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:9353/healthz 2>/dev/null && break
	sleep 0.1
done
node ip route del default via 172.26.0.1 dev eth0
# the route is back when the daemon says so (bounded: 5 s)
for _ in $(seq 50); do
	grep -q 'restored missing default route' "$T/guard.out" && break
	sleep 0.1
done
node ip route show default
jq -r 'select(.msg | startswith("restored")) | "  hostguard guard: \(.msg)"' "$T/guard.out" 2>/dev/null
echo "  and what a Prometheus scrape of the node sees:"
hg_host curl -fsS --max-time 2 http://127.0.0.1:9353/metrics 2>/dev/null |
	grep -E '^hostguard_(restores_total\{|routes_missing |rules_missing )' | sed 's/^/    /'
kill -TERM "$GUARD_PID" 2>/dev/null
wait "$GUARD_PID" 2>/dev/null
echo "  (SIGTERM: the daemon exits 0; the route stays)"

say "6. An uplink managed by NetworkManager is refused, and left alone"
# A fake NetworkManager that only this demo's mount namespace sees: a sleeping
# process whose name reads "NetworkManager" there (a file bound over its
# /proc/PID/comm), its pid file, and a device record managing eth1. It runs in
# the node's network namespace: NetworkManager only manages its own namespace's
# links, and hostguard only counts a NetworkManager that shares its namespace.
hg_bg NM_PID nsenter --target "$HG_HOLDER" --net sleep 60
mkdir -p "$T/nm/run/devices" "$T/nm/etc"
echo NetworkManager >"$T/nm/comm"
hg_host mount --bind "$T/nm/comm" "/proc/$NM_PID/comm"
echo "$NM_PID" >"$T/nm/run/NetworkManager.pid"
ifindex=$(ip -n "$NODE" -o link show dev eth1 | cut -d: -f1)
printf '[device]\nmanaged=true\n' >"$T/nm/run/devices/$ifindex"
jq --arg d "$T/nm" '. + {uplink: {interface: "eth1", bridge: "br-sec"},
	networkManager: {runDir: ($d + "/run"), confDir: ($d + "/etc")}}' "$T/hostguard.json" >"$T/hostguard-uplink.json"
if "$HG" install --help >/dev/null 2>&1; then
	hg_host "$HG" install --conf-dir /etc/cni/net.d --plugin-config "$T/hostguard-uplink.json" --timeout 5 >/dev/null 2>&1
else
	jq --slurpfile c "$T/hostguard-uplink.json" '.plugins[-1] = $c[0] + {type: "hostguard"}' \
		"$HG_CNI/net.d/00-hostguard.conflist" >"$T/chained" && cp "$T/chained" "$HG_CNI/net.d/00-hostguard.conflist"
fi
ip -n "$NODE" -o link show dev eth1 >"$T/eth1-before"
run_container demo3 >"$T/demo3.shown" 2>&1
refusal=$(jq -c 'select(.level == "error" and (.msg | startswith("code 102")))' "$T/hostguard.log" 2>/dev/null | tail -n 1)
if [[ -n $refusal ]]; then
	echo "  hostguard's entry now has \"uplink\": {\"interface\": \"eth1\", \"bridge\": \"br-sec\"},"
	echo "  and NetworkManager manages eth1 (its device record says managed=true)."
	cat "$T/demo3.shown"
	echo "  hostguard's answer to the runtime (CNI error 102):"
	jq -r '"    " + .msg' <<<"$refusal" | fold -s -w 100 | sed '2,$s/^/    /'
	if cmp -s "$T/eth1-before" <(ip -n "$NODE" -o link show dev eth1); then
		echo "  eth1 is untouched: $(ip -n "$NODE" -br link show dev eth1)"
	else
		echo "  eth1 CHANGED: $(ip -n "$NODE" -br link show dev eth1)"
	fi
else
	echo "  unexpected: hostguard did not refuse the NetworkManager-managed uplink (see $T/hostguard.log)"
	exit 1
fi

say "7. Cleanup"
hg_containerd_stop
hg_cleanup
left=$(hg_run_leftovers)
echo "  containerd stopped; namespaces, cgroups, mounts and the work dir removed: ${left:-nothing left}"
echo "  demo took $(($(hg_now_ms) - t_start)) ms"
