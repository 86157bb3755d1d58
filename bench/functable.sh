#!/usr/bin/env bash
# functable.sh: run the function-table benchmarks of package functable and
# the same cases under Wine's ntdll, and print them side by side, with the
# targets of the "Dynamic function tables" issue. See bench/README.md.
#
# Usage: bench/functable.sh [-count N] [-runs N] [-keep DIR]
#   -count N  go test -count (default 5); the Go figure is the median
#   -runs N   timed loops per case in the Wine program (default 7); median
#   -keep DIR keep the raw outputs (go.txt, go-parallel.txt, wine.txt) in DIR
#
# Needs: go, x86_64-w64-mingw32-gcc, wine (Wine 8). WINEPREFIX defaults to
# $HOME/.cache/fntable/wine-prefix and is prepared with
# ../shared/wine/setup-prefix.sh if it does not exist.
set -euo pipefail

. "$(dirname "$0")/lib.sh" "$@"

# Wine side.
x86_64-w64-mingw32-gcc -O2 -Wall -o "$work/functable_bench.exe" "$here/wine/functable_bench.c"
run_wine "$work/functable_bench.exe" "$runs"

# Go side: the single-threaded cases pinned like Wine's, the throughput
# cases on every CPU (they measure how lookups scale with goroutines).
cd "$root"
go test -count=1 -run '^$' ./functable >/dev/null # build outside the timed run
echo "running go test -bench ${pin[*]}" >&2
"${pin[@]}" go test -run '^$' -bench '^Benchmark(Lookup|AddDelete|AddDeletePublished)$' -benchmem -count "$count" ./functable >"$work/go.txt"
echo "running go test -bench (throughput, GOMAXPROCS=$(nproc))" >&2
go test -run '^$' -bench '^BenchmarkLookup(Readers|WhileWriting)$' -benchmem -count "$count" ./functable >"$work/go-parallel.txt"

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$work/go.txt" "$work/go-parallel.txt" "$work/wine.txt" "$keep/"
fi

# Lines are "Name value unit value unit ...". Go names carry a -GOMAXPROCS
# suffix when GOMAXPROCS > 1. Each metric becomes a row: ns/op as the name,
# add-ns/op and delete-ns/op as "name add" and "name delete". The Go figure
# is the median over the -count runs; allocs/op is the largest.
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
function row(name) {
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
# target returns the issue target of a row in ns (0: none).
function target(name) {
	if (name ~ /^BenchmarkLookup\//) return 25
	if (name == "BenchmarkAddDelete/tables=10000 add") return 1000
	if (name == "BenchmarkAddDelete/tables=10000 delete") return 2000
	return 0
}
FNR == 1 { side++ }
{ sub(/\r$/, "") } # the Wine program writes CRLF
side == 1 && /^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	row(name); gons[name] = gons[name] " " metric("ns/op")
	al = metric("allocs/op")
	if (al != "" && (!(name in goal) || al + 0 > goal[name] + 0)) goal[name] = al
	if ((v = metric("add-ns/op")) != "") { row(name " add"); gons[name " add"] = gons[name " add"] " " v }
	if ((v = metric("delete-ns/op")) != "") { row(name " delete"); gons[name " delete"] = gons[name " delete"] " " v }
}
side == 2 && /^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in pseen)) { pseen[name] = 1; porder[++pn] = name }
	pns[name] = pns[name] " " metric("ns/op")
	pls[name] = pls[name] " " metric("lookups/s")
	if ((v = metric("writes/s")) != "") pws[name] = pws[name] " " v
	al = metric("allocs/op")
	if (al != "" && (!(name in pal) || al + 0 > pal[name] + 0)) pal[name] = al
}
side == 3 && /^Benchmark/ {
	w[$1] = metric("ns/op")
	if ((v = metric("add-ns/op")) != "") w[$1 " add"] = v
	if ((v = metric("delete-ns/op")) != "") w[$1 " delete"] = v
}
END {
	# The speed of this machine relative to the one of anchors.md §6,
	# where Wine looked up a PC of the first of 1 table in 15.4 ns.
	speed = ("BenchmarkLookup/tables=1/hit-first" in w) ? w["BenchmarkLookup/tables=1/hit-first"] / 15.4 : 1
	if (speed < 1) speed = 1
	printf "%-46s %11s %12s %9s %9s  %s\n", "benchmark", "Go ns/op", "Wine ns/op", "Go/Wine", "allocs/op", "target (scaled)"
	bad = 0; sbad = 0
	for (k = 1; k <= n; k++) {
		name = order[k]
		g = median(gons[name])
		wn = name in w ? sprintf("%.2f", w[name]) : "-"
		ratio = name in w && w[name] > 0 ? sprintf("%.3f", g / w[name]) : "-"
		al = name in goal ? goal[name] : ""
		tg = target(name); mark = ""
		if (tg > 0) {
			mark = sprintf("<= %d ns: %s (<= %.0f ns: %s)", tg, g + 0 <= tg ? "ok" : "MISSED", tg * speed, g + 0 <= tg * speed ? "ok" : "MISSED")
			if (g + 0 > tg) bad++
			if (g + 0 > tg * speed) sbad++
		}
		if (name ~ /^BenchmarkLookup\// && al + 0 != 0) { mark = mark ", allocs MISSED"; bad++; sbad++ }
		printf "%-46s %11.2f %12s %9s %9s  %s\n", name, g, wn, ratio, al, mark
	}
	print ""
	printf "%-46s %11s %14s %12s %9s %9s\n", "throughput (GOMAXPROCS = all CPUs)", "ns/op", "lookups/s", "vs 1 reader", "writes/s", "allocs/op"
	one = ""
	for (k = 1; k <= pn; k++) {
		name = porder[k]
		l = median(pls[name])
		if (name ~ /readers=1$/) one = l
		sc = name ~ /readers=/ && one > 0 ? sprintf("%.2fx", l / one) : "-"
		wr = name in pws ? sprintf("%.0f", median(pws[name])) : "-"
		al = name in pal ? pal[name] : "-"
		printf "%-46s %11.2f %14.0f %12s %9s %9s\n", name, median(pns[name]), l, sc, wr, al
	}
	print ""
	print "Go: median over the -count runs; Wine: median over the -runs loops of one process."
	print "Go/Wine < 1 means Go is faster. AddDelete: per add plus delete, add and delete rows"
	print "per operation, garbage collection included. Throughput ns/op: the time per lookup of"
	print "one reader while the others run."
	printf "Scaled targets: Wine takes %.1f ns for tables=1/hit-first here, 15.4 ns in anchors.md §6,\n", speed * 15.4
	printf "so this machine runs %.2fx slower; the targets in parentheses are scaled by that.\n", speed
	printf "%d row(s) miss a target, %d a scaled target.\n", bad, sbad
}' "$work/go.txt" "$work/go-parallel.txt" "$work/wine.txt"
