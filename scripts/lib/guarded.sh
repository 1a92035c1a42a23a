# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# Globals set here are read by the scripts; PLUGIN is set by them.
# shellcheck disable=SC2034,SC2153
# The guarded node that the real-runtime e2e scripts share (e2e-containerd,
# e2e-podman, e2e-install): namespaces, host setup, the plugin binary (traced),
# the conflist, and the checks every container run gets. Sourcing it sources
# what it needs (common.sh, netns.sh, chain.sh, runtimes.sh); most of it needs
# hg_init done and uses $T (= $HG_TMP).
#
#   hg_node_setup PLUGIN      HOST_NS, UP_NS, SUBNET, CG, the holder, the
#                             rootfs, $HG_CNI/bin/PLUGIN (traced), ENTRY, UPLINK
#   hg_trace_switch RUN       later plugin calls are recorded in $T/traces/RUN
#   hg_check_run ...          the checks after one container run
#   hg_check_teardown         nothing of the run left, machine unchanged
#   hg_e2e_begin TOOL...      root, the tools, the before pictures, hg_init
#   hg_e2e_conflist NETWORK   the runtime conflist of the chain, shown
#   hg_e2e_containers RUN_FN  containers 1 to 4 with the damage between them
#   hg_e2e_finish             the log's tail, the teardown checks, the tally

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=netns.sh
source "$HG_REPO/scripts/lib/netns.sh"
# shellcheck source=chain.sh
source "$HG_REPO/scripts/lib/chain.sh"
# shellcheck source=runtimes.sh
source "$HG_REPO/scripts/lib/runtimes.sh"

PLUGIN_REAL=
UPLINK=0
ENTRY=
SUBNET=
CG=

hg_node_setup() {
	local plugin=$1
	hg_netns_add HOST_NS || return 1
	hg_netns_add UP_NS || return 1
	SUBNET=10.88.$(($$ % 250 + 1)).0/24
	hg_setup_guarded_host "$HOST_NS" "$UP_NS" "$SUBNET" || {
		hg_log "host namespace setup failed"
		return 1
	}
	hg_cgroup_add CG
	hg_holder_start "$HOST_NS" || return 1
	hg_busybox_rootfs "$T/rootfs" || return 1
	case $plugin in
	hostguard) PLUGIN_REAL=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard} ;;
	*) PLUGIN_REAL=${PLUGIN_BIN:-/usr/lib/cni/$plugin} ;;
	esac
	[[ -x $PLUGIN_REAL ]] || {
		if [[ $plugin == hostguard ]]; then
			hg_log "hostguard binary not found at $PLUGIN_REAL: run 'cargo build --release' or set HOSTGUARD_BIN"
		else
			hg_log "plugin $plugin not found at $PLUGIN_REAL"
		fi
		return 1
	}
	PLUGIN_REAL=$(realpath "$PLUGIN_REAL")
	mkdir -p "$T/traces"
	hg_trace_switch setup
	# the private plugin dir comes before /usr/lib/cni for every runtime
	hg_trace_wrapper "$PLUGIN_REAL" "$HG_CNI/bin/$plugin" "$T/trace"
	if [[ $plugin == hostguard ]]; then
		hg_has_uplink "$PLUGIN_REAL" && UPLINK=1
		ENTRY=$(hg_hostguard_entry "$T" "$UPLINK")
	else
		ENTRY=$(hg_plugin_entry "$plugin" "$T")
	fi
}

hg_trace_switch() {
	mkdir -p "$T/traces/$1"
	ln -sfn "$T/traces/$1" "$T/trace"
}

