# npmimage.sh: what unwindinfo.sh and verify.sh share. Source it once the
# flags are parsed (it reads keep, bin, mem, runs and warmup): it checks
# for llvm-readobj (readobj), hyperfine, go and GNU time, sets here, root,
# work (kept in $keep if set, else a temporary directory removed on exit)
# and cache, and defines fetch, build_fntable and measure.

readobj=
for r in llvm-readobj llvm-readobj-19 llvm-readobj-18 llvm-readobj-17 llvm-readobj-16 llvm-readobj-15 llvm-readobj-14; do
	if command -v "$r" >/dev/null 2>&1; then
		readobj=$(command -v "$r")
		break
	fi
done
if [ -z "$readobj" ]; then
	echo "$0: needs llvm-readobj (Debian: apt-get install -y --no-install-recommends llvm-14)" >&2
	exit 1
fi
for tool in hyperfine go /usr/bin/time; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: needs $tool (Debian: apt-get install -y --no-install-recommends hyperfine time)" >&2
		exit 1
	fi
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	work=$(cd "$keep" && pwd)
else
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/fntable/bench

# fetch DIR PACKAGE VERSION: unpacks the npm package PACKAGE@VERSION into
# $cache/DIR-VERSION once and prints that directory.
fetch() {
	local dir=$cache/$1-$3
	if [ ! -d "$dir/package" ]; then
		if ! command -v npm >/dev/null 2>&1; then
			echo "$0: needs npm to fetch $2@$3 (or give -image FILE)" >&2
			exit 1
		fi
		mkdir -p "$dir"
		(cd "$dir" && npm pack --silent "$2@$3" >/dev/null && tar xzf ./*.tgz)
	fi
	echo "$dir"
}

# build_fntable: sets fnt to $bin, or to a build of this module in $work.
build_fntable() {
	fnt=$bin
	if [ -z "$fnt" ]; then
		fnt=$work/fntable
		(cd "$root" && go build -o "$fnt" ./cmd/fntable)
	fi
}

# measure NAME CMD [NAME CMD]...: each command's peak memory and time
# (/usr/bin/time, $mem runs each), then hyperfine's table of them ($runs
# runs after $warmup). Exit statuses are ignored: fntable verify exits 1
# when it finds a problem, as it does on these images.
measure() {
	local names=() cmds=() args=() cmd i
	while [ $# -gt 1 ]; do
		names+=("$1")
		cmds+=("$2")
		shift 2
	done
	echo "### peak memory and time (/usr/bin/time, $mem runs each)"
	echo
	for cmd in "${cmds[@]}"; do
		for _ in $(seq "$mem"); do
			/usr/bin/time -f "%M KB %e s %U s user  $cmd" $cmd >/dev/null 2>"$work/err.txt" || true
			tail -1 "$work/err.txt"
		done
	done | sed 's/^/    /'
	echo
	echo "### time (hyperfine)"
	echo
	for i in "${!cmds[@]}"; do
		args+=(-n "${names[$i]}" "${cmds[$i]}")
	done
	hyperfine -N -i --style basic --warmup "$warmup" --runs "$runs" \
		--export-markdown "$work/table.md" "${args[@]}" >"$work/hyperfine.txt"
	cat "$work/table.md"
}
