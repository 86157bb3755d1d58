package symtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fntable/fntable/internal/buildcache"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

// Frame is one frame of llvm-symbolizer's answer.
type Frame struct {
	Function string // FunctionName; "" when llvm-symbolizer has none
	File     string // FileName; "" when unknown
	Line     int
	Column   int
}

// Result is llvm-symbolizer's answer for one address: its frames,
// innermost first. An address llvm-symbolizer knows nothing about has one
// frame with every field empty.
type Result struct {
	Addr   uint64
	Frames []Frame
}

// unavailable skips the test, or fails it under CI (see internal/testenv).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// tool returns the path of a program, or skips the test without it.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "needs %s: %v", name, err)
	}
	return p
}

// versions caches the first line of "<tool> --version" by tool name.
var versions sync.Map

func toolVersion(t testing.TB, name string, args ...string) string {
	t.Helper()
	if v, ok := versions.Load(name); ok {
		return v.(string)
	}
	p := tool(t, name)
	if len(args) == 0 {
		args = []string{"--version"}
	}
	out, err := exec.Command(p, args...).Output()
	if err != nil {
		unavailable(t, "needs a working %s: %v", name, err)
	}
	v, _, _ := strings.Cut(string(out), "\n")
	versions.Store(name, v)
	return v
}

// testdata returns the package's testdata directory.
func testdata(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("symtest: cannot find the package's source directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}

// hashFiles returns the contents of the files under dir, for cache keys.
func hashFiles(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		t.Fatalf("symtest: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func goVersion(t testing.TB) string { return toolVersion(t, "go", "env", "GOVERSION") }

// SQLite returns the path of a cgo program that embeds SQLite through
// github.com/mattn/go-sqlite3 (testdata/sqliteprog, a module of its own),
// built with go build: its C part, compiled with cgo's default -O2 -g, is a
// large C program with DWARF, beside the Go runtime's DWARF. Building it
// the first time takes a minute or two and needs the module download.
func SQLite(t testing.TB) string {
	t.Helper()
	tool(t, "gcc")
	src := filepath.Join(testdata(t), "sqliteprog")
	dir := buildcache.Dir(t, "symtest", "sqlite", []string{hashFiles(t, src), goVersion(t), toolVersion(t, "gcc"), "go build -o sqlite"},
		func(tmp string) error {
			return buildcache.Run(src, []string{"CGO_ENABLED=1", "GOWORK=off", "GOFLAGS=-mod=readonly"}, "go", "build", "-o", filepath.Join(tmp, "sqlite"), ".")
		})
	return filepath.Join(dir, "sqlite")
}

// CPP returns the path of testdata/cppprog/main.cpp built with g++ -g -O2:
// namespaces, templates, classes, inline functions and lambdas, so
// inlined frames and mangled names.
func CPP(t testing.TB) string {
	t.Helper()
	src := filepath.Join(testdata(t), "cppprog")
	args := []string{"-g", "-O2", "-o", "cpp", filepath.Join(src, "main.cpp")}
	dir := buildcache.Dir(t, "symtest", "cpp", append([]string{hashFiles(t, src), toolVersion(t, "g++")}, args...),
		func(tmp string) error {
			return buildcache.Run(tmp, nil, "g++", args...)
		})
	return filepath.Join(dir, "cpp")
}

func goProgram(t testing.TB, name string, ldflags string) string {
	t.Helper()
	src := filepath.Join(testdata(t), "goprog")
	dir := buildcache.Dir(t, "symtest", name, []string{hashFiles(t, src), goVersion(t), "go build -ldflags=" + ldflags},
		func(tmp string) error {
			return buildcache.Run(src, []string{"GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0"}, "go", "build", "-ldflags="+ldflags, "-o", filepath.Join(tmp, name), "main.go")
		})
	return filepath.Join(dir, name)
}

// Go returns the path of testdata/goprog built with go build: a Go program
// with DWARF.
func Go(t testing.TB) string { t.Helper(); return goProgram(t, "goprog", "") }

// GoStripped returns the same program built with -ldflags=-s -w: no symbol
// table and no DWARF, only Go's pclntab.
func GoStripped(t testing.TB) string { t.Helper(); return goProgram(t, "gostripped", "-s -w") }

// splitDir builds the split-debug pair: testdata/splitprog/main.c built
// with gcc -g -O2 -Wl,--build-id; split.debug made with objcopy
// --only-keep-debug; split stripped and given a .gnu_debuglink to
// split.debug; and .build-id/xx/rest.debug, a copy of split.debug named by
// the build ID.
func splitDir(t testing.TB) string {
	t.Helper()
	src := filepath.Join(testdata(t), "splitprog")
	cc := []string{"-g", "-O2", "-Wl,--build-id", "-o", "split", filepath.Join(src, "main.c")}
	key := append([]string{hashFiles(t, src), toolVersion(t, "gcc"), toolVersion(t, "objcopy")}, cc...)
	return buildcache.Dir(t, "symtest", "split", key, func(tmp string) error {
		if err := buildcache.Run(tmp, nil, "gcc", cc...); err != nil {
			return err
		}
		if err := buildcache.Run(tmp, nil, "objcopy", "--only-keep-debug", "split", "split.debug"); err != nil {
			return err
		}
		if err := buildcache.Run(tmp, nil, "objcopy", "--strip-all", "--add-gnu-debuglink=split.debug", "split"); err != nil {
			return err
		}
		f, err := elf.Open(filepath.Join(tmp, "split.debug"))
		if err != nil {
			return err
		}
		defer f.Close()
		id, err := buildID(f)
		if err != nil {
			return err
		}
		h := hex.EncodeToString(id)
		d := filepath.Join(tmp, "buildid", ".build-id", h[:2])
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(tmp, "split.debug"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(d, h[2:]+".debug"), data, 0o644)
	})
}

// buildID reads the NT_GNU_BUILD_ID note of f.
func buildID(f *elf.File) ([]byte, error) {
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		return nil, errors.New("no .note.gnu.build-id section")
	}
	d, err := s.Data()
	if err != nil {
		return nil, err
	}
	if len(d) < 16 {
		return nil, errors.New("short build-id note")
	}
	namesz, descsz := f.ByteOrder.Uint32(d), f.ByteOrder.Uint32(d[4:])
	off := 12 + (namesz+3)&^3
	if uint64(off)+uint64(descsz) > uint64(len(d)) {
		return nil, errors.New("bad build-id note")
	}
	return d[off : off+descsz], nil
}

// SplitDebug returns a stripped C program with a .gnu_debuglink and its
// separate debug file (see [BuildIDDir] for how they are made).
func SplitDebug(t testing.TB) (stripped, debug string) {
	t.Helper()
	dir := splitDir(t)
	return filepath.Join(dir, "split"), filepath.Join(dir, "split.debug")
}

// BuildIDDir returns a directory laid out as a debug-file directory
// indexed by build ID: .build-id/xx/rest.debug, holding the debug file of
// [SplitDebug]. The pair is testdata/splitprog/main.c built with
// gcc -g -O2 -Wl,--build-id, its debug file made with objcopy
// --only-keep-debug, the binary stripped with objcopy --strip-all
// --add-gnu-debuglink.
func BuildIDDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(splitDir(t), "buildid")
}

// RandomAddrs returns n addresses drawn uniformly from the bytes of exe's
// executable sections, the same for the same seed.
func RandomAddrs(t testing.TB, exe string, n int, seed int64) []uint64 {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatalf("symtest: %v", err)
	}
	defer f.Close()
	type span struct{ addr, size uint64 }
	var spans []span
	var total uint64
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_EXECINSTR != 0 && s.Flags&elf.SHF_ALLOC != 0 && s.Size > 0 {
			spans = append(spans, span{s.Addr, s.Size})
			total += s.Size
		}
	}
	if total == 0 {
		t.Fatalf("symtest: %s has no executable sections", exe)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x73796d74657374))
	out := make([]uint64, n)
	for i := range out {
		r := rng.Uint64N(total)
		for _, s := range spans {
			if r < s.size {
				out[i] = s.addr + r
				break
			}
			r -= s.size
		}
	}
	return out
}

