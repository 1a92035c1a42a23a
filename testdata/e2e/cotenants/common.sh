# shellcheck shell=bash
# Shared by the stand-in installers: listing config files as Go's sort.Strings orders them,
# noticing a change by polling, and the two ways the real tools write a file.
#
# The real tools wait with fsnotify/inotifywait; the stand-ins poll every 0.1 s instead (this
# machine has no inotifywait), which only makes them react a little later, never more often.

# cfg_files DIR EXT_REGEX: the names in DIR whose extension matches, byte-wise sorted.
cfg_files() {
	local f
	for f in "$1"/*; do
		[[ -f $f ]] || continue
		f=${f##*/}
		[[ $f =~ $2 ]] && printf '%s\n' "$f"
	done | LC_ALL=C sort
}

# identity FILE...: what changes when a file is written, replaced, created or removed.
identity() {
	stat -c '%n %i %.9Y %s' "$@" 2>/dev/null
	return 0
}

# wait_change CMD...: poll every 0.1 s until the output of CMD differs from its output now.
wait_change() {
	local before
	before=$("$@")
	while [[ $("$@") == "$before" ]]; do
		sleep 0.1
	done
}

# write_atomic PATH CONTENT: a temporary file in the same directory, then rename (Istio, Multus thin).
write_atomic() {
	local tmp
	tmp=$(mktemp "$(dirname "$1")/.$(basename "$1").tmp.XXXXXX") || return 1
	printf '%s\n' "$2" >"$tmp" && mv -f "$tmp" "$1"
}

# write_in_place PATH CONTENT: truncate and write (Multus thick, Antrea): readers may see a part.
write_in_place() {
	printf '%s\n' "$2" >"$1"
}

# read by the installer that sources this file
# shellcheck disable=SC2034
stop=0
trap 'stop=1' TERM INT
