#!/usr/bin/env bash
# compare.sh: run the unwind benchmarks in Go and the same cases under Wine's
# ntdll, and print them side by side. See bench/README.md.
#
# Usage: bench/compare.sh [-rounds N] [-count N] [-runs N] [-keep DIR]
#   -rounds N rounds (default 8); each runs the Wine program, then the Go
#             benchmarks, right after each other, and gives one Go/Wine
#             ratio per case; the table shows the median of the rounds
#   -count N  go test -count per round (default 1; the median is used)
#   -runs N   timed loops per case in the Wine program per round (default
#             3; it prints their median)
#   -keep DIR keep the raw outputs (go.txt, wine.txt) in DIR
#
# The machines this runs on are shared and change speed, by as much as
# 1.7 times, for spells of seconds to minutes. Short rounds, each pairing a
# Wine figure with a Go figure taken seconds apart, keep such a spell from
# falling on one side only.
#
# Needs: go, x86_64-w64-mingw32-gcc, wine (Wine 8). WINEPREFIX defaults to
# $HOME/.cache/fntable/wine-prefix and is prepared with
# ../shared/wine/setup-prefix.sh if it does not exist.
set -euo pipefail

count=1 runs=3 rounds=8
. "$(dirname "$0")/lib.sh" "$@"

x86_64-w64-mingw32-gcc -O2 -Wall -Wno-unused-function -Wno-unused-variable \
	-I"$shared/wine" -o "$work/unwind_bench.exe" "$here/wine/unwind_bench.c"
(cd "$root" && go test -c -o "$work/unwind.test" ./unwind)
: >"$work/all-wine.txt"
: >"$work/all-go.txt"
for r in $(seq "$rounds"); do
	echo "round $r of $rounds" >&2
	run_wine "$work/unwind_bench.exe" "$runs"
	{ echo "round $r"; cat "$work/wine.txt"; } >>"$work/all-wine.txt"
	echo "round $r" >>"$work/all-go.txt"
	(cd "$root/unwind" && "${pin[@]}" "$work/unwind.test" -test.run '^$' \
		-test.bench 'VirtualUnwind|LookupImage|LookupUnwind' -test.benchtime 0.5s \
		-test.benchmem -test.count "$count") >>"$work/all-go.txt"
done
mv "$work/all-wine.txt" "$work/wine.txt"
mv "$work/all-go.txt" "$work/go.txt"

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$work/go.txt" "$work/wine.txt" "$keep/"
fi

# Lines are "Name value unit value unit ...", after a "round N" line. Go
# names carry a -GOMAXPROCS suffix. Per name and round: the median Go
# ns/op, copy-ns/op and net (ns/op - copy-ns/op), the Wine net and copy.
# Per name: the medians of those over the rounds, the median of the
# rounds' Go net / Wine net, and the largest allocs/op.
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
/^round / { round = $2; if (round > rounds) rounds = round; next }
side == 1 && /^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	k = name SUBSEP round
	ns = metric("ns/op"); cp = metric("copy-ns/op"); al = metric("allocs/op")
	gons[k] = gons[k] " " ns
	if (cp != "") { gocp[k] = gocp[k] " " cp; gonet[k] = gonet[k] " " (ns - cp) }
	else gonet[k] = gonet[k] " " ns
	if (al != "" && (!(name in goal) || al + 0 > goal[name] + 0)) goal[name] = al
}
side == 2 && /^Benchmark/ {
	k = $1 SUBSEP round
	w[k] = metric("ns/op"); wc = metric("copy-ns/op")
	if (wc != "") wcp[k] = wc
}
END {
	printf "%-48s %9s %8s %8s %9s %9s %8s %9s\n", "benchmark", "Go ns/op", "Go copy", "Go net", "Wine net", "Wine copy", "Go/Wine", "allocs/op"
	bad = 0
	for (i = 1; i <= n; i++) {
		name = order[i]
		G = ""; GC = ""; GN = ""; WN = ""; WC = ""; R = ""
		for (r = 1; r <= rounds; r++) {
			k = name SUBSEP r
			if (!(k in gons)) continue
			gn = median(gonet[k])
			G = G " " median(gons[k]); GN = GN " " gn
			if (k in gocp) GC = GC " " median(gocp[k])
			if (k in w) {
				WN = WN " " w[k]
				if (k in wcp) WC = WC " " wcp[k]
				if (w[k] > 0) R = R " " gn / w[k]
			}
		}
		gc = GC != "" ? sprintf("%.2f", median(GC)) : "-"
		wn = WN != "" ? sprintf("%.2f", median(WN)) : "-"
		wc = WC != "" ? sprintf("%.2f", median(WC)) : "-"
		ratio = R != "" ? sprintf("%.2f", median(R)) : "-"
		mark = ""
		if (ratio == "-") mark = " no Wine figure"
		else if (ratio + 0 > 1.2) mark = " >1.2"
		if (goal[name] + 0 != 0) mark = mark " allocs"
		if (mark != "") bad++
		printf "%-48s %9.2f %8s %8.2f %9s %9s %8s %9s%s\n", name, median(G), gc, median(GN), wn, wc, ratio, goal[name], mark
	}
	print ""
	printf "%d rounds. Go net = ns/op - copy-ns/op (the Context copy of the loop); Wine net = the\n", rounds
	print "same loop under Wine minus its CONTEXT copy; each column is the median over the rounds."
	print "Go/Wine = the median over the rounds of that round'"'"'s Go net / Wine net. Lookup rows copy"
	print "nothing. Target: Go/Wine <= 1.2 and 0 allocs/op."
	if (bad) printf "%d row(s) miss the target.\n", bad
	else print "Every row meets the target."
}' "$work/go.txt" "$work/wine.txt"
