#!/usr/bin/env bash
# stack.sh: time whole-process stack walks of a live process with eu-stack,
# gdb and fntable, side by side with hyperfine. See bench/README.md.
#
# Usage: bench/stack.sh [-runs N] [-warmup N] [-keep DIR]
#   -runs N    timed runs per command and target (default 10)
#   -warmup N  untimed runs first (default 2)
#   -keep DIR  keep the target binary, the builds and hyperfine's tables in DIR
#
# The targets are internal/testproc/testdata/threads.c built with
# gcc -g -pthread -O1 -fomit-frame-pointer (so every native frame needs CFI),
# run twice: main + 4 threads and main + 16 threads, each thread 64 frames of
# recursion deep (f1 -> f2 -> f3 ...) and blocked in a system call. The
# commands, each given the target's pid:
#   eu-stack -q -p PID
#   gdb -nx -batch -iex 'set debuginfod enabled off' -p PID -ex 'thread apply all bt'
#   $FNTABLE PID   (default: "fntable stack --no-symbols", with fntable built
#                   from ./cmd/fntable into the temporary directory as
#                   go build makes it; CGO_ENABLED=0 no longer makes it
#                   static, as the provider loader (purego) links libc
#                   either way, and it starts slower)
#   eu-stack -p PID and fntable stack PID: the same with function names
#                   (eu-stack) and with names, inline frames and lines (fntable)
# and, for the start-up floor, /bin/true, a Go hello world and fntable help.
# A command that fails on the target is reported and left out of its table.
#
# Needs: gcc, gdb, eu-stack (elfutils), hyperfine, go (unless FNTABLE is set).
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

for tool in gcc gdb eu-stack hyperfine; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: needs $tool (Debian: apt-get install -y --no-install-recommends gcc gdb elfutils hyperfine)" >&2
		exit 1
	fi
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$keep" ]; then
		mkdir -p "$keep"
		cp -r "$work"/. "$keep"/
	fi
	rm -rf "$work"
}
trap cleanup EXIT

gcc -g -pthread -O1 -fomit-frame-pointer -o "$work/threads" "$root/internal/testproc/testdata/threads.c"

fnt=
if [ -z "${FNTABLE:-}" ]; then
	(cd "$root" && go build -o "$work/fntable" ./cmd/fntable)
	fnt=$work/fntable
	FNTABLE="$fnt stack --no-symbols"
fi
mkdir -p "$work/hello"
printf 'package main\n\nfunc main() {}\n' >"$work/hello/main.go"
(cd "$work/hello" && go mod init hello >/dev/null 2>&1 && CGO_ENABLED=0 go build -o "$work/hello/hello" .)

echo "## start-up floor"
echo
floor=(-n true /bin/true -n go-hello "$work/hello/hello")
[ -n "$fnt" ] && floor+=(-n fntable-help "$fnt help")
hyperfine -N --style basic --warmup "$warmup" --runs "$runs" \
	--export-markdown "$work/table-floor.md" "${floor[@]}" >"$work/hyperfine-floor.txt"
cat "$work/table-floor.md"

# start N: starts the target with N threads of depth 64 and sets pid once it
# has announced that every thread is blocked.
start() {
	local n=$1 out=$work/threads-$1.out
	"$work/threads" -n "$n" -d 64 -T 3600 >"$out" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 300); do
		if grep -q '^ready ' "$out"; then
			return
		fi
		sleep 0.1
	done
	echo "$0: the target with $n threads did not get ready" >&2
	exit 1
}

for n in 4 16; do
	start "$n"
	gdbcmd="gdb -nx -batch -iex 'set debuginfod enabled off' -p $pid -ex 'thread apply all bt'"
	names=(eu-stack gdb fntable eu-stack-names)
	cmds=("eu-stack -q -p $pid" "$gdbcmd" "$FNTABLE $pid" "eu-stack -p $pid")
	if [ -n "$fnt" ]; then
		names+=(fntable-symbols)
		cmds+=("$fnt stack $pid")
	fi
	args=()
	for i in "${!cmds[@]}"; do
		if bash -c "${cmds[$i]}" >"$work/${names[$i]}-$n.txt" 2>&1; then
			args+=(-n "${names[$i]}" "${cmds[$i]}")
		else
			echo "$0: ${names[$i]} fails on the target (left out): ${cmds[$i]}" >&2
			tail -n 5 "$work/${names[$i]}-$n.txt" >&2
		fi
	done
	echo
	echo "## main + $n threads x 64 frames (pid $pid)"
	echo
	# Frames each command printed in its check run (lines "#N ..."); gdb
	# counts inline frames too.
	counts=
	for name in "${names[@]}"; do
		counts="$counts $name $(grep -c '^#' "$work/$name-$n.txt" || true),"
	done
	echo "frames printed:${counts%,}"
	echo
	hyperfine -N --style basic --warmup "$warmup" --runs "$runs" \
		--export-markdown "$work/table-$n.md" "${args[@]}" >"$work/hyperfine-$n.txt"
	cat "$work/table-$n.md"
done
