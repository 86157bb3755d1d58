//go:build linux

package live

import (
	"errors"
	"testing"
	"time"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/unwind"
)

// stopCycle stops pid, reads every thread's registers and 8 KiB of its
// stack, and resumes it.
func stopCycle(b *testing.B, pid int, buf []byte) {
	s, err := Stop(pid, StopOptions{})
	if err != nil {
		b.Fatal(err)
	}
	threads, err := s.Threads()
	if err != nil {
		b.Fatal(err)
	}
	for _, th := range threads {
		var ctx unwind.Context
		if err := s.ThreadContext(th.ID, &ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := s.ReadMemory(buf, ctx.Rsp); err != nil && !errors.Is(err, memory.ErrShortRead) {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStop stops a child of 1+4 threads and one of 1+16 threads in
// turn (Stop, the registers of every thread, an 8 KiB read under each
// stack pointer, Close).
func BenchmarkStop(b *testing.B) {
	buf := make([]byte, 8<<10)
	benchSizes(b, func(pid int) { stopCycle(b, pid, buf) })
}

// benchSizes runs cycle on a child of 1+4 threads and one of 1+16
// threads in turn and reports the time of each and the cost of a thread:
// the difference divided by the 12 extra threads.
func benchSizes(b *testing.B, cycle func(pid int)) {
	// The child has its main thread, a "deep" thread and the workers.
	small, large := startChild(b, 3), startChild(b, 15)
	var tSmall, tLarge time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		cycle(small.pid)
		t1 := time.Now()
		cycle(large.pid)
		tSmall += t1.Sub(t0)
		tLarge += time.Since(t1)
		n++
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.ReportMetric(us(tSmall), "µs/stop-1+4")
	b.ReportMetric(us(tLarge), "µs/stop-1+16")
	b.ReportMetric((us(tLarge)-us(tSmall))/12, "µs/extra-thread")
}
