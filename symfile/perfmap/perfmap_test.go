package perfmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symfile"
)

func fn(addr, size uint64, name string) symfile.Symbol {
	return symfile.Symbol{Name: name, Addr: addr, Size: size, Kind: symfile.KindFunction}
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []symfile.Symbol
		skipped []SkippedLine
	}{
		{"plain", "1000 20 foo\n", []symfile.Symbol{fn(0x1000, 0x20, "foo")}, nil},
		{"no final newline", "1000 20 foo", []symfile.Symbol{fn(0x1000, 0x20, "foo")}, nil},
		{"0x prefix (JDK 25)", "0x7f0000001000 0x40 Interpreter\n", []symfile.Symbol{fn(0x7f0000001000, 0x40, "Interpreter")}, nil},
		{"0X prefix and upper-case digits", "0X7FAB 0XFF Foo\n", []symfile.Symbol{fn(0x7fab, 0xff, "Foo")}, nil},
		{"mixed prefix", "0x1000 20 a\n2000 0x10 b\n", []symfile.Symbol{fn(0x1000, 0x20, "a"), fn(0x2000, 0x10, "b")}, nil},
		{"name with spaces (V8)", "2fea29e8e33e 2c JS:~fib [eval]:1:20\n", []symfile.Symbol{fn(0x2fea29e8e33e, 0x2c, "JS:~fib [eval]:1:20")}, nil},
		{"name with spaces (JVM)", "7f 10 void java.lang.Thread.run()\n", []symfile.Symbol{fn(0x7f, 0x10, "void java.lang.Thread.run()")}, nil},
		{"CRLF", "1000 20 foo\r\n2000 10 bar baz\r\n", []symfile.Symbol{fn(0x1000, 0x20, "foo"), fn(0x2000, 0x10, "bar baz")}, nil},
		{"blank lines", "\n\n1000 20 foo\n\r\n   \n\t\n2000 10 bar\n\n", []symfile.Symbol{fn(0x1000, 0x20, "foo"), fn(0x2000, 0x10, "bar")}, nil},
		{"tabs and runs of spaces", "\t1000 \t 20\t  foo  \n", []symfile.Symbol{fn(0x1000, 0x20, "foo")}, nil},
		{"one-letter name", "1000 20 f\n", []symfile.Symbol{fn(0x1000, 0x20, "f")}, nil},
		{"largest address", "ffffffffffffff00 ff top\n", []symfile.Symbol{fn(0xffffffffffffff00, 0xff, "top")}, nil},
		{"end at 2^64 wraps", "ffffffffffffff00 100 top\n1000 10 ok\n", []symfile.Symbol{fn(0x1000, 0x10, "ok")}, []SkippedLine{{1, "range 0xffffffffffffff00+0x100 wraps past 2^64"}}},
		{"sorted output", "3000 10 c\n1000 10 a\n2000 10 b\n", []symfile.Symbol{fn(0x1000, 0x10, "a"), fn(0x2000, 0x10, "b"), fn(0x3000, 0x10, "c")}, nil},
		{"adjacent entries stay apart", "1000 10 a\n1010 10 a\n", []symfile.Symbol{fn(0x1000, 0x10, "a"), fn(0x1010, 0x10, "a")}, nil},
		{"empty input", "", nil, nil},

		{"malformed lines are skipped",
			"1000 20 foo\nxyz 10 bad\n2000\n2000 10\n3000 0 zero\n4000 g0 bad\n5000 10 ok\n",
			[]symfile.Symbol{fn(0x1000, 0x20, "foo"), fn(0x5000, 0x10, "ok")},
			[]SkippedLine{
				{2, `start address is not hex ('x')`},
				{3, "size missing"},
				{4, "no name"},
				{5, "zero size"},
				{6, `size is not hex ('g')`},
			}},
		{"overflow", "10000000000000000 10 big\n1 10000000000000000 big\n1000 10 ok\n",
			[]symfile.Symbol{fn(0x1000, 0x10, "ok")},
			[]SkippedLine{{1, "start address overflows 64 bits"}, {2, "size overflows 64 bits"}}},
		{"wraps", "ffffffffffffff00 101 wrap\n1000 10 ok\n",
			[]symfile.Symbol{fn(0x1000, 0x10, "ok")},
			[]SkippedLine{{1, "range 0xffffffffffffff00+0x101 wraps past 2^64"}}},
		{"bare 0x", "0x 10 foo\n1000 10 ok\n", []symfile.Symbol{fn(0x1000, 0x10, "ok")},
			[]SkippedLine{{1, "start address is empty"}}},
		{"truncated last line", "1000 10 ok\n2000 1", []symfile.Symbol{fn(0x1000, 0x10, "ok")},
			[]SkippedLine{{2, "no name"}}},

		// Overlaps: the later line wins where it covers.
		{"same range, later wins", "1000 20 old\n1000 20 new\n", []symfile.Symbol{fn(0x1000, 0x20, "new")}, nil},
		{"same line twice", "1000 20 f\n1000 20 f\n", []symfile.Symbol{fn(0x1000, 0x20, "f")}, nil},
		{"later inside earlier splits it", "1000 100 outer\n1040 20 inner\n",
			[]symfile.Symbol{fn(0x1000, 0x40, "outer"), fn(0x1040, 0x20, "inner"), fn(0x1060, 0xa0, "outer")}, nil},
		{"earlier inside later is hidden", "1040 20 inner\n1000 100 outer\n",
			[]symfile.Symbol{fn(0x1000, 0x100, "outer")}, nil},
		{"partial overlap at the end", "1000 20 a\n1010 20 b\n",
			[]symfile.Symbol{fn(0x1000, 0x10, "a"), fn(0x1010, 0x20, "b")}, nil},
		{"partial overlap at the start", "1010 20 b\n1000 20 a\n",
			[]symfile.Symbol{fn(0x1000, 0x20, "a"), fn(0x1020, 0x10, "b")}, nil},
		{"three layers", "1000 100 a\n1020 40 b\n1030 10 c\n",
			[]symfile.Symbol{fn(0x1000, 0x20, "a"), fn(0x1020, 0x10, "b"), fn(0x1030, 0x10, "c"), fn(0x1040, 0x20, "b"), fn(0x1060, 0xa0, "a")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Symbols(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("symbols:\n got %v\nwant %v", got, tt.want)
			}
			n, first := f.Skipped()
			if n != len(tt.skipped) || !reflect.DeepEqual(first, tt.skipped) {
				t.Errorf("skipped %d %v, want %v", n, first, tt.skipped)
			}
			checkInvariants(t, f)
		})
	}
}

