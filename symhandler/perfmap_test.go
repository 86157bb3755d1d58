package symhandler_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/target/live"
)

// TestPerfMapAroundModules imports a perf map whose entries lie below,
// inside, between and above loaded modules: the entries outside them
// become one virtual module per run between modules, and those inside are
// left to the modules.
func TestPerfMapAroundModules(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "perf-4243.map")
	text := "1000 10 below_a\n" +
		"1100 10 below_b\n" +
		"100008 8 in_exe\n" + // inside exe
		"1ffff8 10 over_exe_end\n" + // straddles exe's end
		"300000 20 between\n" +
		"500000 10 in_jit\n" + // inside the JIT's own virtual module
		"7f0000000000 40 above\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, symhandler.Config{})
	ctx := context.Background()
	if _, err := h.LoadModule(ctx, symhandler.LoadRequest{ImageName: exe, ModuleName: "exe", Base: 0x100000, Size: 0x100000}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LoadModule(ctx, symhandler.LoadRequest{ModuleName: "jit", Base: 0x400000, Size: 0x200000, Flags: symhandler.SLMFLAG_VIRTUAL}); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t, h)
	mods, err := h.ImportPerfMap(ctx, path, "perf-map")
	if err != nil {
		t.Fatal(err)
	}
	want(t, r.take(false), "CBA_EVENT info code=0")
	type span struct{ base, size uint64 }
	wantMods := []span{{0x1000, 0x110}, {0x300000, 0x20}, {0x7f0000000000, 0x40}}
	if len(mods) != len(wantMods) {
		t.Fatalf("ImportPerfMap made %d modules, want %d", len(mods), len(wantMods))
	}
	for i, m := range mods {
		if m.Name != "perf-map" || m.Base != wantMods[i].base || m.Size != wantMods[i].size {
			t.Errorf("module %d: %s [%#x, +%#x), want perf-map [%#x, +%#x)", i, m.Name, m.Base, m.Size, wantMods[i].base, wantMods[i].size)
		}
	}
	for _, c := range []struct {
		addr   uint64
		module string
		name   string // "" for no symbol, "*" for any
	}{
		{0x1004, "perf-map", "below_a"},
		{0x110f, "perf-map", "below_b"},
		{0x300010, "perf-map", "between"},
		{0x7f0000000020, "perf-map", "above"},
		{0x100008, "exe", "*"},
		{0x500000, "jit", ""},
		{0x200000, "", ""},
	} {
		loc, err := h.Symbolize(ctx, c.addr)
		if err != nil {
			t.Fatal(err)
		}
		module, name := "", ""
		if loc.Module != nil {
			module = loc.Module.Name
		}
		if loc.Symbol != nil {
			name = loc.Symbol.Name
		}
		if module != c.module || name != c.name && c.name != "*" {
			t.Errorf("Symbolize(%#x) = %s!%s, want %s!%s", c.addr, module, name, c.module, c.name)
		}
	}
	for _, name := range []string{"in_exe", "over_exe_end", "in_jit"} {
		if s, ok := h.FromName("perf-map!" + name); ok {
			t.Errorf("FromName(perf-map!%s) = %+v; the entry lies in a loaded module", name, s)
		}
	}
	if s, ok := h.FromName("perf-map!above"); !ok || s.Address != 0x7f0000000000 {
		t.Errorf("FromName(perf-map!above) = %+v, %v", s, ok)
	}

	// Importing it again adds nothing: every entry lies in a module.
	mods, err = h.ImportPerfMap(ctx, path, "perf-map")
	if err != nil || len(mods) != 0 {
		t.Errorf("second import: %d modules, %v; want none", len(mods), err)
	}
}

