package main

import (
	"bufio"
	"encoding/json"
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
	"github.com/fntable/fntable/internal/winetest"
)

// jitChild is a C program that maps an executable page, "generates" two
// functions in it, writes /tmp/perf-PID.map for them as a JIT does, prints
// the page's address and its own function's, and waits.
const jitChild = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) int native_work(int x) { return x * 7 + 3; }

int main(void) {
	unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED) return 1;
	memset(page, 0xc3, 4096);
	char path[64];
	snprintf(path, sizeof path, "/tmp/perf-%d.map", getpid());
	FILE *f = fopen(path, "w");
	if (!f) return 2;
	fprintf(f, "%lx 40 JIT:add_one\n", (unsigned long)page);
	fprintf(f, "0x%lx 0x80 JIT:loop body\n", (unsigned long)page + 0x40);
	fclose(f);
	printf("%p %p %d\n", (void *)page, (void *)native_work, native_work(1));
	fflush(stdout);
	pause();
	return 0;
}
`

func TestSymLiveProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs linux")
	}
	gcc := testenv.Tool(t, "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "jit.c")
	if err := os.WriteFile(src, []byte(jitChild), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "jit")
	if out, err := exec.Command(gcc, "-g", "-O1", "-o", exe, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(exe)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(fmt.Sprintf("/tmp/perf-%d.map", cmd.Process.Pid))
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	var fields []string
	select {
	case s := <-line:
		fields = strings.Fields(s)
	case <-time.After(30 * time.Second):
		t.Fatal("the child printed nothing")
	}
	if len(fields) != 3 {
		t.Fatalf("child said %q", fields)
	}
	page, _ := strconv.ParseUint(strings.TrimPrefix(fields[0], "0x"), 16, 64)
	native, _ := strconv.ParseUint(strings.TrimPrefix(fields[1], "0x"), 16, 64)
	pid := strconv.Itoa(cmd.Process.Pid)
	status, out, errOut := fntable("sym", "--json", "--symbol-path", t.TempDir(), "--pid", pid,
		fmt.Sprintf("%#x", native+1), fmt.Sprintf("%#x", page+0x10), fmt.Sprintf("%#x", page+0x41), fmt.Sprintf("%#x", page+0x1000))
	if status != 0 {
		t.Fatalf("status %d: %s", status, errOut)
	}
	type frame struct {
		Function string  `json:"function"`
		File     *string `json:"file"`
		Line     int     `json:"line"`
	}
	type answer struct {
		Module       *string `json:"module"`
		Symbol       *string `json:"symbol"`
		Displacement uint64  `json:"displacement"`
		Frames       []frame `json:"frames"`
	}
	var got []answer
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var a answer
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		got = append(got, a)
	}
	if len(got) != 4 {
		t.Fatalf("%d answers:\n%s", len(got), out)
	}
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	// The executable's own function, with its source line.
	if a := got[0]; str(a.Module) != "jit" || str(a.Symbol) != "native_work" || a.Displacement != 1 ||
		len(a.Frames) == 0 || !strings.HasSuffix(str(a.Frames[0].File), "jit.c") || a.Frames[0].Line != 7 {
		t.Errorf("native_work+1: %+v (frames %+v)", a, a.Frames)
	}
	// The JIT functions, from the process's perf map.
	if a := got[1]; str(a.Module) != "perf-map" || str(a.Symbol) != "JIT:add_one" || a.Displacement != 0x10 {
		t.Errorf("page+0x10: %+v", a)
	}
	if a := got[2]; str(a.Symbol) != "JIT:loop body" || a.Displacement != 1 {
		t.Errorf("page+0x41: %+v", a)
	}
	if a := got[3]; a.Module != nil || a.Symbol != nil || len(a.Frames) != 0 {
		t.Errorf("page+0x1000 (no module): %+v", a)
	}
}

// TestSymDump symbolizes in a Windows minidump whose images are not here:
// addresses get their module and offset, and the missing images are
// reported once each.
func TestSymDump(t *testing.T) {
	path := winetest.Testdata(t, "minidumps/electron-node-minidump-windows-x64.dmp")
	status, out, errOut := fntable("sym", "--symbol-path", t.TempDir(), "--dump", path, "0x7FF7215F8DA4", "0x7FF7215F8DA5", "0x10")
	if status != 0 {
		t.Fatalf("status %d: %s", status, errOut)
	}
	want := "0x7ff7215f8da4 electron.exe+0xe8da4\n0x7ff7215f8da5 electron.exe+0xe8da5\n0x10 ??\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if n := strings.Count(errOut, "no symbols for electron.exe"); n != 1 {
		t.Errorf("the missing image is reported %d times: %s", n, errOut)
	}
}

// TestStackWindowsDumps: the faulting thread of a Windows crash dump is
// walked from the exception's registers, and says so; an x86 dump is
// refused before anything is looked for, naming the file.
func TestStackWindowsDumps(t *testing.T) {
	path := winetest.Testdata(t, "minidumps/electron-node-minidump-windows-x64.dmp")
	status, out, errOut := fntable("stack", "--json", "--no-symbols", "--symbol-path", t.TempDir(), path)
	if status != 0 {
		t.Fatalf("status %d: %s", status, errOut)
	}
	var doc struct {
		Threads []struct {
			Tid       int `json:"tid"`
			Frames    []struct{ PC string }
			Exception *struct {
				Code, Address string
				Context       bool
			} `json:"exception"`
		} `json:"threads"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, th := range doc.Threads {
		if th.Exception == nil {
			continue
		}
		found = true
		e := th.Exception
		if th.Tid != 6068 || e.Code != "0xc0000005" || e.Address != "0x7ff7215f8da4" || !e.Context ||
			len(th.Frames) == 0 || th.Frames[0].PC != "0x7ff7215f8da4" {
			t.Errorf("thread %d: exception %+v, frames %v; want 6068 walked from the access violation at 0x7ff7215f8da4", th.Tid, *e, th.Frames)
		}
	}
	if !found {
		t.Error("no thread has the dump's exception")
	}
	status, out, _ = fntable("stack", "--no-symbols", "--symbol-path", t.TempDir(), path)
	if status != 0 || !strings.Contains(out, "Thread 6068 \"\":\n    (exception 0xc0000005 at 0x7ff7215f8da4; the frames start at its registers)\n#0  0x00007ff7215f8da4 ") {
		t.Errorf("text: status %d\n%s", status, out)
	}

	x86 := winetest.Testdata(t, "minidumps/breakpad-minidump2.dmp")
	for _, args := range [][]string{{"stack", "--symbol-path", t.TempDir(), x86}, {"tables", x86}} {
		status, out, errOut := fntable(args...)
		if status != 1 || out != "" || errOut != "fntable: "+x86+": the dump is of an x86 (32-bit) process (PROCESSOR_ARCHITECTURE_INTEL): fntable unwinds x64 stacks only\n" {
			t.Errorf("%s of the x86 dump: status %d, stdout %q, stderr %q", args[0], status, out, errOut)
		}
	}
}
