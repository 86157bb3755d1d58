//go:build linux

package provider

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/buildcache"
	"github.com/fntable/fntable/internal/procmaps"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/unwindinfo"
)

// markerEnv names the file the test provider's constructor appends
// "loaded" to (testdata/provider.c).
const markerEnv = "FNTABLE_TEST_PROVIDER_MARKER"

// testLibs returns the test provider library and one without the export,
// built from testdata/provider.c with the C compiler, once per cache
// entry (internal/buildcache).
func testLibs(t testing.TB) (good, noExport string) {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		cc, err = exec.LookPath("gcc")
	}
	if err != nil {
		testenv.Unavailable(t, "needs a C compiler (cc or gcc) to build the test provider libraries: %v", err)
	}
	src, err := filepath.Abs("testdata/provider.c")
	if err != nil {
		t.Fatal(err)
	}
	inc, err := filepath.Abs("../libfntable/include")
	if err != nil {
		t.Fatal(err)
	}
	var key []string
	for _, f := range []string{src, filepath.Join(inc, "fntable.h")} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		key = append(key, string(b))
	}
	ver, err := exec.Command(cc, "--version").Output()
	if err != nil {
		testenv.Unavailable(t, "needs a working C compiler: %s --version: %v", cc, err)
	}
	key = append(key, cc, string(ver))
	dir := buildcache.Dir(t, "provider", "testlibs", key, func(dir string) error {
		flags := []string{"-shared", "-fPIC", "-O1", "-Wall", "-I" + inc}
		if err := buildcache.Run(dir, nil, cc, append(flags, "-o", "provider.so", src)...); err != nil {
			return err
		}
		return buildcache.Run(dir, nil, cc, append(flags, "-DNO_EXPORT", "-o", "noexport.so", src)...)
	})
	return filepath.Join(dir, "provider.so"), filepath.Join(dir, "noexport.so")
}

// fixture is a directory the trust rules accept (internal/testenv
// TrustedDir: under the user's cache directory, since everything under
// the world-writable /tmp is refused, by design), holding copies of the
// test libraries, a trust list and the marker file.
type fixture struct {
	dir            string
	good, noExport string // the built libraries
	marker         string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	good, noExport := testLibs(t)
	f := &fixture{dir: testenv.TrustedDir(t), good: good, noExport: noExport}
	f.marker = filepath.Join(f.dir, "marker")
	t.Setenv(markerEnv, f.marker)
	return f
}

// install copies the library src to name in the fixture's directory, or
// in a directory under it, and returns its path.
func (f *fixture) install(t testing.TB, src, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// trust writes a list file holding lines and loads it.
func (f *fixture) trust(t testing.TB, lines ...string) *Trust {
	t.Helper()
	list := filepath.Join(f.dir, "known-function-table-dlls")
	if err := os.WriteFile(list, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := LoadTrust(TrustOptions{File: list})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// markerLines returns the lines of the marker file starting with prefix.
func (f *fixture) markerLines(t testing.TB, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile(f.marker)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, strings.TrimPrefix(l, prefix))
		}
	}
	return out
}

// loads returns the number of times a test library was loaded (its
// constructor ran) since the fixture was made.
func (f *fixture) loads(t testing.TB) int { return len(f.markerLines(t, "loaded")) }

// Modes of the test provider (testdata/provider.c).
const (
	modeAnswer = 0
	modeNull   = 1
	modeSEGV   = 2
	modeHang   = 3
	modeExit   = 4
	modePrint  = 5
)

// meta is what the test provider reads behind the record's Context.
type meta struct {
	mode, status, count uint32
	entries             []unwindinfo.RuntimeFunction
}

// answerMeta is a meta that returns entries, and their count.
func answerMeta(entries ...unwindinfo.RuntimeFunction) meta {
	return meta{mode: modeAnswer, count: uint32(len(entries)), entries: entries}
}