# hg_wait_for_call DIR VERB: wait (at most 15 s) until a VERB call is recorded
# in DIR and finished: podman's DEL comes from conmon's cleanup process, which
# may still run when `podman run` returns.
hg_wait_for_call() {
	local dir=$1 verb=$2 i f
	for ((i = 0; i < 300; i++)); do
		for f in "$dir"/*-"$verb".rc; do
			[[ -e $f ]] && return 0
		done
		sleep 0.05
	done
	return 1
}

# hg_expected_view: the host's guarded view before the first container, as it
# must look after one: the same, except that an attached uplink's routes now
# leave by its bridge.
hg_expected_view() {
	if ((UPLINK)); then
		sed "s/ dev $HG_UPLINK_IF / dev $HG_UPLINK_BR /" "$T/host-before" | sort
	else
		sort "$T/host-before"
	fi
}

# hg_check_host_view WHEN
hg_check_host_view() {
	local f=$T/host-${1// /-}
	hg_sorted_view "$HOST_NS" >"$f"
	if diff -u --label expected --label "$1" <(hg_expected_view) "$f" >"$f.diff"; then
		hg_ok "host default routes and rules intact $1"
	else
		hg_fail "host default routes and rules intact $1" "$(hg_indent "$f.diff")"
	fi
}

# hg_check_run LABEL RC MS OUT ERR TRACE_DIR CID_PATTERN [VERSION]: the checks
# after one container run whose output (ip -4 -o addr show dev eth0; ip route
# show default) is in OUT. CID_PATTERN selects the plugin calls of this
# container by CNI_CONTAINERID (a glob). With VERSION=1 a VERSION call must
# come before ADD (podman asks first).
hg_check_run() {
	local label=$1 rc=$2 ms=$3 out=$4 err=$5 dir=$6 cid=$7 want_version=${8:-0}
	local addr gw calls add del
	if ((rc == 0)); then
		hg_ok "$label: exits 0" "$ms ms"
	else
		hg_fail "$label: exits 0" "exit status $rc after $ms ms" "$(hg_indent "$err")" "$(hg_indent "$out")"
	fi
	addr=$(awk '$3 == "inet" {print $4; exit}' "$out")
	gw=$(awk '$1 == "default" {print $3; exit}' "$out")
	if [[ -n $addr && ${addr%.*} == "${SUBNET%.*}" && $gw == "${SUBNET%.*}.1" ]]; then
		hg_ok "$label: the container's eth0 has its address and default route" "$addr via $gw"
	else
		hg_fail "$label: the container's eth0 has its address and default route" \
			"subnet $SUBNET; the container printed:" "$(hg_indent "$out")"
	fi
	hg_wait_for_call "$dir" DEL || true
	calls=$(hg_trace_calls "$dir")
	add=$(hg__calls_of ADD "$cid" <<<"$calls")
	del=$(hg__calls_of DEL "$cid" <<<"$calls")
	if [[ -n $addr && $add == "ADD 0 "*" prev=$addr" && $(wc -l <<<"$add") == 1 ]]; then
		hg_ok "$label: $PLUGIN got ADD with prevResult holding $addr" "$(cut -d' ' -f3 <<<"$add")"
	else
		hg_fail "$label: $PLUGIN got ADD with prevResult holding ${addr:-the address}" \
			"calls recorded:" "$calls"
	fi
	if [[ $del == "DEL 0 "* && $(wc -l <<<"$del") == 1 ]]; then
		hg_ok "$label: $PLUGIN got DEL and exited 0" "$(cut -d' ' -f4- <<<"$del")"
	else
		hg_fail "$label: $PLUGIN got DEL and exited 0" "calls recorded:" "$calls"
	fi
	if ((want_version)); then
		if [[ $(head -n 1 <<<"$calls") == "VERSION 0 "* ]]; then
			hg_ok "$label: $PLUGIN answered VERSION before ADD" "calls: $(cut -d' ' -f1 <<<"$calls" | tr '\n' ' ')"
		else
			hg_fail "$label: $PLUGIN answered VERSION before ADD" "calls recorded:" "$calls"
		fi
	fi
	if [[ $PLUGIN == hostguard ]]; then
		local id=${add#ADD 0 }
		id=${id%% *}
		if [[ -n $id ]] && jq -e --arg id "$id" -s '
			[.[] | select(.containerID == $id and .msg == "ok") | .verb] | index("ADD") and index("DEL")' \
			"$T/hostguard.log" >/dev/null 2>&1; then
			hg_ok "$label: hostguard's log shows ADD ok and DEL ok"
		else
			hg_fail "$label: hostguard's log shows ADD ok and DEL ok" "container ID ${id:-unknown}" \
				"$(tail -n 8 "$T/hostguard.log" 2>/dev/null)"
		fi
	fi
	hg_check_host_view "after $label"
	hg_check_container_gone "$label"
}

# hg__calls_of VERB CID_GLOB: the lines of hg_trace_calls (stdin) for VERB
# and a container ID matching CID_GLOB.
hg__calls_of() {
	local v r id rest
	while read -r v r id rest; do
		# shellcheck disable=SC2053
		[[ $v == "$1" && $id == $2 ]] && echo "$v $r $id $rest"
	done
	return 0
}

# hg_check_container_gone LABEL: the host side of the container is gone: no
# veth but ours, no libcni cache entry, no hostguard attachment record.
hg_check_container_gone() {
	local label=$1 veths cache records
	veths=$(ip -n "$HOST_NS" -o link show type veth | awk -F': ' '{sub(/@.*/, "", $2); print $2}' |
		grep -Evx "eth0|eth1|$HG_READY_IF|$HG_READY_IF-p" | tr '\n' ' ')
	cache=$(find "$HG_CNI/cache" -type f -path '*results*' 2>/dev/null | tr '\n' ' ')
	records=$(find "$T/hostguard/run/attachments" -type f 2>/dev/null | tr '\n' ' ')
	if [[ -z $veths && -z $cache && -z $records ]]; then
		hg_ok "$label: its veth, libcni cache entry and attachment record are gone"
	else
		hg_fail "$label: its veth, libcni cache entry and attachment record are gone" \
			"veths: ${veths:-none}" "cache: ${cache:-none}" "records: ${records:-none}"
	fi
}

