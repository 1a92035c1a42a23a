#!/usr/bin/env bash
# Entrypoint of the hostguard install-cni container: an init container (one-shot) or, with
# HOSTGUARD_WATCH=true, a long-running DaemonSet container that keeps the chained conflist in sync.
# It only turns the environment into `hostguard install` arguments; see `hostguard install --help`.
#
#   CNI_CONF_DIR             the runtime's CNI config directory as mounted here (default /etc/cni/net.d)
#   CNI_BIN_DIR              where to install the binary (default /opt/cni/bin; set it empty to skip)
#   HOSTGUARD_OUTPUT         file to write in CNI_CONF_DIR (default 00-hostguard.conflist)
#   HOSTGUARD_PRIMARY        chain this file instead of the one the runtime loads first
#   HOSTGUARD_PLUGIN_CONFIG  the hostguard entry's settings: a JSON file, or inline JSON ("{...}")
#   HOSTGUARD_TIMEOUT        seconds to wait for the upstream config (default 300; 0 = look once)
#   HOSTGUARD_STATE_DIR      state directory to create; mount it at the host's path, or set
#                            "stateDir" (the host's path) in HOSTGUARD_PLUGIN_CONFIG
#   HOSTGUARD_RUN_DIR        per-boot directory (locks; default /run/hostguard), mounted likewise
#   HOSTGUARD_WATCH          true | false (default false)
#   HOSTGUARD_BIN            the hostguard binary to run (default: hostguard from PATH)
#
# exec hands PID 1 to hostguard, so SIGTERM from the kubelet reaches it directly (exit 0 in watch mode).
set -euo pipefail

die() {
    printf 'install-cni.sh: %s\n' "$*" >&2
    exit 2
}

hostguard=${HOSTGUARD_BIN:-hostguard}
args=(install --conf-dir "${CNI_CONF_DIR:-/etc/cni/net.d}")

bin_dir=${CNI_BIN_DIR-/opt/cni/bin}
if [[ -n ${bin_dir} ]]; then
    args+=(--bin-dir "${bin_dir}")
fi
if [[ -n ${HOSTGUARD_OUTPUT:-} ]]; then
    args+=(--output "${HOSTGUARD_OUTPUT}")
fi
if [[ -n ${HOSTGUARD_PRIMARY:-} ]]; then
    args+=(--primary "${HOSTGUARD_PRIMARY}")
fi
if [[ -n ${HOSTGUARD_TIMEOUT:-} ]]; then
    args+=(--timeout "${HOSTGUARD_TIMEOUT}")
fi
if [[ -n ${HOSTGUARD_STATE_DIR:-} ]]; then
    args+=(--state-dir "${HOSTGUARD_STATE_DIR}")
fi
if [[ -n ${HOSTGUARD_RUN_DIR:-} ]]; then
    args+=(--run-dir "${HOSTGUARD_RUN_DIR}")
fi

case ${HOSTGUARD_WATCH:-false} in
    true) args+=(--watch) ;;
    false) ;;
    *) die "HOSTGUARD_WATCH must be true or false, not '${HOSTGUARD_WATCH}'" ;;
esac

plugin_config=${HOSTGUARD_PLUGIN_CONFIG:-}
if [[ ${plugin_config} =~ ^[[:space:]]*\{ ]]; then
    # Inline JSON goes in on stdin: no temporary file to leave behind in a read-only container.
    args+=(--plugin-config -)
    exec "${hostguard}" "${args[@]}" <<<"${plugin_config}"
fi
if [[ -n ${plugin_config} ]]; then
    [[ -r ${plugin_config} ]] || die "HOSTGUARD_PLUGIN_CONFIG file '${plugin_config}' is not readable"
    args+=(--plugin-config "${plugin_config}")
fi
exec "${hostguard}" "${args[@]}" </dev/null
