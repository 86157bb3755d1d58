#!/usr/bin/env bash
# unwindinfo.sh: list the function table of a large MSVC image, Biome's
# biome.exe (npm package @biomejs/cli-win32-x64), with fntable unwindinfo
# (text and --json) and with llvm-readobj --unwind: the time of each, side
# by side with hyperfine, then the peak memory (maximum resident set) and
# time of each with GNU time, several times.
#
# Usage: bench/unwindinfo.sh [-runs N] [-warmup N] [-mem N] [-version V] [-image FILE] [-fntable BIN] [-keep DIR]
#   -runs N      timed runs per command (default 10)
#   -warmup N    untimed runs first (default 1)
#   -mem N       runs under /usr/bin/time per command (default 3)
#   -version V   the package version to fetch (default 2.6.9: 297,425 entries)
#   -image FILE  list FILE instead of fetching biome.exe
#   -fntable BIN time BIN instead of a build of this module (an older build, say)
#   -keep DIR    keep the build, the outputs and hyperfine's tables in DIR
#
# The image is fetched once with npm pack into
# ${XDG_CACHE_HOME:-$HOME/.cache}/fntable/bench/biome-V/ and never enters
# the repository. Every output goes to /dev/null; the script first checks
# that the text and JSON listings list every entry and that llvm-readobj
# reads the image.
#
# Needs: go, npm (to fetch the image), hyperfine, llvm-readobj (Debian:
# apt-get install -y --no-install-recommends llvm-14 hyperfine time).
set -euo pipefail

runs=10
warmup=1
mem=3
version=2.6.9
image=
bin=
keep=
while [ $# -gt 0 ]; do
	case $1 in
	-runs) runs=$2; shift 2 ;;
	-warmup) warmup=$2; shift 2 ;;
	-mem) mem=$2; shift 2 ;;
	-version) version=$2; shift 2 ;;
	-image) image=$2; shift 2 ;;
	-fntable) bin=$2; shift 2 ;;
	-keep) keep=$2; shift 2 ;;
	*) echo "usage: $0 [-runs N] [-warmup N] [-mem N] [-version V] [-image FILE] [-fntable BIN] [-keep DIR]" >&2; exit 2 ;;
	esac
done

. "$(dirname "$0")/npmimage.sh"

if [ -z "$image" ]; then
	image=$(fetch biome @biomejs/cli-win32-x64 "$version")/package/biome.exe
fi
build_fntable

# Check what is measured: every entry listed, as text and JSON.
"$fnt" unwindinfo "$image" >"$work/list.txt"
"$fnt" unwindinfo --json "$image" >"$work/list.json"
"$readobj" --unwind "$image" >"$work/readobj.txt"
entries=$(head -1 "$work/list.txt" | sed -n 's/.*, \([0-9]*\) functions$/\1/p')
text_entries=$(grep -c '^0x' "$work/list.txt" || true)
json_entries=$(grep -c '^    {$' "$work/list.json" || true)
readobj_entries=$(grep -c 'RuntimeFunction {' "$work/readobj.txt" || true)
if [ "$text_entries" != "$entries" ] || [ "$json_entries" != "$entries" ]; then
	echo "$0: the table has $entries entries; the text listing has $text_entries, the JSON listing $json_entries" >&2
	exit 1
fi
size() { stat -c %s "$1"; }
echo "## $image"
echo
echo "$entries entries; output: text $(size "$work/list.txt") bytes, JSON $(size "$work/list.json") bytes, llvm-readobj $(size "$work/readobj.txt") bytes ($readobj_entries entries)"
rm -f "$work/list.txt" "$work/list.json" "$work/readobj.txt"
echo

measure "fntable unwindinfo --json" "$fnt unwindinfo --json $image" \
	"fntable unwindinfo" "$fnt unwindinfo $image" \
	"llvm-readobj --unwind" "$readobj --unwind $image"