# hg_damage_host: what incidents 1 and 2 do to a node: eth0's default route
# and the guarded policy rule disappear.
hg_damage_host() {
	ip -n "$HOST_NS" route del default via 172.26.0.1 dev eth0 &&
		ip -n "$HOST_NS" rule del priority "$HG_RULE_PRIO"
}

# hg_check_restored LABEL: hostguard's ADD put both back, and says so.
hg_check_restored() {
	local label=$1
	if grep -q 'restored missing default route' "$T/hostguard.log" &&
		grep -q 'restored missing policy rule' "$T/hostguard.log"; then
		hg_ok "$label: hostguard logged restoring the route and the rule"
	else
		hg_fail "$label: hostguard logged restoring the route and the rule" \
			"$(grep -E 'warn|error' "$T/hostguard.log" | tail -n 5)"
	fi
}

# hg_check_uplink: with uplink support, eth1 is now a port of br-up.
hg_check_uplink() {
	if [[ $PLUGIN != hostguard ]]; then
		hg_skip "uplink $HG_UPLINK_IF attached to $HG_UPLINK_BR" "$PLUGIN is not hostguard"
	elif ((!UPLINK)); then
		hg_skip "uplink $HG_UPLINK_IF attached to $HG_UPLINK_BR" "this hostguard build has no uplink attachment"
	elif ip -n "$HOST_NS" -o link show dev "$HG_UPLINK_IF" | grep -q "master $HG_UPLINK_BR "; then
		hg_ok "uplink $HG_UPLINK_IF attached to $HG_UPLINK_BR"
	else
		hg_fail "uplink $HG_UPLINK_IF attached to $HG_UPLINK_BR" "$(ip -n "$HOST_NS" -o link show dev "$HG_UPLINK_IF")"
	fi
}

