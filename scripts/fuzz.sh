#!/usr/bin/env bash
# Fuzzes every parser that takes outside bytes, with cargo-fuzz (libFuzzer). The targets live in
# fuzz/ (its own cargo project, never part of the main build); see fuzz/README.md for what each
# one feeds and which invariants it checks.
#
# Usage:
#   scripts/fuzz.sh [SECONDS] [TARGET...]   fuzz each target for SECONDS (default 60), one after
#                                           the other; the corpus grows in fuzz/corpus/TARGET
#   scripts/fuzz.sh --smoke                 CI: replay seeds, regressions and corpus once, then
#                                           fuzz each target for HG_FUZZ_SMOKE_SECONDS (default 3);
#                                           prints a skip line and exits 0 without the toolchain
#   scripts/fuzz.sh --seeds                 regenerate fuzz/seeds from testdata/ and a private netns
#   scripts/fuzz.sh --list                  the targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`cargo +nightly`), or a
# stable one with RUSTC_BOOTSTRAP=1. Must run as root: cni_invocation and the seed generator move
# into a network namespace of their own (never the machine's).
#
# A crash leaves its input in fuzz/artifacts/TARGET/; copy it to fuzz/regressions/TARGET/ with the
# fix, so every later run (and the smoke run) replays it.
#
# Env:
#   HG_FUZZ_SANITIZER=none|address   (default none: the code is safe Rust; address finds memory
#                                     errors in dependencies' unsafe code at ~2x the cost)
#   HG_FUZZ_JOBS=N                   libFuzzer workers per target (default 1)
#   HG_FUZZ_MAX_LEN=BYTES            largest generated input (default 65536)
#   HG_FUZZ_SMOKE=0                  make --smoke print a skip line and do nothing
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

TARGETS=(cni_config cni_invocation conflist keyfile config_dirs state_files netlink_messages)
FUZZ=$HG_REPO/fuzz
SANITIZER=${HG_FUZZ_SANITIZER:-none}
JOBS=${HG_FUZZ_JOBS:-1}
# Inputs beyond the 1 MiB stdin cap are tested by tests/hostile*.rs; 64 KiB covers every
# structure the parsers have while keeping each execution fast.
MAX_LEN=${HG_FUZZ_MAX_LEN:-65536}

# Sets TOOLCHAIN (cargo arguments) and BOOTSTRAP, or returns 1 with the reason in WHY.
find_toolchain() {
	hg_find_cargo
	if ! cargo fuzz --version >/dev/null 2>&1; then
		WHY="cargo-fuzz is not installed (cargo install cargo-fuzz)"
		return 1
	fi
	if cargo +nightly --version >/dev/null 2>&1; then
		TOOLCHAIN=(+nightly)
		BOOTSTRAP=
		return 0
	fi
	if RUSTC_BOOTSTRAP=1 cargo fuzz --help >/dev/null 2>&1; then
		TOOLCHAIN=()
		BOOTSTRAP=1
		return 0
	fi
	WHY="no nightly toolchain (rustup toolchain install nightly)"
	return 1
}

fuzz_cargo() { # cargo-fuzz subcommand and arguments
	if [[ -n $BOOTSTRAP ]]; then
		RUSTC_BOOTSTRAP=1 cargo "${TOOLCHAIN[@]}" fuzz "$@"
	else
		cargo "${TOOLCHAIN[@]}" fuzz "$@"
	fi
}

build() {
	(cd "$HG_REPO" && fuzz_cargo build -O -s "$SANITIZER")
}

bin_of() {
	echo "$FUZZ/target/x86_64-unknown-linux-gnu/release/$1"
}

# Corpus directories of TARGET that exist: the growing corpus first (libFuzzer writes new inputs
# into the first directory), then the committed seeds and regressions.
corpora() {
	local target=$1 dir
	mkdir -p "$FUZZ/corpus/$target"
	echo "$FUZZ/corpus/$target"
	for dir in "$FUZZ/seeds/$target" "$FUZZ/regressions/$target"; do
		[[ -d $dir ]] && echo "$dir"
	done
}