func TestParseNothingParses(t *testing.T) {
	for _, in := range []string{"garbage\n", "\x7fELF\x02\x01\x01\x00\x00\x00", "1000 10\nzz\n"} {
		_, err := Parse(strings.NewReader(in))
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) || !errors.Is(err, symfile.ErrUnrecognized) {
			t.Errorf("Parse(%q) = %v, want a *FormatError wrapping ErrMalformed and ErrUnrecognized", in, err)
		}
	}
}

func TestSkippedCap(t *testing.T) {
	var b strings.Builder
	for range 25 {
		b.WriteString("bad line\n")
	}
	b.WriteString("1000 10 ok\n")
	f, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	n, first := f.Skipped()
	if n != 25 || len(first) != MaxSkippedReported || first[0].Line != 1 || first[MaxSkippedReported-1].Line != MaxSkippedReported {
		t.Errorf("Skipped() = %d, %v", n, first)
	}
	if f.Lines() != 26 {
		t.Errorf("Lines() = %d, want 26", f.Lines())
	}
}

func TestLongLine(t *testing.T) {
	long := "1000 10 " + strings.Repeat("x", MaxLineLength+100) + "\n"
	fits := "3000 10 " + strings.Repeat("y", MaxLineLength-len("3000 10 \n")) + "\n"
	f, err := Parse(strings.NewReader(long + "2000 10 after\n" + fits + long))
	if err != nil {
		t.Fatal(err)
	}
	want := []symfile.Symbol{fn(0x2000, 0x10, "after"), fn(0x3000, 0x10, strings.Repeat("y", MaxLineLength-len("3000 10 \n")))}
	if !reflect.DeepEqual(f.Symbols(), want) {
		t.Errorf("symbols: %d, want the two that fit", len(f.Symbols()))
	}
	n, first := f.Skipped()
	if n != 2 || first[0].Line != 1 || first[1].Line != 4 {
		t.Errorf("Skipped() = %d, %v", n, first)
	}
}