# hg_check_teardown ROOT_BEFORE MACHINE_BEFORE: run hg_cleanup, then check
# that nothing of this run is left and the machine is as it was.
hg_check_teardown() {
	local root_before=$1 machine_before=$2 left
	hg_cleanup
	left=$(hg_run_leftovers)
	if [[ -z $left ]]; then
		hg_ok "teardown left nothing (namespaces, cgroups, processes, work dir)"
	else
		hg_fail "teardown left nothing (namespaces, cgroups, processes, work dir)" "$left"
	fi
	if diff -u --label before --label after <(echo "$machine_before") <(hg_machine_snapshot) >"${TMPDIR:-/tmp}/hg-$$-machine.diff"; then
		hg_ok "machine unchanged (mounts, named netns, cgroups, runtime dirs, iptables)"
	else
		hg_fail "machine unchanged (mounts, named netns, cgroups, runtime dirs, iptables)" \
			"$(head -n 20 "${TMPDIR:-/tmp}/hg-$$-machine.diff")"
	fi
	rm -f "${TMPDIR:-/tmp}/hg-$$-machine.diff"
	if diff -u <(echo "$root_before") <(hg_root_snapshot) >/dev/null; then
		hg_ok "root namespace unchanged (links, addresses, routes, rules, forwarding)"
	else
		hg_fail "root namespace unchanged" "$(diff -u <(echo "$root_before") <(hg_root_snapshot) | head -n 20)"
	fi
}

# hg_unready_then_ready: what a node looks like while the primary CNI is
# still starting (incident 3): hg-ready loses its address, and a background
# job gives it back as soon as hostguard's log says an ADD is waiting for it
# (or after 30 s), so the ADD must have waited, however slow the runtime.
hg_unready_then_ready() {
	local pid seen
	seen=$(grep -c '"waiting up to' "$T/hostguard.log" 2>/dev/null)
	ip -n "$HOST_NS" addr flush dev "$HG_READY_IF" || return 1
	# shellcheck disable=SC2016 # the job's own arguments
	hg_bg pid bash -c '
		for ((i = 0; i < 3000; i++)); do
			(($(grep -c "\"waiting up to" "$1" 2>/dev/null) > $2)) && break
			sleep 0.01
		done
		ip -n "$3" addr add "$4" dev "$5"' hg-ready-later \
		"$T/hostguard.log" "${seen:-0}" "$HOST_NS" "${HG_READY_NET%.*}.1/30" "$HG_READY_IF"
}

# hg_check_waited LABEL: hostguard's ADD waited for hg-ready and went on once
# it had its address.
hg_check_waited() {
	local label=$1 lines
	lines=$(jq -r 'select(.verb == "ADD") | .msg' "$T/hostguard.log" 2>/dev/null |
		grep -E '^(waiting up to|waitFor interfaces ready)')
	if grep -q "^waiting up to .*$HG_READY_IF" <<<"$lines" && grep -q '^waitFor interfaces ready' <<<"$lines"; then
		hg_ok "$label: hostguard waited for $HG_READY_IF, then went on" "$(tail -n 1 <<<"$lines")"
	else
		hg_fail "$label: hostguard waited for $HG_READY_IF, then went on" "log lines: ${lines:-none}"
	fi
}

# hg_time_runs RUN_FN WHAT N CONFLIST NETWORK: real-client figures. N rounds,
# each starting one container (RUN_FN NAME /bin/true, which sets RC and MS)
# with hostguard last in the chain and one with Debian's tuning in its place,
# alternately, so that a change in the machine's load hits both alike; one
# untimed warm-up round first; no recorder in front of the plugins.
hg_time_runs() {
	local run=$1 what=$2 n=$3 conflist=$4 network=$5 i p hg_entry tuning_entry
	local -a ms_hg=() ms_tuning=()
	hg_entry=$(hg_hostguard_entry "$T/timing" "$UPLINK" | jq -c '.logLevel = "info"')
	tuning_entry=$(hg_plugin_entry tuning "$T/timing")
	ln -sf "$(realpath "${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}")" "$HG_CNI/bin/hostguard"
	ln -sf /usr/lib/cni/tuning "$HG_CNI/bin/tuning"
	for ((i = 0; i <= n; i++)); do
		for p in hostguard tuning; do
			if [[ $p == hostguard ]]; then
				hg_runtime_conflist "$network" "$SUBNET" "$T" "$hg_entry" >"$conflist"
			else
				hg_runtime_conflist "$network" "$SUBNET" "$T" "$tuning_entry" >"$conflist"
			fi
			"$run" "hg-$$-t$p$i" /bin/true
			((RC == 0)) || hg_fail "timing round $i with $p" "$(hg_indent "$ERR")"
			((i == 0)) && continue
			if [[ $p == hostguard ]]; then ms_hg+=("$MS"); else ms_tuning+=("$MS"); fi
		done
	done
	hg_timing "$what -> hostguard" "${ms_hg[@]}"
	hg_timing "$what -> tuning" "${ms_tuning[@]}"
}

