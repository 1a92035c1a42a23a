#!/usr/bin/env bash
# bench.sh: where hostguard stands, in one run on one machine. A benchmark, not a
# test: scripts/test.sh does not run it, and it fails only when a correctness check fails (a
# wrong passthrough, lost attachment records, a changed host), never on a slow figure.
#
#   verbs     ADD, CHECK and DEL of hostguard vs Debian's Go `tuning` plugin doing the same
#             passthrough (same prevResult, a tuning config that changes nothing), with /bin/true
#             spawned the same way as the floor any process pays; steady state (baseline.json
#             present) and, separately, the first ADD that records the baseline.
#   routes    ADD at 10 / 1,000 / 100,000 host routes vs `ip -4 route show default`.
#   parallel  64 ADDs for different containers at once: throughput, p99, and every record there.
#   install   scripts/bench-install.sh: upstream renamed into place -> our conflist durable,
#             and the --watch re-sync.
#   wait      scripts/bench-wait.sh: waitFor address appears -> ADD exited.
#
# Every process is spawned by benches/spawn.rs (fork + exec + wait4, stdin through a pipe,
# stdout to /dev/null), which interleaves the sides round by round (A B C, B C A, C A B, ...) so
# drift on a busy machine hits all of them alike. Everything runs in throwaway namespaces
# (scripts/lib/netns.sh), with state on /var/tmp (a disk, like /var/lib/cni: fsync costs what
# it costs on a node) unless HG_BENCH_TMPDIR says otherwise.
#
# Usage: scripts/bench.sh [--quick] [--only verbs,routes,parallel,install,wait] [--pods N]
#                         [--static] [--before BIN] [--run-on DIR] [--churn N]
#   --quick       fewer rounds, about 20 s; the default takes one to two minutes (builds aside)
#   --pods N      pods already on the node of the verbs and parallel sections: N veths on the
#                 host in bridge cni0, their peers in a pods namespace (default 30)
#   --before BIN  also run another hostguard build as a fourth side of ADD/CHECK/DEL and of the
#                 route sizes, interleaved with the rest: before/after figures of a change
#   --run-on DIR  keep hostguard's runDir (records, journal, locks) in a fresh directory under DIR,
#                 e.g. a tmpfs such as /dev/shm, as /run/hostguard is on a node; by default each
#                 runDir is inside its stateDir, on the same filesystem. A --before build that
#                 predates runDir ignores the key and keeps everything in its stateDir.
#   --churn N     before the verbs are timed, N ADD/DEL pairs of distinct containers on each
#                 hostguard side, so the state directories have aged as on a busy node
#   --static      benchmark a statically linked build (glibc, crt-static; built into
#                 target/x86_64-unknown-linux-gnu/release) instead of target/release/hostguard;
#                 `--static --before target/release/hostguard` shows both in one run
# Env: HOSTGUARD_BIN (default target/release/hostguard, rebuilt when stale), HG_BENCH_TMPDIR
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/netns.sh
source "$HG_REPO/scripts/lib/netns.sh"
# shellcheck source=lib/chain.sh
source "$HG_REPO/scripts/lib/chain.sh"

QUICK=0
ONLY=verbs,routes,parallel,install,wait
BEFORE=
PODS_N=30
STATIC=0
RUN_ON=
CHURN=0
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	--static) STATIC=1 ;;
	--pods)
		PODS_N=${2:?--pods needs a number}
		[[ $PODS_N =~ ^[0-9]+$ ]] || hg_die "--pods: $2 is not a number"
		shift
		;;
	--before)
		BEFORE=$(realpath "${2:?--before needs a hostguard binary}")
		[[ -x $BEFORE ]] || hg_die "--before: $2 is not an executable"
		shift
		;;
	--only)
		ONLY=${2:?--only needs a list}
		shift
		;;
	--run-on)
		RUN_ON=$(realpath "${2:?--run-on needs a directory}")
		[[ -d $RUN_ON ]] || hg_die "--run-on: $2 is not a directory"
		shift
		;;
	--churn)
		CHURN=${2:?--churn needs a number}
		[[ $CHURN =~ ^[0-9]+$ ]] || hg_die "--churn: $2 is not a number"
		shift
		;;
	-h | --help)
		sed -n '2,/^# Env:/p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) hg_die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
