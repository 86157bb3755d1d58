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

. "$(dirname "$0")/demotarget.sh"

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
# Each capture writes a new file: the previous run's is removed before
# each run, untimed (replacing a file frees the old one's blocks in the
# rename or truncation, about 1 ms for the 0.8 MB minidump on this VM's
# ext4, and far more for a gigabyte core file, which is no part of a
# capture). The walk reads the last minidump written.
hyperfine -N -i --style basic --warmup "$warmup" --runs "$runs" \
	--export-markdown "$work/table.md" \
	--prepare "rm -f $work/demo.dmp" --prepare "rm -f $work/full.dmp" \
	--prepare "rm -f $work/core.$pid" --prepare "true" \
	-n "fntable dump" "$mini" -n "fntable dump --full" "$full" -n gcore "$core" \
	-n "fntable stack DUMP" "$walk" >"$work/hyperfine.txt"
cat "$work/table.md"
