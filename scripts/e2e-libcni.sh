#!/usr/bin/env bash
# e2e-libcni: a real CNI client (tests/cnidriver on Debian's libcni 1.1.2) runs
# the conflist bridge + host-local -> $PLUGIN through VERSION, ADD, CHECK, DEL,
# DEL, in throwaway namespaces:
#   host       hg-<pid>-1  eth0 172.26.0.3/27, eth1 172.26.0.35/27, two default
#                          routes (incident 1, case A); the driver runs here, so
#                          the bridge, veths and sysctls land here
#   container  hg-<pid>-2  gets eth0 from the bridge plugin
#   upstream   hg-<pid>-3  the gateways 172.26.0.1 and 172.26.0.33
# Nothing is done in the root namespace; the script proves it by comparing a
# read-only snapshot of it (links, addresses, routes, rules, forwarding)
# taken before and after.
#
# "The result equals the bridge's": the driver records every plugin execution
# (--trace), so the bridge's own ADD output from this very run is compared with
# the result the runtime finally gets, and with what $PLUGIN printed for the
# prevResult it received. No second run, no reconstruction.
#
# Env: PLUGIN (default hostguard; "tuning" = Debian's passthrough, to check the
# harness itself), HOSTGUARD_BIN (default target/release/hostguard).
# Last line: "N passed, N failed"; exit status 1 if anything failed.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/netns.sh
source "$HG_REPO/scripts/lib/netns.sh"
# shellcheck source=lib/chain.sh
source "$HG_REPO/scripts/lib/chain.sh"
# shellcheck source=lib/cnidriver.sh
source "$HG_REPO/scripts/lib/cnidriver.sh"

PLUGIN=${PLUGIN:-hostguard}
IFNAME=eth0
CID=hg-e2e-$$

hg_require_root
t_start=$(hg_now_ms)
ROOT_BEFORE=$(hg_root_snapshot)
hg_init
T=$HG_TMP
hg_build_cnidriver

echo "== e2e-libcni: libcni driver -> bridge + host-local -> $PLUGIN (run $$)"

hg_netns_add HOST_NS || hg_die "namespace setup failed"
hg_netns_add CT_NS || hg_die "namespace setup failed"
hg_netns_add UP_NS || hg_die "namespace setup failed"
hg_setup_two_uplink_host "$HOST_NS" "$UP_NS" || hg_die "host namespace setup failed"
NETNS_PATH=/run/netns/$CT_NS
SUBNET=10.88.$(($$ % 250 + 1)).0/24
CONFLIST=$T/chain.conflist
hg_write_chain_conflist "$CONFLIST" "$PLUGIN" "$T" "$SUBNET" || hg_die "cannot write $CONFLIST"
hg_host_view "$HOST_NS" >"$T/host-before"
echo "   host $HOST_NS, container $CT_NS, upstream $UP_NS, subnet $SUBNET, work dir $T"
echo "   host default routes and rules before:"
sed 's/^/     /' "$T/host-before"

STEP=0
# drive VERB [FLAGS...]: run the driver inside the host namespace. Sets RC, MS,
# OUT, ERR and TRACE (files of this step).
drive() {
	local verb=$1 t0
	shift
	STEP=$((STEP + 1))
	OUT=$T/$STEP-$verb.out
	ERR=$T/$STEP-$verb.err
	TRACE=$T/$STEP-$verb.trace
	: >"$TRACE"
	t0=$(hg_now_ms)
	RC=0
	hg_run ip netns exec "$HOST_NS" "$HG_CNIDRIVER" "$verb" \
		--bin-dir "$BIN_DIRS" --cache-dir "$T/cache" --trace "$TRACE" "$@" \
		>"$OUT" 2>"$ERR" || RC=$?
	MS=$(($(hg_now_ms) - t0))
}

chain_args=(--conflist "$CONFLIST" --netns "$NETNS_PATH" --ifname "$IFNAME" --container-id "$CID")

# trace_of FILE PLUGIN COMMAND JQ: apply JQ to that plugin's record.
trace_of() {
	jq -c --arg p "$2" --arg c "$3" "select(.plugin == \$p and .command == \$c) | $4" "$1" | tail -n 1
}

