# shellcheck shell=bash
# Real container runtimes in throwaway namespaces: containerd (driven by ctr)
# and podman with its CNI backend, both on a busybox-static rootfs (no image).
# Needs common.sh and netns.sh, and hg_init done.
#
# One private mount namespace per run, held open by a sleeping process
# (HG_HOLDER) that sits in the e2e "host" network namespace. containerd, its
# shims, ctr, podman, conmon, runc and every CNI plugin run inside it (hg_host),
# so that the runtimes see only this run's files:
#   /etc/cni/net.d   $HG_CNI/net.d   (ctr has no flag for its config dir)
#   /opt/cni/bin     $HG_CNI/bin     (nor for its plugin dirs)
#   /var/lib/cni     $HG_CNI/cache   (libcni's result cache)
#   /run, /dev/shm   empty tmpfs     (containerd's shim sockets, podman's netns
#                                     bind mounts and SHM locks, the xtables lock)
#   /sys             a sysfs of the host namespace, with the cgroup tree moved
#                    back in (podman reads /sys/class/net; runc needs cgroups)
# A target directory that does not exist on the machine is made inside an
# overlay of its nearest existing parent, whose upper layer is in the work dir:
# the machine's own file system is never written.
#
#   hg_holder_start HOST_NS     the namespace above; HG_CNI=$HG_TMP/cni
#   hg_host CMD...              run CMD there (mount + network namespace)
#   hg_busybox_rootfs DIR       a rootfs with busybox and its applets
#   hg_trace_wrapper REAL OUT TRACE_DIR
#                               OUT: a plugin that records each call, runs REAL
#   hg_containerd_start DIR [SANDBOX_IMAGE]
#                               a private containerd (CRI on with an image);
#                               HG_CTD_SOCK, HG_CONTAINERD
#   hg_ctr ARGS...              ctr against it
#   hg_containerd_stop          delete every task and container, stop it
#   hg_podman_setup DIR         containers.conf & co; HG_PODMAN_CONF
#   hg_podman ARGS...           podman with that configuration
#   hg_machine_snapshot         what runtimes could leave on the machine

HG_HOLDER=
HG_HOST_NS=
HG_CNI=
HG_CTD_SOCK=
HG_CONTAINERD=
HG_PODMAN_DIR=

# The holder's setup, run as bash -c inside the new mount namespace after
# entering the host network namespace. $1 = work dir.
# shellcheck disable=SC2016
HG__HOLDER_SCRIPT='
set -eu
d=$1 k=0
over() { # SRC TARGET: bind SRC on TARGET, making TARGET in an overlay if missing
	local src=$1 target=$2 base=$2 o
	if [[ ! -d $target ]]; then
		while [[ ! -d $base ]]; do base=$(dirname "$base"); done
		k=$((k + 1))
		o=$d/holder/overlay$k
		mkdir -p "$o/upper" "$o/work"
		mount -t overlay overlay -o "lowerdir=$base,upperdir=$o/upper,workdir=$o/work" "$base"
		mkdir -p "$target"
	fi
	mount --bind "$src" "$target"
}
mkdir -p "$d/holder/cgroup"
mount --rbind /sys/fs/cgroup "$d/holder/cgroup"
mount -t sysfs sysfs /sys
mount --move "$d/holder/cgroup" /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
over "$d/cni/net.d" /etc/cni/net.d
over "$d/cni/bin" /opt/cni/bin
over "$d/cni/cache" /var/lib/cni
: >"$d/holder/ready"
exec sleep infinity
'

# hg_holder_start HOST_NS: start the holder; returns 1 (with its stderr shown)
# if the mounts fail.
hg_holder_start() {
	local i
	HG_HOST_NS=$1
	HG_CNI=$HG_TMP/cni
	mkdir -p "$HG_CNI/net.d" "$HG_CNI/bin" "$HG_CNI/cache" "$HG_TMP/holder"
	hg_bg HG_HOLDER unshare --mount --propagation private \
		nsenter --net="/run/netns/$HG_HOST_NS" bash -c "$HG__HOLDER_SCRIPT" hg-holder "$HG_TMP" \
		</dev/null 2>"$HG_TMP/holder/stderr"
	for ((i = 0; i < 500; i++)); do
		[[ -e $HG_TMP/holder/ready ]] && return 0
		kill -0 "$HG_HOLDER" 2>/dev/null || break
		sleep 0.01
	done
	hg_log "the private mount namespace could not be set up:"
	sed 's/^/  /' "$HG_TMP/holder/stderr" >&2
	return 1
}

