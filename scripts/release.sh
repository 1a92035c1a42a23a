#!/usr/bin/env bash
# release.sh: the files of a hostguard release, the way the reference CNI plugins publish theirs:
#   dist/hostguard-linux-<arch>-v<version>.tgz         ./hostguard (static, stripped), LICENSE, README.md
#   dist/hostguard-linux-<arch>-v<version>.tgz.sha256  "<sha256>  <tarball name>" (sha256sum -c)
# It builds `cargo build --release --locked` (target/release/hostguard), refuses a binary that
# needs a dynamic loader, and with --image also builds the container image hostguard:<version>
# from the tarball with podman (offline: the Containerfile starts FROM scratch).
#
# Usage: scripts/release.sh [--out DIR] [--image]
# Env: SOURCE_DATE_EPOCH (file times in the tarball; default the commit's time),
#      HOSTGUARD_BIN (package this binary instead of building one)
#
# Other architectures: this script packages the machine's own. For arm64 (not buildable on this
# project's CI machines, which have neither the Rust target nor a cross linker):
#   rustup target add aarch64-unknown-linux-gnu
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
#   CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
#   CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
#     cargo build --release --locked --target aarch64-unknown-linux-gnu
#   HOSTGUARD_BIN=target/aarch64-unknown-linux-gnu/release/hostguard HG_ARCH=arm64 scripts/release.sh
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

OUT=$HG_REPO/dist
IMAGE=0
while (($#)); do
	case $1 in
	--out)
		OUT=${2:?--out needs a directory}
		shift
		;;
	--image) IMAGE=1 ;;
	-h | --help)
		sed -n '2,/^# shellcheck/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) hg_die "unknown argument $1 (see --help)" ;;
	esac
	shift
done

cd "$HG_REPO"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || hg_die "no version in Cargo.toml"
case ${HG_ARCH:-$(uname -m)} in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) hg_die "unknown architecture $(uname -m): set HG_ARCH" ;;
esac

bin=${HOSTGUARD_BIN:-}
if [[ -z $bin ]]; then
	hg_find_cargo
	cargo build --release --locked
	bin=$HG_TARGET/release/hostguard
fi
[[ -x $bin ]] || hg_die "no binary at $bin"
# A binary with a PT_INTERP needs the node's libc: refuse to ship it.
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
	hg_die "$bin is dynamically linked ($(ldd "$bin" 2>&1 | tr '\n' ' ')); was it built with HOSTGUARD_DYNAMIC=1?"
fi

name=hostguard-linux-$arch-v$version
stage=$(mktemp -d "${TMPDIR:-/tmp}/hg-release-XXXXXX")
trap 'rm -rf "$stage"' EXIT
strip --strip-all -o "$stage/hostguard" "$bin"
chmod 0755 "$stage/hostguard"
cp LICENSE README.md "$stage/"

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
mkdir -p "$OUT"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
	-C "$stage" -cf - ./hostguard ./LICENSE ./README.md | gzip -n -9 >"$OUT/$name.tgz"
(cd "$OUT" && sha256sum "$name.tgz" >"$name.tgz.sha256")

printf '%s\n' "$OUT/$name.tgz" "$OUT/$name.tgz.sha256"
printf 'binary: %s bytes stripped (%s bytes before), %s\n' "$(stat -c %s "$stage/hostguard")" \
	"$(stat -c %s "$bin")" "$(ldd "$stage/hostguard" 2>&1 | tr -s ' \t' ' ' | sed 's/^ //')"

if ((IMAGE)); then
	command -v podman >/dev/null || hg_die "--image needs podman"
	podman build --pull=never -f "$HG_REPO/Containerfile" -t "hostguard:$version" "$stage"
	podman image inspect --format 'image {{index .RepoTags 0}}: {{.Size}} bytes' "hostguard:$version"
fi
