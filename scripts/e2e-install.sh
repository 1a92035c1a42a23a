#!/usr/bin/env bash
# e2e-install: the install path end to end, with real runtimes reading what
# `hostguard install` wrote. The node is e2e-containerd's (scripts/lib/guarded.sh):
# throwaway namespaces, a private mount namespace in which /etc/cni/net.d and
# /opt/cni/bin are this run's directories.
#   1. The primary's 10-bridge.conflist (bridge + host-local + portmap) is in
#      net.d. `hostguard install --conf-dir --bin-dir --plugin-config
#      --state-dir` writes 00-hostguard.conflist: the upstream's keys and
#      plugins plus one hostguard entry (and install's marker); copies the binary; records the
#      baseline before any pod; leaves the upstream as it was. Run again, it
#      changes nothing.
#   2. containerd (ctr run --cni) and podman (CNI backend) start a container
#      each: hostguard is called with exactly the entry install wrote, so the
#      runtime used that file, not the upstream.
#   3. `install --watch` runs while the primary rewrites its file (new bridge
#      and subnet, replaced by rename): the chained file follows, and the next container
#      gets an address from the new subnet.
#   4. `hostguard uninstall` removes the chained file; the next container runs
#      the upstream chain, without hostguard; the upstream is still untouched.
# If this hostguard build has no `install`, every step is skipped (not passed).
#
# Env: HOSTGUARD_BIN (default target/release/hostguard).
# Last line: "N passed, N failed[, N skipped]"; exit status 1 on any failure.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/guarded.sh
source "$(dirname "$0")/lib/guarded.sh"

PLUGIN=hostguard
NETWORK=hg-e2e
HG=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}

[[ -x $HG ]] || hg_die "hostguard binary not found at $HG: run 'cargo build --release' or set HOSTGUARD_BIN"
HG=$(realpath "$HG")
hg_e2e_begin containerd ctr podman conmon runc busybox jq nsenter unshare findmnt

echo "== e2e-install: hostguard install writes the chain; containerd and podman run it (run $$)"
if ! "$HG" install --help >/dev/null 2>&1; then
	echo "skip: hostguard install not available"
	hg_skip "install, runtimes use the chained file, watch, uninstall" "hostguard install not available in $HG"
	hg_e2e_finish
	exit
fi

hg_node_setup hostguard || hg_die "setup failed"
# install copies the binary itself: no recorder in front of it yet
rm -f "$HG_CNI/bin/hostguard"
NETD=$HG_CNI/net.d
UPSTREAM=$NETD/10-bridge.conflist
CHAINED=$NETD/00-hostguard.conflist
hg_runtime_conflist "$NETWORK" "$SUBNET" "$T" "" >"$UPSTREAM" || hg_die "cannot write $UPSTREAM"
jq 'del(.type)' <<<"$ENTRY" >"$T/plugin-config.json"
upstream_sum=$(sha256sum <"$UPSTREAM")
hg_sorted_view "$HOST_NS" >"$T/host-before"
echo "   host $HOST_NS, upstream $UP_NS, subnet $SUBNET, work dir $T"
echo "   upstream $(basename "$UPSTREAM"): $(jq -c '[.plugins[].type]' "$UPSTREAM")"

# install_run ARGS...: `hostguard install` in the node (its baseline is the
# node's routes); sets RC, MS, OUT, ERR.
STEP=0
install_run() {
	local t0
	STEP=$((STEP + 1))
	OUT=$T/install-$STEP.out
	ERR=$T/install-$STEP.err
	RC=0
	t0=$(hg_now_ms)
	hg_run timeout 30 nsenter --target "$HG_HOLDER" --mount --net "$HG" install --conf-dir "$NETD" "$@" \
		</dev/null >"$OUT" 2>"$ERR" || RC=$?
	MS=$(($(hg_now_ms) - t0))
}

upstream_untouched() { # WHEN
	if [[ $(sha256sum <"$UPSTREAM") == "$upstream_sum" ]]; then
		hg_ok "the upstream file is untouched $1"
	else
		hg_fail "the upstream file is untouched $1" "$(hg_indent "$UPSTREAM")"
	fi
}

# --- 1. install -----------------------------------------------------------------
install_run --bin-dir "$HG_CNI/bin" --plugin-config "$T/plugin-config.json" --state-dir "$T/hostguard" --run-dir "$T/hostguard/run" --timeout 10
if ((RC == 0)) && [[ -s $CHAINED ]]; then
	hg_ok "install writes $(basename "$CHAINED")" "$MS ms"
