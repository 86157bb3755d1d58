package main

import (
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/fntable/fntable/internal/testproc"
)

// BenchmarkStackCommand runs "fntable stack --no-symbols PID" in this
// process on main + 4 threads × 64 frames (-O1, no frame pointers):
// the command's own work, every run cold (no CFI kept), without the
// process start that hyperfine also measures.
func BenchmarkStackCommand(b *testing.B) {
	bin := testproc.BuildC(b, testproc.CVariant{Opt: "-O1"})
	p := testproc.Start(b, bin, "-n", "4", "-d", "64")
	for b.Loop() {
		if status := run([]string{"stack", "--no-symbols", strconv.Itoa(p.Pid)}, io.Discard, io.Discard); status != 0 {
			b.Fatalf("status %d", status)
		}
	}
}

// BenchmarkStackCommandSymbols is BenchmarkStackCommand with symbols:
// names, inline frames and lines, every run with a new symbol handler.
func BenchmarkStackCommandSymbols(b *testing.B) {
	bin := testproc.BuildC(b, testproc.CVariant{Opt: "-O1"})
	p := testproc.Start(b, bin, "-n", "4", "-d", "64")
	for b.Loop() {
		if status := run([]string{"stack", "--options", os.Getenv("STACK_OPTS"), strconv.Itoa(p.Pid)}, io.Discard, io.Discard); status != 0 {
			b.Fatalf("status %d", status)
		}
	}
}
