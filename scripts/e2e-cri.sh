#!/usr/bin/env bash
# e2e-cri: the kubelet's own path. containerd's CRI plugin (not ctr) is driven over its gRPC API
# the way a kubelet drives it, by a small client of our own (tests/cri/cri_client.py, stubs
# generated at test time from the vendored CRI api.proto): the runtime Status call, whose
# NetworkReady condition is what keeps a node NotReady, then RunPodSandbox, PodSandboxStatus,
# StopPodSandbox and RemovePodSandbox. The sandbox image is built offline (a static pause-like
# program, tests/cri/pause.c, in a one-layer OCI archive imported with `ctr images import`).
#
# The primary CNI that is still starting, at the kubelet's level: its conflist exists but holds no
# plugins. NetworkReady must stay false and `hostguard install --watch` must write nothing; once
# the upstream becomes valid, hostguard's conflist appears, NetworkReady turns true, and pods get
# addresses through bridge + host-local + portmap -> hostguard, with the K8S_POD_* CNI_ARGS a
# kubelet's runtime passes accepted, and the host's default routes and guarded rule intact.
#
# containerd, its shims, runc and the plugins run in the private mount namespace of
# scripts/lib/runtimes.sh inside a throwaway "host" network namespace; everything is in the work
# dir and removed at the end.
#
# Env: HOSTGUARD_BIN (default target/release/hostguard).
# Last line: "N passed, N failed[, N skipped]"; exit status 1 on any failure.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/guarded.sh
source "$(dirname "$0")/lib/guarded.sh"

PLUGIN=hostguard
PYTHON=/usr/bin/python3
NETWORK=hg-cri
SANDBOX_IMAGE=hg.local/pause:e2e
POD_NAMESPACE=hg-e2e

hg_e2e_begin containerd ctr runc jq nsenter unshare findmnt gcc "$PYTHON"
"$PYTHON" -c 'import grpc, grpc_tools' 2>/dev/null ||
	hg_die "python3-grpcio and python3-grpc-tools are missing: run scripts/test.sh once (it installs them)"

echo "== e2e-cri: containerd $(containerd --version | awk '{print $3}') CRI plugin, driven like a kubelet -> bridge + host-local + portmap -> hostguard (run $$)"
hg_node_setup hostguard || hg_die "setup failed"
# CRI's bin_dir is a single directory (containerd 1.6): the chain's plugins and the loopback
# plugin CRI runs for every sandbox go next to hostguard.
for p in bridge host-local portmap loopback; do
	ln -s "/usr/lib/cni/$p" "$HG_CNI/bin/$p" || hg_die "no /usr/lib/cni/$p (containernetworking-plugins)"
done
echo "   host $HOST_NS, upstream $UP_NS, cgroup parent /$CG, subnet $SUBNET, work dir $T"

# --- the client and the sandbox image, built here, offline ----------------------------------
mkdir -p "$T/cri"
# Debian's protoc predates the debug_redact field option (a log-redaction hint only).
sed -E 's/ \[debug_redact = true\]//' "$HG_REPO/tests/cri/api.proto" >"$T/cri/api.proto"
"$PYTHON" -m grpc_tools.protoc -I"$T/cri" --python_out="$T/cri" --grpc_python_out="$T/cri" "$T/cri/api.proto" ||
	hg_die "cannot generate the CRI stubs"
gcc -static -Os -o "$T/pause" "$HG_REPO/tests/cri/pause.c" || hg_die "cannot build the pause program"
"$PYTHON" "$HG_REPO/tests/cri/oci_image.py" "$T/pause" "$SANDBOX_IMAGE" "$T/pause.tar" ||
	hg_die "cannot write the pause image"

hg_containerd_start "$T/containerd" "$SANDBOX_IMAGE" || hg_die "containerd with CRI did not start"
hg_ctr --namespace k8s.io images import --snapshotter native "$T/pause.tar" >"$T/import.out" 2>&1 ||
	hg_die "ctr images import failed: $(cat "$T/import.out")"

