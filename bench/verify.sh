#!/usr/bin/env bash
# verify.sh: check the unwind information of a large MSVC image, Biome's
# biome.exe (npm package @biomejs/cli-win32-x64), with fntable verify, side
# by side with the time llvm-readobj --unwind takes just to print it; then
# the Go benchmark (functions verified per second) and, with -images, the
# test that explains every function the checker flags on four MSVC images
# of the npm registry.
#
# Usage: bench/verify.sh [-runs N] [-warmup N] [-mem N] [-image FILE] [-fntable BIN] [-images] [-keep DIR]
#   -runs N      timed runs per command (default 5)
#   -warmup N    untimed runs first (default 1)
#   -mem N       runs under /usr/bin/time per command (default 2)
#   -image FILE  check FILE instead of fetching biome.exe 2.6.9
#   -fntable BIN time BIN instead of a build of this module
#   -images      also fetch rollup, lightningcss and swc (their win32-x64-msvc
#                packages) and run TestMSVCImages on the four images
#   -keep DIR    keep the build, the outputs and hyperfine's tables in DIR
#
# Images are fetched once with npm pack into
# ${XDG_CACHE_HOME:-$HOME/.cache}/fntable/bench/NAME-VERSION/ and never
# enter the repository; the versions are those whose counts
# verify/image_test.go knows. fntable verify exits 1 when it finds a
# problem, as it does on these images, so hyperfine ignores the status.
#
# Needs: go, npm (to fetch the images), hyperfine, llvm-readobj (Debian:
# apt-get install -y --no-install-recommends llvm-14 hyperfine time).
set -euo pipefail

runs=5
warmup=1
mem=2
image=
bin=
images=
keep=
while [ $# -gt 0 ]; do
	case $1 in
	-runs) runs=$2; shift 2 ;;
	-warmup) warmup=$2; shift 2 ;;
	-mem) mem=$2; shift 2 ;;
	-image) image=$2; shift 2 ;;
	-fntable) bin=$2; shift 2 ;;
	-images) images=1; shift ;;
	-keep) keep=$2; shift 2 ;;
	*) echo "usage: $0 [-runs N] [-warmup N] [-mem N] [-image FILE] [-fntable BIN] [-images] [-keep DIR]" >&2; exit 2 ;;
	esac
done

. "$(dirname "$0")/npmimage.sh"

if [ -z "$image" ]; then
	image=$(fetch biome @biomejs/cli-win32-x64 2.6.9)/package/biome.exe
fi
build_fntable

# Check what is measured: every entry checked, llvm-readobj reads them all.
"$fnt" verify --json "$image" >"$work/verify.json" || true
"$readobj" --unwind "$image" >"$work/readobj.txt"
functions=$(sed -n 's/^{"functions":\([0-9]*\),"instructions":\([0-9]*\),.*/\1 \2/p' "$work/verify.json")
readobj_entries=$(grep -c 'RuntimeFunction {' "$work/readobj.txt" || true)
if [ -z "$functions" ]; then
	echo "$0: fntable verify wrote no report" >&2
	exit 1
fi
set -- $functions
flagged=$(grep -o '"function":"0x[0-9a-f]*"' "$work/verify.json" | sort -u | wc -l)
echo "## $image"
echo
echo "$1 functions and $2 instructions checked, $flagged functions flagged; llvm-readobj lists $readobj_entries entries"
rm -f "$work/verify.json" "$work/readobj.txt"
echo

measure "fntable verify" "$fnt verify $image" \
	"fntable verify, GOMAXPROCS=1" "env GOMAXPROCS=1 $fnt verify $image" \
	"llvm-readobj --unwind" "$readobj --unwind $image"
echo
echo "### BenchmarkImage"
echo
(cd "$root" && go test -run '^$' -bench "BenchmarkImage/$(basename "$image")\$" -benchtime 3x -cpu 1,2 ./verify -args -bench-images "$image") |
	grep '^Benchmark' | sed 's/^/    /'

if [ -n "$images" ]; then
	echo
	echo "### TestMSVCImages"
	echo
	list=$image
	list=$list,$(fetch rollup @rollup/rollup-win32-x64-msvc 4.69.3)/package/rollup.win32-x64-msvc.node
	list=$list,$(fetch lightningcss lightningcss-win32-x64-msvc 1.33.0)/package/lightningcss.win32-x64-msvc.node
	list=$list,$(fetch swc @swc/core-win32-x64-msvc 1.16.22)/package/swc.win32-x64-msvc.node
	(cd "$root" && go test -count=1 -run 'TestMSVCImages' -v ./verify -args -msvc-images "$list") |
		grep -E 'flagged|^(---|    ---|ok|FAIL)' | sed 's/^/    /'
fi
