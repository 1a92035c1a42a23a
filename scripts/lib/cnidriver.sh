# shellcheck shell=bash
# hg_build_cnidriver: build tests/cnidriver against Debian's libcni in GOPATH
# mode (no module download), into $HG_TARGET/cnidriver/cnidriver; rebuilt only
# when its sources or the Go toolchain change. Sets HG_CNIDRIVER.

hg_build_cnidriver() {
	local src=$HG_REPO/tests/cnidriver out=$HG_TARGET/cnidriver sum
	[[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ]] ||
		hg_die "libcni sources missing: apt-get install golang-github-appc-cni-dev"
	command -v go >/dev/null 2>&1 || hg_die "go not found: apt-get install golang-go"
	mkdir -p "$out"
	HG_CNIDRIVER=$out/cnidriver
	sum=$({
		cat "$src"/*.go
		go version
	} | sha256sum | cut -d' ' -f1)
	(
		# parallel runs share the binary: one builds, the others wait
		flock 9
		if [[ -x $HG_CNIDRIVER && $(cat "$out/cnidriver.sum" 2>/dev/null) == "$sum" ]]; then
			exit 0
		fi
		hg_log "building cnidriver (libcni $(dpkg-query -W -f='${Version}' golang-github-appc-cni-dev 2>/dev/null))"
		mkdir -p "$out/gopath"
		cd "$src" &&
			GO111MODULE=off GOFLAGS='' GOPATH="$out/gopath:/usr/share/gocode" GOCACHE="$out/gocache" \
				go build -o "$out/cnidriver.new" . &&
			mv -f "$out/cnidriver.new" "$HG_CNIDRIVER" &&
			echo "$sum" >"$out/cnidriver.sum"
	) 9>"$out/.lock" || hg_die "building tests/cnidriver failed"
}