# cri CALL ARGS...: one CRI call; its JSON answer in $T/cri.out, status in RC.
cri() {
	RC=0
	hg_run timeout 90 "$PYTHON" "$HG_REPO/tests/cri/cri_client.py" "$T/cri" "$HG_CTD_SOCK" "$@" \
		>"$T/cri.out" 2>"$T/cri.err" || RC=$?
}

# network_ready: READY is "true", "false" or "error"; the condition's reason in NET_REASON.
network_ready() {
	cri status
	if ((RC != 0)); then
		NET_REASON=$(cat "$T/cri.out" "$T/cri.err")
		READY=error
		return
	fi
	NET_REASON=$(jq -r '.NetworkReady.reason + ": " + .NetworkReady.message' "$T/cri.out")
	READY=$(jq -r '.NetworkReady.status' "$T/cri.out")
}

cri status
if ((RC == 0)) && [[ $(jq -r '.RuntimeReady.status' "$T/cri.out") == true ]]; then
	hg_ok "CRI Status answers: RuntimeReady"
else
	hg_fail "CRI Status answers: RuntimeReady" "$(cat "$T/cri.out" "$T/cri.err")" "$(tail -n 5 "$T/containerd/containerd.log")"
fi

# --- the primary is still starting: an upstream conflist without plugins ---------------------------
upstream=$HG_CNI/net.d/10-$NETWORK.conflist
chained=$HG_CNI/net.d/00-hostguard.conflist
hg_runtime_conflist "$NETWORK" "$SUBNET" "$T" "" >"$T/upstream.valid" || hg_die "cannot write the upstream"
jq '.plugins = []' "$T/upstream.valid" >"$upstream"
jq 'del(.type)' <<<"$ENTRY" >"$T/plugin-config.json"
hg_sorted_view "$HOST_NS" >"$T/host-before"
hg_bg WATCH "$PLUGIN_REAL" install --watch --conf-dir "$HG_CNI/net.d" \
	--plugin-config "$T/plugin-config.json" --timeout 120 </dev/null >"$T/install.out" 2>"$T/install.err"

# Three seconds of a node whose primary is not ready: the kubelet would keep it NotReady.
stayed=1
for ((i = 0; i < 6; i++)); do
	network_ready
	[[ $READY == false ]] || stayed=0
	sleep 0.5
done
if ((stayed)); then
	hg_ok "empty upstream conflist: NetworkReady stays false for 3 s" "$NET_REASON"
else
	hg_fail "empty upstream conflist: NetworkReady stays false for 3 s" "last: $READY $NET_REASON"
fi
if [[ ! -e $chained ]]; then
	hg_ok "empty upstream conflist: hostguard writes nothing"
else
	hg_fail "empty upstream conflist: hostguard writes nothing" "$(cat "$chained")"
fi

# --- the primary becomes ready ------------------------------------------------------------------
t0=$(hg_now_ms)
cp "$T/upstream.valid" "$HG_CNI/net.d/.upstream.tmp" && mv "$HG_CNI/net.d/.upstream.tmp" "$upstream"
for ((i = 0; i < 200; i++)); do
	[[ -s $chained ]] && break
	sleep 0.05
done
t_written=$(($(hg_now_ms) - t0))
types=$(jq -c '[.plugins[].type]' "$chained" 2>/dev/null)
if [[ $types == '["bridge","portmap","hostguard"]' ]]; then
	hg_ok "valid upstream: hostguard's conflist appears" "after ${t_written} ms: $types"
else
	hg_fail "valid upstream: hostguard's conflist appears" "after ${t_written} ms: ${types:-none}" "$(tail -n 5 "$T/install.err")"
fi
for ((i = 0; i < 100; i++)); do
	network_ready
	[[ $READY == true ]] && break
	sleep 0.2
done
if [[ $READY == true ]]; then
	hg_ok "valid upstream: NetworkReady turns true" "$(($(hg_now_ms) - t0)) ms after the upstream was written"
else
	hg_fail "valid upstream: NetworkReady turns true" "$READY $NET_REASON"
fi

