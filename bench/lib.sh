# lib.sh: what compare.sh, functable.sh and instructions.sh share. Source
# it with the script's arguments: it parses -count N (Go benchmark runs,
# default 5), -runs N (Wine runs, default 7), -rounds N (default 1),
# -iters N (steps per case, default 20000) and -keep DIR into count, runs,
# rounds, iters and keep (a script may set other defaults before);
# sets here, root, shared, pin (a command prefix that pins to one CPU, or
# nothing) and work (a temporary directory removed on exit); and exports
# the Wine environment.

count=${count:-5}
runs=${runs:-7}
rounds=${rounds:-1}
iters=${iters:-20000}
keep=
while [ $# -gt 0 ]; do
	case $1 in
	-count) count=$2; shift 2 ;;
	-runs) runs=$2; shift 2 ;;
	-rounds) rounds=$2; shift 2 ;;
	-iters) iters=$2; shift 2 ;;
	-keep) keep=$2; shift 2 ;;
	*) echo "usage: $0 [-count N] [-runs N] [-rounds N] [-iters N] [-keep DIR]" >&2; exit 2 ;;
	esac
done

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

# start_wine: prepares the prefix if needed and starts a persistent
# wineserver. A wineserver started here, outside any pipe, keeps the
# helper processes of Wine's session from holding our pipes (anchors.md,
# "Stderr pipe stall"); it exits 60 s after its last client. Status 2: one
# is running already.
start_wine() {
	if [ ! -d "$WINEPREFIX/drive_c" ]; then
		# Wine does not create the prefix's parent directories.
		mkdir -p "$(dirname "$WINEPREFIX")"
		sh "$shared/wine/setup-prefix.sh" >&2
	fi
	wineserver -p60 || true
}

# run_wine EXE ARGS...: start_wine, then runs EXE pinned, with its output
# in $work/wine.txt.
run_wine() {
	local exe=$1
	shift
	start_wine
	wine cmd.exe /c exit </dev/null >"$work/warmup.out" 2>&1 || true
	echo "running $(basename "$exe") under $(wine --version 2>/dev/null) ${pin[*]}" >&2
	if ! "${pin[@]}" wine "$exe" "$@" </dev/null >"$work/wine.txt" 2>"$work/wine.err"; then
		cat "$work/wine.err" >&2
		exit 1
	fi
}
