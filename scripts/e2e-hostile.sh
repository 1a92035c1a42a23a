#!/usr/bin/env bash
# e2e-hostile: the shell-level part of the hostile-input suite (the rest is
# tests/hostile_*.rs, tests/faults*.rs, tests/concurrency.rs).
#   1. Peak memory, measured by /usr/bin/time (%M, the child's maximum RSS):
#      64 MiB on stdin is refused at the 1 MiB cap; the largest configuration
#      hostguard accepts (just under 1 MiB, most of it prevResult) is passed
#      through. Both in a throwaway namespace.
#   2. The fuzz smoke run (scripts/fuzz.sh --smoke): every target replays its
#      seeds and regressions and fuzzes a few seconds; a skip line when the
#      toolchain (cargo-fuzz, nightly) is missing, or HG_FUZZ_SMOKE=0.
#   3. The root namespace is compared before and after (read only).
# Env: HOSTGUARD_BIN (default target/release/hostguard), HG_FUZZ_SMOKE.
# Last line: "N passed, N failed"; exit status 1 if anything failed.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/netns.sh
source "$HG_REPO/scripts/lib/netns.sh"

BIN=${HOSTGUARD_BIN:-$HG_TARGET/release/hostguard}
# What the binary itself takes, plus the capped buffer: far below what is sent.
RSS_LIMIT_KIB=$((16 * 1024))

hg_require_root
[[ -x $BIN ]] || hg_die "no $BIN: cargo build --release first"
ROOT_BEFORE=$(hg_root_snapshot)
hg_init
T=$HG_TMP
hg_netns_add HOST || hg_die "namespace setup failed"
echo "== e2e-hostile (run $$), host namespace $HOST"

# cni VERB STDIN_FILE OUT_PREFIX: one call with peak RSS (KiB) in OUT_PREFIX.rss,
# stdout in OUT_PREFIX.json, exit status in OUT_PREFIX.rc.
cni() {
	local rc=0
	env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID=c1 CNI_NETNS=/run/netns/"$HOST" \
		CNI_IFNAME=eth0 /usr/bin/time -f %M -o "$3.rss" \
		ip netns exec "$HOST" "$BIN" <"$2" >"$3.json" 2>"$3.err" || rc=$?
	echo "$rc" >"$3.rc"
}

# 1a. 64 MiB, most of it one string: code 6, memory bounded.
{
	printf '{"cniVersion":"1.0.0","name":"n","type":"hostguard","stateDir":"%s/state","runDir":"%s/state/run","pad":"' "$T" "$T"
	head -c $((64 << 20)) /dev/zero | tr '\0' a
	printf '"}'
} >"$T/big.in"
t0=$(hg_now_ms)
cni ADD "$T/big.in" "$T/big"
ms=$(($(hg_now_ms) - t0))
rss=$(tail -n 1 "$T/big.rss")
if [[ $(cat "$T/big.rc") == 1 ]] && jq -e '.code == 6' "$T/big.json" >/dev/null &&
	((rss < RSS_LIMIT_KIB)) && [[ ! -e $T/state ]]; then
	hg_ok "64 MiB stdin refused with code 6" "peak RSS ${rss} KiB, ${ms} ms"
else
	hg_fail "64 MiB stdin refused with code 6" "rc $(cat "$T/big.rc"), peak RSS ${rss} KiB" \
		"$(head -c 300 "$T/big.json")"
fi

# 1b. The largest accepted configuration: ~1 MiB of prevResult, passed through.
{
	printf '{"cniVersion":"1.0.0","name":"n","type":"hostguard","stateDir":"%s/state","runDir":"%s/state/run",' "$T" "$T"
	printf '"prevResult":{"cniVersion":"1.0.0","x-pad":"'
	head -c $(((1 << 20) - 4096)) /dev/zero | tr '\0' b
	printf '"}}'
} >"$T/max.in"
cni ADD "$T/max.in" "$T/max"
rss=$(tail -n 1 "$T/max.rss")
if [[ $(cat "$T/max.rc") == 0 ]] &&
	[[ $(jq -r '."x-pad" | length' "$T/max.json") == $(((1 << 20) - 4096)) ]] &&
	((rss < 2 * RSS_LIMIT_KIB)); then
	hg_ok "a 1 MiB configuration is passed through" \
		"$(wc -c <"$T/max.json") bytes out, peak RSS ${rss} KiB"
else
	hg_fail "a 1 MiB configuration is passed through" "rc $(cat "$T/max.rc"), peak RSS ${rss} KiB" \
		"$(head -c 300 "$T/max.err")"
fi

# 2. Fuzz smoke: its own ok/FAIL/skip lines count here.
smoke=$T/fuzz-smoke.log
"$HG_REPO/scripts/fuzz.sh" --smoke >"$smoke" 2>&1
while IFS= read -r line; do
	case $line in
	"ok    "*) HG_PASS=$((HG_PASS + 1)) ;;
	"FAIL  "*) HG_FAIL=$((HG_FAIL + 1)) ;;
	"skip  "*) HG_SKIP=$((HG_SKIP + 1)) ;;
	*) continue ;;
	esac
	printf '%s\n' "$line"
done <"$smoke"
grep -E '^ {8}' "$smoke" | head -n 20

# 3. The machine's own namespace is exactly as it was.
hg_cleanup
if [[ $(hg_root_snapshot) == "$ROOT_BEFORE" ]]; then
	hg_ok "root namespace unchanged"
else
	hg_fail "root namespace unchanged" "$(diff <(echo "$ROOT_BEFORE") <(hg_root_snapshot) | head -n 20)"
fi
hg_summary
((HG_FAIL == 0))
