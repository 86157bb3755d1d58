//go:build linux

package procmem

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/unwind"
)

// pattern fills b with bytes that depend on their index.
func pattern(b []byte, seed byte) {
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
}

// both runs f with process_vm_readv and with the /proc/PID/mem fallback.
func both(t *testing.T, pid int, f func(t *testing.T, p *Process)) {
	for _, file := range []bool{false, true} {
		name := "process_vm_readv"
		if file {
			name = "proc-mem"
		}
		t.Run(name, func(t *testing.T) {
			p, err := Open(pid)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.useFile.Store(file)
			f(t, p)
		})
	}
}

func TestSelf(t *testing.T) {
	page := os.Getpagesize()
	// Three pages: readable, readable, unmapped.
	mp, err := unix.MmapPtr(-1, 0, nil, uintptr(3*page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.MunmapPtr(mp, uintptr(2*page))
	if err := unix.MunmapPtr(unsafe.Add(mp, 2*page), uintptr(page)); err != nil {
		t.Fatal(err)
	}
	buf := unsafe.Slice((*byte)(mp), 2*page)
	pattern(buf, 0x5a)
	base := uint64(uintptr(unsafe.Pointer(&buf[0])))
	both(t, os.Getpid(), func(t *testing.T, p *Process) {
		for _, c := range []struct {
			name     string
			off, len int
		}{
			{"one byte", 0, 1},
			{"within a page", 100, 200},
			{"across pages", page - 5, 10},
			{"two whole pages", 0, 2 * page},
		} {
			got := make([]byte, c.len)
			n, err := p.ReadMemory(got, base+uint64(c.off))
			if err != nil || n != c.len || string(got) != string(buf[c.off:c.off+c.len]) {
				t.Errorf("%s: n=%d err=%v", c.name, n, err)
			}
		}
		// Into the unmapped page: the bytes before it, then an error
		// naming its first address.
		got := make([]byte, 20)
		n, err := p.ReadMemory(got, base+uint64(2*page-12))
		var ue *unwind.UnmappedError
		if n != 12 || !errors.As(err, &ue) || ue.Addr != base+uint64(2*page) || !errors.Is(err, unwind.ErrShortRead) {
			t.Errorf("into unmapped: n=%d err=%v", n, err)
		}
		if string(got[:12]) != string(buf[2*page-12:]) {
			t.Error("bytes before the unmapped page differ")
		}
		// Unmapped from the start, the null page, kernel addresses, the top.
		for _, a := range []uint64{base + uint64(2*page), 0, 0xffff800000000000, 0xfffffffffffffff0} {
			n, err := p.ReadMemory(got, a)
			if n != 0 || !errors.Is(err, unwind.ErrShortRead) {
				t.Errorf("read at %#x: n=%d err=%v", a, n, err)
			}
		}
		if n, err := p.ReadMemory(nil, 0); n != 0 || err != nil {
			t.Errorf("empty read: %d %v", n, err)
		}
	})
	// A read larger than one process_vm_readv call takes.
	big := make([]byte, (maxIov+3)*page+17)
	pattern(big, 3)
	both(t, os.Getpid(), func(t *testing.T, p *Process) {
		got := make([]byte, len(big))
		n, err := p.ReadMemory(got, uint64(uintptr(unsafe.Pointer(&big[0]))))
		if err != nil || n != len(big) || string(got) != string(big) {
			t.Errorf("big read: n=%d err=%v", n, err)
		}
	})
	runtime.KeepAlive(big)
}

func TestOpenErrors(t *testing.T) {
	for _, pid := range []int{0, -1, 1 << 30} {
		if _, err := Open(pid); err == nil {
			t.Errorf("Open(%d) succeeded", pid)
		}
	}
}

const helperEnv = "FNTABLE_PROCMEM_HELPER"

// TestHelperChild is the child of TestChild: it prints the address and
// length of a buffer, then waits for its standard input to close.
func TestHelperChild(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestChild")
	}
	buf := make([]byte, 3*os.Getpagesize()+5)
	pattern(buf, 0xa5)
	fmt.Printf("buffer %#x %d\n", uintptr(unsafe.Pointer(&buf[0])), len(buf))
	bufio.NewReader(os.Stdin).ReadString('\n')
	runtime.KeepAlive(buf)
}

func TestChild(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperChild$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	var addr uint64
	var size int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "buffer" {
			addr, _ = strconv.ParseUint(f[1], 0, 64)
			size, _ = strconv.Atoi(f[2])
			break
		}
	}
	if addr == 0 {
		t.Fatal("the child printed no buffer")
	}
	want := make([]byte, size)
	pattern(want, 0xa5)
	both(t, cmd.Process.Pid, func(t *testing.T, p *Process) {
		got := make([]byte, size)
		n, err := p.ReadMemory(got, addr)
		if err != nil || n != size || string(got) != string(want) {
			t.Errorf("read child: n=%d err=%v", n, err)
		}
		if p.Pid() != cmd.Process.Pid {
			t.Error("pid")
		}
	})
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// The process is gone: reads fail, wrapping ErrShortRead (through
	// its old name in package unwind too) and ErrTargetGone.
	p := &Process{pid: cmd.Process.Pid}
	if n, err := p.ReadMemory(make([]byte, 8), addr); n != 0 || !errors.Is(err, unwind.ErrShortRead) || !errors.Is(err, memory.ErrTargetGone) {
		t.Errorf("read after exit: %d %v", n, err)
	}
}