step_failed() { # DESCRIPTION: the current step's exit status, the driver's error, the plugins' stderr
	local plugin_stderr
	plugin_stderr=$(grep -v '^cnidriver:' "$ERR" | head -n 6 | sed 's/^/| /')
	hg_fail "$1" "exit status $RC after $MS ms" "$(grep '^cnidriver:' "$ERR" | sed 's/^/| /')" \
		"${plugin_stderr:+plugin stderr:}" "$plugin_stderr" "$(hg_indent "$OUT")"
}

host_unchanged() { # WHEN
	local f=$T/host-${1// /-}
	hg_host_view "$HOST_NS" >"$f"
	if diff -u --label before --label "$1" "$T/host-before" "$f" >"$f.diff"; then
		hg_ok "host default routes and rules unchanged $1"
	else
		hg_fail "host default routes and rules unchanged $1" "$(hg_indent "$f.diff")"
	fi
}

attachment_records() { # count of hostguard's per-attachment state files
	find "$T/hostguard/run/attachments" -type f 2>/dev/null | wc -l
}

if BIN_DIRS=$(hg_plugin_bin_dirs "$PLUGIN" "$T"); then
	hg_ok "plugin $PLUGIN found" "$(ip netns exec "$HOST_NS" bash -c "PATH=${BIN_DIRS}; command -v $PLUGIN")"
else
	hg_fail "plugin $PLUGIN found"
	BIN_DIRS=$T/bin:/usr/lib/cni
fi

# --- VERSION ------------------------------------------------------------------
SUPPORTS_110=0
drive version --plugin "$PLUGIN"
if ((RC == 0)) && jq -e --arg p "$PLUGIN" '.[$p].supportedVersions | index("1.0.0")' "$OUT" >/dev/null; then
	hg_ok "VERSION: $PLUGIN supports 1.0.0" "$(jq -r --arg p "$PLUGIN" '.[$p].supportedVersions | join(" ")' "$OUT")"
	jq -e --arg p "$PLUGIN" '.[$p].supportedVersions | index("1.1.0")' "$OUT" >/dev/null && SUPPORTS_110=1
else
	step_failed "VERSION: $PLUGIN supports 1.0.0"
fi

# --- ADD ----------------------------------------------------------------------
drive add "${chain_args[@]}"
ADD_OK=0
RESULT=$OUT
ADD_TRACE=$TRACE
if ((RC == 0)); then
	ADD_OK=1
	hg_ok "ADD exits 0" "$MS ms; $PLUGIN $(trace_of "$TRACE" "$PLUGIN" ADD '"\(.ms) ms, \(.maxRssKiB) KiB"' | tr -d '"')"
else
	step_failed "ADD exits 0"
fi

BRIDGE_ADDR=
if ((ADD_OK)); then
	trace_of "$ADD_TRACE" bridge ADD .stdout >"$T/bridge-result.json"
	trace_of "$ADD_TRACE" "$PLUGIN" ADD .stdin.prevResult >"$T/plugin-prev.json"
	trace_of "$ADD_TRACE" "$PLUGIN" ADD .stdout >"$T/plugin-result.json"
	BRIDGE_ADDR=$(hg_result_address "$T/bridge-result.json" "$NETNS_PATH" "$IFNAME")
	if [[ -n $BRIDGE_ADDR ]]; then
		hg_ok "bridge's result gives the container $IFNAME an address" "$BRIDGE_ADDR"
	else
		hg_fail "bridge's result gives the container $IFNAME an address" "$(hg_indent "$T/bridge-result.json")"
	fi

	want=$(hg_result_address "$RESULT" "$NETNS_PATH" "$IFNAME")
	have=$(ip -n "$CT_NS" -o addr show dev "$IFNAME" 2>&1 | awk '{print $4}' | tr '\n' ' ')
	if [[ -n $want && " $have " == *" $want "* ]]; then
		hg_ok "container $IFNAME has the result's address" "$want"
	else
		hg_fail "container $IFNAME has the result's address" "result: ${want:-none}" "container: ${have:-none}"
	fi

	want=$(hg_result_mac "$RESULT" "$NETNS_PATH" "$IFNAME")
	have=$(ip -n "$CT_NS" -o link show dev "$IFNAME" 2>&1 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
	if [[ -n $want && $want == "$have" ]]; then
		hg_ok "container $IFNAME has the result's MAC" "$want"
	else
		hg_fail "container $IFNAME has the result's MAC" "result: ${want:-none}" "container: ${have:-none}"
	fi

	# The bridge's raw output and the chain's final result, keys sorted.
	if [[ -s $T/bridge-result.json ]] && diff -u --label bridge --label final <(jq -S . "$T/bridge-result.json") <(jq -S . "$RESULT") >"$T/result.diff"; then
		hg_ok "final result equals the bridge's own result"
	else
		hg_fail "final result equals the bridge's own result" "$(hg_indent "$T/result.diff")"
	fi

	if [[ -s $T/plugin-prev.json ]] && jq -e . "$T/plugin-prev.json" >/dev/null &&
		diff -u --label prevResult --label "$PLUGIN-output" <(jq -S . "$T/plugin-prev.json") <(jq -S . "$T/plugin-result.json") >"$T/passthrough.diff"; then
		hg_ok "$PLUGIN printed its prevResult unchanged"
	else
		hg_fail "$PLUGIN printed its prevResult unchanged" "$(hg_indent "$T/passthrough.diff")"
	fi

	if [[ $PLUGIN == hostguard ]]; then
		n=$(attachment_records)
		if ((n > 0)); then
			hg_ok "hostguard recorded the attachment" "$n file(s) in runDir/attachments"
		else
			hg_fail "hostguard recorded the attachment" "nothing under $T/hostguard/run/attachments"
		fi
	fi
else
	hg_skip "ADD result checks" "ADD failed"
fi
host_unchanged "after ADD"

# --- CHECK (a runtime checks only a successful ADD) --------------------------
if ((ADD_OK)); then
	drive check "${chain_args[@]}"
	if ((RC == 0)); then
		hg_ok "CHECK exits 0" "$MS ms"
	else
		step_failed "CHECK exits 0"
	fi
	CHECK_TRACE=$TRACE
else
	hg_skip "CHECK" "ADD failed"
fi

if ((ADD_OK)) && [[ -n $BRIDGE_ADDR ]]; then
	got=()
	for t in "$ADD_TRACE:ADD" "$CHECK_TRACE:CHECK"; do
		got+=("${t##*:}=$(trace_of "${t%:*}" "$PLUGIN" "${t##*:}" '[.stdin.prevResult.ips[]?.address] | join(",")')")
	done
	if [[ "${got[*]}" == "ADD=\"$BRIDGE_ADDR\" CHECK=\"$BRIDGE_ADDR\"" ]]; then
		hg_ok "$PLUGIN got the bridge's address in prevResult on ADD and CHECK"
	else
		hg_fail "$PLUGIN got the bridge's address in prevResult on ADD and CHECK" "want $BRIDGE_ADDR, got ${got[*]}"
	fi
fi

# --- STATUS and GC (spec 1.1.0: a list of the plugin alone) -------------------
if ((SUPPORTS_110 && ADD_OK)); then
	GC_CONFLIST=$T/status-gc.conflist
	hg_write_status_gc_conflist "$GC_CONFLIST" "$PLUGIN" "$T"
	drive status --conflist "$GC_CONFLIST"
	if ((RC == 0)); then hg_ok "STATUS exits 0" "$MS ms"; else step_failed "STATUS exits 0"; fi

	before=$(attachment_records)
	valid=$(jq -nc --arg c "$CID" --arg i "$IFNAME" '[{containerID: $c, ifname: $i}]')
	drive gc --conflist "$GC_CONFLIST" --valid-attachments "$valid"
	sent=$(trace_of "$TRACE" "$PLUGIN" GC '.stdin["cni.dev/valid-attachments"]')
	if ((RC == 0)) && [[ $sent == "$valid" ]]; then
		hg_ok "GC with this attachment valid exits 0" "$MS ms"
	else
		step_failed "GC with this attachment valid exits 0"
	fi
	if [[ $PLUGIN == hostguard ]]; then
		if [[ $(attachment_records) == "$before" ]] && ((before > 0)); then
			hg_ok "GC kept the valid attachment's state"
		else
			hg_fail "GC kept the valid attachment's state" "before: $before file(s), after: $(attachment_records)"
		fi
	fi
else
	hg_skip "STATUS and GC" "$( ((ADD_OK)) && echo "$PLUGIN did not report spec 1.1.0 in VERSION" || echo "ADD failed")"
fi

# --- DEL, DEL -----------------------------------------------------------------
drive del "${chain_args[@]}"
DEL1_TRACE=$TRACE
if ((RC == 0)); then hg_ok "DEL exits 0" "$MS ms"; else step_failed "DEL exits 0"; fi

if ip -n "$CT_NS" link show dev "$IFNAME" >/dev/null 2>&1; then
	hg_fail "container $IFNAME is gone after DEL" "$(ip -n "$CT_NS" -o addr show dev "$IFNAME")"
else
	hg_ok "container $IFNAME is gone after DEL"
fi
if [[ $PLUGIN == hostguard ]] && ((ADD_OK)); then
	n=$(attachment_records)
	if ((n == 0)); then
		hg_ok "DEL removed hostguard's attachment state"
	else
		hg_fail "DEL removed hostguard's attachment state" "$n file(s) left in $T/hostguard/run/attachments"
	fi
fi

drive del "${chain_args[@]}"
DEL2_TRACE=$TRACE
if ((RC == 0)); then hg_ok "second DEL exits 0" "$MS ms"; else step_failed "second DEL exits 0"; fi

if ((ADD_OK)) && [[ -n $BRIDGE_ADDR ]]; then
	d1=$(trace_of "$DEL1_TRACE" "$PLUGIN" DEL '[.stdin.prevResult.ips[]?.address] | join(",")')
	d2=$(trace_of "$DEL2_TRACE" "$PLUGIN" DEL '.stdin | has("prevResult")')
	if [[ $d1 == "\"$BRIDGE_ADDR\"" && $d2 == false ]]; then
		hg_ok "$PLUGIN got prevResult on the first DEL, none on the second"
	else
		hg_fail "$PLUGIN got prevResult on the first DEL, none on the second" \
			"first DEL prevResult addresses: ${d1:-no call}" "second DEL has prevResult: ${d2:-no call}"
	fi
fi
host_unchanged "after DEL"

if ((SUPPORTS_110 && ADD_OK)); then
	drive gc --conflist "$GC_CONFLIST" --valid-attachments null
	if ((RC == 0)); then hg_ok "GC with null valid-attachments exits 0" "$MS ms"; else step_failed "GC with null valid-attachments exits 0"; fi
fi

if [[ $PLUGIN == hostguard && -s $T/hostguard.log ]]; then
	echo "   hostguard log (last lines):"
	tail -n 5 "$T/hostguard.log" | sed 's/^/     /'
fi

# --- teardown and host safety -------------------------------------------------
dir=$T
hg_cleanup
left=$(ip netns list | awk -v p="hg-$$-" 'index($1, p) == 1 {print $1}' | tr '\n' ' ')
if [[ -z $left && ! -e $dir ]]; then
	hg_ok "teardown left no namespace or work dir"
else
	hg_fail "teardown left no namespace or work dir" "namespaces: ${left:-none}" "dir: $dir"
fi
if diff -u <(echo "$ROOT_BEFORE") <(hg_root_snapshot) >/dev/null; then
	hg_ok "root namespace unchanged (links, addresses, routes, rules, forwarding)"
else
	hg_fail "root namespace unchanged" "$(diff -u <(echo "$ROOT_BEFORE") <(hg_root_snapshot) | head -n 20)"
fi

echo "   total $(($(hg_now_ms) - t_start)) ms"
hg_summary
((HG_FAIL == 0))