hg_host() {
	nsenter --target "$HG_HOLDER" --mount --net "$@"
}

# hg_node_run PREFIX CMD...: one runtime command (ctr run, podman run) in the node's namespaces,
# stdin closed, bounded to 60 s; output in PREFIX.out and PREFIX.err. Sets OUT, ERR, RC and MS.
# shellcheck disable=SC2034 # RC and MS are for the caller
hg_node_run() {
	local prefix=$1 t0
	shift
	OUT=$prefix.out
	ERR=$prefix.err
	RC=0
	t0=$(hg_now_ms)
	hg_run timeout --kill-after=5 60 nsenter --target "$HG_HOLDER" --mount --net "$@" \
		</dev/null >"$OUT" 2>"$ERR" || RC=$?
	MS=$(($(hg_now_ms) - t0))
}

# hg_busybox_rootfs DIR: busybox-static and the applets the tests call.
hg_busybox_rootfs() {
	local dir=$1 bb a
	bb=$(command -v busybox) || {
		hg_log "busybox not found: apt-get install busybox-static"
		return 1
	}
	mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/etc" "$dir/tmp" "$dir/run" || return 1
	cp "$bb" "$dir/bin/busybox" || return 1
	for a in sh ip ls cat sleep true hostname ping; do
		ln -sf busybox "$dir/bin/$a"
	done
}

# hg_trace_wrapper REAL OUT TRACE_DIR: write OUT, a plugin that keeps, for
# every call, the CNI_* environment, stdin, stdout and exit status under
# TRACE_DIR (<ns since epoch>-<pid>-<verb>.{env,in,out,rc}) and otherwise
# behaves as REAL. About 3 ms per call: timings are taken without it.
hg_trace_wrapper() {
	local real=$1 out=$2 dir=$3
	mkdir -p "$dir"
	cat >"$out" <<EOF
#!/bin/sh
f=$dir/\$(date +%s%N)-\$\$-\${CNI_COMMAND:-none}
env | grep '^CNI_' >"\$f.env"
cat >"\$f.in"
rc=0
$real <"\$f.in" >"\$f.out" || rc=\$?
echo "\$rc" >"\$f.rc"
cat "\$f.out"
exit "\$rc"
EOF
	chmod +x "$out"
}

