//go:build linux && amd64 && cgo

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/provider"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target/live"
)

// TestExampleWalkedFromOutside runs the example in park mode, where its
// main thread blocks in a chain through its static table and its callback
// table, and walks that thread from this process as a debugger would: the
// callback table's entries come from the example provider
// (example/provider.c), which reads them from the example's memory. It
// walks in-process and isolated, and checks that an untrusted provider is
// not used.
func TestExampleWalkedFromOutside(t *testing.T) {
	tools := requireTools(t, true, "go", "gcc")
	inc, err := filepath.Abs("include")
	if err != nil {
		t.Fatal(err)
	}
	lib := buildLibraries(t, tools["go"])
	dir := testenv.TrustedDir(t)
	exe := filepath.Join(dir, "jit")
	prov := filepath.Join(dir, "libjit_provider.so")
	builds := [][]string{
		append(append([]string{}, cflags...), "-I", inc, "example/jit.c", "-L", lib, "-lfntable", "-Wl,-rpath,"+lib, "-lpthread", "-o", exe),
		append(append([]string{}, cflags...), "-I", inc, "-shared", "-fPIC", "example/provider.c", "-o", prov),
	}
	for _, args := range builds {
		if out, err := exec.Command(tools["gcc"], args...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	pid, static, callback := startParked(t, exe, prov)

	// An empty list file: only the provider given as on fntable's
	// command line (--trust-provider) is trusted, or none.
	list := filepath.Join(dir, "known-function-table-dlls")
	if err := os.WriteFile(list, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := provider.LoadTrust(provider.TrustOptions{File: list, Extra: []string{prov}})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    *provider.Resolver
	}{
		{"in-process", &provider.Resolver{Trust: trust}},
		{"isolated", &provider.Resolver{Trust: trust, Isolate: true, Executable: self}},
	} {
		t.Run(c.name, func(t *testing.T) {
			frames, err := walkMain(t, pid, c.r)
			if err != nil {
				t.Fatalf("walk: %v\nframes: %s", err, frames)
			}
			// The chain: pause, park, jit_fn (callback page), example_call,
			// hop, jit_fn (static page), example_call, main, and libc's
			// start, each JIT frame's caller found through its table.
			want := []uint64{callback + 0x14, static + 0x14}
			k := 0
			for i, f := range frames {
				if k < len(want) && f.PC == want[k] {
					if i+1 >= len(frames) || frames[i+1].How != stackwalk.HowTable {
						t.Errorf("the frame at %#x was not unwound through its table: %s", f.PC, frames)
					}
					k++
				}
			}
			if k != len(want) || len(frames) < 10 {
				t.Errorf("JIT frames %#x not all found in order: %s", want, frames)
			}
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		other, err := provider.LoadTrust(provider.TrustOptions{File: list})
		if err != nil {
			t.Fatal(err)
		}
		frames, err := walkMain(t, pid, &provider.Resolver{Trust: other})
		if err == nil || !strings.Contains(err.Error(), "not trusted") {
			t.Fatalf("walk without trust: err %v, want one saying the provider is not trusted\nframes: %s", err, frames)
		}
		if last := frames[len(frames)-1]; last.PC != callback+0x14 {
			t.Errorf("walk without trust ended at %#x, want the callback table's frame %#x", last.PC, callback+0x14)
		}
	})
}

// frameList prints frames for test failures.
type frameList []stackwalk.Frame

func (fs frameList) String() string {
	var b strings.Builder
	for i, f := range fs {
		fmt.Fprintf(&b, "\n  #%d pc %#x sp %#x [%s]", i, f.PC, f.SP, f.How)
	}
	return b.String()
}

// walkMain stops process pid and walks its main thread with r resolving
// callback tables.
func walkMain(t *testing.T, pid int, r *provider.Resolver) (frameList, error) {
	t.Helper()
	st, err := live.Stop(pid, live.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := stackwalk.NewSources(st, stackwalk.Options{Provider: r, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var frames frameList
	w := src.WalkThread(pid)
	for w.Next() {
		frames = append(frames, w.Frame())
	}
	return frames, w.Err()
}

// startParked starts the example in park mode naming provider, and
// returns its pid and code pages once its main thread sleeps in pause.
func startParked(t *testing.T, exe, prov string) (pid int, static, callback uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, exe, "park", prov)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("example in park mode: %v", err)
	}
	if _, err := fmt.Sscanf(line, "ready %d %v %v", &pid, &static, &callback); err != nil {
		t.Fatalf("example in park mode printed %q: %v", line, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if err == nil && strings.HasPrefix(string(b), "34 ") { // pause
			return pid, static, callback
		}
		if time.Now().After(deadline) {
			t.Fatalf("the example's main thread does not sleep in pause: %q %v", b, err)
		}
		time.Sleep(time.Millisecond)
	}
}
