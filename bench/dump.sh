#!/usr/bin/env bash
# dump.sh: capture the demo's JIT target (internal/demotarget) with
# fntable dump and with gdb's gcore, side by side with hyperfine, and
# compare the files' sizes and what a walk of each finds.
#
# Usage: bench/dump.sh [-runs N] [-warmup N] [-keep DIR]
#   -runs N    timed runs per command (default 10)
#   -warmup N  untimed runs first (default 2)
#   -keep DIR  keep the builds, dumps and hyperfine's tables in DIR
#
# The commands:
#   fntable dump --trust-provider LIB -o D PID         (a minidump)
#   fntable dump --full --trust-provider LIB -o D PID  (every readable mapping)
#   gcore -o C PID                                     (an ELF core file)
# and, on the minidump, fntable stack --no-symbols D (open and walk every
# thread offline, no provider).
#
# Needs: cc (or gcc), gdb (gcore), hyperfine, go.
set -euo pipefail

runs=10
warmup=2
keep=
while [ $# -gt 0 ]; do
	case $1 in
	-runs) runs=$2; shift 2 ;;
	-warmup) warmup=$2; shift 2 ;;
	-keep) keep=$2; shift 2 ;;
	*) echo "usage: $0 [-runs N] [-warmup N] [-keep DIR]" >&2; exit 2 ;;
	esac
done
for tool in gcore hyperfine go; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: needs $tool (Debian: apt-get install -y --no-install-recommends gdb hyperfine)" >&2
		exit 1
	fi
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && { kill -KILL "$pid" 2>/dev/null || true; }
	if [ -n "$keep" ]; then
		mkdir -p "$keep"
		cp -r "$work"/. "$keep"/
	fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/fntable" ./cmd/fntable)
fnt=$work/fntable

# The provider: the demo builds it in ~/.cache/fntable/demo (a directory
# the trust rules accept) and prints its path.
"$fnt" demo >"$work/demo.txt"
lib=$(sed -n 's/^1\. Built the example provider //p' "$work/demo.txt")
[ -f "$lib" ] || { echo "$0: no provider library (is there a C compiler?)" >&2; exit 1; }

# The target lives while its standard input is open.
mkfifo "$work/stdin"
FNTABLE_DEMO_TARGET=1 "$fnt" -provider "$lib" <"$work/stdin" >"$work/report.json" 2>"$work/target.err" &
pid=$!
exec 3>"$work/stdin"
for _ in $(seq 300); do
	[ -s "$work/report.json" ] && break
	sleep 0.1
done
[ -s "$work/report.json" ] || { echo "$0: the target did not report" >&2; cat "$work/target.err" >&2; exit 1; }

mini="$fnt dump --trust-provider $lib -o $work/demo.dmp $pid"
full="$fnt dump --full --trust-provider $lib -o $work/full.dmp $pid"
core="gcore -o $work/core $pid"
walk="$fnt stack --no-symbols $work/demo.dmp"
$mini >"$work/dump.txt"
$full >/dev/null
$core >/dev/null 2>&1
$walk >"$work/walk.txt" 2>&1

size() { stat -c %s "$1"; }
echo "## the demo target (pid $pid)"
echo
sed 's/^/    /' "$work/dump.txt"
echo
echo "sizes: minidump $(size "$work/demo.dmp") bytes, full minidump $(size "$work/full.dmp") bytes, gcore $(size "$work/core.$pid") bytes"
echo "offline walk of the minidump: $(grep -c '^Thread' "$work/walk.txt") threads, $(grep -c '^#' "$work/walk.txt") frames, $(grep -c '{.* table}\|\[table\]' "$work/walk.txt" || true) through dynamic tables"
echo
hyperfine -N -i --style basic --warmup "$warmup" --runs "$runs" \
	--export-markdown "$work/table.md" \
	-n "fntable dump" "$mini" -n "fntable dump --full" "$full" -n gcore "$core" \
	-n "fntable stack DUMP" "$walk" >"$work/hyperfine.txt"
cat "$work/table.md"
