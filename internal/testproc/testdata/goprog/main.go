// Command goprog is a test subject of package testproc: a Go program whose
// goroutines are blocked under recursions of known depth.
//
// Each of three goroutines recurses through recA → recB → recC → recA …
// until depth frames of them are on its stack (the outermost is recA),
// then blocks in park:
//
//	chan:  receives from a channel nobody sends to
//	sleep: sleeps (time.Sleep) for ever
//	read:  locked to its OS thread, reads a pipe nobody writes to with
//	       syscall.Read, so the thread blocks in read(2)
//
// When all are blocked it writes
//
//	goroutine <role> depth <D>          for chan and sleep
//	thread <tid> read depth <D> wait read
//	ready <pid>
//
// Flags: -d depth (default 8); -T seconds exits after that long (default
// 600; 0: never).
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type blocker struct {
	role  string
	depth int
	tid   atomic.Int64 // the read goroutine's thread
	fd    int          // the pipe it reads
	ch    chan int     // the channel chan receives from
}

var parked atomic.Int32

//go:noinline
func recA(b *blocker, d int) int {
	if d > 1 {
		return recB(b, d-1) + d
	}
	return park(b) + d
}

//go:noinline
func recB(b *blocker, d int) int {
	if d > 1 {
		return recC(b, d-1) + 2*d
	}
	return park(b) + 2*d
}

//go:noinline
func recC(b *blocker, d int) int {
	if d > 1 {
		return recA(b, d-1) + 3*d
	}
	return park(b) + 3*d
}

//go:noinline
func park(b *blocker) int {
	n := 0
	switch b.role {
	case "chan":
		parked.Add(1)
		n = <-b.ch
	case "sleep":
		parked.Add(1)
		for {
			time.Sleep(time.Hour)
			n++
		}
	case "read":
		b.tid.Store(int64(syscall.Gettid()))
		parked.Add(1)
		var buf [1]byte
		for {
			k, _ := syscall.Read(b.fd, buf[:])
			n += k
		}
	}
	return n
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("goprog: ")
	depth := flag.Int("d", 8, "recursion `depth` of each goroutine")
	lifetime := flag.Int("T", 600, "exit after this many `seconds` (0: never)")
	flag.Parse()
	if flag.NArg() != 0 || *depth < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if *lifetime > 0 {
		time.AfterFunc(time.Duration(*lifetime)*time.Second, func() { os.Exit(0) })
	}
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		log.Fatal(err)
	}
	bs := []*blocker{
		{role: "chan", depth: *depth, ch: make(chan int)},
		{role: "sleep", depth: *depth},
		{role: "read", depth: *depth, fd: p[0]},
	}
	for _, b := range bs {
		go func() {
			if b.role == "read" {
				runtime.LockOSThread()
			}
			recA(b, b.depth)
		}()
	}
	for parked.Load() < int32(len(bs)) {
		time.Sleep(time.Millisecond)
	}
	reader := bs[2]
	for !inRead(int(reader.tid.Load())) {
		time.Sleep(time.Millisecond)
	}
	// The other goroutines block within microseconds of counting
	// themselves; give them ample time.
	time.Sleep(20 * time.Millisecond)
	var out strings.Builder
	for _, b := range bs[:2] {
		fmt.Fprintf(&out, "goroutine %s depth %d\n", b.role, b.depth)
	}
	fmt.Fprintf(&out, "thread %d read depth %d wait read\n", reader.tid.Load(), reader.depth)
	fmt.Fprintf(&out, "ready %d\n", os.Getpid())
	os.Stdout.WriteString(out.String())
	for {
		time.Sleep(time.Hour)
		runtime.KeepAlive(bs)
	}
}

// inRead reports whether thread tid is blocked in read(2).
func inRead(tid int) bool {
	data, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/syscall")
	return err == nil && strings.HasPrefix(string(data), "0 ")
}
