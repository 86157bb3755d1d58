package stackwalk_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/stackwalk"
)

// winSleep is testdata/winsleep.c running under Wine.
type winSleep struct {
	pid   int               // the Linux process that runs winsleep.exe
	funcs map[string]uint64 // f1, f2, f3, worker, main
}

// startWinSleep builds testdata/winsleep.c, runs it under Wine and waits
// for its ready line (testproc.StartWineProgram).
func startWinSleep(t *testing.T) *winSleep {
	t.Helper()
	p := testproc.StartWineProgram(t, "testdata/winsleep.c")
	if len(p.Funcs) != 5 {
		t.Fatalf("winsleep.exe announced %v, want f1, f2, f3, worker and main", p.Funcs)
	}
	return &winSleep{pid: p.Pid, funcs: p.Funcs}
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
	fn := func(pc uint64) string { return announcedFunc(p.funcs, pc) }
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