# run TARGET SECONDS LOG: fuzz one target; the last libFuzzer status line goes to stdout.
run_target() {
	local target=$1 seconds=$2 log=$3 rc=0 jobs=()
	mapfile -t dirs < <(corpora "$target")
	# -jobs runs workers as subprocesses with their own logs; only worth it for more than one.
	((JOBS > 1)) && jobs=(-jobs="$JOBS" -workers="$JOBS")
	mkdir -p "$FUZZ/artifacts/$target"
	# -close_fd_mask=2: hostguard's diagnostics on stderr would drown libFuzzer's own lines;
	# a crash report still comes through (libFuzzer prints it before closing).
	(cd "$FUZZ" && "$(bin_of "$target")" \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$MAX_LEN" \
		-print_final_stats=1 -close_fd_mask=2 "${jobs[@]}" \
		-artifact_prefix="$FUZZ/artifacts/$target/" "${dirs[@]}") >"$log" 2>&1 || rc=$?
	return "$rc"
}

# Scratch directories the targets made under /dev/shm (hg-fuzz-PID-NAME), once PID is gone.
clean_scratch() {
	local dir pid
	for dir in /dev/shm/hg-fuzz-*; do
		[[ -d $dir ]] || continue
		pid=${dir#/dev/shm/hg-fuzz-}
		pid=${pid%%-*}
		[[ $pid =~ ^[0-9]+$ ]] || continue
		kill -0 "$pid" 2>/dev/null || rm -rf -- "$dir"
	done
}

stat_of() { # LOG KEY: a -print_final_stats value
	awk -v key="stat::$2:" '$1 == key { v = $2 } END { print v + 0 }' "$1"
}

summarize() { # TARGET SECONDS LOG RC
	local target=$1 seconds=$2 log=$3 rc=$4 execs cov
	execs=$(stat_of "$log" number_of_executed_units)
	cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
	if ((rc == 0)); then
		hg_ok "fuzz $target ${seconds}s" "$execs execs, cov ${cov:-?}"
		return
	fi
	# stderr was closed during the run; replay the crash with it open for the panic message.
	local artifact
	artifact=$(grep -o 'Test unit written to .*' "$log" | tail -n 1 | cut -d' ' -f5)
	if [[ -f $artifact ]]; then
		printf '\n==== replay of %s\n' "$artifact" >>"$log"
		"$(bin_of "$target")" "$artifact" >>"$log" 2>&1
	fi
	hg_fail "fuzz $target ${seconds}s (exit $rc)" \
		"$(grep -E -A2 'ERROR: libFuzzer|panicked at' "$log" | head -n 12)" \
		"input: ${artifact:-none}; copy it to fuzz/regressions/$target/ with the fix" "log: $log"
}

case ${1:-} in
--list)
	printf '%s\n' "${TARGETS[@]}"
	exit 0
	;;
--seeds)
	hg_require_root
	find_toolchain || hg_die "$WHY"
	(cd "$FUZZ" && cargo "${TOOLCHAIN[@]}" run --release --example seedgen) || exit 1
	exit 0
	;;
--smoke)
	if [[ ${HG_FUZZ_SMOKE:-1} == 0 ]]; then
		hg_skip "fuzz smoke" "HG_FUZZ_SMOKE=0"
		hg_summary
		exit 0
	fi
	if ! find_toolchain; then
		hg_skip "fuzz smoke" "$WHY"
		hg_summary
		exit 0
	fi
	hg_require_root
	seconds=${HG_FUZZ_SMOKE_SECONDS:-3}
	selected=("${TARGETS[@]}")
	;;
*)
	hg_require_root
	find_toolchain || hg_die "$WHY"
	seconds=60
	if [[ ${1:-} =~ ^[0-9]+$ ]]; then
		seconds=$1
		shift
	fi
	selected=("$@")
	((${#selected[@]})) || selected=("${TARGETS[@]}")
	;;
esac

LOG_DIR=$HG_TARGET/fuzz-logs
mkdir -p "$LOG_DIR"
t0=$(hg_now_ms)
if ! build >"$LOG_DIR/build.log" 2>&1; then
	hg_fail "build fuzz targets" "$(tail -n 20 "$LOG_DIR/build.log")"
	hg_summary
	exit 1
fi
hg_log "fuzz targets built in $((($(hg_now_ms) - t0) / 1000)) s (sanitizer $SANITIZER)"

for target in "${selected[@]}"; do
	[[ -x $(bin_of "$target") ]] || hg_die "unknown target $target (see --list)"
	log=$LOG_DIR/$target.log
	rc=0
	run_target "$target" "$seconds" "$log" || rc=$?
	summarize "$target" "$seconds" "$log" "$rc"
	clean_scratch
done
hg_summary
((HG_FAIL == 0))
