# lib.sh: what compare.sh and functable.sh share. Source it after parsing
# the arguments; it sets here, root, shared, pin (a command prefix that pins
# to one CPU, or nothing) and work (a temporary directory removed on exit),
# and exports the Wine environment.

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=$root/../shared

export WINEPREFIX=${WINEPREFIX:-$HOME/.cache/fntable/wine-prefix}
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
unset DISPLAY

# Pin single-threaded measurements to one CPU when possible.
pin=()
if command -v taskset >/dev/null 2>&1 && taskset -c 1 true 2>/dev/null; then
	pin=(taskset -c 1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run_wine EXE ARGS...: prepares the prefix if needed, starts a persistent
# wineserver, and runs EXE pinned, with its output in $work/wine.txt.
run_wine() {
	local exe=$1
	shift
	if [ ! -d "$WINEPREFIX/drive_c" ]; then
		sh "$shared/wine/setup-prefix.sh" >&2
	fi
	# A wineserver started here, outside any pipe, keeps the helper processes
	# of Wine's session from holding our pipes (anchors.md, "Stderr pipe
	# stall"); it exits 60 s after its last client. Status 2: one is running
	# already.
	wineserver -p60 || true
	wine cmd.exe /c exit </dev/null >"$work/warmup.out" 2>&1 || true
	echo "running $(basename "$exe") under $(wine --version 2>/dev/null) ${pin[*]}" >&2
	if ! "${pin[@]}" wine "$exe" "$@" </dev/null >"$work/wine.txt" 2>"$work/wine.err"; then
		cat "$work/wine.err" >&2
		exit 1
	fi
}
