# demotarget.sh: what demo.sh and dump.sh share. Source it after setting
# keep (a directory to keep the work in, or empty): it sets here, root and
# work (a temporary directory removed on exit, with the target killed),
# builds fntable into $work/fntable (fnt), builds the example provider
# (lib: the demo builds it in ~/.cache/fntable/demo, a directory the trust
# rules accept, and prints its path) and starts the demo's target (pid),
# returning once it has reported ($work/report.json).

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && { kill -KILL "$pid" 2>/dev/null || true; }
	if [ -n "$keep" ]; then
		mkdir -p "$keep"
		cp -r "$work"/. "$keep"/
	fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/fntable" ./cmd/fntable)
fnt=$work/fntable

"$fnt" demo >"$work/demo.txt"
lib=$(sed -n 's/^1\. Built the example provider //p' "$work/demo.txt")
[ -f "$lib" ] || { echo "$0: no provider library (is there a C compiler?)" >&2; exit 1; }

# The target lives while its standard input is open.
mkfifo "$work/stdin"
FNTABLE_DEMO_TARGET=1 "$fnt" -provider "$lib" <"$work/stdin" >"$work/report.json" 2>"$work/target.err" &
pid=$!
exec 3>"$work/stdin"
for _ in $(seq 300); do
	[ -s "$work/report.json" ] && break
	sleep 0.1
done
[ -s "$work/report.json" ] || { echo "$0: the target did not report" >&2; cat "$work/target.err" >&2; exit 1; }