# hg_trace_calls TRACE_DIR: one line per recorded call, oldest first:
#   <verb> <exit status> <CNI_CONTAINERID> netns=<CNI_NETNS> prev=<prevResult addresses>
hg_trace_calls() {
	local dir=$1 f base verb cid netns prev
	for f in "$dir"/*.in; do
		[[ -e $f ]] || continue
		base=${f%.in}
		verb=${base##*-}
		cid=$(sed -n 's/^CNI_CONTAINERID=//p' "$base.env")
		netns=$(sed -n 's/^CNI_NETNS=//p' "$base.env")
		prev=$(jq -r '[.prevResult.ips[]?.address] | join(",")' "$f" 2>/dev/null)
		printf '%s %s %s netns=%s prev=%s\n' "$verb" "$(cat "$base.rc" 2>/dev/null || echo -)" \
			"${cid:--}" "${netns:-}" "${prev:-}"
	done
}

# --- containerd ---------------------------------------------------------------

# hg_containerd_start DIR [SANDBOX_IMAGE]: a containerd whose config, root,
# state and sockets are in DIR, with the plugin that creates /opt/containerd
# disabled, running in the holder. Without SANDBOX_IMAGE the CRI plugin is
# disabled too (ctr needs none of it); with it, CRI serves on the same socket
# the way a kubelet uses it: pod sandboxes of SANDBOX_IMAGE (import it into
# namespace k8s.io with the native snapshotter), runc with cgroupfs, CNI from
# the holder's /etc/cni/net.d and /opt/cni/bin. Waits until it answers (at
# most 10 s).
hg_containerd_start() {
	local dir=$1 sandbox=${2:-} i cri_disabled='"io.containerd.grpc.v1.cri",' cri_config=
	mkdir -p "$dir"
	HG_CTD_SOCK=$dir/containerd.sock
	if [[ -n $sandbox ]]; then
		cri_disabled=
		# restrict_oom_score_adj: lowering a score needs CAP_SYS_RESOURCE, which
		# this machine's root lacks. The stream server listens in the host netns.
		cri_config=$(
			cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
EOF
		)
	fi
	cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [
  $cri_disabled
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
]
[grpc]
  address = "$HG_CTD_SOCK"
[ttrpc]
  address = "$HG_CTD_SOCK.ttrpc"
[debug]
  address = "$dir/debug.sock"
  level = "info"
$cri_config
EOF
	hg_bg HG_CONTAINERD nsenter --target "$HG_HOLDER" --mount --net \
		containerd --config "$dir/config.toml" </dev/null >"$dir/containerd.log" 2>&1
	for ((i = 0; i < 200; i++)); do
		hg_ctr version >/dev/null 2>&1 && return 0
		kill -0 "$HG_CONTAINERD" 2>/dev/null || break
		sleep 0.05
	done
	hg_log "containerd did not come up; its log:"
	tail -n 15 "$dir/containerd.log" | sed 's/^/  /' >&2
	return 1
}

hg_ctr() {
	hg_host ctr --address "$HG_CTD_SOCK" "$@"
}

# hg_ctr_remove_all: delete every task and container (ctr leaves both behind
# when CNI ADD fails, and a killed ctr leaves them running).
hg_ctr_remove_all() {
	local id
	for id in $(hg_ctr containers list --quiet 2>/dev/null); do
		hg_ctr tasks kill --signal SIGKILL "$id" >/dev/null 2>&1
		hg_ctr tasks delete --force "$id" >/dev/null 2>&1
		hg_ctr containers delete "$id" >/dev/null 2>&1
	done
}

hg_containerd_stop() {
	[[ -n $HG_CONTAINERD ]] || return 0
	hg_ctr_remove_all
	kill -TERM "$HG_CONTAINERD" 2>/dev/null
	wait "$HG_CONTAINERD" 2>/dev/null
	HG_CONTAINERD=
}

# --- podman -------------------------------------------------------------------

# hg_podman_setup DIR: podman's configuration, storage (vfs), run root, tmp
# dir, events log and runc state, all in DIR. The conflists are read from
# $HG_CNI/net.d. conmon starts "podman container cleanup" (which runs CNI DEL)
# with conmon_env_vars as its whole environment and without --runtime-flag, so
# CONTAINERS_CONF and the run tag go in there, and runc is reached through a
# wrapper that keeps its state in DIR.
hg_podman_setup() {
	local dir=$1 nofile
	HG_PODMAN_DIR=$dir
	mkdir -p "$dir/tmp"
	cat >"$dir/runc" <<EOF
#!/bin/sh
exec runc --root "$dir/runc-state" "\$@"
EOF
	chmod +x "$dir/runc"
	# podman's default nofile (1048576) is above what this root may set
	# without CAP_SYS_RESOURCE
	nofile=$(ulimit -Hn)
	[[ $nofile == unlimited ]] && nofile=1048576
	cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["$HG_CNI/bin", "/usr/lib/cni"]
network_config_dir = "$HG_CNI/net.d"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
runtime = "hg-runc"
tmp_dir = "$dir/tmp"
conmon_env_vars = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF=$dir/containers.conf", "HG_RUN_TAG=$HG_RUN_TAG"]

[engine.runtimes]
hg-runc = ["$dir/runc"]
EOF
}

hg_podman() {
	hg_host env CONTAINERS_CONF="$HG_PODMAN_DIR/containers.conf" \
		podman --root "$HG_PODMAN_DIR/storage" --runroot "$HG_PODMAN_DIR/runroot" \
		--storage-driver vfs "$@"
}

# --- what must be left as it was ---------------------------------------------

# hg__entries DIR: names in DIR, sorted, without the test harnesses' (hg*).
hg__entries() {
	find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | grep -v '^hg' | sort
}

# hg_machine_snapshot: read only. The mounts of this (the root) mount
# namespace, the named network namespaces, the top-level cgroups, the places
# the runtimes use by default, the root namespace's iptables rules. The
# namespaces and cgroups of every test harness of this project (named hg*)
# are left out, so parallel runs do not disturb the comparison; this run's
# own are checked by hg_run_leftovers.
hg_machine_snapshot() {
	local p
	echo '# mounts'
	awk '{for (i = 7; i <= NF; i++) if ($i == "-") {print $5, $(i + 1); break}}' /proc/self/mountinfo |
		grep -v '^/run/netns/hg' | sort
	echo '# named network namespaces'
	hg__entries /run/netns
	echo '# top-level cgroups'
	findmnt -rn -t cgroup,cgroup2 -o TARGET | while read -r p; do
		find "$p" -mindepth 1 -maxdepth 1 -type d -printf "$p/%f\n"
	done | grep -Ev '/hg[^/]*$' | sort
	echo '# runtime directories'
	for p in /run/containerd /run/libpod /run/containers /run/netns /var/lib/cni /var/lib/containers \
		/var/lib/containerd /etc/cni/net.d /opt/cni /opt/containerd /dev/shm /run/xtables.lock; do
		if [[ -e $p ]]; then
			echo "$p: $(hg__entries "$p" | tr '\n' ' ')"
		else
			echo "$p: absent"
		fi
	done
	echo '# iptables (root namespace)'
	iptables -S 2>&1
	ip6tables -S 2>&1
}

# hg_run_leftovers: what of THIS run is still on the machine (empty if nothing).
hg_run_leftovers() {
	local tag=${HG_RUN_TAG:-} pids p
	ip netns list 2>/dev/null | awk -v p="hg-$$-" 'index($1, p) == 1 {print "netns " $1}'
	findmnt -rn -t cgroup,cgroup2 -o TARGET | while read -r p; do
		find "$p" -mindepth 1 -maxdepth 1 -type d -name "hg-$$-c*" -printf 'cgroup %p\n'
	done
	if [[ -n $tag ]]; then
		# no pipe here: the other end would carry the tag too
		# the scan sees its own short-lived helpers: count only what is
		# still there a moment later
		pids=$(hg__tagged_pids "$tag")
		[[ -n $pids ]] && sleep 0.2
		for p in $pids; do
			grep -qzx "HG_RUN_TAG=$tag" "/proc/$p/environ" 2>/dev/null || continue
			echo "process $p $(cat "/proc/$p/comm" 2>/dev/null) state $(hg_proc_state "$p") parent $(ps -o ppid= -p "$p" 2>/dev/null)"
		done
	fi
	[[ -n $HG_TMP && -e $HG_TMP ]] && echo "dir $HG_TMP"
	return 0
}

# hg_timing LABEL MS...: one line with min, median and mean of the figures.
hg_timing() {
	local label=$1 sorted n sum=0 v
	shift
	n=$#
	((n > 0)) || return 0
	for v in "$@"; do sum=$((sum + v)); done
	mapfile -t sorted < <(printf '%s\n' "$@" | sort -n)
	printf '   timing: %-52s min %4d  median %4d  mean %4d ms  (n=%d)\n' "$label" \
		"${sorted[0]}" "${sorted[$((n / 2))]}" "$((sum / n))" "$n"
}

# hg_tagged_pids_of NAME: this run's processes whose command name starts with
# NAME (e.g. containerd: the daemon and its shims).
hg_tagged_pids_of() {
	local pid
	for pid in $(hg__tagged_pids "$HG_RUN_TAG"); do
		[[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1"* ]] && echo "$pid"
	done
	return 0
}
