package testproc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/fntable/fntable/internal/buildcache"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
)

// CVariant selects how testdata/threads.c is compiled.
type CVariant struct {
	Opt           string // optimisation flag: "-O0", "-O1" or "-O2"
	FramePointers bool   // -fno-omit-frame-pointer if true, -fomit-frame-pointer if false
}

// CVariants returns the six variants the tests cover: -O0, -O1 and -O2,
// each with and without frame pointers.
func CVariants() []CVariant {
	var vs []CVariant
	for _, opt := range []string{"-O0", "-O1", "-O2"} {
		vs = append(vs, CVariant{opt, false}, CVariant{opt, true})
	}
	return vs
}

// String names the variant as "O2-fp" or "O2-nofp", for subtest names.
func (v CVariant) String() string {
	fp := "nofp"
	if v.FramePointers {
		fp = "fp"
	}
	return strings.TrimPrefix(v.Opt, "-") + "-" + fp
}

// Flags returns the compiler flags of the variant besides the sources and
// the output: -g -pthread, the optimisation and the frame-pointer flag.
func (v CVariant) Flags() []string {
	fp := "-fomit-frame-pointer"
	if v.FramePointers {
		fp = "-fno-omit-frame-pointer"
	}
	return []string{"-g", "-pthread", v.Opt, fp}
}

// BuildC compiles testdata/threads.c with gcc and the variant's flags and
// returns the path of the binary, which is cached (see the package
// documentation).
func BuildC(t testing.TB, variant CVariant) string {
	t.Helper()
	switch variant.Opt {
	case "-O0", "-O1", "-O2", "-O3", "-Os", "-Og":
	default:
		t.Fatalf("testproc: unknown optimisation flag %q", variant.Opt)
	}
	gcc := testenv.Tool(t, "gcc")
	src := filepath.Join(testdataDir(t), "threads.c")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	args := append(variant.Flags(), "-o", "threads", "threads.c")
	key := []string{"gcc", toolVersion(t, gcc, "--version"), string(data), strings.Join(args, " ")}
	dir := buildcache.Dir(t, "testproc", "threads-"+variant.String(), key, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "threads.c"), data, 0o644); err != nil {
			return err
		}
		return buildcache.Run(tmp, nil, gcc, args...)
	})
	return filepath.Join(dir, "threads")
}

// BuildGo builds testdata/goprog (a main package of this module, without
// cgo) with go build and returns the path of the binary, which is cached.
func BuildGo(t testing.TB) string {
	t.Helper()
	return buildGo(t, "goprog", "CGO_ENABLED=0")
}

// BuildJIT builds testdata/jitprog (a cgo main package of this module,
// which imports package functable) with go build and CGO_ENABLED=1 and
// returns the path of the binary, which is cached.
func BuildJIT(t testing.TB) string {
	t.Helper()
	testenv.Tool(t, "gcc")
	return buildGo(t, "jitprog", "CGO_ENABLED=1")
}

// BuildJITGen builds testdata/jitgenprog (a cgo main package of this
// module, which imports packages jitgen and functable) with go build and
// CGO_ENABLED=1 and returns the path of the binary, which is cached.
func BuildJITGen(t testing.TB) string {
	t.Helper()
	testenv.Tool(t, "gcc")
	return buildGo(t, "jitgenprog", "CGO_ENABLED=1")
}

// buildGo builds the main package testdata/name with env added to the
// environment. The cache key covers the sources of every package outside
// the standard library that the program is built from, as go list -deps
// names them, and the Go version.
func buildGo(t testing.TB, name string, env ...string) string {
	t.Helper()
	goTool := testenv.Tool(t, "go")
	root := moduleRoot(t)
	pkg := "./" + filepath.ToSlash(filepath.Join("internal", "testproc", "testdata", name))
	const format = `{{if not .Standard}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .CgoFiles}} {{.}}{{end}}` +
		`{{range .CFiles}} {{.}}{{end}}{{range .HFiles}} {{.}}{{end}}{{range .SFiles}} {{.}}{{end}}{{end}}`
	cmd := exec.Command(goTool, "list", "-deps", "-f", format, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testproc: go list -deps %s: %v\n%s", pkg, err, stderr.Bytes())
	}
	h := sha256.New()
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		for _, f := range fields[1:] {
			data, err := os.ReadFile(filepath.Join(fields[0], f))
			if err != nil {
				t.Fatalf("testproc: %v", err)
			}
			rel, _ := filepath.Rel(root, filepath.Join(fields[0], f))
			fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(data))
			h.Write(data)
		}
	}
	key := []string{"go build", toolVersion(t, goTool, "env", "GOVERSION"), strings.Join(env, " "), hex.EncodeToString(h.Sum(nil))}
	if strings.Contains(strings.Join(env, " "), "CGO_ENABLED=1") {
		key = append(key, toolVersion(t, testenv.Tool(t, "gcc"), "--version"))
	}
	dir := buildcache.Dir(t, "testproc", name, key, func(tmp string) error {
		return buildcache.Run(root, env, goTool, "build", "-o", filepath.Join(tmp, name), pkg)
	})
	return filepath.Join(dir, name)
}

// testdataDir returns the package's testdata directory.
func testdataDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testproc: cannot find the package's source directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}

// moduleRoot returns the directory of the module that holds this package.
func moduleRoot(t testing.TB) string {
	t.Helper()
	return filepath.Dir(filepath.Dir(filepath.Dir(testdataDir(t))))
}

// versions caches the first line of a tool's version output by command.
var versions sync.Map // string → string

func toolVersion(t testing.TB, tool string, args ...string) string {
	t.Helper()
	k := tool + " " + strings.Join(args, " ")
	if v, ok := versions.Load(k); ok {
		return v.(string)
	}
	out, err := exec.Command(tool, args...).Output()
	if err != nil {
		testenv.Unavailable(t, "needs a working %s: %v", tool, err)
	}
	v, _, _ := strings.Cut(string(out), "\n")
	versions.Store(k, v)
	return v
}