else
	hg_fail "install writes $(basename "$CHAINED")" "exit status $RC" "$(hg_indent "$ERR")" "$(hg_indent "$OUT")"
fi
# (and the top-level key by which install knows its own file; runtimes ignore it)
want=$(jq -S --argjson entry "$ENTRY" --arg up "$(basename "$UPSTREAM")" --arg out "$(basename "$CHAINED")" \
	'.plugins += [$entry] | .hostguardInstall = {output: $out, upstream: $up}' "$UPSTREAM")
if diff -u --label "upstream + hostguard entry" --label "$(basename "$CHAINED")" \
	<(echo "$want") <(jq -S . "$CHAINED" 2>&1) >"$T/chained.diff"; then
	hg_ok "the chained file is the upstream plus one hostguard entry, last"
else
	hg_fail "the chained file is the upstream plus one hostguard entry, last" "$(hg_indent "$T/chained.diff")"
fi
if cmp -s "$HG" "$HG_CNI/bin/hostguard" && [[ -x $HG_CNI/bin/hostguard ]]; then
	hg_ok "install copied the binary to the plugin dir"
else
	hg_fail "install copied the binary to the plugin dir" "$(ls -l "$HG_CNI/bin" 2>&1)"
fi
if grep -qF '"172.26.0.1"' "$T/hostguard/baseline.json" 2>/dev/null &&
	grep -qF '"172.26.0.33"' "$T/hostguard/baseline.json"; then
	hg_ok "install recorded the baseline (both default routes) before any pod"
else
	hg_fail "install recorded the baseline (both default routes) before any pod" "$(head -c 600 "$T/hostguard/baseline.json" 2>&1)"
fi
upstream_untouched "after install"

before=$(stat -c '%i %Y' "$CHAINED" 2>&1)
install_run --plugin-config "$T/plugin-config.json" --timeout 10
if ((RC == 0)) && [[ $(stat -c '%i %Y' "$CHAINED" 2>&1) == "$before" ]]; then
	hg_ok "install again: exit 0, the file is not rewritten" "$MS ms"
else
	hg_fail "install again: exit 0, the file is not rewritten" "exit status $RC; inode/mtime $before -> $(stat -c '%i %Y' "$CHAINED" 2>&1)" "$(hg_indent "$ERR")"
fi

# From here on a recorder stands in front of the installed binary: the
# runtimes still load the installed file and run the installed binary.
mv "$HG_CNI/bin/hostguard" "$T/hostguard-installed"
hg_trace_wrapper "$T/hostguard-installed" "$HG_CNI/bin/hostguard" "$T/trace"

