#!/usr/bin/env bash
# Everything CI runs, in order: install what is missing (Debian packages;
# the Rust toolchain must already be there), clear leftovers of our own
# earlier killed runs, rustfmt, release build, clippy, unit and integration
# tests, then every scripts/e2e-*.sh. Prints a summary; exits non-zero if any
# stage failed.
#
# Must run as root (tests create network namespaces; none touches the root
# namespace). Works without a terminal or stdin (CI=true).
#
# Env:
#   HG_LINT=0            skip rustfmt and clippy
#   HG_TEST_THREADS=N    libtest threads (default: libtest's own, one per core;
#                        every test makes its own namespaces, so they run in parallel)
#   HG_E2E=PATTERN       run only e2e scripts matching scripts/e2e-PATTERN.sh
#   PLUGIN, HOSTGUARD_BIN are passed to the e2e scripts (see scripts/e2e-libcni.sh)
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/deps.sh
source "$HG_REPO/scripts/lib/deps.sh"
# shellcheck source=lib/netns.sh
source "$HG_REPO/scripts/lib/netns.sh"

cd "$HG_REPO" || exit 1
hg_require_root

LOG_DIR=$HG_TARGET/test-logs
mkdir -p "$LOG_DIR"
t_all=$(hg_now_ms)

STAGES=()
declare -A STAGE_RC STAGE_MS STAGE_NOTE
CHILD=

# A signal stops the running stage by PID (its own traps clean up) and ends here.
on_signal() {
	trap - INT TERM HUP
	if [[ -n $CHILD ]]; then
		kill -TERM "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
	fi
	hg_log "test.sh: interrupted"
	exit 130
}
trap on_signal INT TERM HUP

# stage NAME CMD...: run CMD, its output shown and kept in $LOG_DIR/NAME.log.
stage() {
	local name=$1 t0 rc=0
	shift
	STAGES+=("$name")
	printf '\n==== %s: %s\n' "$name" "$*"
	t0=$(hg_now_ms)
	{
		"$@" 2>&1 </dev/null | tee "$LOG_DIR/$name.log"
		exit "${PIPESTATUS[0]}"
	} &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=
	STAGE_RC[$name]=$rc
	STAGE_MS[$name]=$(($(hg_now_ms) - t0))
	return "$rc"
}

skip_stage() { # NAME REASON
	STAGES+=("$1")
	STAGE_RC[$1]=skip
	STAGE_MS[$1]=0
	STAGE_NOTE[$1]=$2
}

# The shipped binary carries no fault-injection hook names (they exist only with the
# fault-injection feature).
hg_check_no_test_hooks() {
	if grep -a -q HOSTGUARD_TEST "$1"; then
		echo "$1 contains HOSTGUARD_TEST hooks: it was built with the fault-injection feature"
		return 1
	fi
	echo "$1 has no HOSTGUARD_TEST hooks"
}

# Installing and the toolchain check run here, not as a stage: without them
# nothing else can run.
hg_ensure_deps
hg_reap_stale

if [[ ${HG_LINT:-1} != 0 ]]; then
	stage fmt cargo fmt --all -- --check --color never
	if command -v shellcheck >/dev/null 2>&1; then
		stage shellcheck shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run testdata/e2e/standin-plugin \
			testdata/e2e/cotenants/*
	fi
fi

if stage build cargo build --release --locked; then
	if [[ ${HG_LINT:-1} != 0 ]]; then
		stage clippy cargo clippy --all-targets --all-features --locked -- -D warnings
	fi
	# The fuzz targets are their own crate, built only where cargo-fuzz is installed: check
	# that they still compile against the library, so a change cannot break them unseen.
	stage fuzz-check cargo check --locked --manifest-path fuzz/Cargo.toml --bins --examples
	test_args=()
	[[ -n ${HG_TEST_THREADS:-} ]] && test_args=(-- "--test-threads=$HG_TEST_THREADS")
	# The crash-recovery tests need the fault hooks, which the shipped binary must not have:
	# test with them, then rebuild target/release/hostguard without them for the e2e scripts.
	stage test cargo test --release --locked --features fault-injection "${test_args[@]}"
	STAGE_NOTE[test]=$(awk '/^test result:/ {p += $4; f += $6; i += $8} END {if (NR) printf "%d passed, %d failed, %d ignored", p, f, i}' "$LOG_DIR/test.log")
	stage rebuild cargo build --release --locked
	stage no-test-hooks hg_check_no_test_hooks target/release/hostguard

	for script in "$HG_REPO"/scripts/e2e-${HG_E2E:-*}.sh; do
		[[ -x $script ]] || continue
		name=$(basename "$script" .sh)
		stage "$name" "$script"
		STAGE_NOTE[$name]=$(tail -n 1 "$LOG_DIR/$name.log")
	done
else
	# a stale target/release/hostguard must not be tested in place of this tree
	skip_stage test "build failed"
	skip_stage e2e "build failed"
fi

printf '\n==== summary (logs in %s)\n' "$LOG_DIR"
failed=0
for name in "${STAGES[@]}"; do
	rc=${STAGE_RC[$name]}
	if [[ $rc == skip ]]; then
		status=SKIP
		failed=1
	elif ((rc == 0)); then
		status=ok
	else
		status=FAIL
		failed=1
	fi
	printf '  %-14s %-5s %7.1f s  %s\n' "$name" "$status" "${STAGE_MS[$name]}e-3" "${STAGE_NOTE[$name]:-}"
done
printf '  total %.1f s\n' "$(($(hg_now_ms) - t_all))e-3"
if ((failed)); then
	echo "FAILED"
	exit 1
fi
echo "ALL PASSED"
