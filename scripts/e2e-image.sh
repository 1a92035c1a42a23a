#!/usr/bin/env bash
# e2e-image: the container image an operator deploys. Builds it offline with podman from the
# Containerfile (FROM scratch: the static binary and its license, no shell), then runs it the way
# the DaemonSet does: `--version`; `install` with its options from HOSTGUARD_* variables into a
# temp conf dir and bin dir, as root with every capability dropped and a read-only root; and
# `guard` (when this build has it) with only CAP_NET_ADMIN in a throwaway network namespace,
# probed on /healthz and /readyz and stopped with SIGTERM.
# podman runs in the private mount namespace of scripts/lib/runtimes.sh, with its storage in the
# work dir: the machine's image store is never touched.
#
# Env: HOSTGUARD_BIN (default target/release/hostguard).
# Last line: "N passed, N failed[, N skipped]"; exit status 1 on any failure.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/guarded.sh
source "$(dirname "$0")/lib/guarded.sh"

BIN=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}
IMAGE=localhost/hostguard:e2e-$$
METRICS_PORT=9353

if ! command -v podman >/dev/null 2>&1; then
	echo "== e2e-image: podman is not installed here: image not built"
	hg_skip "image build and runs" "no podman"
	hg_summary
	exit 0
fi
hg_e2e_begin podman runc jq nsenter unshare strip readelf
[[ -x $BIN ]] || hg_die "no hostguard binary at $BIN: run 'cargo build --release' or set HOSTGUARD_BIN"
echo "== e2e-image: podman $(podman --version | awk '{print $3}') build of Containerfile with $BIN (run $$)"

hg_netns_add HOST_NS || hg_die "setup failed"
hg_cgroup_add CG
hg_holder_start "$HOST_NS" || hg_die "setup failed"
hg_podman_setup "$T/podman"
# A machine where podman cannot even set up its storage cannot build an image: say so and stop.
if ! hg_podman info >"$T/podman-info" 2>&1; then
	hg_skip "image build and runs" "podman cannot run here: $(tail -n 1 "$T/podman-info")"
	hg_check_teardown "$ROOT_BEFORE" "$MACHINE_BEFORE"
	hg_summary
	exit 0
fi

# podman_run PREFIX ARGS...: `podman run --rm` of the image in the run's cgroup; OUT, ERR, RC.
podman_run() {
	local prefix=$1
	shift
	hg_node_run "$T/$prefix" env CONTAINERS_CONF="$HG_PODMAN_DIR/containers.conf" \
		podman --root "$HG_PODMAN_DIR/storage" --runroot "$HG_PODMAN_DIR/runroot" --storage-driver vfs \
		run --rm --cgroup-parent "/$CG" "$@"
}

# --- build ----------------------------------------------------------------------------------
if readelf -lW "$BIN" | grep -q 'Requesting program interpreter'; then
	hg_fail "the binary is static" "$(ldd "$BIN" 2>&1)"
else
	hg_ok "the binary is static" "$(ldd "$BIN" 2>&1 | tr -s ' \t' ' ')"
fi
mkdir -p "$T/ctx"
strip --strip-all -o "$T/ctx/hostguard" "$BIN" && cp "$HG_REPO/LICENSE" "$T/ctx/"
hg_node_run "$T/build" env CONTAINERS_CONF="$HG_PODMAN_DIR/containers.conf" \
	podman --root "$HG_PODMAN_DIR/storage" --runroot "$HG_PODMAN_DIR/runroot" --storage-driver vfs \
	build --pull=never --network none -f "$HG_REPO/Containerfile" -t "$IMAGE" "$T/ctx"
if ((RC == 0)); then
	size=$(hg_podman image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null)
	hg_ok "podman build --pull=never (offline, FROM scratch)" "${MS} ms, image $size bytes, binary $(stat -c %s "$T/ctx/hostguard") bytes stripped"
else
	hg_fail "podman build --pull=never (offline, FROM scratch)" "$(tail -n 20 "$ERR")"
	hg_check_teardown "$ROOT_BEFORE" "$MACHINE_BEFORE"
	hg_summary
	exit 1
fi

# --- what is in it --------------------------------------------------------------------------
podman_run version --network none "$IMAGE" --version
if ((RC == 0)) && [[ $(head -n 1 "$OUT") == "hostguard "* ]] && grep -q '^CNI protocol versions supported: ' "$OUT" &&
	grep -q '^git commit: ' "$OUT"; then
	hg_ok "the entry point is hostguard: --version" "$(tr '\n' ' ' <"$OUT")"
else
	hg_fail "the entry point is hostguard: --version" "rc $RC" "$(cat "$OUT" "$ERR")"
fi
podman_run shell --network none --entrypoint /bin/sh "$IMAGE" -c true
if ((RC != 0)); then
	hg_ok "the image has no shell"