# check_entry LABEL TRACE_DIR: hostguard's ADD got exactly the installed
# entry (besides what the runtime adds: cniVersion, name, prevResult, runtimeConfig).
check_entry() {
	local label=$1 dir=$2 in got=
	in=("$dir"/*-ADD.in)
	[[ -e ${in[0]} ]] && got=$(jq -S 'del(.cniVersion, .name, .prevResult, .runtimeConfig, .capabilities)' "${in[0]}" 2>&1)
	if [[ -n $got && $got == "$(jq -S '.plugins[-1]' "$CHAINED")" ]]; then
		hg_ok "$label: hostguard ran with the entry install wrote: the runtime loaded $(basename "$CHAINED")"
	else
		hg_fail "$label: hostguard ran with the entry install wrote: the runtime loaded $(basename "$CHAINED")" \
			"hostguard's ADD config: ${got:-no ADD call}"
	fi
}

# --- 2. the runtimes use it -------------------------------------------------------
t0=$(hg_now_ms)
hg_containerd_start "$T/containerd" || hg_die "containerd did not start"
echo "   containerd up in $(($(hg_now_ms) - t0)) ms"
hg_podman_setup "$T/podman"

CTR_N=0
ctr_container() { # LABEL
	local id
	CTR_N=$((CTR_N + 1))
	id=hg-$$-c$CTR_N
	hg_trace_switch "ctr$CTR_N"
	# One write, then a pause: ctr 1.6 can lose the tail of a task's output when the task exits
	# at once (see e2e-containerd.sh).
	# shellcheck disable=SC2016 # expanded by the container's shell
	hg_node_run "$T/$id" ctr --address "$HG_CTD_SOCK" run --rm --cni --rootfs --runc-root "$T/runc" \
		--fifo-dir "$T/fifo" --cgroup "/$CG/$id" "$T/rootfs" "$id" \
		/bin/sh -c 'out=$(ip -4 -o addr show dev eth0; ip route show default); echo "$out"; sleep 0.2'
	((RC == 0)) || hg_ctr_remove_all
	LAST_OUT=$OUT
	LAST_ERR=$ERR
	LAST_TRACE=$T/traces/ctr$CTR_N
	LAST_CID=default-$id
}

ctr_container
hg_check_run "containerd" "$RC" "$MS" "$LAST_OUT" "$LAST_ERR" "$LAST_TRACE" "$LAST_CID"
check_entry "containerd" "$LAST_TRACE"

hg_trace_switch podman1
hg_node_run "$T/p1" env CONTAINERS_CONF="$HG_PODMAN_DIR/containers.conf" \
	podman --root "$HG_PODMAN_DIR/storage" --runroot "$HG_PODMAN_DIR/runroot" --storage-driver vfs \
	run --rm --rootfs --network "$NETWORK" --cgroup-parent "/$CG" --name "hg-$$-p1" "$T/rootfs" \
	/bin/sh -c 'ip -4 -o addr show dev eth0; ip route show default'
hg_check_run "podman" "$RC" "$MS" "$T/p1.out" "$T/p1.err" "$T/traces/podman1" '*' 1
check_entry "podman" "$T/traces/podman1"

# --- 3. --watch follows the upstream ------------------------------------------------
hg_bg WATCH nsenter --target "$HG_HOLDER" --mount --net "$HG" install --conf-dir "$NETD" \
	--plugin-config "$T/plugin-config.json" --timeout 10 --watch </dev/null >"$T/watch.out" 2>"$T/watch.err"
# the watcher is ready when it has looked once; its first sync changes nothing
sleep 0.3
OLD_SUBNET=$SUBNET
SUBNET=10.89.$(($$ % 250 + 1)).0/24
# (a new bridge too: the bridge plugin refuses a second gateway on cni-hg0)
hg_runtime_conflist "$NETWORK" "$SUBNET" "$T" "" | jq '.plugins[0].bridge = "cni-hg1"' >"$NETD/.10-bridge.new"
mv -f "$NETD/.10-bridge.new" "$UPSTREAM"
upstream_sum=$(sha256sum <"$UPSTREAM")
t0=$(hg_now_ms)
synced=0
for ((i = 0; i < 100; i++)); do
	if jq -e --arg s "$SUBNET" '.plugins[0].ipam.ranges[0][0].subnet == $s and .plugins[-1].type == "hostguard"' \
		"$CHAINED" >/dev/null 2>&1; then
		synced=1
		break
	fi
	sleep 0.02
done
if ((synced)); then
	hg_ok "install --watch re-chained the rewritten upstream" "within $(($(hg_now_ms) - t0)) ms"
else
	hg_fail "install --watch re-chained the rewritten upstream" "$(hg_indent "$T/watch.err")" "$(jq -c '.plugins[0].ipam' "$CHAINED" 2>&1)"
fi
ctr_container
hg_check_run "containerd after the upstream changed" "$RC" "$MS" "$LAST_OUT" "$LAST_ERR" "$LAST_TRACE" "$LAST_CID"
kill -TERM "$WATCH" 2>/dev/null
rc=0
wait "$WATCH" || rc=$?
if ((rc == 0)); then
	hg_ok "install --watch exits 0 on SIGTERM"
else
	hg_fail "install --watch exits 0 on SIGTERM" "exit status $rc" "$(hg_indent "$T/watch.err")"
fi

# --- 4. uninstall -------------------------------------------------------------------
RC=0
hg_run nsenter --target "$HG_HOLDER" --mount --net "$HG" uninstall --conf-dir "$NETD" \
	</dev/null >"$T/uninstall.out" 2>"$T/uninstall.err" || RC=$?
if ((RC == 0)) && [[ ! -e $CHAINED ]]; then
	hg_ok "uninstall removes $(basename "$CHAINED")"
else
	hg_fail "uninstall removes $(basename "$CHAINED")" "exit status $RC" "$(hg_indent "$T/uninstall.err")" "$(ls -A "$NETD")"
fi
upstream_untouched "after install --watch and uninstall"
ctr_container
calls=$(hg_trace_calls "$LAST_TRACE")
if ((RC == 0)) && [[ -z $calls ]]; then
	hg_ok "after uninstall, containerd runs the upstream chain, without hostguard" "$MS ms"
else
	hg_fail "after uninstall, containerd runs the upstream chain, without hostguard" "exit status $RC" "$(hg_indent "$LAST_ERR")" "hostguard calls: $calls"
fi
SUBNET=$OLD_SUBNET
hg_check_host_view "at the end"

hg_containerd_stop
hg_e2e_finish
