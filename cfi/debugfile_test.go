package cfi

import (
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/unwind"
)

// splitDebug builds a C program whose functions have only .debug_frame
// (-fno-asynchronous-unwind-tables), then splits it as distributions do:
// the stripped image with a .gnu_debuglink, and the debug file next to it.
func splitDebug(t *testing.T) (dir, image, debug string) {
	t.Helper()
	gcc := testenv.Tool(t, "gcc")
	objcopy := testenv.Tool(t, "objcopy")
	dir = t.TempDir()
	src := `#include <stdio.h>
__attribute__((noinline)) long f(long a, long b) {
	volatile long x[10];
	for (int i = 0; i < 10; i++) x[i] = a * i + b;
	return x[a % 10];
}
int main(int argc, char **argv) { printf("%ld\n", f(argc, 3)); return 0; }
`
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prog.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	run(gcc, "-O0", "-g", "-fno-asynchronous-unwind-tables", "-Wl,--build-id", "-o", "prog", "prog.c")
	run(objcopy, "--only-keep-debug", "prog", "prog.debug")
	run(objcopy, "--strip-debug", "--add-gnu-debuglink=prog.debug", "prog", "prog.stripped")
	return dir, filepath.Join(dir, "prog.stripped"), filepath.Join(dir, "prog.debug")
}

// TestSeparateDebugFrame finds the debug file of a stripped image by
// debuglink and by build ID, adds its .debug_frame, and unwinds a
// function that only .debug_frame describes.
func TestSeparateDebugFrame(t *testing.T) {
	dir, image, debug := splitDebug(t)
	f := openSystem(t, image)
	d := openSystem(t, debug)
	var fn *FDE // f, main: FDEs only in .debug_frame
	d.FDEs(func(fd FDE) bool {
		if fd.Section == ".debug_frame" && fd.End-fd.Begin > 16 {
			fn = &fd
			return false
		}
		return true
	})
	if fn == nil {
		t.Fatal("no .debug_frame FDE in the debug file")
	}
	pc := fn.Begin + 4 // after push rbp; mov rsp, rbp
	if _, ok, err := f.Lookup(pc); ok || err != nil {
		t.Fatalf("stripped image has an FDE for %#x (%v)", pc, err)
	}

	// By debuglink, next to the image.
	path, ok := FindDebugFile(image, f, []string{filepath.Join(dir, "none")})
	if !ok || path != debug {
		t.Errorf("FindDebugFile by debuglink = %q, %v; want %q", path, ok, debug)
	}
	// By build ID, in a debug directory.
	if len(f.BuildID()) < 2 {
		t.Fatal("no build ID")
	}
	h := hex.EncodeToString(f.BuildID())
	ids := filepath.Join(dir, "dbg")
	byID := filepath.Join(ids, ".build-id", h[:2], h[2:]+".debug")
	os.MkdirAll(filepath.Dir(byID), 0o755)
	if err := os.Rename(debug, byID); err != nil {
		t.Fatal(err)
	}
	path, ok = FindDebugFile(image, f, []string{ids})
	if !ok || path != byID {
		t.Errorf("FindDebugFile by build ID = %q, %v; want %q", path, ok, byID)
	}
	// A debug file with the right name but the wrong contents is refused.
	if err := os.WriteFile(debug, []byte("not it"), 0o644); err != nil {
		t.Fatal(err)
	}
	if path, ok := FindDebugFile(image, f, []string{filepath.Join(dir, "none")}); ok {
		t.Errorf("FindDebugFile accepted %s with a wrong CRC", path)
	}

	fh, err := os.Open(byID)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := f.AddDebugFrame(fh); err != nil {
		t.Fatal(err)
	}
	got, ok, err := f.Lookup(pc)
	if !ok || err != nil || got.Begin != fn.Begin || got.End != fn.End {
		t.Fatalf("Lookup after AddDebugFrame = %+v, %v, %v", got, ok, err)
	}
	rows, err := f.Rows(pc)
	if err != nil || len(rows) < 2 {
		t.Fatalf("Rows = %v, %v", rows, err)
	}
	// Step at the body: CFA = rbp+16, rbp saved at CFA-16, return address at CFA-8.
	const bias = 0x5555_0000_0000
	var body Row
	for _, r := range rows {
		if r.Loc <= pc {
			body = r
		}
	}
	if body.CFA.Kind != RuleCFA || body.CFA.Reg != RegRBP || body.CFA.Offset != 16 ||
		body.Regs[RegRBP].Offset != -16 || body.Regs[RegRA].Offset != -8 {
		t.Fatalf("row at %#x: CFA %v rbp %v ra %v; want rbp+16, c-16, c-8", pc, body.CFA, body.Regs[RegRBP], body.Regs[RegRA])
	}
	ctx := testContext()
	const cfa = 0x7ffc_0000_0100
	ctx.Rbp, ctx.Rsp, ctx.Rip = cfa-16, cfa-64, pc+bias
	stack := make([]byte, 0x200)
	putU64(stack, 0x100-16, 0xfeed)  // saved rbp
	putU64(stack, 0x100-8, 0x4011a0) // return address
	var mem unwind.SplicedMemory
	mem.Add(cfa-0x100, stack)
	res, ok, err := f.Step(&ctx, bias, ctx.Rip, &mem)
	if !ok || err != nil || res.CFA != cfa || ctx.Rip != 0x4011a0 || ctx.Rbp != 0xfeed || ctx.Rsp != cfa {
		t.Errorf("Step = %+v, %v, %v; rip %#x rbp %#x rsp %#x", res, ok, err, ctx.Rip, ctx.Rbp, ctx.Rsp)
	}
}