func TestIdent(t *testing.T) {
	f, err := Parse(strings.NewReader("3000 10 c\n1000 10 a\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := symfile.Ident{Format: "perfmap", LinkBase: 0x1000, ImageSize: 0x2010, HasSymbols: true}
	if got := f.Ident(); !reflect.DeepEqual(got, want) {
		t.Errorf("Ident() = %+v, want %+v", got, want)
	}
	empty, err := Parse(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.Ident(); !reflect.DeepEqual(got, symfile.Ident{Format: "perfmap"}) {
		t.Errorf("empty Ident() = %+v", got)
	}
	if fr, err := f.Frames(nil, 0x1000); fr != nil || err != nil {
		t.Errorf("Frames = %v, %v", fr, err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	syms := []symfile.Symbol{
		fn(0x7f0000001000, 0x40, "JS:*fib [eval]:1:20"),
		fn(0x1000, 0x1, "a"),
		fn(0xffffffffffffff00, 0xff, "top"),
		fn(0x2000, 0x20, "void java.lang.Thread.run()"),
		fn(0x3000, 0x10, "name\twith\ttabs inside"),
		fn(0x4000, 0x10, "ünïcödé"),
	}
	var buf bytes.Buffer
	if err := Write(&buf, syms); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "7f0000001000 40 JS:*fib [eval]:1:20\n1000 1 a\n") {
		t.Errorf("Write wrote:\n%s", buf.String())
	}
	f, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(syms)
	slices.SortFunc(want, func(a, b symfile.Symbol) int {
		if a.Addr < b.Addr {
			return -1
		}
		return 1
	})
	if !reflect.DeepEqual(f.Symbols(), want) {
		t.Errorf("round trip:\n got %v\nwant %v", f.Symbols(), want)
	}
}

func TestWriteRejects(t *testing.T) {
	for _, s := range []symfile.Symbol{
		fn(0x1000, 0, "zero"),
		fn(0xffffffffffffff00, 0x101, "wrap"),
		fn(0x1000, 1, ""),
		fn(0x1000, 1, "two\nlines"),
		fn(0x1000, 1, "cr\r"),
		fn(0x1000, 1, " lead"),
		fn(0x1000, 1, "trail\t"),
	} {
		var buf bytes.Buffer
		err := Write(&buf, []symfile.Symbol{fn(0x10, 0x10, "ok"), s})
		if err == nil {
			t.Errorf("Write(%q) succeeded", s.Name)
			continue
		}
		if buf.String() != "10 10 ok\n" {
			t.Errorf("Write(%q) wrote %q before failing", s.Name, buf.String())
		}
	}
}

// checkInvariants checks what Symbols promises: sorted, non-overlapping,
// functions with a size and a name.
func checkInvariants(t *testing.T, f *File) {
	t.Helper()
	syms := f.Symbols()
	for i, s := range syms {
		if s.Kind != symfile.KindFunction || s.Size == 0 || s.Name == "" || s.End() < s.Addr {
			t.Fatalf("symbol %d: %+v", i, s)
		}
		if i > 0 && syms[i-1].End() > s.Addr {
			t.Fatalf("symbol %d %+v overlaps or precedes symbol %d %+v", i, s, i-1, syms[i-1])
		}
	}
}

// perfMapDir is where V8 and perf put perf-PID.map files; both hard-code it.
const perfMapDir = "/tmp"

// nodeMap runs node with --perf-basic-prof, which makes V8 write a real
// perf map, and returns the map's bytes.
func nodeMap(t *testing.T, script string, flags ...string) []byte {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "needs node to write a real perf map: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(append([]string{"--perf-basic-prof"}, flags...), "-e", script)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = t.TempDir() // V8 may leave isolate-*-v8.log files in its working directory
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(perfMapDir, fmt.Sprintf("perf-%d.map", cmd.Process.Pid))
	defer os.Remove(path)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node %v: %v\n%s", args, err, out.Bytes())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("node --perf-basic-prof wrote no map: %v", err)
	}
	t.Logf("%s map: %d bytes", strings.TrimSpace(nodeVersion(node)), len(raw))
	return raw
}

// TestNodeMap parses the map of a node run that compiles a function to
// every tier.
func TestNodeMap(t *testing.T) {
	raw := nodeMap(t, `function fntableFib(n) { return n < 2 ? n : fntableFib(n - 1) + fntableFib(n - 2) }
let s = 0; for (let i = 0; i < 30; i++) s += fntableFib(20); console.log(s)`)
	f, err := Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, f)
	found := 0
	for _, s := range f.Symbols() {
		if strings.Contains(s.Name, "fntableFib") {
			found++
		}
	}
	if found == 0 {
		t.Errorf("no symbol names fntableFib")
	}
	checkLatestWins(t, f, raw)
	t.Logf("%d lines, %d symbols, %d naming fntableFib", f.Lines(), len(f.Symbols()), found)
}

// TestNodeMapCodeReuse parses the map of a node run whose garbage
// collector frees compiled code, so that V8 reuses the memory and the map
// describes the same addresses several times.
func TestNodeMapCodeReuse(t *testing.T) {
	raw := nodeMap(t, `for (let round = 0; round < 20; round++) {
  let fs = [];
  for (let i = 0; i < 500; i++) {
    const f = new Function('x', 'return x * ' + (round * 1000 + i) + ' + ' + i + ';');
    for (let k = 0; k < 3; k++) f(k);
    fs.push(f);
  }
  fs = null;
  gc();
}`, "--expose-gc", "--always-sparkplug")
	f, err := Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, f)
	starts := map[string]int{}
	for l := range strings.Lines(string(raw)) {
		start, _, _ := strings.Cut(l, " ")
		starts[start]++
	}
	reused := 0
	for _, n := range starts {
		if n > 1 {
			reused++
		}
	}
	if reused == 0 {
		t.Fatalf("no address described twice in %d lines: nothing to resolve", f.Lines())
	}
	checkLatestWins(t, f, raw)
	t.Logf("%d lines, %d start addresses described more than once, %d symbols after resolving overlaps",
		f.Lines(), reused, len(f.Symbols()))
}

// checkLatestWins checks, against a brute-force scan of the lines, that
// the first, middle and last address of every line (of about 4000 of
// them, chosen evenly) are attributed to the last line that covers them.
func checkLatestWins(t *testing.T, f *File, raw []byte) {
	t.Helper()
	n, first := f.Skipped()
	if n != 0 {
		t.Errorf("%d of %d lines skipped: %v", n, f.Lines(), first)
	}
	var ls []entry
	for l := range strings.Lines(string(raw)) {
		if e, why := parseLine(l); why == "" && e.name != "" {
			ls = append(ls, e)
		}
	}
	step := max(1, len(ls)/4000)
	checked := 0
	for i := 0; i < len(ls); i += step {
		for _, a := range []uint64{ls[i].start, ls[i].start + (ls[i].end-ls[i].start)/2, ls[i].end - 1} {
			want := ""
			for j := len(ls) - 1; j >= 0; j-- {
				if ls[j].start <= a && a < ls[j].end {
					want = ls[j].name
					break
				}
			}
			if got := lookup(f.Symbols(), a); got != want {
				t.Fatalf("line %d, %#x: symbolized as %q, want %q", i+1, a, got, want)
			}
			checked++
		}
	}
	t.Logf("%d addresses attributed to the last line covering them", checked)
}

func nodeVersion(node string) string {
	out, _ := exec.Command(node, "--version").Output()
	return string(out)
}

// lookup returns the name of the symbol containing addr, or "".
func lookup(syms []symfile.Symbol, addr uint64) string {
	i, _ := slices.BinarySearchFunc(syms, addr, func(s symfile.Symbol, a uint64) int {
		if s.Addr <= a {
			return -1
		}
		return 1
	})
	if i > 0 && addr < syms[i-1].End() {
		return syms[i-1].Name
	}
	return ""
}

// unavailable skips the test, or fails it under CI (see internal/testenv).
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

func BenchmarkParse100k(b *testing.B) {
	var buf bytes.Buffer
	for i := range 100_000 {
		fmt.Fprintf(&buf, "%x %x JS:*function_%d script.js:%d:%d\n", 0x7f0000000000+uint64(i)*0x100, 0x80+i%0x80, i, i, i%80)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := Parse(bytes.NewReader(data))
		if err != nil || len(f.Symbols()) != 100_000 {
			b.Fatal(err)
		}
	}
}
