#!/usr/bin/env bash
# e2e-podman: podman 4 with its CNI backend starts busybox containers (podman
# run --rm --rootfs, runc, no image) whose network is bridge + host-local +
# portmap -> $PLUGIN, with a published port so portmap has work to do. The
# namespaces, host setup and the checks after each container are those of
# e2e-containerd (scripts/lib/guarded.sh); podman, conmon, runc and the plugins
# run in the host namespace's private mount namespace (scripts/lib/runtimes.sh).
# podman specifics: it asks VERSION before ADD, and its DEL comes from the
# "podman container cleanup" that conmon starts when the container exits.
#
# Env: PLUGIN (default hostguard; tuning checks the harness itself),
# HOSTGUARD_BIN, HG_TIMING_RUNS=N (also time N `podman run --rm` with
# hostguard and N with tuning in its place, alternately, untraced).
# Last line: "N passed, N failed[, N skipped]"; exit status 1 on any failure.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/guarded.sh
source "$(dirname "$0")/lib/guarded.sh"

PLUGIN=${PLUGIN:-hostguard}
TIMING_RUNS=${HG_TIMING_RUNS:-0}
NETWORK=hg-e2e

hg_e2e_begin podman conmon runc busybox jq nsenter unshare findmnt

echo "== e2e-podman: podman $(podman --version | awk '{print $3}') run (CNI backend, runc) -> bridge + host-local + portmap -> $PLUGIN (run $$)"
hg_node_setup "$PLUGIN" || hg_die "setup failed"
hg_podman_setup "$T/podman"
echo "   host $HOST_NS, upstream $UP_NS, cgroup parent /$CG, subnet $SUBNET, work dir $T"
hg_e2e_conflist "$NETWORK"

# podman_run NAME CMD...: `podman run --rm` of the rootfs; sets RC, MS, OUT, ERR.
podman_run() {
	local name=$1
	shift
	hg_node_run "$T/$name" env CONTAINERS_CONF="$HG_PODMAN_DIR/containers.conf" \
		podman --root "$HG_PODMAN_DIR/storage" --runroot "$HG_PODMAN_DIR/runroot" --storage-driver vfs \
		run --rm --rootfs --network "$NETWORK" --cgroup-parent "/$CG" --name "$name" \
		--publish "127.0.0.1:18080:80" "$T/rootfs" "$@"
}

# run_container N LABEL: one container that prints its address and route.
run_container() {
	local name=hg-$$-r$1
	hg_trace_switch "run$1"
	podman_run "$name" /bin/sh -c 'ip -4 -o addr show dev eth0; ip route show default'
	hg_check_run "$2" "$RC" "$MS" "$OUT" "$ERR" "$T/traces/run$1" '*' 1
	left=$(hg_podman ps --all --quiet 2>&1)
	if [[ -z $left ]]; then
		hg_ok "$2: podman has no container left"
	else
		hg_fail "$2: podman has no container left" "$left"
		hg_podman rm --force --all >/dev/null 2>&1
	fi
}

hg_e2e_containers run_container

# --- timings: real-client figures (untraced) ----------------------------------
if ((TIMING_RUNS > 0)); then
	hg_time_runs podman_run "podman run --rm (bridge+portmap)" "$TIMING_RUNS" "$CONFLIST" "$NETWORK"
fi

left=$(hg_tagged_pids_of conmon)
if [[ -z $left ]]; then
	hg_ok "no conmon or cleanup process of this run is still running"
else
	hg_fail "no conmon or cleanup process of this run is still running" "$left"
fi

hg_e2e_finish