// Symbolize runs llvm-symbolizer --output-style=JSON --inlines --obj=exe
// with flags (such as --no-demangle) once over all addrs, through its
// standard input, and returns its answers in the order of addrs. Answers
// are cached.
func Symbolize(t testing.TB, exe string, addrs []uint64, flags ...string) []Result {
	t.Helper()
	llvm := tool(t, "llvm-symbolizer")
	version := toolVersion(t, "llvm-symbolizer")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatalf("symtest: %v", err)
	}
	sum := sha256.Sum256(data)
	var in bytes.Buffer
	for _, a := range addrs {
		fmt.Fprintf(&in, "%#x\n", a)
	}
	args := append([]string{"--output-style=JSON", "--inlines", "--obj=" + exe}, flags...)
	key := []string{version, hex.EncodeToString(sum[:]), strings.Join(flags, " "), in.String()}
	dir := buildcache.Dir(t, "symtest", "llvm", key, func(tmp string) error {
		cmd := exec.Command(llvm, args...)
		cmd.Stdin = bytes.NewReader(in.Bytes())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("llvm-symbolizer: %v: %s", err, stderr.Bytes())
		}
		return os.WriteFile(filepath.Join(tmp, "out.json"), out, 0o644)
	})
	out, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatalf("symtest: %v", err)
	}
	res, err := parseJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("symtest: llvm-symbolizer output: %v", err)
	}
	if len(res) != len(addrs) {
		t.Fatalf("symtest: llvm-symbolizer answered %d of %d addresses", len(res), len(addrs))
	}
	for i := range res {
		if res[i].Addr != addrs[i] {
			t.Fatalf("symtest: llvm-symbolizer answer %d is for %#x, not %#x", i, res[i].Addr, addrs[i])
		}
	}
	return res
}

// parseJSON decodes llvm-symbolizer's JSON lines.
func parseJSON(r io.Reader) ([]Result, error) {
	type jsonFrame struct {
		FunctionName string
		FileName     string
		Line         int
		Column       int
	}
	type jsonResult struct {
		Address string
		Symbol  []jsonFrame
		Error   *struct{ Message string }
	}
	var out []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var jr jsonResult
		if err := json.Unmarshal(line, &jr); err != nil {
			return nil, err
		}
		if jr.Error != nil {
			return nil, errors.New(jr.Error.Message)
		}
		a, err := strconv.ParseUint(strings.TrimPrefix(jr.Address, "0x"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("bad address %q", jr.Address)
		}
		res := Result{Addr: a}
		for _, f := range jr.Symbol {
			res.Frames = append(res.Frames, Frame{f.FunctionName, f.FileName, f.Line, f.Column})
		}
		out = append(out, res)
	}
	return out, sc.Err()
}

// Empty reports whether llvm-symbolizer knew nothing about the address:
// no frames, or one frame with every field empty.
func (r Result) Empty() bool {
	return len(r.Frames) == 0 || (len(r.Frames) == 1 && r.Frames[0] == Frame{})
}