want() { [[ ,$ONLY, == *,$1,* ]]; }

# rounds: quick default
if ((QUICK)); then
	R_VERBS=60 R_FIRST=10 R_SMALL=30 R_100K=6 R_PAR=2 R_INSTALL=10 R_WAIT=10
else
	R_VERBS=600 R_FIRST=50 R_SMALL=200 R_100K=40 R_PAR=10 R_INSTALL=40 R_WAIT=40
fi

hg_require_root
export TMPDIR=${HG_BENCH_TMPDIR:-/var/tmp}
hg_init
hg_reap_stale
W=$HG_TMP
if [[ -n $RUN_ON ]]; then
	RUN_BASE=$(mktemp -d -p "$RUN_ON" hg-bench-run.XXXXXX) || hg_die "cannot create a directory in $RUN_ON"
fi
SUMMARY=$W/summary.jsonl
: >"$SUMMARY"
FAILED=0

# --- binaries ----------------------------------------------------------------
hg_find_cargo
cd "$HG_REPO" || exit 1
HG_BIN=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}
if ((STATIC)); then
	# An explicit --target keeps RUSTFLAGS away from proc macros, which cannot be crt-static.
	triple=$(rustc -vV | sed -n 's/^host: //p')
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --target "$triple" ||
		hg_die "the static build failed"
	HG_BIN=$HG_TARGET/$triple/release/hostguard
elif [[ -z ${HOSTGUARD_BIN:-} ]]; then
	cargo build --release --quiet || hg_die "cargo build --release failed"
fi
[[ -x $HG_BIN ]] || hg_die "no hostguard binary at $HG_BIN"
# The default build is static too (build.rs); say what the measured binary is, not how it was asked for.
if ldd "$HG_BIN" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
	LINKING=static
else
	LINKING=dynamic
fi
DRIVER=$(cargo bench --no-run --quiet --bench spawn --message-format=json 2>/dev/null |
	jq -r 'select(.reason == "compiler-artifact" and .target.name == "spawn") | .executable // empty' |
	tail -n 1)
