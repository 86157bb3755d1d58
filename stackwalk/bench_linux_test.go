package stackwalk_test

import (
	"fmt"
	"testing"

	"github.com/fntable/fntable/cfi"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target/live"
)

// BenchmarkLiveWalk stops a process of main + N threads, each 64 frames
// deep in code without frame pointers (-O1), walks every thread and
// resumes it: the library's cost of "fntable stack --no-symbols" without
// the process start. Warm keeps the CFI between iterations, as a profiler
// sampling one process does; cold parses it afresh each time, as one
// command does. The slope between the two sizes is the cost per thread.
func BenchmarkLiveWalk(b *testing.B) {
	bin := testproc.BuildC(b, testproc.CVariant{Opt: "-O1"})
	for _, n := range []int{4, 16} {
		p := testproc.Start(b, bin, "-n", fmt.Sprint(n), "-d", "64")
		for _, warm := range []bool{true, false} {
			name := fmt.Sprintf("threads=%d/cold", n)
			if warm {
				name = fmt.Sprintf("threads=%d/warm", n)
			}
			b.Run(name, func(b *testing.B) {
				cache := new(cfi.Cache)
				frames, syscalls := 0, uint64(0)
				for b.Loop() {
					if !warm {
						cache = new(cfi.Cache)
					}
					st, err := live.Stop(p.Pid, live.StopOptions{})
					if err != nil {
						b.Fatal(err)
					}
					src, err := stackwalk.NewSources(st, stackwalk.Options{CFI: cache})
					if err != nil {
						b.Fatal(err)
					}
					threads, _ := st.Threads()
					frames = 0
					for _, th := range threads {
						w := src.WalkThread(th.ID)
						for w.Next() {
							frames++
						}
						if err := w.Err(); err != nil {
							b.Fatalf("thread %d: %v", th.ID, err)
						}
					}
					syscalls = st.Stats().Syscalls
					if err := st.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(frames), "frames/op")
				b.ReportMetric(float64(syscalls), "readv/op")
			})
		}
	}
}

// BenchmarkWalkStopped walks every thread of a process stopped once, with
// the CFI and the target's page cache warm: the walker's own cost per
// frame, without ptrace.
func BenchmarkWalkStopped(b *testing.B) {
	bin := testproc.BuildC(b, testproc.CVariant{Opt: "-O1"})
	p := testproc.Start(b, bin, "-n", "16", "-d", "64")
	st, err := live.Stop(p.Pid, live.StopOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	threads, _ := st.Threads()
	cache := new(cfi.Cache)
	frames := 0
	for b.Loop() {
		src, err := stackwalk.NewSources(st, stackwalk.Options{CFI: cache})
		if err != nil {
			b.Fatal(err)
		}
		frames = 0
		for _, th := range threads {
			w := src.WalkThread(th.ID)
			for w.Next() {
				frames++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*frames), "ns/frame")
}
