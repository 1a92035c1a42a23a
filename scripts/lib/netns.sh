# shellcheck shell=bash
# Throwaway network namespaces, temp dirs and background processes that are
# always removed: on success, failure, Ctrl-C, SIGTERM, and (for SIGKILL) by
# the next run's hg_reap_stale.
#
# Every run keeps a registry file, $HG_REGISTRY_DIR/runs/<pid>-<starttime>,
# listing what it created:
#   ns  <name> <nsfs inode>     pid <pid> <starttime>     dir <path>
#   cg  <cgroup name>
# Cleanup removes only what is listed there, and only when it is still the
# same object (namespace inode, process start time, directory name pattern),
# so a namespace or process that merely looks like ours is never touched.
# Every process a run starts inherits HG_RUN_TAG=<pid>-<starttime> (libcni
# passes the environment on to plugins), so cleanup also finds and ends, by
# PID, grandchildren orphaned when their parent was killed.
#
# Usage:
#   source scripts/lib/common.sh; source scripts/lib/netns.sh
#   hg_init                      # registry, $HG_TMP, traps
#   hg_netns_add HOST            # HOST=hg-<pid>-1, lo up
#   hg_in "$HOST" ip addr        # run inside
#   hg_run cmd...                # foreground, but signals still clean up at once
#   hg_cleanup                   # also runs from the EXIT trap

HG_REGISTRY_DIR=${HG_REGISTRY_DIR:-/run/hostguard-harness}
HG_REG=
HG_TMP=
HG_NS_COUNT=0
HG_CRIT=
HG_DEFERRED=
HG_STDERR_FD=

# Start time of a process (clock ticks since boot), field 22 of /proc/PID/stat.
# The command name (field 2) may hold spaces, so cut after its closing paren.
hg_proc_start() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

hg_proc_state() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	echo "${stat%% *}"
}

hg_init() {
	hg_require_root
	local start
	start=$(hg_proc_start $$) || hg_die "cannot read /proc/$$/stat"
	mkdir -p "$HG_REGISTRY_DIR/runs" || hg_die "cannot create $HG_REGISTRY_DIR"
	HG_REG=$HG_REGISTRY_DIR/runs/$$-$start
	: >"$HG_REG"
	export HG_RUN_TAG=$$-$start
	# the script's own stderr, for messages from traps that fire while a
	# command's stderr is redirected to a file
	exec {HG_STDERR_FD}>&2
	trap 'hg_cleanup' EXIT
	trap 'hg__on_signal INT 130' INT
	trap 'hg__on_signal TERM 143' TERM
	trap 'hg__on_signal HUP 129' HUP
	hg__crit_begin
	HG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/hg-$$-XXXXXX") || hg_die "mktemp failed"
	echo "dir $HG_TMP" >>"$HG_REG"
	hg__crit_end
}

# Between creating something and recording it, a signal must not run the
# cleanup (it would miss the new object): the handler only notes the signal
# and hg__crit_end acts on it.
hg__crit_begin() { HG_CRIT=1; }
hg__crit_end() {
	HG_CRIT=
	if [[ -n $HG_DEFERRED ]]; then
		# shellcheck disable=SC2086
		hg__on_signal $HG_DEFERRED
	fi
}

hg__on_signal() {
	if [[ -n $HG_CRIT ]]; then
		HG_DEFERRED="$1 $2"
		return 0
	fi
	trap - "$1"
	echo "interrupted by SIG$1: cleaning up" >&"${HG_STDERR_FD:-2}"
	hg_cleanup
	exit "$2"
}

# hg_netns_add VAR: create namespace hg-<pid>-<n>, bring its lo up, VAR=name.
# (Locals are prefixed: printf -v must not land in a local of ours that
# shadows the caller's variable.)
hg_netns_add() {
	local __hg_var=$1 __hg_name __hg_ino
	HG_NS_COUNT=$((HG_NS_COUNT + 1))
	__hg_name=hg-$$-$HG_NS_COUNT
	hg__crit_begin
	if ! ip netns add "$__hg_name"; then
		hg__crit_end
		hg_log "cannot create network namespace $__hg_name"
		return 1
	fi
	__hg_ino=$(stat -L -c %i "/run/netns/$__hg_name")
	echo "ns $__hg_name $__hg_ino" >>"$HG_REG"
	hg__crit_end
	ip -n "$__hg_name" link set lo up
	printf -v "$__hg_var" %s "$__hg_name"
}

# hg_in NS CMD...: run CMD inside NS.
hg_in() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# hg_bg VAR CMD...: start CMD in the background, record it for cleanup, VAR=pid.
hg_bg() {
	local __hg_var=$1 __hg_pid
	shift
	hg__crit_begin
	"$@" &
	__hg_pid=$!
	echo "pid $__hg_pid $(hg_proc_start "$__hg_pid" || echo 0)" >>"$HG_REG"
	printf -v "$__hg_var" %s "$__hg_pid"
	hg__crit_end
}

# hg_run CMD...: run CMD to completion and return its status. It runs as a
# recorded background job so that a signal interrupts the wait at once and
# the cleanup can end it by PID.
hg_run() {
	local pid rc=0
	hg_bg pid "$@"
	wait "$pid" || rc=$?
	return "$rc"
}

