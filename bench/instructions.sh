#!/usr/bin/env bash
# instructions.sh: instructions per unwind step, counted by callgrind, for
# package unwind and for Wine's RtlVirtualUnwind on the same frames. Unlike
# times, the counts do not depend on what else the machine is doing. See
# bench/README.md.
#
# Usage: bench/instructions.sh [-iters N]
#   -iters N  unwind steps per case on each side (default 20000)
#
# Go: instructions inside Unwinder.VirtualUnwind (the Go method and
# everything it calls), divided by the number of calls (the benchmark's
# N, plus its one check before the loop). Wine: instructions inside
# RtlVirtualUnwind of Wine's ntdll.dll (it calls nothing on these frames),
# divided by the number of calls (N, plus one check). Neither counts what
# the caller does to make the call.
#
# Needs: go, valgrind, x86_64-w64-mingw32-gcc and -nm, wine (Wine 8; it
# runs under valgrind).
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"

# callgrind_total FILE [FUNCTION]: the instructions of FILE, or those of
# FUNCTION alone (a hex address as callgrind prints it), summed over the
# contexts callgrind splits it into (ADDR, ADDR'2, ...) when it has no
# symbols to tell calls from jumps.
callgrind_total() {
	callgrind_annotate --auto=no --threshold=100 "$1" 2>/dev/null | awk -v f="${2:-}" '
		f == "" && /PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }
		f != "" && $2 ~ /^\(/ && (index($0, ":" f " ") || index($0, ":" f "\047")) { gsub(",", "", $1); n += $1; found = 1 }
		END { if (f != "" && found) print n }'
}

cases=(push-alloc fp-ehandler epilog alloc-large-save)

# Go side.
(cd "$root" && go test -c -o "$work/unwind.test" ./unwind)
declare -A gocount
for bench in VirtualUnwind VirtualUnwindPointers; do
	for c in "${cases[@]}"; do
		(cd "$root/unwind" && GOGC=off GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
			--collect-atstart=no --toggle-collect='github.com/fntable/fntable/unwind.(*Unwinder).VirtualUnwind' \
			--callgrind-out-file="$work/go.cg" "$work/unwind.test" -test.run '^$' \
			-test.bench "^Benchmark$bench\$/^$c\$" -test.benchtime "${iters}x" >/dev/null 2>&1)
		gocount[$bench/$c]=$(callgrind_total "$work/go.cg")
	done
done

# Wine side.
x86_64-w64-mingw32-gcc -O2 -Wall -Wno-unused-function -Wno-unused-variable \
	-I"$shared/wine" -o "$work/unwind_bench.exe" "$here/wine/unwind_bench.c"
ntdll=
for f in /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/ntdll.dll /usr/lib/wine/x86_64-windows/ntdll.dll; do
	if [ -f "$f" ]; then ntdll=$f; break; fi
done
[ -n "$ntdll" ] || { echo "Wine's ntdll.dll not found" >&2; exit 1; }
addr=$(x86_64-w64-mingw32-nm "$ntdll" | awk '$3 == "RtlVirtualUnwind" { print $1 }')
[ -n "$addr" ] || { echo "RtlVirtualUnwind not found in $ntdll" >&2; exit 1; }
wine64=/usr/lib/wine/wine64 # the loader itself: valgrind follows it, not a script
[ -x "$wine64" ] || wine64=$(command -v wine64)
start_wine
declare -A winecount
k=0
for bench in VirtualUnwind VirtualUnwindPointers; do
	for c in "${cases[@]}"; do
		rm -f "$work"/wine.cg.*
		valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$work/wine.cg.%p" \
			"$wine64" "$work/unwind_bench.exe" 1 "$k" "$iters" </dev/null >"$work/wine.out" 2>&1
		# Wine starts helper processes too, which unwind a little: the
		# benchmark is the process with the most.
		n=0
		for f in "$work"/wine.cg.*; do
			v=$(callgrind_total "$f" "0x$addr") || true
			if [ -n "$v" ] && [ "$v" -gt "$n" ]; then n=$v; fi
		done
		[ "$n" -gt 0 ] || n=
		winecount[$bench/$c]=$n
		k=$((k + 1))
	done
done

printf "%-48s %10s %10s %8s\n" "instructions per step" "Go" "Wine" "Go/Wine"
for bench in VirtualUnwind VirtualUnwindPointers; do
	for c in "${cases[@]}"; do
		g=${gocount[$bench/$c]} w=${winecount[$bench/$c]}
		awk -v name="Benchmark$bench/$c" -v g="$g" -v w="$w" -v n="$iters" 'BEGIN {
			gi = g / (n + 1); wi = w != "" ? w / (n + 1) : 0
			printf "%-48s %10.1f %10s %8s\n", name, gi, wi ? sprintf("%.1f", wi) : "-", wi ? sprintf("%.2f", gi / wi) : "-"
		}'
	done
done
