package stackwalk_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/stackwalk"
)

// winSleep is testdata/winsleep.c running under Wine.
type winSleep struct {
	pid   int               // the Linux process that runs winsleep.exe
	funcs map[string]uint64 // f1, f2, f3, worker, main
}

// startWinSleep builds testdata/winsleep.c, runs it under Wine and waits
// for its ready line. Like testproc.StartWine, it gives Wine no pipe (the
// output goes to a file, which it polls), recognises the program's
// process by a token in its environment, and kills that process and the
// launcher, and nothing else, when the test ends.
func startWinSleep(t *testing.T) *winSleep {
	t.Helper()
	env := winetest.Require(t)
	dir := t.TempDir()
	exe := env.BuildC(t, filepath.Join(dir, "winsleep.exe"), "-O2", "-g", "testdata/winsleep.c")
	out := filepath.Join(dir, "stdout")
	stdout, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	tok := make([]byte, 16)
	rand.Read(tok)
	token := "FNTABLE_WINSLEEP_TOKEN=" + hex.EncodeToString(tok)

	cmd := exec.Command(env.Wine, exe)
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "WINEPREFIX", "WINEDEBUG", "WINEDLLOVERRIDES", "DISPLAY":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "WINEPREFIX="+env.Prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", token)
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &winSleep{funcs: map[string]uint64{}}
	// No goroutine waits for the launcher while the test runs (a waiter
	// would take the ptrace stops of the threads the walk stops); the
	// cleanup kills by pid, then reaps the launcher.
	t.Cleanup(func() {
		for _, pid := range []int{p.pid, cmd.Process.Pid} {
			if proc, err := os.FindProcess(pid); pid != 0 && err == nil {
				proc.Kill()
			}
		}
		cmd.Wait()
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(out)
		if i := bytes.Index(data, []byte("ready")); i >= 0 {
			for _, line := range strings.Split(string(data[:i]), "\n") {
				if f := strings.Fields(line); len(f) == 3 && f[0] == "fn" {
					p.funcs[f[1]], _ = strconv.ParseUint(f[2], 0, 64)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("winsleep.exe did not get ready within a minute; output:\n%s", data)
		}
	}
	if len(p.funcs) != 5 {
		t.Fatalf("winsleep.exe announced %v, want f1, f2, f3, worker and main", p.funcs)
	}
	// The process that runs the program: usually the launcher itself,
	// which executes Wine's loader in place.
	match := func(pid int) bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(bytes.ToLower(cmdline), []byte("winsleep.exe")) {
			return false
		}
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return err == nil && bytes.Contains(environ, []byte(token+"\x00"))
	}
	if match(cmd.Process.Pid) {
		p.pid = cmd.Process.Pid
	} else if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && match(pid) {
				p.pid = pid
				break
			}
		}
	}
	if p.pid == 0 {
		t.Fatal("no process runs winsleep.exe")
	}
	return p
}

// TestLiveWineSleep walks a Windows program under Wine whose threads
// block in Sleep, the usual state of a Windows thread: each waits in the
// Unix side of Wine's ntdll, whose system-call dispatcher switches back
// to the thread's Windows stack, below the Unix one. The CFI of the
// dispatcher describes the switch (its CFA is loaded from the frame it
// saved), so the walk goes on through it, and through the .pdata of the
// PE images, to the thread's start.
func TestLiveWineSleep(t *testing.T) {
	p := startWinSleep(t)
	fn := func(pc uint64) string {
		best, at := "", uint64(0)
		for name, a := range p.funcs {
			if a <= pc && a >= at && pc-a < 0x200 {
				best, at = name, a
			}
		}
		return best
	}
	// main announces itself just before it calls f1: a walk that comes
	// too early does not find it in Sleep yet, so look a few times.
	var got map[string]string
	var ours map[int]stack
	for try := 0; try < 10; try++ {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		ours, _ = walkLive(t, p.pid, nil)
		got = map[string]string{} // outermost announced function → the chain
		for tid, s := range ours {
			var names []string
			for _, f := range s.frames {
				if n := fn(f.SymbolPC); n != "" {
					names = append(names, n)
				}
			}
			if len(names) > 0 {
				got[names[len(names)-1]] = strings.Join(names, " ")
				t.Logf("thread %d: %q, %d frames, ended with %v", tid, names, len(s.frames), s.err)
			}
		}
		if got["main"] != "" && got["worker"] != "" {
			break
		}
	}
	for _, th := range []string{"main", "worker"} {
		want := "f3 f2 f1 " + th
		if got[th] != want {
			var detail strings.Builder
			for tid, s := range ours {
				fmt.Fprintf(&detail, "\nthread %d (walk ended with %v):%s", tid, s.err, formatFrames(s.frames))
			}
			t.Errorf("no thread's walk goes through %q: the walks go through %q%s", want, got, detail.String())
		}
	}
	// Each of the two threads: through the dispatcher to the thread's
	// start, which returns to 0, without an error; the Windows frames
	// found by the .pdata.
	for tid, s := range ours {
		inF3, switched := false, false
		for i, f := range s.frames {
			if fn(f.SymbolPC) == "f3" {
				inF3 = true
			}
			if i > 0 && f.SP < s.frames[i-1].SP {
				switched = true
			}
		}
		if !inF3 {
			continue
		}
		if s.err != nil {
			t.Errorf("thread %d: the walk ended with %v:%s", tid, s.err, formatFrames(s.frames))
		}
		if !switched {
			t.Errorf("thread %d: no step to a lower stack pointer (the Unix stack to the Windows one):%s", tid, formatFrames(s.frames))
		}
		for _, f := range s.frames {
			if n := fn(f.SymbolPC); n != "" && f.How != stackwalk.HowPE {
				t.Errorf("thread %d: frame in %s found by %s, want pe", tid, n, f.How)
			}
		}
	}
}