# --- pods, as a kubelet starts and ends them ----------------------------------------------------
for n in 1 2; do
	name=pod$n
	hg_trace_switch "$name"
	mkdir -p "$T/logs/$name"
	t0=$(hg_now_ms)
	cri run "$name" "$POD_NAMESPACE" "uid-$$-$n" "/$CG" "$T/logs/$name"
	ms=$(($(hg_now_ms) - t0))
	if ((RC != 0)); then
		hg_fail "$name: RunPodSandbox" "$(cat "$T/cri.out" "$T/cri.err")" "$(grep -i error "$T/containerd/containerd.log" | tail -n 5)"
		continue
	fi
	id=$(jq -r .id "$T/cri.out")
	cri pod-status "$id"
	ip=$(jq -r .ip "$T/cri.out")
	state=$(jq -r .state "$T/cri.out")
	add_env=$(cat "$T/traces/$name"/*-ADD.env 2>/dev/null)
	add_rc=$(cat "$T/traces/$name"/*-ADD.rc 2>/dev/null)
	prev=$(jq -r '[.prevResult.ips[]?.address] | join(",")' "$T/traces/$name"/*-ADD.in 2>/dev/null)
	if [[ $state == SANDBOX_READY && -n $ip && ${ip%.*} == "${SUBNET%.0/24}" ]]; then
		hg_ok "$name: RunPodSandbox, PodSandboxStatus: ready with an address" "$ip in ${ms} ms"
	else
		hg_fail "$name: RunPodSandbox, PodSandboxStatus: ready with an address" "$(cat "$T/cri.out")"
	fi
	if [[ $add_rc == 0 && $prev == "$ip/"* ]]; then
		hg_ok "$name: hostguard ADD in the chain, exit 0, prevResult $prev"
	else
		hg_fail "$name: hostguard ADD in the chain, exit 0" "rc ${add_rc:-none}, prevResult ${prev:-none}" "$(hg_trace_calls "$T/traces/$name")"
	fi
	# containerd builds CNI_ARGS from a map: the pairs come in any order.
	cni_args=";$(sed -n 's/^CNI_ARGS=//p' <<<"$add_env");"
	if [[ $cni_args == *";K8S_POD_NAMESPACE=$POD_NAMESPACE;"* && $cni_args == *";K8S_POD_NAME=$name;"* &&
		$cni_args == *";K8S_POD_INFRA_CONTAINER_ID=$id;"* && $cni_args == *";K8S_POD_UID=uid-$$-$n;"* ]]; then
		hg_ok "$name: the kubelet's K8S_POD_* CNI_ARGS reached hostguard, accepted"
	else
		hg_fail "$name: the kubelet's K8S_POD_* CNI_ARGS reached hostguard, accepted" "$(grep CNI_ARGS <<<"$add_env")"
	fi
	cri stop "$id"
	stop_rc=$RC
	cri remove "$id"
	del_rc=$(cat "$T/traces/$name"/*-DEL.rc 2>/dev/null | sort -u | tr '\n' ' ')
	if ((stop_rc == 0 && RC == 0)) && [[ $del_rc == "0 " ]]; then
		hg_ok "$name: StopPodSandbox, RemovePodSandbox: hostguard DEL exit 0"
	else
		hg_fail "$name: StopPodSandbox, RemovePodSandbox: hostguard DEL exit 0" "stop $stop_rc, remove $RC, DEL ${del_rc:-none}" "$(cat "$T/cri.out" "$T/cri.err")"
	fi
done
hg_check_host_view "after the pods"

# --- the end: install --watch stops on SIGTERM, leaving its file ------------------------------------
kill -TERM "$WATCH" 2>/dev/null
rc=0
wait "$WATCH" || rc=$?
if ((rc == 0)) && [[ -s $chained ]]; then
	hg_ok "install --watch exits 0 on SIGTERM and leaves its conflist"
else
	hg_fail "install --watch exits 0 on SIGTERM and leaves its conflist" "exit $rc" "$(tail -n 5 "$T/install.err")"
fi
hg_containerd_stop
hg_e2e_finish