// perfMapJITC maps two read-write-execute pages far apart, one at a fixed
// address below the executable and one wherever mmap puts it (high in the
// address space), copies a loop on the pause system call into each,
// writes /tmp/perf-PID.map naming both (and main, which the executable's
// symbols name), and runs one loop on a thread of its own and the other
// on the main thread.
const perfMapJITC = `
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/* mov eax, 34 (pause); syscall; jmp back to the mov */
static const unsigned char loop[] = {0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7};
static volatile int low_tid;
static void *low, *high;

static void *run_low(void *arg) {
	low_tid = gettid();
	((void (*)(void))low)();
	return arg;
}

int main(void) {
	int prot = PROT_READ | PROT_WRITE | PROT_EXEC;
	low = mmap((void *)0x10000000, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	high = mmap(0, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (low != (void *)0x10000000 || high == MAP_FAILED) { perror("mmap"); return 1; }
	memcpy(low, loop, sizeof loop);
	memcpy(high, loop, sizeof loop);
	char path[64];
	snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
	FILE *f = fopen(path, "w");
	if (!f) { perror(path); return 1; }
	fprintf(f, "%lx %zx jit_low\n%lx 10 perf_main\n%lx %zx jit_high\n",
		(unsigned long)low, sizeof loop, (unsigned long)main, (unsigned long)high, sizeof loop);
	fclose(f);
	pthread_t th;
	if (pthread_create(&th, 0, run_low, 0) != 0) { perror("pthread_create"); return 1; }
	while (!low_tid) usleep(1000);
	printf("thread %d low\nthread %d high\nfn main %p\nfn low %p\nfn high %p\nready %d\n",
		low_tid, gettid(), (void *)main, low, high, getpid());
	fflush(stdout);
	((void (*)(void))high)();
	return 0;
}
`

// TestPerfMapLive symbolizes the frames of a process whose JIT code lies
// in two regions, below and above its executable, through its perf map.
func TestPerfMapLive(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs linux/amd64: runs x86-64 code in a child")
	}
	gcc := testenv.Tool(t, "gcc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "perfmapjit.c"), filepath.Join(dir, "perfmapjit")
	if err := os.WriteFile(src, []byte(perfMapJITC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-g", "-O1", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	p := testproc.Start(t, bin)
	mapPath := fmt.Sprintf("/tmp/perf-%d.map", p.Pid)
	t.Cleanup(func() { os.Remove(mapPath) })

	// Each thread's PC, as the kernel reports it for a thread in a
	// system call: /proc/PID/task/TID/syscall ends with SP and PC.
	pcs := map[string]uint64{}
	for tid, role := range p.Threads {
		pcs[role] = syscallPC(t, p.Pid, tid)
	}
	tgt, err := live.Open(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	h := newHandler(t, symhandler.Config{Target: tgt, Invade: true})
	ctx := context.Background()
	mods, err := h.ImportPerfMap(ctx, mapPath, "perf-map")
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 2 {
		t.Errorf("ImportPerfMap made %d modules, want 2 (one per JIT region)", len(mods))
	}
	for _, c := range []struct {
		role, name string
		base       uint64
	}{
		{"low", "jit_low", p.Funcs["low"]},
		{"high", "jit_high", p.Funcs["high"]},
	} {
		pc := pcs[c.role]
		loc, err := h.Symbolize(ctx, pc)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Module == nil || loc.Module.Name != "perf-map" || loc.Symbol == nil ||
			loc.Symbol.Name != c.name || loc.Displacement != pc-c.base {
			t.Errorf("thread %s at %#x: %+v, want perf-map!%s+%#x", c.role, pc, loc, c.name, pc-c.base)
		}
	}
	// main is named by the executable, not by the map's perf_main.
	loc, err := h.Symbolize(ctx, p.Funcs["main"])
	if err != nil {
		t.Fatal(err)
	}
	if loc.Module == nil || loc.Module.Name != "perfmapjit" || loc.Symbol == nil || loc.Symbol.Name != "main" {
		t.Errorf("main at %#x: %+v, want perfmapjit!main", p.Funcs["main"], loc)
	}
}

// syscallPC returns the PC of thread tid of process pid, which must be
// asleep in the pause system call; it waits for it to get there.
func syscallPC(t *testing.T, pid, tid int) uint64 {
	t.Helper()
	file := fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid)
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		last = strings.TrimSpace(string(b))
		f := strings.Fields(last)
		if len(f) == 9 && f[0] == "34" {
			pc, err := strconv.ParseUint(strings.TrimPrefix(f[8], "0x"), 16, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", file, last, err)
			}
			return pc
		}
	}
	t.Fatalf("%s never showed the pause system call: %q", file, last)
	return 0
}
