#!/usr/bin/env bash
# compare.sh: run the unwind benchmarks in Go and the same cases under Wine's
# ntdll, and print them side by side. See bench/README.md.
#
# Usage: bench/compare.sh [-count N] [-runs N] [-rounds N] [-keep DIR]
#   -count N  go test -count per round (default 3); the Go figure is the
#             median of all runs
#   -runs N   timed loops per case in the Wine program per round (default
#             5); the Wine figure is the median of the rounds' medians
#   -rounds N rounds of Wine then Go (default 3), so that a slow spell of
#             a shared machine falls on both sides
#   -keep DIR keep the raw outputs (go.txt, wine.txt) in DIR
#
# Needs: go, x86_64-w64-mingw32-gcc, wine (Wine 8). WINEPREFIX defaults to
# $HOME/.cache/fntable/wine-prefix and is prepared with
# ../shared/wine/setup-prefix.sh if it does not exist.
set -euo pipefail

count=3 runs=5 rounds=3
. "$(dirname "$0")/lib.sh" "$@"

x86_64-w64-mingw32-gcc -O2 -Wall -Wno-unused-function -Wno-unused-variable \
	-I"$shared/wine" -o "$work/unwind_bench.exe" "$here/wine/unwind_bench.c"
(cd "$root" && go test -c -o "$work/unwind.test" ./unwind)
: >"$work/all-wine.txt"
: >"$work/all-go.txt"
for r in $(seq "$rounds"); do
	echo "round $r of $rounds" >&2
	run_wine "$work/unwind_bench.exe" "$runs"
	cat "$work/wine.txt" >>"$work/all-wine.txt"
	echo "running the Go benchmarks ${pin[*]}" >&2
	(cd "$root/unwind" && "${pin[@]}" "$work/unwind.test" -test.run '^$' \
		-test.bench 'VirtualUnwind|LookupImage|LookupUnwind' -test.benchmem -test.count "$count") >>"$work/all-go.txt"
done
mv "$work/all-wine.txt" "$work/wine.txt"
mv "$work/all-go.txt" "$work/go.txt"

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$work/go.txt" "$work/wine.txt" "$keep/"
fi

# Lines are "Name value unit value unit ...". Go names carry a -GOMAXPROCS
# suffix. Per name: median ns/op, median copy-ns/op, median of the per-run
# ns/op − copy-ns/op, maximum allocs/op.
awk '
function median(s,    a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	if (n == 0) return ""
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function metric(unit,    i) {
	for (i = 2; i < NF; i++) if ($(i+1) == unit) return $i
	return ""
}
FNR == 1 { side++ }
{ sub(/\r$/, "") } # the Wine program writes CRLF
side == 1 && /^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	ns = metric("ns/op"); cp = metric("copy-ns/op"); al = metric("allocs/op")
	gons[name] = gons[name] " " ns
	if (cp != "") { gocp[name] = gocp[name] " " cp; gonet[name] = gonet[name] " " (ns - cp) }
	else gonet[name] = gonet[name] " " ns
	if (al != "" && (!(name in goal) || al + 0 > goal[name] + 0)) goal[name] = al
}
side == 2 && /^Benchmark/ {
	w[$1] = w[$1] " " metric("ns/op"); wc = metric("copy-ns/op")
	if (wc != "") wcp[$1] = wcp[$1] " " wc
}
END {
	printf "%-40s %9s %8s %8s %9s %9s %8s %9s\n", "benchmark", "Go ns/op", "Go copy", "Go net", "Wine net", "Wine copy", "Go/Wine", "allocs/op"
	bad = 0
	for (k = 1; k <= n; k++) {
		name = order[k]
		g = median(gons[name]); gn = median(gonet[name])
		gc = name in gocp ? sprintf("%.2f", median(gocp[name])) : "-"
		wm = name in w ? median(w[name]) : ""
		wn = wm != "" ? sprintf("%.2f", wm) : "-"
		wc = name in wcp ? sprintf("%.2f", median(wcp[name])) : "-"
		ratio = wm != "" && wm > 0 ? sprintf("%.2f", gn / wm) : "-"
		mark = ""
		if (ratio == "-") mark = " no Wine figure"
		else if (ratio + 0 > 1.2) mark = " >1.2"
		if (goal[name] + 0 != 0) mark = mark " allocs"
		if (mark != "") bad++
		printf "%-40s %9.2f %8s %8.2f %9s %9s %8s %9s%s\n", name, g, gc, gn, wn, wc, ratio, goal[name], mark
	}
	print ""
	print "Go net = ns/op - copy-ns/op (the Context copy of the loop), median over all the Go runs;"
	print "Wine net = the same loop under Wine minus its CONTEXT copy, median over the rounds."
	print "Lookup rows copy nothing. Go/Wine = Go net / Wine net; target <= 1.2 and 0 allocs/op."
	if (bad) printf "%d row(s) miss the target.\n", bad
	else print "Every row meets the target."
}' "$work/go.txt" "$work/wine.txt"
