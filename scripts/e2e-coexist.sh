#!/usr/bin/env bash
# e2e-coexist: hostguard beside the other chain editors of a node. Stand-ins of Istio's, Multus'
# and Antrea's installers (testdata/e2e/cotenants: small scripts written from their documented
# algorithms, not their code) run in one config directory with `hostguard install --in-place
# --watch`. For each pairing, in both start orders:
#   1. steady state within 5 s: the chain the runtime loads (for Multus: its master, the delegate
#      of the file the runtime loads) runs the primary's plugins first, then the co-tenant and
#      hostguard, each exactly once; then no file is written for 10 s (the first steady state of
#      each pairing; 1 or 2 s after the later steps, to keep the run near two minutes);
#   2. containerd (ctr run --cni) starts a container on it: every expected plugin gets ADD once
#      (each plugin binary is a recorder in front of the real one; the co-tenants' plugins pass
#      prevResult through, the Multus stand-in runs its delegate's chain);
#   3. the co-tenant restarts, then hostguard restarts: steady state again, each time;
#   4. the primary rewrites its file (as the AWS or Azure CNI does at node restart): again;
#   5. first order: `hostguard uninstall --in-place` leaves primary + co-tenant working;
#      second order: the co-tenant's own cleanup (Istio removes its entry, Multus its file;
#      Antrea has none, so its file is removed by hand) leaves primary + hostguard working.
# The node is e2e-containerd's (scripts/lib/guarded.sh): throwaway namespaces, a private mount
# namespace in which /etc/cni/net.d and /opt/cni/bin are this run's directories.
#
# Env: HOSTGUARD_BIN (default target/release/hostguard).
# Last line: "N passed, N failed[, N skipped]"; exit status 1 on any failure.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/guarded.sh
source "$(dirname "$0")/lib/guarded.sh"

PLUGIN=hostguard
NETWORK=hg-coexist
HG=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}
COTENANTS=$HG_REPO/testdata/e2e/cotenants

[[ -x $HG ]] || hg_die "hostguard binary not found at $HG: run 'cargo build --release' or set HOSTGUARD_BIN"
HG=$(realpath "$HG")
hg_e2e_begin containerd ctr runc busybox jq nsenter unshare findmnt

echo "== e2e-coexist: hostguard --in-place beside Istio, Multus and Antrea stand-ins (run $$)"
if ! "$HG" install --help 2>/dev/null | grep -q -- --in-place; then
	hg_skip "hostguard beside Istio, Multus and Antrea" "this hostguard build has no install --in-place"
	hg_e2e_finish
	exit
fi

hg_node_setup hostguard || hg_die "setup failed"
NETD=$HG_CNI/net.d
CALLS=$T/calls
# Every plugin the runtime may call is a recorder in front of the real one.
recorder() { # TYPE REAL
	cat >"$HG_CNI/bin/$1" <<EOF
#!/bin/sh
echo "$1 \${CNI_COMMAND:-none}" >>"$CALLS"
exec "$2"
EOF
	chmod +x "$HG_CNI/bin/$1"
}
recorder hostguard "$HG"
recorder bridge /usr/lib/cni/bridge
recorder portmap /usr/lib/cni/portmap
recorder istio-cni "$COTENANTS/passthrough-plugin"
recorder antrea "$COTENANTS/passthrough-plugin"
recorder multus-shim "$COTENANTS/multus-shim-plugin"
hg_plugin_entry hostguard "$T" | jq 'del(.type)' >"$T/plugin-config.json"
hg_containerd_start "$T/containerd" || hg_die "containerd did not start"
echo "   host $HOST_NS, subnet $SUBNET, work dir $T"

PRIMARY_TYPES=(bridge portmap)
PRIMARY_CHAIN="${PRIMARY_TYPES[*]}"

# --- the processes --------------------------------------------------------------
HG_PID=
CT_PID=
hostguard_start() {
	hg_bg HG_PID "$HG" install --conf-dir "$NETD" --in-place --watch --timeout 30 \
		--plugin-config "$T/plugin-config.json" </dev/null >>"$T/hostguard.out" 2>>"$T/hostguard.err"
}
hostguard_stop() {
	[[ -n $HG_PID ]] || return 0
	kill -TERM "$HG_PID" 2>/dev/null
	wait "$HG_PID" 2>/dev/null
	HG_PID=
}
cotenant_start() { # NAME
	hg_bg CT_PID "$COTENANTS/$1-install" "$NETD" </dev/null >>"$T/$1.out" 2>&1
}
cotenant_stop() {
	[[ -n $CT_PID ]] || return 0
	kill -TERM "$CT_PID" 2>/dev/null
	wait "$CT_PID" 2>/dev/null
	CT_PID=
}

