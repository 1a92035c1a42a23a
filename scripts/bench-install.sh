#!/usr/bin/env bash
# Benchmark (not a test) of how fast install reacts; peers poll every 1-2 s.
#
#   one-shot  from the upstream config being renamed into an empty config directory to
#             `hostguard install` having exited 0, i.e. our conflist written, fsynced, renamed
#             and the directory fsynced (the clock starts before `mv` is spawned, so the
#             figure includes about 1 ms of mv).
#   held      as one-shot, but the upstream is written in place by a writer that keeps it open:
#             no close or rename says the writer is done, so install waits out its 50 ms settle.
#   watch     from an upstream rewrite (renamed into place) to `hostguard install --watch`
#             reporting the durable rewrite of our conflist on stdout (read with a blocking
#             `read`, no polling).
#
# Usage: scripts/bench-install.sh [RUNS]    (default 50; HOSTGUARD_BIN overrides the binary)
set -euo pipefail

runs=${1:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${HOSTGUARD_BIN:-${root}/target/release/hostguard}
if [[ ! -x ${bin} ]]; then
    cargo build --release --quiet --manifest-path "${root}/Cargo.toml"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/hg-bench.XXXXXX")
watcher=
cleanup() {
    if [[ -n ${watcher} ]]; then
        kill -TERM "${watcher}" 2>/dev/null || true
        wait "${watcher}" 2>/dev/null || true
    fi
    rm -rf "${work}"
}
trap cleanup EXIT

# Microseconds from $EPOCHREALTIME: no process is spawned to read the clock.
now_us() {
    local t=${EPOCHREALTIME}
    printf '%s' "${t/./}"
}

conflist() {
    printf '{"cniVersion":"1.0.0","name":"bench","plugins":[{"type":"bridge"},{"type":"%s"}]}\n' "$1"
}

# Prints "median p90 min max" in milliseconds of the microsecond figures given.
summary() {
    sort -n | awk '{ v[NR] = $1 } END {
        printf "median %.1f ms  p90 %.1f ms  min %.1f ms  max %.1f ms  (n=%d)\n",
            v[int((NR + 1) / 2)] / 1000, v[int(NR * 0.9 + 0.5)] / 1000, v[1] / 1000, v[NR] / 1000, NR }'
}

wait_for_line() { # file pattern
    local tries=0
    until grep -q -- "$2" "$1" 2>/dev/null; do
        tries=$((tries + 1))
        if ((tries > 1000)); then
            echo "bench: '$2' never appeared in $1" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.005
    done
}

echo "hostguard install reaction times, ${runs} runs, ${bin}"

oneshot=()
for ((i = 0; i < runs; i++)); do
    dir=${work}/oneshot-${i}/net.d
    mkdir -p "${dir}"
    conflist portmap >"${work}/oneshot-${i}/staged"
    "${bin}" install --conf-dir "${dir}" --timeout 10 >/dev/null 2>"${work}/oneshot-${i}/log" &
    pid=$!
    wait_for_line "${work}/oneshot-${i}/log" "waiting for a CNI config"
    start=$(now_us)
    mv "${work}/oneshot-${i}/staged" "${dir}/10-bench.conflist"
    wait "${pid}"
    end=$(now_us)
    [[ -s ${dir}/00-hostguard.conflist ]] || { echo "bench: no output in ${dir}" >&2; exit 1; }
    oneshot+=($((end - start)))
done
printf 'one-shot  rename -> durable conflist, process exited: '
printf '%s\n' "${oneshot[@]}" | summary

held=()
for ((i = 0; i < runs; i++)); do
    dir=${work}/held-${i}/net.d
    mkdir -p "${dir}"
    "${bin}" install --conf-dir "${dir}" --timeout 10 >/dev/null 2>"${work}/held-${i}/log" &
    pid=$!
    wait_for_line "${work}/held-${i}/log" "waiting for a CNI config"
    start=$(now_us)
    exec 7>"${dir}/10-bench.conflist"
    conflist portmap >&7
    wait "${pid}"
    end=$(now_us)
    exec 7>&-
    [[ -s ${dir}/00-hostguard.conflist ]] || { echo "bench: no output in ${dir}" >&2; exit 1; }
    held+=($((end - start)))
done
printf 'held      open write -> durable conflist, exited:  '
printf '%s\n' "${held[@]}" | summary

dir=${work}/watch/net.d
mkdir -p "${dir}"
conflist portmap >"${dir}/10-bench.conflist"
coproc WATCH { exec "${bin}" install --conf-dir "${dir}" --watch --timeout 10 2>"${work}/watch.log"; }
# shellcheck disable=SC2154 # WATCH_PID is set by coproc
watcher=${WATCH_PID}
read -r -t 10 line <&"${WATCH[0]}" || { echo "bench: the watcher wrote nothing" >&2; exit 1; }
resync=()
for ((i = 0; i < runs; i++)); do
    conflist "marker-${i}" >"${work}/watch/staged"
    start=$(now_us)
    mv "${work}/watch/staged" "${dir}/10-bench.conflist"
    read -r -t 10 line <&"${WATCH[0]}" || { echo "bench: no re-sync for run ${i}" >&2; exit 1; }
    end=$(now_us)
    grep -q "marker-${i}" "${dir}/00-hostguard.conflist" || { echo "bench: stale output: ${line}" >&2; exit 1; }
    resync+=($((end - start)))
done
printf 'watch     rename -> durable re-sync reported:       '
printf '%s\n' "${resync[@]}" | summary
