# shellcheck shell=bash
# Shared basics for the hostguard scripts: repo paths, logging, timing and a
# pass/fail tally. Source it; it defines functions and variables only.

HG_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HG_TARGET=${CARGO_TARGET_DIR:-$HG_REPO/target}
case $HG_TARGET in /*) ;; *) HG_TARGET=$HG_REPO/$HG_TARGET ;; esac

hg_log() { printf '%s\n' "$*" >&2; }
hg_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Milliseconds since the epoch, from bash's own clock (no fork).
hg_now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

hg_require_root() {
	[[ $EUID -eq 0 ]] || hg_die "$(basename "$0") must run as root: it creates network namespaces"
}

# The Rust toolchain is not installed by us; rustup puts it under ~/.cargo/bin,
# which a CI shell or sudo may not have on PATH.
hg_find_cargo() {
	if ! command -v cargo >/dev/null 2>&1; then
		local d
		for d in "${CARGO_HOME:-}/bin" "$HOME/.cargo/bin" /root/.cargo/bin; do
			if [[ -x $d/cargo ]]; then
				PATH=$d:$PATH
				export PATH
				break
			fi
		done
	fi
	command -v cargo >/dev/null 2>&1 ||
		hg_die "cargo not found: install the Rust toolchain (https://rustup.rs) and put ~/.cargo/bin on PATH"
}

# --- tally of assertions -----------------------------------------------------
HG_PASS=0
HG_FAIL=0
HG_SKIP=0

# hg_ok DESCRIPTION [NOTE]
hg_ok() {
	HG_PASS=$((HG_PASS + 1))
	printf 'ok    %-62s %s\n' "$1" "${2:-}"
}

# hg_fail DESCRIPTION [DETAIL...]: each DETAIL may hold several lines; long
# lines are cut so one failure stays readable.
hg_fail() {
	HG_FAIL=$((HG_FAIL + 1))
	printf 'FAIL  %s\n' "$1"
	shift
	local detail line
	for detail in "$@"; do
		[[ -n $detail ]] || continue
		while IFS= read -r line; do
			((${#line} > 200)) && line="${line:0:200}..."
			printf '        %s\n' "$line"
		done <<<"$detail"
	done
}

# hg_skip DESCRIPTION REASON
hg_skip() {
	HG_SKIP=$((HG_SKIP + 1))
	printf 'skip  %-62s %s\n' "$1" "($2)"
}

# hg_indent FILE: show a file's lines (at most 20) as detail under a result.
hg_indent() {
	[[ -s $1 ]] || return 0
	head -n 20 "$1" | sed 's/^/| /'
}

# The last line is parsed by test.sh: keep its format,
# "N passed, N failed" or "N passed, N failed, N skipped".
hg_summary() {
	if ((HG_SKIP > 0)); then
		printf '%d passed, %d failed, %d skipped\n' "$HG_PASS" "$HG_FAIL" "$HG_SKIP"
	else
		printf '%d passed, %d failed\n' "$HG_PASS" "$HG_FAIL"
	fi
}