# --- what the runtime loads --------------------------------------------------------
config_names() {
	find "$NETD" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) \
		-printf '%f\n' | LC_ALL=C sort
}

# loaded_chain: the plugin types the runtime runs, Multus flattened: "multus-shim" followed by
# its delegate's chain, and "stale" after it while that delegate is not its master's current
# content (Multus has yet to regenerate). Empty when the first file does not parse.
loaded_chain() {
	local first master
	first=$(config_names | head -n 1)
	[[ -n $first ]] || return 0
	jq -r 'def chain: if .plugins then .plugins else [.] end;
		[chain[] | if .type == "multus" or .type == "multus-shim"
			then .type, (.delegates[0] | chain[] | .type) else .type end] | join(" ")' \
		"$NETD/$first" 2>/dev/null
	if [[ $first == 00-multus* ]]; then
		master=$(config_names | grep -v '^00-multus' | head -n 1)
		jq -e --slurpfile m "$NETD/$master" '.plugins[0].delegates[0] == $m[0]' "$NETD/$first" >/dev/null 2>&1 ||
			echo stale
	fi
}

# chain_ok CHAIN EXPECTED...: CHAIN starts with the primary's plugins (after a meta-plugin) and
# holds exactly the EXPECTED others, each once.
chain_ok() {
	local chain=$1 rest
	shift
	rest=$chain
	[[ $rest == multus-shim\ * ]] && rest=${rest#multus-shim }
	[[ $rest == "$PRIMARY_CHAIN"\ * || $rest == "$PRIMARY_CHAIN" ]] || return 1
	[[ $(tr ' ' '\n' <<<"$chain" | LC_ALL=C sort | tr '\n' ' ') == \
		$(printf '%s\n' "${PRIMARY_TYPES[@]}" "$@" | LC_ALL=C sort | tr '\n' ' ') ]]
}

dir_state() { stat -c '%n %i %.9Y %s' "$NETD"/* 2>/dev/null; }

# steady LABEL QUIET_S EXPECTED...: within 5 s the loaded chain is right and stays so (no file
# changes) for 0.5 s; then no file is written for QUIET_S seconds (0: not checked).
steady() {
	local label=$1 quiet=$2 t0 i chain state prev_state='' settled=0 since=''
	shift 2
	t0=$(hg_now_ms)
	for ((i = 0; i < 250; i++)); do
		chain=$(loaded_chain)
		state=$(dir_state)
		if chain_ok "$chain" "$@"; then
			if [[ -n $since && $state == "$prev_state" ]]; then
				if (($(hg_now_ms) - since >= 500)); then
					settled=1
					break
				fi
			else
				since=$(hg_now_ms)
			fi
		else
			since=
		fi
		prev_state=$state
		(($(hg_now_ms) - t0 > 5000)) && break
		sleep 0.02
	done
	if ((settled)); then
		hg_ok "$label: steady within 5 s, the runtime loads [$chain]" "$((since - t0)) ms"
	else
		hg_fail "$label: steady within 5 s with $PRIMARY_CHAIN + $* each once" "loaded: [$chain]" \
			"$(cd "$NETD" && ls -A)" "$(tail -n 5 "$T/hostguard.err" 2>/dev/null)"
		return 1
	fi
	((quiet > 0)) || return 0
	state=$(dir_state)
	sleep "$quiet"
	if [[ $(dir_state) == "$state" ]]; then
		hg_ok "$label: then no file is written for $quiet s"
	else
		hg_fail "$label: then no file is written for $quiet s" \
			"$(diff <(echo "$state") <(dir_state) | head -n 8)"
	fi
}

# container LABEL EXPECTED...: ctr run --cni starts a container; every expected plugin (the
# primary's and EXPECTED) gets exactly one ADD, and no other plugin runs.
CTR_N=0
container() {
	local label=$1 id got want
	shift
	CTR_N=$((CTR_N + 1))
	id=hg-$$-c$CTR_N
	: >"$CALLS"
	# shellcheck disable=SC2016 # expanded by the container's shell
	hg_node_run "$T/$id" ctr --address "$HG_CTD_SOCK" run --rm --cni --rootfs --runc-root "$T/runc" \
		--fifo-dir "$T/fifo" --cgroup "/$CG/$id" "$T/rootfs" "$id" \
		/bin/sh -c 'out=$(ip -4 -o addr show dev eth0); echo "$out"; sleep 0.2'
	((RC == 0)) || hg_ctr_remove_all
	got=$(grep ' ADD$' "$CALLS" 2>/dev/null | cut -d' ' -f1 | LC_ALL=C sort | tr '\n' ' ')
	want=$(printf '%s\n' "${PRIMARY_TYPES[@]}" "$@" | LC_ALL=C sort | tr '\n' ' ')
	if ((RC == 0)) && grep -q "inet ${SUBNET%.*}\." "$OUT" && [[ $got == "$want" ]]; then
		hg_ok "$label: ctr run --cni: ADD once each for [${want% }]" "$MS ms"
	else
		hg_fail "$label: ctr run --cni: ADD once each for [${want% }]" "exit status $RC; ADD calls: [${got% }]" \
			"$(hg_indent "$ERR")" "$(hg_indent "$OUT")"
	fi
}

# fresh_primary: the primary's own file, as it writes it (by rename, as the AWS CNI does).
PRIMARY=
fresh_primary() {
	hg_runtime_conflist "$NETWORK" "$SUBNET" "$T" "" >"$NETD/.primary.new" && mv -f "$NETD/.primary.new" "$NETD/$PRIMARY"
}
# rewrite_primary_in_place: the same content written over the file (truncate and write).
rewrite_primary_in_place() {
	hg_runtime_conflist "$NETWORK" "$SUBNET" "$T" "" >"$NETD/$PRIMARY"
}

# pairing NAME PLUGIN_TYPE...: both start orders of hostguard and the stand-in NAME, whose plugin
# types (the ones a chain gains with it) are PLUGIN_TYPE...
pairing() {
	local name=$1 order quiet
	shift
	for order in "hostguard first" "$name first"; do
		echo "-- $name, $order"
		find "$NETD" -mindepth 1 -delete
		fresh_primary
		if [[ $order == hostguard* ]]; then
			hostguard_start
			sleep 0.3
			cotenant_start "$name"
			quiet=10
		else
			cotenant_start "$name"
			sleep 0.3
			hostguard_start
			quiet=1
		fi
		steady "$name, $order" "$quiet" hostguard "$@"
		container "$name, $order" hostguard "$@"

		cotenant_stop
		[[ $name == antrea ]] || steady "$name, $order, $name stopped" 0 hostguard
		cotenant_start "$name"
		steady "$name, $order, $name restarted" 1 hostguard "$@"
		hostguard_stop
		hostguard_start
		steady "$name, $order, hostguard restarted" 1 hostguard "$@"

		# Antrea re-reads its primary only when it is written in place (it misses a rename).
		if [[ $name == antrea ]]; then rewrite_primary_in_place; else fresh_primary; fi
		steady "$name, $order, the primary rewrote its file" 2 hostguard "$@"
		container "$name, $order, after the primary's rewrite" hostguard "$@"

		if [[ $order == hostguard* ]]; then
			hostguard_stop
			if "$HG" uninstall --conf-dir "$NETD" --in-place </dev/null >>"$T/hostguard.out" 2>>"$T/hostguard.err"; then
				steady "$name, $order, after hostguard uninstall --in-place" 2 "$@"
				container "$name, $order, after hostguard uninstall" "$@"
			else
				hg_fail "$name: hostguard uninstall --in-place" "$(tail -n 3 "$T/hostguard.err")"
			fi
			cotenant_stop
		else
			cotenant_stop
			# Antrea has no cleanup of its own: its file is removed by hand.
			[[ $name == antrea ]] && rm -f "$NETD/05-antrea.conflist"
			steady "$name, $order, after $name's own cleanup" 2 hostguard
			container "$name, $order, after $name's cleanup" hostguard
			hostguard_stop
		fi
	done
}

PRIMARY=10-aws.conflist
pairing istio istio-cni
PRIMARY=10-calico.conflist
pairing multus multus-shim
PRIMARY=10-aws.conflist
pairing antrea antrea

echo "   hostguard install said (last lines):"
tail -n 4 "$T/hostguard.out" | cut -c1-160 | sed 's/^/     /'
if grep -q 'trying again\|backing off' "$T/hostguard.err"; then
	hg_fail "hostguard never retried or backed off" "$(grep 'trying again\|backing off' "$T/hostguard.err" | head -n 3)"
else
	hg_ok "hostguard never retried or backed off"
fi
hg_containerd_stop
hg_e2e_finish