// The layout of a target: offsets in its memory.
const (
	targetSize = 0x10000 // readable; a PROT_NONE page follows
	recordOff  = 0       // the FNTABLE_DYNAMIC_FUNCTION_TABLE record
	metaOff    = 0x100   // the test_meta block
	unwindOff  = 0xc000  // unwind data the entries point at
	codeMin    = 0x4000  // the table's range, RVAs from the base (the memory's start)
	codeMax    = 0x8000
)

// target is a callback table in this process's memory, for the test
// provider to read with process_vm_readv: a record and the metadata its
// Context points to, in an anonymous mapping that does not move, followed
// by a page that is not readable.
type target struct {
	mem  []byte
	addr uint64
}

func newTarget(t testing.TB) *target {
	t.Helper()
	mem, err := syscall.Mmap(-1, 0, targetSize+4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[targetSize:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	return &target{mem: mem[:targetSize], addr: uint64(uintptr(unsafe.Pointer(&mem[0])))}
}

// table writes the record and m, and returns the table as a snapshot
// would: a callback table naming lib.
func (tg *target) table(lib string, m meta) *remote.Table {
	le := binary.LittleEndian
	rec := tg.mem[recordOff : recordOff+0x60]
	clear(rec)
	tbl := &remote.Table{
		Record:                  tg.addr + recordOff,
		Type:                    functable.RF_CALLBACK,
		FunctionTable:           tg.addr + 0x1000 | 3,
		MinimumAddress:          tg.addr + codeMin,
		MaximumAddress:          tg.addr + codeMax,
		BaseAddress:             tg.addr,
		Context:                 tg.addr + metaOff,
		OutOfProcessCallbackDll: lib,
	}
	le.PutUint64(rec[0x10:], tbl.FunctionTable)
	le.PutUint64(rec[0x20:], tbl.MinimumAddress)
	le.PutUint64(rec[0x28:], tbl.MaximumAddress)
	le.PutUint64(rec[0x30:], tbl.BaseAddress)
	le.PutUint64(rec[0x40:], tbl.Context)
	le.PutUint32(rec[0x50:], uint32(functable.RF_CALLBACK))
	b := tg.mem[metaOff:unwindOff]
	le.PutUint32(b[0:], m.mode)
	le.PutUint32(b[4:], m.status)
	le.PutUint32(b[8:], m.count)
	le.PutUint32(b[12:], uint32(len(m.entries)))
	for i, e := range m.entries {
		le.PutUint32(b[16+12*i:], e.BeginAddress)
		le.PutUint32(b[20+12*i:], e.EndAddress)
		le.PutUint32(b[24+12*i:], e.UnwindData)
	}
	return tbl
}

// goodEntries are valid entries for a target's table: inside its range,
// sorted, their unwind data in its memory (the last one indirect).
var goodEntries = []unwindinfo.RuntimeFunction{
	{BeginAddress: codeMin, EndAddress: codeMin + 0x100, UnwindData: unwindOff},
	{BeginAddress: codeMin + 0x100, EndAddress: codeMin + 0x180, UnwindData: unwindOff + 0x10},
	{BeginAddress: codeMax - 0x40, EndAddress: codeMax, UnwindData: unwindOff + 0x20 | 1},
}

// children returns the pids of this process's children that have not
// exited (zombies do not count).
func children(t testing.TB) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procStat(pid)
		if ok && st.state != "Z" && st.ppid == self {
			out = append(out, pid)
		}
	}
	return out
}

type stat struct {
	state      string
	ppid, pgrp int
}

// procStat reads the state, parent and process group of pid.
func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return stat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgrp, _ := strconv.Atoi(f[2])
	return stat{state: f[0], ppid: ppid, pgrp: pgrp}, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, ok := procStat(pid)
	return ok && st.state != "Z"
}

// mapped reports whether addr is in a mapping of this process.
func mapped(t testing.TB, addr uint64) bool {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	err = procmaps.Scan(f, func(_ int, l procmaps.Line, err error) error {
		if err != nil {
			return err
		}
		found = found || (l.Start <= addr && addr < l.End)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
