package stackwalk_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/capture"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target/dump"
)

// TestScanAfterStaleFramePointer walks, offline, a dump of
// testdata/staleframe.c taken while its main thread blocks in
// main → f1 → f2 → f3, after its executable was deleted: no CFI
// describes its frames, and rbp points at zeros on the stack, so the
// frame-pointer step reads a return address of 0, in no module. Without
// Options.Scan the walk ends there; with it the scan takes over from the
// frame-pointer guess and finds f2, f1 and main on the stack.
func TestScanAfterStaleFramePointer(t *testing.T) {
	gcc := testenv.Tool(t, "gcc")
	dir := t.TempDir()
	bin := filepath.Join(dir, "staleframe")
	if out, err := exec.Command(gcc, "-O2", "-g", "-fomit-frame-pointer", "-o", bin, "testdata/staleframe.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	p := testproc.Start(t, bin)
	tid := 0
	for id, role := range p.Threads {
		if role == "main" {
			tid = id
		}
	}
	dmp := filepath.Join(dir, "staleframe.dmp")
	if _, err := capture.WriteFile(p.Pid, dmp, capture.Options{Logf: t.Logf}); err != nil {
		t.Fatal(err)
	}
	// The module's file is gone: its CFI cannot be read.
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	d, err := dump.Open(dmp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	fn := func(pc uint64) string { return announcedFunc(p.Funcs, pc) }

	s, err := stackwalk.NewSources(d, stackwalk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := walkAll(t, s, threadContext(t, d, tid))
	if len(frames) != 1 || !errors.Is(err, stackwalk.ErrNotCode) {
		t.Errorf("without Scan: %d frames, %v; want 1 frame and ErrNotCode:%s", len(frames), err, formatFrames(frames))
	}

	s, err = stackwalk.NewSources(d, stackwalk.Options{Scan: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	frames, err = walkAll(t, s, threadContext(t, d, tid))
	want := []struct {
		fn  string
		how stackwalk.How
	}{
		{"f3", stackwalk.HowContext},
		{"f2", stackwalk.HowScan},
		{"f1", stackwalk.HowScan},
		{"main", stackwalk.HowScan},
	}
	if len(frames) < len(want) {
		t.Fatalf("with Scan: %d frames, ended with %v; want at least f3, f2, f1, main:%s", len(frames), err, formatFrames(frames))
	}
	for i, w := range want {
		if f := frames[i]; fn(f.SymbolPC) != w.fn || f.How != w.how {
			t.Errorf("frame %d: pc %#x in %q, found by %v; want %s by %v:%s", i, f.PC, fn(f.SymbolPC), f.How, w.fn, w.how, formatFrames(frames))
		}
	}
	t.Logf("with Scan: %d frames, ended with %v", len(frames), err)
}