# hg_e2e_begin TOOL...: what every e2e script does first: it runs as root with
# the TOOLs at hand, pictures the root namespace and the machine (for
# hg_e2e_finish) and calls hg_init. Sets HG_T_START, ROOT_BEFORE,
# MACHINE_BEFORE and T.
hg_e2e_begin() {
	local cmd
	hg_require_root
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || hg_die "$cmd not found: run scripts/test.sh once (it installs what is missing)"
	done
	HG_T_START=$(hg_now_ms)
	ROOT_BEFORE=$(hg_root_snapshot)
	MACHINE_BEFORE=$(hg_machine_snapshot)
	hg_init
	T=$HG_TMP
}

# hg_e2e_conflist NETWORK: writes the chain with $ENTRY last to CONFLIST (in the
# runtime's net.d), records the host's view before any container in
# $T/host-before, and shows both.
hg_e2e_conflist() {
	CONFLIST=$HG_CNI/net.d/10-hg-e2e.conflist
	hg_runtime_conflist "$1" "$SUBNET" "$T" "$ENTRY" >"$CONFLIST" || hg_die "cannot write $CONFLIST"
	hg_sorted_view "$HOST_NS" >"$T/host-before"
	echo "   chain: $(jq -c '[.plugins[].type]' "$CONFLIST"); $PLUGIN entry: $(jq -c '.plugins[-1]' "$CONFLIST" | cut -c1-150)..."
	echo "   host default routes and rules before:"
	sed 's/^/     /' "$T/host-before"
}

# hg_e2e_containers RUN_FN: the incidents through a runtime. RUN_FN N LABEL
# starts container N and checks its run. Containers 1 and 2 must simply work;
# before 3, eth0's default route and the guarded rule are deleted (incidents 1
# and 2) and its ADD must put both back; before 4, hg-ready loses its address
# until that ADD waits for it (incident 3). A PLUGIN other than hostguard
# skips 3 and 4.
hg_e2e_containers() {
	local run=$1
	"$run" 1 "container 1"
	hg_check_uplink
	"$run" 2 "container 2"
	if [[ $PLUGIN != hostguard ]]; then
		hg_skip "container 3 restores a deleted route and rule" "$PLUGIN does not guard the host"
		hg_skip "container 4 waits for $HG_READY_IF" "$PLUGIN does not wait"
		return
	fi
	if hg_damage_host; then
		echo "   deleted eth0's default route and the rule priority $HG_RULE_PRIO (incidents 1 and 2)"
		"$run" 3 "container 3 (after the damage)"
		hg_check_restored "container 3"
	else
		hg_fail "delete eth0's default route and the guarded rule" "$(ip -n "$HOST_NS" route show default)"
	fi
	if hg_unready_then_ready; then
		echo "   $HG_READY_IF lost its address; it gets it back once an ADD waits for it (incident 3)"
		"$run" 4 "container 4 (while $HG_READY_IF is not ready)"
		hg_check_waited "container 4"
	else
		hg_fail "take the address of $HG_READY_IF away"
	fi
}

# hg_e2e_finish: the last lines of hostguard's log, the teardown checks, the
# total time and the tally; its status (1 on any failure) is the script's.
hg_e2e_finish() {
	if [[ $PLUGIN == hostguard && -s $T/hostguard.log ]]; then
		echo "   hostguard log (last lines):"
		tail -n 4 "$T/hostguard.log" | cut -c1-180 | sed 's/^/     /'
	fi
	hg_check_teardown "$ROOT_BEFORE" "$MACHINE_BEFORE"
	echo "   total $(($(hg_now_ms) - HG_T_START)) ms"
	hg_summary
	((HG_FAIL == 0))
}
