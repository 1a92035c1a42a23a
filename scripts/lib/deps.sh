# shellcheck shell=bash
# hg_ensure_deps: install the Debian packages the tests and the demo use, only
# those missing (no apt-get at all when everything is there), without prompts.
# The Rust toolchain is expected on the machine already.

HG_DEB_PACKAGES=(
	containernetworking-plugins # bridge, host-local, tuning: the chain around hostguard
	containerd podman runc busybox-static # the other real clients' e2e runs
	golang-go golang-github-appc-cni-dev # the libcni driver (tests/cnidriver)
	jq iproute2 iptables hyperfine
	python3-yaml python3-kubernetes # tests/k8s/schema_check.py: the manifests against the API's model
	binutils # strip and readelf: scripts/release.sh, scripts/e2e-image.sh
	python3-grpcio python3-grpc-tools gcc libc6-dev # scripts/e2e-cri.sh: CRI stubs, the static pause program
)

# tests/nm_oracle.rs asks `NetworkManager --print-config` how it merges its configuration. Under
# systemd as PID 1 installing the package starts the daemon, which would take over the machine's
# interfaces: there the package is left out and the oracle tests skip with a line.
if [[ $(cat /proc/1/comm 2>/dev/null) == systemd ]]; then
	echo "deps: network-manager not installed (systemd is PID 1 and would start it); tests/nm_oracle.rs skips" >&2
else
	HG_DEB_PACKAGES+=(network-manager)
fi

hg_missing_packages() {
	local p
	for p in "${HG_DEB_PACKAGES[@]}"; do
		[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || echo "$p"
	done
}

hg_ensure_deps() {
	local missing
	mapfile -t missing < <(hg_missing_packages)
	if ((${#missing[@]} > 0)); then
		hg_require_root
		hg_log "installing missing packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq </dev/null ||
			hg_die "apt-get update failed; packages still missing: ${missing[*]}"
		apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null ||
			hg_die "apt-get install failed for: ${missing[*]}"
		mapfile -t missing < <(hg_missing_packages)
		((${#missing[@]} == 0)) || hg_die "still missing after apt-get install: ${missing[*]}"
	fi
	hg_find_cargo
}