[[ -x $DRIVER ]] || hg_die "cannot build the benchmark driver (cargo bench --no-run --bench spawn)"
TUNING=/usr/lib/cni/tuning
[[ -x $TUNING ]] || hg_die "$TUNING missing: apt-get install containernetworking-plugins"
IP=$(command -v ip) || hg_die "ip not found: apt-get install iproute2"
TRUE=$(command -v true)
TRUE=${TRUE:-/bin/true}
[[ $TRUE == /* ]] || TRUE=/bin/true

machine() {
	printf '%s cores, %s, kernel %s, state on %s\n' "$(nproc)" \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$(uname -r)" \
		"$(df -T "$W" | awk 'NR == 2 { print $2 }')"
}
MACHINE=$(machine)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== hostguard benchmarks ($( ((QUICK)) && echo quick || echo full)), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "   machine: $MACHINE; load average $LOAD_BEFORE"
echo "   hostguard $HG_BIN ($LINKING, $(stat -c %s "$HG_BIN") bytes), tuning $TUNING, floor $TRUE"
[[ -n $BEFORE ]] && echo "   before: $BEFORE ($(stat -c %s "$BEFORE") bytes)"
[[ -z $RUN_ON ]] || echo "   runDir under $RUN_BASE ($(df -T "$RUN_BASE" | awk 'NR == 2 { print $2 }'))"
echo "   work dir $W; the node has $PODS_N pods (veths in bridge cni0) besides the benchmark's"

# --- plan building -------------------------------------------------------------
# cmd NAME VERB STDIN ARGV...: one command of a step (VERB "" leaves CNI_COMMAND unset).
cmd() {
	local name=$1 verb=$2 stdin=$3
	shift 3
	jq -nc --arg n "$name" --arg v "$verb" --arg s "$stdin" \
		'{name: $n, argv: $ARGS.positional, env: (if $v == "" then {} else {CNI_COMMAND: $v} end), stdin: $s}' \
		--args "$@"
}
# step NAME CMD_JSON...
step() {
	local name=$1
	shift
	jq -nc --arg n "$name" '{name: $n, commands: [$ARGS.positional[] | fromjson]}' --args "$@"
}
# compare STEP SUBJECT REFERENCE FLOOR
compare() {
	jq -nc --arg s "$1" --arg a "$2" --arg b "$3" --arg f "$4" \
		'{step: $s, subject: $a, reference: $b, floor: $f}'
}
# write_plan FILE ROUNDS WARMUP PARALLEL(0 = none) ENV_JSON COMPARES_JSON STEP_JSON...
write_plan() {
	local file=$1 rounds=$2 warmup=$3 parallel=$4 env=$5 compares=$6
	shift 6
	jq -n --argjson r "$rounds" --argjson w "$warmup" --argjson p "$parallel" --argjson env "$env" \
		--argjson cmp "$compares" \
		'{rounds: $r, warmup: $w, env: $env, compare: $cmp, steps: [$ARGS.positional[] | fromjson]}
		 + (if $p > 0 then {parallel: $p} else {} end)' --args "$@" >"$file"
}
# drive NS PLAN: run the plan inside NS; its report on stdout, figures into $SUMMARY.
drive() {
	hg_run ip netns exec "$1" "$DRIVER" "$2" --summary "$SUMMARY"
}
cni_env() { # NETNS_PATH CONTAINER_ID_TEMPLATE
	jq -nc --arg ns "$1" --arg id "$2" '{PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
		CNI_PATH: "/usr/lib/cni", CNI_NETNS: $ns, CNI_IFNAME: "eth0", CNI_CONTAINERID: $id}'
}
bad() {
	FAILED=1
	printf 'FAIL  %s\n' "$*"
}

# --- the host and the container ----------------------------------------------
HOST='' UP='' CT='' PODS='' RHOST='' RUP='' # set by hg_netns_add
hg_netns_add HOST || hg_die "namespace setup failed"
hg_netns_add UP || hg_die "namespace setup failed"
hg_netns_add CT || hg_die "namespace setup failed"
hg_setup_two_uplink_host "$HOST" "$UP" || hg_die "host namespace setup failed"
# the pod's veth, so that tuning enters a container that has the result's eth0
ip -n "$HOST" link add vethbench type veth peer name eth0 netns "$CT" || hg_die "veth setup failed"
# the node's other pods: a link dump grows with them
hg_netns_add PODS || hg_die "namespace setup failed"
{
	echo "link add cni0 type bridge"
	for ((i = 0; i < PODS_N; i++)); do
		echo "link add pv$i type veth peer name pc$i netns $PODS"
		echo "link set pv$i master cni0 up"
	done
} >"$W/pods.batch"
ip -n "$HOST" -batch "$W/pods.batch" || hg_die "pod veth setup failed"
CT_PATH=/run/netns/$CT
PREV=$(jq -c --arg sb "$CT_PATH" '.interfaces[2].sandbox = $sb' "$HG_REPO/testdata/bench/prev-result.json")
run_dir() { # STATE_DIR
	if [[ -n $RUN_ON ]]; then
		echo "$RUN_BASE/$(basename "$1")"
	else
		echo "$1/run"
	fi
}
hg_conf() { # STATE_DIR
	jq -nc --arg d "$1" --arg r "$(run_dir "$1")" --argjson prev "$PREV" \
		'{cniVersion: "1.0.0", name: "bench", type: "hostguard", stateDir: $d, runDir: $r, prevResult: $prev}'
}
TUNING_CONF=$(jq -nc --arg d "$W/tuning" --argjson prev "$PREV" \
	'{cniVersion: "1.0.0", name: "bench", type: "tuning", dataDir: $d, prevResult: $prev}')

# once NS VERB ID CONF BIN: a single call outside the driver, output in $W/once.out
once() {
	printf '%s' "$4" | ip netns exec "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		CNI_COMMAND="$2" CNI_CONTAINERID="$3" CNI_NETNS="$CT_PATH" CNI_IFNAME=eth0 \
		CNI_PATH=/usr/lib/cni "$5" >"$W/once.out" 2>"$W/once.err"
}
# Both plugins must print their prevResult unchanged, or the comparison compares nothing.
passthrough_ok() { # NAME
	if jq -e --argjson prev "$PREV" '(. | del(.cniVersion)) == ($prev | del(.cniVersion))' \
		"$W/once.out" >/dev/null 2>&1; then
		echo "   $1 ADD prints its prevResult unchanged"
	else
		bad "$1 ADD did not print its prevResult: $(head -c 300 "$W/once.out") $(head -c 300 "$W/once.err")"
	fi
}

# --- verbs ---------------------------------------------------------------------
if want verbs; then
	echo
	echo "== ADD, CHECK, DEL: hostguard vs tuning vs /bin/true (interleaved, $R_VERBS rounds)"
	HOST_BEFORE=$(hg_host_view "$HOST")
	STATE=$W/steady
	once "$HOST" ADD prime "$(hg_conf "$STATE")" "$HG_BIN" || bad "priming ADD failed: $(cat "$W/once.err")"
	passthrough_ok hostguard
	once "$HOST" DEL prime "$(hg_conf "$STATE")" "$HG_BIN" || bad "priming DEL failed"
	once "$HOST" ADD prime "$TUNING_CONF" "$TUNING" || bad "tuning ADD failed: $(cat "$W/once.err")"
	passthrough_ok tuning
	[[ -s $STATE/baseline.json ]] || bad "the priming ADD recorded no baseline"

	steps=()
	compares=()
	for verb in ADD CHECK DEL; do
		sides=("$(cmd hostguard "$verb" "$(hg_conf "$STATE")" "$HG_BIN")"
			"$(cmd tuning "$verb" "$TUNING_CONF" "$TUNING")"
			"$(cmd true "$verb" "$(hg_conf "$STATE")" "$TRUE")")
		compares+=("$(compare "$verb" hostguard tuning true)")
		if [[ -n $BEFORE ]]; then
			sides+=("$(cmd before "$verb" "$(hg_conf "$W/steady-before")" "$BEFORE")")
			compares+=("$(compare "$verb" before tuning true)" "$(compare "$verb" hostguard before true)")
		fi
		steps+=("$(step "$verb" "${sides[@]}")")
	done
	if [[ -n $BEFORE ]]; then
		once "$HOST" ADD prime "$(hg_conf "$W/steady-before")" "$BEFORE" || bad "priming ADD (before) failed"
		once "$HOST" DEL prime "$(hg_conf "$W/steady-before")" "$BEFORE" || bad "priming DEL (before) failed"
	fi
	if ((CHURN > 0)); then
		churn_sides() { # VERB
			cmd hostguard "$1" "$(hg_conf "$STATE")" "$HG_BIN"
			[[ -z $BEFORE ]] || cmd before "$1" "$(hg_conf "$W/steady-before")" "$BEFORE"
		}
		mapfile -t adds < <(churn_sides ADD)
		mapfile -t dels < <(churn_sides DEL)
		write_plan "$W/churn.json" "$CHURN" 0 0 "$(cni_env "$CT_PATH" 'churn-{r}')" '[]' \
			"$(step churn-ADD "${adds[@]}")" "$(step churn-DEL "${dels[@]}")"
		echo "   churn: $CHURN ADD/DEL pairs first"
		drive "$HOST" "$W/churn.json" >/dev/null || bad "the churn failed"
	fi
	write_plan "$W/verbs.json" "$R_VERBS" 5 0 "$(cni_env "$CT_PATH" 'bench-{r}')" \
		"[$(IFS=,; echo "${compares[*]}")]" "${steps[@]}"
	drive "$HOST" "$W/verbs.json" || bad "the verbs benchmark failed"
	left=$(find "$(run_dir "$STATE")/attachments" -type f | wc -l)
	((left == 0)) || bad "$left attachment records left after ADD/DEL pairs"
	[[ $(hg_host_view "$HOST") == "$HOST_BEFORE" ]] || bad "the host's default routes or rules changed"

	echo
	echo "== first ADD (records baseline.json in a fresh stateDir each round, $R_FIRST rounds)"
	write_plan "$W/first.json" "$R_FIRST" 2 0 "$(cni_env "$CT_PATH" 'first-{r}')" \
		"[$(compare 'first ADD' hostguard tuning true)]" \
		"$(step 'first ADD' \
			"$(cmd hostguard ADD "$(hg_conf "$W/first-{r}")" "$HG_BIN")" \
			"$(cmd tuning ADD "$TUNING_CONF" "$TUNING")" \
			"$(cmd true ADD "$(hg_conf "$W/first-{r}")" "$TRUE")")"
	drive "$HOST" "$W/first.json" || bad "the first-ADD benchmark failed"
	[[ -s $W/first-0/baseline.json ]] || bad "a first ADD recorded no baseline"
fi

# --- routes --------------------------------------------------------------------
if want routes; then
	echo
	echo "== ADD with many host routes vs ip -4 route show default (proto bird /32s via a veth gateway)"
	hg_netns_add RHOST || hg_die "namespace setup failed"
	hg_netns_add RUP || hg_die "namespace setup failed"
	{
		ip -n "$RHOST" link add eth0 type veth peer name up0 netns "$RUP" &&
			ip -n "$RHOST" addr add 172.26.0.3/27 dev eth0 &&
			ip -n "$RUP" addr add 172.26.0.1/27 dev up0 &&
			ip -n "$RHOST" link set eth0 up &&
			ip -n "$RUP" link set up0 up &&
			ip -n "$RHOST" route add default via 172.26.0.1 dev eth0 proto static
	} || hg_die "route host setup failed"
	STATE=$W/routes
	once "$RHOST" ADD prime "$(hg_conf "$STATE")" "$HG_BIN" || bad "priming ADD failed: $(cat "$W/once.err")"
	if [[ -n $BEFORE ]]; then
		once "$RHOST" ADD prime "$(hg_conf "$W/routes-before")" "$BEFORE" || bad "priming ADD (before) failed"
	fi
	have=0
	for size in 10 1000 100000; do
		# 100.64.0.0/10 holds 4M /32s; iproute2 adds them in one netlink conversation
		awk -v from="$have" -v to="$size" 'BEGIN { for (i = from; i < to; i++)
			printf "route add 100.%d.%d.%d/32 via 172.26.0.1 dev eth0 proto bird\n",
				64 + int(i / 65536), int(i / 256) % 256, i % 256 }' >"$W/routes.batch"
		t0=$(hg_now_ms)
		ip -n "$RHOST" -batch "$W/routes.batch" || hg_die "adding routes failed"
		have=$size
		n=$(ip -n "$RHOST" -4 route show proto bird | wc -l)
		((n == size)) || bad "expected $size bird routes, found $n"
		rounds=$R_SMALL
		((size == 100000)) && rounds=$R_100K
		echo "   $size routes (added in $(($(hg_now_ms) - t0)) ms), $rounds rounds"
		label="ADD @$size routes"
		sides=("$(cmd hostguard ADD "$(hg_conf "$STATE")" "$HG_BIN")"
			"$(cmd ip '' '' "$IP" -4 route show default)"
			"$(cmd true ADD "$(hg_conf "$STATE")" "$TRUE")")
		compares=("$(compare "$label" hostguard ip true)")
		if [[ -n $BEFORE ]]; then
			sides+=("$(cmd before ADD "$(hg_conf "$W/routes-before")" "$BEFORE")")
			compares+=("$(compare "$label" before ip true)")
		fi
		write_plan "$W/routes-$size.json" "$rounds" 2 0 "$(cni_env "$CT_PATH" "routes-$size-{r}")" \
			"[$(IFS=,; echo "${compares[*]}")]" "$(step "$label" "${sides[@]}")"
		drive "$RHOST" "$W/routes-$size.json" || bad "the routes benchmark at $size failed"
	done
fi

# --- parallel -----------------------------------------------------------------
if want parallel; then
	echo
	echo "== 64 ADDs at once for different containers ($R_PAR rounds + 1 warm-up)"
	STATE=$W/parallel
	once "$HOST" ADD prime "$(hg_conf "$STATE")" "$HG_BIN" || bad "priming ADD failed: $(cat "$W/once.err")"
	once "$HOST" DEL prime "$(hg_conf "$STATE")" "$HG_BIN" || bad "priming DEL failed"
	write_plan "$W/parallel.json" "$R_PAR" 1 64 "$(cni_env "$CT_PATH" 'par-{r}-{i}')" '[]' \
		"$(step '64 parallel ADDs' \
			"$(cmd hostguard ADD "$(hg_conf "$STATE")" "$HG_BIN")" \
			"$(cmd tuning ADD "$TUNING_CONF" "$TUNING")" \
			"$(cmd true ADD "$(hg_conf "$STATE")" "$TRUE")")"
	drive "$HOST" "$W/parallel.json" || bad "the parallel benchmark failed"
	# every ADD that exited 0 must have left its own complete record
	missing=0
	for r in w0 $(seq 0 $((R_PAR - 1))); do
		for i in $(seq 0 63); do
			f=$(run_dir "$STATE")/attachments/bench/par-$r-$i@eth0.json
			jq -e --arg id "par-$r-$i" '.containerID == $id and .ifname == "eth0"' "$f" >/dev/null 2>&1 ||
				missing=$((missing + 1))
		done
	done
	records=$(find "$(run_dir "$STATE")/attachments" -type f | wc -l)
	expected=$((64 * (R_PAR + 1)))
	if ((missing == 0 && records == expected)); then
		echo "   no lost state: $records attachment records, each complete ($expected ADDs)"
	else
		bad "parallel ADDs: $records records for $expected ADDs, $missing missing or incomplete"
	fi
	echo "{\"step\":\"parallel state\",\"records\":$records,\"expected\":$expected}" >>"$SUMMARY"
	jq -e '.routes | length == 2' "$STATE/baseline.json" >/dev/null || bad "baseline.json damaged by parallel ADDs"
fi

# --- install and wait ------------------------------------------------------------
if want install; then
	echo
	echo "== install reaction (scripts/bench-install.sh $R_INSTALL)"
	HOSTGUARD_BIN=$HG_BIN hg_run "$HG_REPO/scripts/bench-install.sh" "$R_INSTALL" | tee "$W/install.out" ||
		bad "bench-install.sh failed"
fi
if want wait; then
	echo
	echo "== waitFor reaction (scripts/bench-wait.sh $R_WAIT)"
	hg_run "$HG_REPO/scripts/bench-wait.sh" "$R_WAIT" | tee "$W/wait.out" || bad "bench-wait.sh failed"
fi

# --- summary -------------------------------------------------------------------
# fig JQ: a figure from the summary lines, "n/a" when that section did not run
fig() {
	local v
	v=$(jq -rs "$1" "$SUMMARY" 2>/dev/null)
	[[ -n $v && $v != null ]] && echo "$v" || echo n/a
}
# of STEP COMMAND FIELD / cmp STEP SUBJECT FIELD: one field of a command's or comparison's line
of() { fig "[.[] | select(.step == \"$1\" and .command == \"$2\")][0].$3"; }
cmp() { fig "[.[] | select(.step == \"$1\" and .subject == \"$2\")][0].$3"; }
median_of() { # FILE PREFIX: the median (ms) on the line starting with PREFIX
	[[ -f $1 ]] || return 0
	grep -m1 "^$2" "$1" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p'
}
verdict() { # VALUE LIMIT: met when VALUE <= LIMIT
	[[ $1 == n/a || -z $1 ]] && {
		echo "not measured"
		return
	}
	awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l) ? "met" : "MISSED" }'
}
f2() { [[ $1 == n/a || -z $1 ]] && echo n/a || printf '%.2f' "$1"; }
ms() { [[ $1 == n/a || -z $1 ]] && echo n/a || printf '%.2f ms' "$1"; }
row() { printf '| %s | %s | %s | %s |\n' "$@"; }

echo
echo "== summary (paste-ready; every figure in $SUMMARY)"
echo
echo "Machine: $MACHINE; load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after."
args=$( ((QUICK)) && echo ' --quick')$( ((STATIC)) && echo ' --static')$([[ $ONLY != verbs,routes,parallel,install,wait ]] && echo " --only $ONLY")$( ((PODS_N != 30)) && echo " --pods $PODS_N")$([[ -n $BEFORE ]] && echo " --before $(basename "$BEFORE")")$([[ -n $RUN_ON ]] && echo " --run-on $RUN_ON")$( ((CHURN > 0)) && echo " --churn $CHURN")
echo "Command: \`sudo scripts/bench.sh$args\` ($LINKING build; medians of interleaved rounds; $PODS_N pods on the node)"
echo
row "figure" "hostguard" "reference" "target"
row "---" "---" "---" "---"
if want verbs; then
	row "steady ADD, median (p95)" "$(ms "$(of ADD hostguard median_ms)") ($(ms "$(of ADD hostguard p95_ms)"))" \
		"tuning $(ms "$(of ADD tuning median_ms)") ($(ms "$(of ADD tuning p95_ms)")), /bin/true $(ms "$(of ADD true median_ms)")" "-"
	row "ADD raw ratio hostguard / tuning" "$(f2 "$(cmp ADD hostguard raw_ratio)")" "-" "reported"
	net=$(cmp ADD hostguard net_ratio)
	row "ADD net ratio (hg - true) / (tuning - true)" "$(f2 "$net")" "-" "<= 0.30: $(verdict "$net" 0.30)"
	for v in CHECK DEL; do
		row "$v, median; net ratio" "$(ms "$(of "$v" hostguard median_ms)"); $(f2 "$(cmp "$v" hostguard net_ratio)")" \
			"tuning $(ms "$(of "$v" tuning median_ms)")" "-"
	done
	row "first ADD (records baseline.json), median" "$(ms "$(of 'first ADD' hostguard median_ms)")" \
		"tuning $(ms "$(of 'first ADD' tuning median_ms)")" "-"
	if [[ -n $BEFORE ]]; then
		for v in ADD CHECK DEL; do
			row "before ($(basename "$BEFORE")): $v median; net ratio" \
				"$(ms "$(of "$v" before median_ms)"); $(f2 "$(cmp "$v" before net_ratio)")" "-" "-"
		done
	fi
fi
rss=$(fig '[.[] | select(.command == "hostguard") | .maxrss_kib] | max')
row "peak RSS, largest of every run" "$rss KiB" "tuning $(fig '[.[] | select(.command == "tuning") | .maxrss_kib] | max') KiB" \
	"<= 4096 KiB: $(verdict "$rss" 4096)"
if want routes; then
	for size in 10 1000 100000; do
		label="ADD @$size routes"
		ratio=$(cmp "$label" hostguard raw_ratio)
		row "ADD at $size routes vs ip -4 route show default" "$(ms "$(of "$label" hostguard median_ms)")" \
			"ip $(ms "$(of "$label" ip median_ms)"); ratio $(f2 "$ratio")" \
			"$( ((size == 100000)) && echo "<= 1.0x: $(verdict "$ratio" 1.0)" || echo -)"
		if [[ -n $BEFORE ]]; then
			row "before: ADD at $size routes" "$(ms "$(of "$label" before median_ms)")" \
				"ratio to ip $(f2 "$(cmp "$label" before raw_ratio)")" "-"
		fi
	done
fi
if want parallel; then
	par() { fig "[.[] | select(.step == \"64 parallel ADDs\" and .command == \"$1\")][0] | \"\(.throughput_per_s | floor) ADDs/s, p99 \(.p99_ms * 10 | round / 10) ms\""; }
	row "64 ADDs at once: throughput, p99" "$(par hostguard)" "tuning $(par tuning); /bin/true $(par true)" \
		"no lost state: $(fig '[.[] | select(.step == "parallel state")][0] | "\(.records)/\(.expected) records"')"
fi
if want install; then
	install_ms=$(median_of "$W/install.out" one-shot)
	row "install: upstream renamed in -> our conflist durable" "$(ms "$install_ms")" "peers poll every 1-2 s" \
		"<= 100 ms: $(verdict "${install_ms:-n/a}" 100)"
	row "install --watch: upstream rewritten -> re-synced" "$(ms "$(median_of "$W/install.out" watch)")" "-" "-"
fi
if want wait; then
	wait_ms=$(median_of "$W/wait.out" "reaction: address added")
	row "waitFor: address appears -> ADD exited" "$(ms "$wait_ms")" "Submariner polls every 4-25 s" \
		"<= 20 ms: $(verdict "${wait_ms:-n/a}" 20)"
fi
echo
[[ -z $RUN_ON ]] || rm -rf -- "$RUN_BASE"
if ((FAILED)); then
	echo "correctness checks FAILED (see FAIL lines above)"
	exit 1
fi
echo "all correctness checks passed"