else
	hg_fail "the image has no shell" "/bin/sh -c true ran"
fi

# --- install, options from the environment ----------------------------------------------------
mkdir -p "$T/net.d" "$T/bin" "$T/state"
cat >"$T/net.d/10-bridge.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "k8s-pod-network",
 "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.244.0.0/24"}}]}
JSON
podman_run install --network none --read-only --cap-drop=all \
	-v "$T/net.d:/host/etc/cni/net.d" -v "$T/bin:/host/opt/cni/bin" \
	-e HOSTGUARD_CONF_DIR=/host/etc/cni/net.d -e HOSTGUARD_BIN_DIR=/host/opt/cni/bin \
	-e HOSTGUARD_TIMEOUT=0 "$IMAGE" install
chained=$T/net.d/00-hostguard.conflist
if ((RC == 0)) && [[ $(jq -c '[.plugins[].type]' "$chained" 2>/dev/null) == '["bridge","hostguard"]' ]]; then
	hg_ok "install from HOSTGUARD_* wrote the chained conflist" "$(jq -c '[.plugins[].type]' "$chained")"
else
	hg_fail "install from HOSTGUARD_* wrote the chained conflist" "rc $RC" "$(cat "$ERR")" "$(ls -l "$T/net.d")"
fi
if cmp -s "$T/bin/hostguard" "$T/ctx/hostguard" && [[ -x $T/bin/hostguard ]]; then
	hg_ok "install copied the image's binary to the bin dir"
else
	hg_fail "install copied the image's binary to the bin dir" "$(ls -l "$T/bin")"
fi

# --- guard, in a throwaway network namespace ------------------------------------------------------
# http_get PATH: the status line of GET PATH from the guard, asked inside the namespace.
http_get() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	hg_host timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$2" >&3
		head -n 1 <&3' http-get "$METRICS_PORT" "$1" 2>/dev/null | tr -d '\r'
}

podman_run guard-help --network none "$IMAGE" guard --help
if ((RC != 0)); then
	hg_skip "guard runs with CAP_NET_ADMIN, answers /healthz and /readyz, exits 0 on SIGTERM" \
		"this build has no guard subcommand: $(head -n 1 "$ERR")"
else
	printf '{"stateDir": "/var/lib/cni/hostguard", "logLevel": "debug"}\n' >"$T/plugin-config.json"
	name=hg-$$-guard
	hg_node_run "$T/guard-start" env CONTAINERS_CONF="$HG_PODMAN_DIR/containers.conf" \
		podman --root "$HG_PODMAN_DIR/storage" --runroot "$HG_PODMAN_DIR/runroot" --storage-driver vfs \
		run -d --name "$name" --cgroup-parent "/$CG" --network "ns:/proc/$HG_HOLDER/ns/net" \
		--read-only --cap-drop=all --cap-add=NET_ADMIN \
		-v "$T/net.d:/host/etc/cni/net.d" -v "$T/state:/var/lib/cni/hostguard" \
		-v "$T/plugin-config.json:/etc/hostguard/plugin-config.json:ro" \
		"$IMAGE" guard --plugin-config /etc/hostguard/plugin-config.json \
		--conf-dir /host/etc/cni/net.d --metrics-addr "127.0.0.1:$METRICS_PORT"
	healthz='' readyz=
	for ((i = 0; i < 150; i++)); do
		healthz=$(http_get /healthz)
		readyz=$(http_get /readyz)
		[[ $healthz == *" 200 "* && $readyz == *" 200 "* ]] && break
		sleep 0.1
	done
	if [[ $healthz == *" 200 "* && $readyz == *" 200 "* ]]; then
		hg_ok "guard in a throwaway netns with only CAP_NET_ADMIN: /healthz and /readyz 200"
	else
		hg_fail "guard in a throwaway netns with only CAP_NET_ADMIN: /healthz and /readyz 200" \
			"healthz: ${healthz:-no answer}; readyz: ${readyz:-no answer}" "$(hg_podman logs "$name" 2>&1 | tail -n 10)"
	fi
	hg_podman stop --time 10 "$name" >/dev/null 2>&1
	status=$(hg_podman inspect --format '{{.State.ExitCode}}' "$name" 2>&1)
	if [[ $status == 0 ]]; then
		hg_ok "guard exits 0 on SIGTERM (podman stop)"
	else
		hg_fail "guard exits 0 on SIGTERM (podman stop)" "exit code $status" "$(hg_podman logs "$name" 2>&1 | tail -n 10)"
	fi
	hg_podman rm --force "$name" >/dev/null 2>&1
fi

hg_podman rmi --force "$IMAGE" >/dev/null 2>&1
hg_check_teardown "$ROOT_BEFORE" "$MACHINE_BEFORE"
echo "   total $(($(hg_now_ms) - HG_T_START)) ms"
hg_summary
((HG_FAIL == 0))
