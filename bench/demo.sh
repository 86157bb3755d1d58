#!/usr/bin/env bash
# demo.sh: walk the demo's JIT target (internal/demotarget) from outside
# with eu-stack and fntable, side by side with hyperfine, and say how many
# frames each shows. See bench/README.md.
#
# Usage: bench/demo.sh [-runs N] [-warmup N] [-keep DIR]
#   -runs N    timed runs per command (default 10)
#   -warmup N  untimed runs first (default 2)
#   -keep DIR  keep the builds, outputs and hyperfine's tables in DIR
#
# The target is fntable itself, run as the demo's target: 5 threads parked
# in JIT code registered in a static, a callback and a growable table (and
# one ordinary thread), plus the Go runtime's threads. The commands:
#   eu-stack -q -p PID          eu-stack -p PID (function names)
#   fntable stack --no-symbols --trust-provider LIB PID
#   fntable stack --trust-provider LIB PID (names from the perf map and
#                                           DWARF-less Go, lines)
#   fntable stack --isolate-providers --no-symbols --trust-provider LIB PID
# eu-stack stops at the first JIT frame of each JIT thread; the frame
# counts printed before the tables show how far each side gets.
#
# Needs: cc (or gcc), eu-stack (elfutils), hyperfine, go.
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
for tool in eu-stack hyperfine go; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: needs $tool (Debian: apt-get install -y --no-install-recommends elfutils hyperfine)" >&2
		exit 1
	fi
done

. "$(dirname "$0")/demotarget.sh"

names=(eu-stack eu-stack-names fntable fntable-symbols fntable-isolated)
cmds=("eu-stack -q -p $pid" "eu-stack -p $pid"
	"$fnt stack --no-symbols --trust-provider $lib $pid"
	"$fnt stack --trust-provider $lib $pid"
	"$fnt stack --isolate-providers --no-symbols --trust-provider $lib $pid")
args=()
for i in "${!cmds[@]}"; do
	# eu-stack exits 1 when a thread's walk ends in an error: its output counts.
	bash -c "${cmds[$i]}" >"$work/${names[$i]}.txt" 2>&1 || true
	args+=(-n "${names[$i]}" "${cmds[$i]}")
done

echo "## the demo target (pid $pid): $(grep -c '^TID\|^Thread' "$work/fntable.txt") threads"
echo
counts=
for name in "${names[@]}"; do
	counts="$counts $name $(grep -c '^#' "$work/$name.txt" || true),"
done
echo "frames printed:${counts%,}"
# The JIT threads alone: eu-stack's and fntable's frames on each.
for t in jit-static jit-mixed jit-callback jit-grown; do
	tid=$(grep -o "Thread [0-9]* \"$t\"" "$work/fntable.txt" | grep -o '[0-9]*')
	eu=$(awk -v tid="$tid" '/^TID /{on = ($2 == tid":" || $2 == tid)} on && /^#/' "$work/eu-stack.txt" | wc -l)
	fn=$(awk -v tid="$tid" '/^Thread /{on = ($2 == tid)} on && /^#/' "$work/fntable.txt" | wc -l)
	echo "  $t: eu-stack $eu frames, fntable $fn frames"
done
echo
hyperfine -N -i --style basic --warmup "$warmup" --runs "$runs" \
	--export-markdown "$work/table.md" "${args[@]}" >"$work/hyperfine.txt"
cat "$work/table.md"
