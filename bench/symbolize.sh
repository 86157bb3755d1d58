#!/usr/bin/env bash
# symbolize.sh: time llvm-symbolizer, eu-addr2line, package elfsym (through
# bench/elfsymbolize) and "fntable sym" (the symbol handler, as users run it)
# on the same binaries and the same addresses, in one run, and print load
# times and throughput side by side. See bench/README.md.
#
# Usage: bench/symbolize.sh [-runs N] [-keep DIR] [-eu N]
#   -runs N   timed runs per tool, binary and address set (default 5); median
#   -keep DIR keep the binaries' links and address files in DIR
#   -eu N     addresses for eu-addr2line (default 1000)
#
# The binaries are internal/symtest's (SQLite through cgo, a C++ program, a Go
# program, the debug file of a split C program), built on first use; the
# addresses are 10,000 random ones in each binary's code (seed 1). Each tool
# runs as a process reading the addresses on standard input and printing its
# answers, with inline frames and without demangling:
#   llvm-symbolizer --output-style=JSON --inlines --no-demangle --obj=BIN
#   eu-addr2line -e BIN -f -i -a
#   elfsymbolize -obj BIN            (JSON in llvm-symbolizer's shape)
#   fntable sym --json --module BIN  (through the symbol handler: module and
#                                     symbol lookup, demangling, its JSON)
# "load" is the median CPU time (user plus system) of a run with the first
# address only: process start, opening the file and one answer. "addresses/s"
# is the other 9,999 addresses divided by the median CPU time a run with all of
# them takes beyond load. CPU time, not wall time, so that other work on the
# machine disturbs the figures less. Runs are pinned to one CPU when taskset
# can. eu-addr2line is run on the first 1,000 addresses only (-eu N to change):
# it is slow on the large binaries.
#
# Needs: go, gcc, g++, objcopy, llvm-symbolizer, eu-addr2line (elfutils).
set -euo pipefail

runs=5
keep=
eu=1000
while [ $# -gt 0 ]; do
	case $1 in
	-runs) runs=$2; shift 2 ;;
	-keep) keep=$2; shift 2 ;;
	-eu) eu=$2; shift 2 ;;
	*) echo "usage: $0 [-runs N] [-keep DIR] [-eu N]" >&2; exit 2 ;;
	esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	bins=$(cd "$keep" && pwd)
else
	bins=$work
fi

pin=()
if command -v taskset >/dev/null 2>&1 && taskset -c 1 true 2>/dev/null; then
	pin=(taskset -c 1)
fi

for t in go llvm-symbolizer eu-addr2line; do
	command -v "$t" >/dev/null || { echo "$0: needs $t" >&2; exit 1; }
done

(cd "$root" && go build -o "$work/elfsymbolize" ./bench/elfsymbolize)
(cd "$root" && go build -o "$work/fntable" ./cmd/fntable)
mkdir -p "$work/nosyms"
(cd "$root" && SYMTEST_BENCH_DIR=$bins go test -count=1 -run '^TestWriteBench$' ./internal/symtest >/dev/null)

# cpu CMD...: the CPU time (user plus system, all threads) of one run in
# microseconds, output discarded. CPU time rather than wall time, because
# the machines these run on are often shared.
cpu() {
	local TIMEFORMAT='%3U %3S' t
	t=$({ time "${pin[@]}" "$@" >/dev/null 2>&1; } 2>&1)
	awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%d\n", (a[1] + a[2]) * 1e6 }'
}

# median N CMD... (stdin from $in): the median of N runs, in microseconds.
median() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		cpu "$@" <"$in"
	done | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

tool_cmd() {
	case $1 in
	llvm-symbolizer) echo "llvm-symbolizer --output-style=JSON --inlines --no-demangle --obj=$2" ;;
	eu-addr2line) echo "eu-addr2line -e $2 -f -i -a" ;;
	elfsym) echo "$work/elfsymbolize -obj $2" ;;
	fntable-sym) echo "$work/fntable sym --json --symbol-path $work/nosyms --module $2" ;;
	esac
}

printf '%-8s %-16s %10s %14s\n' binary tool "load ms" "addresses/s"
echo "(CPU time; ${pin[*]:-not pinned})"
for b in sqlite cpp go split; do
	bin=$bins/$b
	head -1 "$bins/$b.addrs" >"$work/first"
	head -"$eu" "$bins/$b.addrs" >"$work/eu"
	for t in llvm-symbolizer eu-addr2line elfsym fntable-sym; do
		# shellcheck disable=SC2046
		set -- $(tool_cmd "$t" "$bin")
		all_in=$bins/$b.addrs
		[ "$t" = eu-addr2line ] && all_in=$work/eu
		n=$(wc -l <"$all_in")
		in=$work/first
		load=$(median "$runs" "$@")
		in=$all_in
		all=$(median "$runs" "$@")
		awk -v b="$b" -v t="$t" -v load="$load" -v all="$all" -v n="$n" 'BEGIN {
			rest = all - load
			rate = rest > 0 ? (n - 1) / (rest / 1e6) : 0
			printf "%-8s %-16s %10.1f %14.0f\n", b, t, load / 1000, rate
		}'
	done
done