hg__kill_if_same() {
	local pid=$1 start=$2 i
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	[[ $(hg_proc_start "$pid" 2>/dev/null) == "$start" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 20; i++)); do
		[[ $(hg_proc_start "$pid" 2>/dev/null) == "$start" ]] || return 0
		# a zombie child of ours is gone for our purposes
		[[ $(hg_proc_state "$pid") == Z ]] && return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# PIDs of live processes carrying HG_RUN_TAG=TAG, except this shell.
hg__tagged_pids() {
	local tag=$1 f pid
	while read -r f; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
		# the grep and this function's subshell carried the tag too: re-check
		grep -qzx "HG_RUN_TAG=$tag" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
	done < <(grep -lzx "HG_RUN_TAG=$tag" /proc/[0-9]*/environ 2>/dev/null)
}

hg__kill_tagged() {
	local tag=$1 pids i
	[[ $tag =~ ^[0-9]+-[0-9]+$ ]] || return 0
	pids=$(hg__tagged_pids "$tag")
	[[ -n $pids ]] || return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null
	for ((i = 0; i < 20; i++)); do
		pids=$(hg__tagged_pids "$tag")
		[[ -n $pids ]] || return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null
	return 0
}

hg__netns_del_if_same() {
	local name=$1 ino=$2
	[[ $name =~ ^hg-[0-9]+-[0-9]+$ ]] || return 0
	[[ -e /run/netns/$name ]] || return 0
	[[ $(stat -L -c %i "/run/netns/$name" 2>/dev/null) == "$ino" ]] || return 0
	ip netns del "$name" 2>/dev/null || hg_log "warning: could not delete network namespace $name"
}

hg__rm_dir_if_ours() {
	local dir=$1
	[[ $(basename "$dir") =~ ^hg-[0-9]+-[A-Za-z0-9]{6}$ ]] || return 0
	[[ -d $dir && ! -L $dir ]] || return 0
	rm -rf -- "$dir"
}

# hg_cgroup_add VAR: VAR=hg-<pid>-c<n>, a cgroup name for a runtime's
# --cgroup / --cgroup-parent. The runtime creates it (in every hierarchy);
# the cleanup ends, by PID, whatever still runs in it and removes it.
hg_cgroup_add() {
	local __hg_var=$1 __hg_name
	HG_NS_COUNT=$((HG_NS_COUNT + 1))
	__hg_name=hg-$$-c$HG_NS_COUNT
	echo "cg $__hg_name" >>"$HG_REG"
	printf -v "$__hg_var" %s "$__hg_name"
}

# hg_cgroup_dirs NAME: the directories of cgroup NAME and of its children in
# every mounted hierarchy (cgroup v1 and v2), deepest first.
hg_cgroup_dirs() {
	local root
	while read -r root; do
		[[ -d $root/$1 ]] && find "$root/$1" -depth -type d
	done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET 2>/dev/null)
}

hg__cgroup_del_if_ours() {
	local name=$1 dirs dir pids i
	[[ $name =~ ^hg-[0-9]+-c[0-9]+$ ]] || return 0
	mapfile -t dirs < <(hg_cgroup_dirs "$name")
	((${#dirs[@]} > 0)) || return 0
	# a container whose runtime was killed first keeps running in it
	for ((i = 0; i < 30; i++)); do
		pids=$(cat "${dirs[@]/%//cgroup.procs}" 2>/dev/null | sort -u)
		[[ -n $pids ]] || break
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		sleep 0.1
	done
	for dir in "${dirs[@]}"; do
		rmdir "$dir" 2>/dev/null || hg_log "warning: could not remove cgroup $dir"
	done
}

# Remove everything a registry file lists: processes first (nothing should
# still use what goes next), then what still runs in our cgroups, then
# namespaces (their veths, bridges, routes and sysctls go with them), then
# directories.
hg__cleanup_registry() {
	local reg=$1 kind a b
	[[ -f $reg ]] || return 0
	while read -r kind a b; do
		if [[ $kind == pid ]]; then
			hg__kill_if_same "$a" "$b"
			wait "$a" 2>/dev/null || true
		fi
	done <"$reg"
	hg__kill_tagged "$(basename "$reg")"
	while read -r kind a _; do
		[[ $kind == cg ]] && hg__cgroup_del_if_ours "$a"
	done <"$reg"
	while read -r kind a b; do
		[[ $kind == ns ]] && hg__netns_del_if_same "$a" "$b"
	done <"$reg"
	while read -r kind a _; do
		[[ $kind == dir ]] && hg__rm_dir_if_ours "$a"
	done <"$reg"
	rm -f -- "$reg"
}

hg_cleanup() {
	[[ -n $HG_REG ]] || return 0
	local reg=$HG_REG
	HG_REG=
	hg__cleanup_registry "$reg"
}

# hg_reap_stale: clean up after earlier runs that died without cleaning up
# (SIGKILL, power loss of the shell). A run is stale when its process is gone
# or its PID now belongs to a different process (start time differs).
hg_reap_stale() {
	local reg base pid start n=0
	[[ -d $HG_REGISTRY_DIR/runs ]] || return 0
	for reg in "$HG_REGISTRY_DIR"/runs/*; do
		[[ -f $reg ]] || continue
		base=$(basename "$reg")
		pid=${base%%-*}
		start=${base#*-}
		if [[ $(hg_proc_start "$pid" 2>/dev/null) == "$start" ]]; then
			continue
		fi
		hg_log "removing leftovers of dead run $pid: $(awk '{printf "%s%s", sep, $2; sep=" "}' "$reg")"
		hg__cleanup_registry "$reg"
		n=$((n + 1))
	done
	return 0
}

# hg_root_snapshot: the root namespace's links, addresses, routes, rules and
# forwarding sysctls, for a before/after comparison. Read only.
hg_root_snapshot() {
	echo '# links'
	ip -o link show
	echo '# addresses'
	ip -o addr show
	echo '# routes'
	ip route show table all
	ip -6 route show table all
	echo '# rules'
	ip rule show
	ip -6 rule show
	echo '# forwarding'
	cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding
}
